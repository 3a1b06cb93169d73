"""Every answer template rendered with each claim on both sides: no ``nan``, no empty
sentence, no contradiction (the sentence of the other outcome never appears), and no template
that decides a conclusion by comparing a number with a threshold (for every lab:
tests/test_answer_conditions.py)."""

from __future__ import annotations

import re
from types import SimpleNamespace

import pytest
from labrunner.labs.cnn_receptive import text
from labrunner.labs.cnn_receptive.networks import ASSIGNMENT_ANSWER

from labrunner.authoring.context import render_markdown

NETWORKS = ("alexnet", "resnet18")
MODELS = ("alexnet", "vgg16", "resnet18")


def axis(n, j, r, start, centre, lo, hi):
    return {"n": n, "j": j, "r": r, "start": start, "centre": centre, "lo": lo, "hi": hi}


def erf_stats(network, label, share):
    r = 195 if network == "alexnet" else 435
    width = share * r
    return {
        "network": network, "label": label, "layer": "features.12", "r": r, "input_px": 256,
        "trained": False, "inits": 4, "inputs": 4, "uniform_width": 0.975 * r, "inside": 1.0,
        "width": width, "width_lo": width - 2, "width_hi": width + 2, "share": share,
        "share_lo": share - 0.01, "share_hi": share + 0.01, "std": 37.3, "std_lo": 37.0,
        "std_hi": 37.6, "ratio": 0.77, "ratio_lo": 0.76, "ratio_hi": 0.78, "r2": 0.97,
        "r2_lo": 0.96, "r2_hi": 0.98, "r2_flat": 0.35, "r2_flat_lo": 0.3, "r2_flat_hi": 0.4,
        "r2_gain_lo": 0.6, "r2_gain_hi": 0.65,
    }  # fmt: skip


def values(units_inside=0, dead=0.5, trained_all=False, survey=True):
    """Values of the shape each exercise passes to its template."""
    conv1, pool1, conv2 = (
        axis(55, 4, 11, 6, 28, 109, 119),
        axis(27, 8, 19, 10, 14, 105, 123),
        axis(27, 8, 51, 10, 14, 89, 139),
    )
    final = axis(6, 32, 195, 32, 3, -1, 193)
    stats = [erf_stats("alexnet", "AlexNet", 0.82), erf_stats("resnet18", "ResNet-18", 0.61)]
    for s in stats:
        s["trained"] = trained_all
    results = [
        {"name": m, "r": r, "j": 32, "size": size, "layers_checked": "the final layer"}
        for m, r, size in zip(MODELS, (195, 212, 435), (256, 224, 480), strict=True)
    ]
    return {
        "A1": dict(conv1=conv1, pool1=pool1, conv2=conv2, n_in=227, expected=ASSIGNMENT_ANSWER, centre_pixel=114.0),
        "A2": dict(rows=[final | {"name": "features.12", "op": "MaxPool2d 3 s2 p0"}], final=final,
                   final_name="features.12", size=224, published=195, setting={"even_map": True}, centre_box="1..193",
                   centre_px=193, border_box="1..129", border_px=129, units=36, units_inside=units_inside),
        "A3": dict(bad_a=[], bad_x=["features.3"], n_a=3, n_x=8,
                   pool_naive={"non-zero pixels": 121, "box area": 361}, pool_area=361, dead=dead, coverage=[253, 361, 313], holes=2,
                   stats=stats, diff={"value": 0.21, "lo": -0.01, "hi": 0.4}, resamples=1000,
                   setting={"trained": {s["network"]: trained_all for s in stats}, "all_trained": trained_all}),
        "A4": dict(a_table=[conv1 | {"name": "conv1"}], x_final=final, size=224, centre_px=193, erf=stats[0]),
        "A5": dict(results=results, survey={"total": 80, "computed": 70} if survey else None,
                   mismatches=["vgg16:x"], narrowest=results[0], widest=results[-1],
                   cfg=SimpleNamespace(models=MODELS, all_models=survey)),
    }  # fmt: skip


def claim_names(template: str) -> list[str]:
    names = set(re.findall(r"claims\.([a-z_0-9]+)", template))
    for prefix in re.findall(r'claims\["([a-z_0-9]+_)"', template):
        names |= {prefix + n for n in (NETWORKS if prefix.startswith("erf") else MODELS)}
    return sorted(names)


#: Per template and claim: a phrase only the sentence for "holds" contains, and one only the
#: sentence for the other outcome does.
PHRASES = {
    "A1": {
        "matches_worked_answer": ("These are the worked answer's values", "differ from the worked answer"),
        "assignment_boxes_concentric": (
            "look at the\nsame centre pixel",
            "not all centred on the same pixel",
        ),
        "assignment_boxes_inside_image": (
            "None of these boxes reaches the border",
            "Part of the largest box falls",
        ),
    },
    "A2": {
        "alexnet_rf_matches_published": ("the published value for AlexNet", "not the published"),
        "alexnet_maps_match_assignment": (
            "which gives its first layers the map sizes",
            "its map sizes differ",
        ),
        "alexnet_centre_box_clipped": ("Part of it is zero padding", "All of it lies inside the image"),
        "alexnet_border_sees_less": ("sees less of the image than the", "sees as much of the image as"),
    },
    "A3": {
        "computed_boxes_match_gradient": ("**The computed boxes are exact.**", "disagree with the gradient"),
        "naive_pool1_misses_field": ("not the\n  361 of its field", "whole field of 361 pixels"),
        "probe_exact": ("The probe reproduces the computed box", "does not reproduce every computed box"),
        "avg_pool_alone_leaves_holes": (
            "Average pooling alone does not fill",
            "reached all 361 pixels every time",
        ),
        "avg_pool_identity_exact": ("With identity activations too", "Even with identity activations"),
        "erf_smaller_than_box_alexnet": (
            "field of AlexNet is smaller",
            "cannot tell the effective field of AlexNet",
        ),
        "erf_smaller_than_box_resnet18": (
            "of ResNet-18 is smaller",
            "cannot tell the effective field of ResNet-18",
        ),
        "erf_gaussian_resnet18": ("of ResNet-18 are closer to a Gaussian", "of ResNet-18 are not measurably"),
        "erf_mass_inside_box": ("lies inside the theoretical box, as\nit must", "a bug"),
    },
    "A4": {
        "assignment_boxes_concentric": (
            "nested and centred on the same pixel",
            "The boxes of the assignment's",
        ),
        "alexnet_centre_box_clipped": ("the rest of\nits box being padding", "box lies inside the image"),
    },
    "A5": {
        "computed_equals_gradient_all_models": ("In every case the bounding box", "Mismatches:"),
        "whole_box_verified_vgg16": (
            "input 224, where the centre unit's whole box",
            "input 224, where the box is still",
        ),
    },
}
TEMPLATES = ["A1", "A2", "A3", "A4", "A5"]


def outcomes(names: list[str]):
    """All claims true, all false, and each one flipped from all true (every claim on both sides)."""
    yield dict.fromkeys(names, True)
    yield dict.fromkeys(names, False)
    for name in names:
        yield {n: n != name for n in names}


def assert_clean(rendered: str, where: str) -> None:
    low = rendered.lower()
    assert "nan" not in re.findall(r"[a-z]+", low), where
    assert "none" not in re.findall(r"\b[a-z]+\b", rendered), where  # Python's None printed
    for bad in (r"\.\s*\.(?!\.)", r",\s*[.;]", r"\(\s*\)", r"[.)]\* ", r":\s*\.", r"\s[,.;]\s"):
        assert not re.search(bad, rendered.replace("..", "")), (where, bad, rendered)
    for sentence in re.split(r"(?<=[.!?])\s+", rendered):
        assert re.search(r"[A-Za-z0-9]", sentence), (where, "empty sentence")
    # words glued by a swallowed newline: "field.Each", "AlexNetand"
    assert not re.search(r"[a-z]\.[A-Z]|[a-z]and ", rendered), (where, rendered)


@pytest.mark.parametrize("name", TEMPLATES)
def test_every_claim_on_both_sides_renders_cleanly_and_without_contradiction(name):
    template = getattr(text, name)
    names = claim_names(template)
    assert names, f"{name} states no claim"
    seen = set()
    other = values(units_inside=1, dead=0.0, trained_all=True, survey=False)
    for i, claims in enumerate(outcomes(names)):
        for variant in (values(), other) if i < 2 else (values(),):
            rendered = render_markdown(template, claims=claims, **variant[name])
            seen.add(rendered)
            where = f"{name} with {claims}"
            assert_clean(rendered, where)
            flat = " ".join(rendered.split())
            for claim, (yes, no) in PHRASES[name].items():
                yes, no = " ".join(yes.split()), " ".join(no.split())
                if claim in claims:
                    assert (yes in flat) == claims[claim], (where, claim, yes)
                    assert (no in flat) == (not claims[claim]), (where, claim, no)
    assert len(seen) > 2  # the claims change the text


def test_the_share_comparison_has_three_outcomes_that_never_mix():
    v = values()["A3"]
    phrases = {
        (True, False): "The shallow AlexNet",
        (False, True): "ResNet-18 uses a larger share",
        (False, False): "cannot be told apart",
    }
    for (a, b), phrase in phrases.items():
        claims = dict.fromkeys(claim_names(text.A3), True) | {
            "erf_share_alexnet_larger": a,
            "erf_share_resnet18_larger": b,
        }
        rendered = render_markdown(text.A3, claims=claims, **v)
        assert [p for p in phrases.values() if p in rendered] == [phrase]


def test_stand_in_said_plainly_when_weights_are_random():
    claims = dict.fromkeys(claim_names(text.A3), True)
    random = render_markdown(text.A3, claims=claims, **values()["A3"])
    trained = render_markdown(text.A3, claims=claims, **values(trained_all=True)["A3"])
    assert "*This part runs on a stand-in:*" in random and "AlexNet and ResNet-18" in random
    assert "stand-in" not in trained
