"""Every answer template, rendered with each recorded claim on both sides: no NaN, no
leftover markup, no empty sentence, and the sentence that states a conclusion follows its claim."""

from __future__ import annotations

import re

import pytest
from labrunner.labs.attention import text

from labrunner.authoring.context import render_markdown

A1_VALUES = dict(
    n_cases=480,
    n_nontrivial=420,
    n_trivial=60,
    setting={"has_single_token": True},
    err64=6.7e-16,
    err32=4.8e-7,
    ratio64=0.006,
    ratio32=0.005,
    ulps64=3,
    ulps32=4,
    max_t=64,
    err_lemma=2.2e-16,
    row_err=4.4e-16,
    fig_t=8,
    fig_perm="8, 4, 1, 3, 7, 6, 5, 2",
    fig_err=2.2e-16,
    pe_sin=1.4,
    pe_learned=4.0,
    caught=4,
    wrong=4,
    missed="",
    wrong_min=1.4,
    columns_err=8.9e-16,
    columns_rows=1.78,
)
A2_VALUES = dict(
    n_cases=480,
    sum64=3.6e-15,
    sum32=9.5e-7,
    mean64=2.2e-16,
    mean32=1.2e-7,
    rows_inv=4.6,
    rows_eq=1.3e-15,
    flat=0.64,
    flat_ratio=1.9e12,
    sum_ratio=0.003,
    max_t=64,
)
FORMS = {"conv1d": "nn.Conv1d(k=1)", "vmap": "torch.func vmap", "functionalize": "functionalize(in-place)"}
A3_VALUES = dict(
    n_params=33088,
    d_model=64,
    d_ff=256,
    n_shapes=2,
    ffn_shapes="(16, 32, 64), (3, 7, 16)",
    err_linear=6e-8,
    err_conv=5.4e-7,
    err_vmap=0.0,
    max_ratio=0.008,
    n_inplace=3,
    inplace_names="`aten.add_.Tensor`, `aten.relu_.default`, `aten.add_.Tensor`",
    n_inplace_func=0,
    func_names="none",
    err_func=0.0,
    timing_shape="(16, 32, 64)",
    timing_dff=256,
    device="cpu",
    repeats=30,
    rounds=10,
    needed=9,
    chance=0.021,
    setting={"rounds_can_decide": True},
    ratios=[
        {
            "name": name,
            "key": key,
            "ratio": 1.4,
            "interval": "1.20–1.90",
            "slower": "why slower.",
            "same": "why same.",
        }
        for key, name in FORMS.items()
    ],
)
TIMING_CLAIMS = [f"ffn_{key}_{side}" for key in FORMS for side in ("slower", "faster")]
TEMPLATES = {"A1": (text.A1, A1_VALUES), "A2": (text.A2, A2_VALUES), "A3": (text.A3, A3_VALUES)}


def claim_names(template: str) -> list[str]:
    names = sorted(set(re.findall(r"claims\.(\w+)", template)))
    return names + (TIMING_CLAIMS if "claims[" in template else [])


def render(name: str, claims: dict[str, bool]) -> str:
    template, values = TEMPLATES[name]
    return render_markdown(template, claims=claims, **values)


def assert_clean(out: str) -> None:
    assert "nan" not in out.lower().replace("nanoscale", "")
    assert not re.search(r"\{\{ |\{%|%\}| \}\}", out)  # Jinja markup (LaTeX has its own braces)
    assert out.strip()
    prose = re.sub(r"\$\$.*?\$\$|\$[^$]*\$|`[^`]*`", "X", out, flags=re.S)  # math and code aside
    for bad in ("..", " .", " ,", ",.", "()", ": .", "  ,"):
        assert bad not in prose, (bad, prose)
    # no word glued to the next one where a tag swallowed the space or the newline
    assert not re.search(r"[a-z]\*\*[a-z]|\)[A-Za-z]|[a-z]{3}\([a-z]{2}", prose), prose


def timing_claims(verdict: str) -> dict[str, bool]:
    return {f"ffn_{key}_{side}": side == verdict for key in FORMS for side in ("slower", "faster")}


@pytest.mark.parametrize("name", sorted(TEMPLATES))
def test_every_claim_on_both_sides_renders_cleanly(name):
    names = claim_names(TEMPLATES[name][0])
    assert names, name
    everything = dict.fromkeys(names, True)
    if name == "A3":
        everything.update(timing_claims("slower"))
    variants = [everything, dict.fromkeys(names, False)]
    variants += [{**everything, n: not everything[n]} for n in names]
    for claims in variants:
        assert_clean(render(name, claims))


def test_a1_conclusions_follow_the_claims():
    names = claim_names(text.A1)
    yes = render("A1", dict.fromkeys(names, True))
    assert "These are rounding errors, not a failure of the identity" in yes
    assert "**not** equivariant" not in yes
    assert "all 4 fail the check" in yes
    assert "\n\nOne mistake it cannot see" in yes  # its own paragraph
    assert "still\nequivariant" in yes or "**still\nequivariant**" in yes
    assert "the single token" not in yes and "60 cases with a single token" in yes
    no = render("A1", {**dict.fromkeys(names, True), "equivariant_f64": False})
    assert "**not** equivariant" in no and "These are rounding errors" not in no
    no = render("A1", {**dict.fromkeys(names, True), "check_rejects_every_wrong_variant": False})
    assert "only 4 of the\n4 fail" in no or "only 4 of the 4 fail" in no.replace("\n", " ")
    no = render("A1", {**dict.fromkeys(names, True), "sinusoidal_encoding_breaks_equivariance": False})
    assert "The sinusoidal encoding stayed within the rounding bound and the learned one breaks it" in no
    assert "Both are far outside" not in no


def test_a1_says_what_was_really_tested():
    out = render_markdown(text.A1, claims=dict.fromkeys(claim_names(text.A1), True), **A1_VALUES)
    assert "Over 480 random cases, 420 of which permute" in " ".join(out.split())
    no_single = render_markdown(
        text.A1,
        claims=dict.fromkeys(claim_names(text.A1), True),
        **{**A1_VALUES, "setting": {"has_single_token": False}},
    )
    assert "single token" not in no_single


def test_a2_conclusions_follow_the_claims():
    names = claim_names(text.A2)
    yes = " ".join(render("A2", dict.fromkeys(names, True)).split())
    assert "The pooled readouts are invariant up to rounding" in yes
    assert "do not match the proof" not in yes
    no = " ".join(render("A2", {**dict.fromkeys(names, True), "sum_pool_invariant": False}).split())
    assert "The measurements do not match the proof: the sum over tokens is **not** invariant" in no
    assert "The pooled readouts are invariant" not in no


def test_a3_states_the_layer_norm_and_follows_the_timing_claims():
    names = claim_names(text.A3)
    base = {**dict.fromkeys(names, True), "vmap_bit_identical": False}
    out = " ".join(render("A3", {**base, **timing_claims("slower")}).split())
    assert "only non-linearity" not in out
    assert "layer normalisation" in out
    assert out.count("slower in 9 or more of the rounds") == 3 and "not distinguishable" not in out
    same = " ".join(render("A3", {**base, **timing_claims("none"), "ffn_linear_fastest": False}).split())
    assert same.count("not distinguishable from `nn.Linear`") == 3
    assert "slower in 9 or more of the rounds:" not in same and "`nn.Linear` is the fastest" not in same
    faster = " ".join(render("A3", {**base, **timing_claims("faster"), "ffn_linear_fastest": False}).split())
    assert faster.count("faster in 9 or more of the rounds") == 3
    disagree = " ".join(render("A3", {**base, "ffn_forms_agree": False}).split())
    assert "**not** all within the rounding bound" in disagree and "bit-identical" not in disagree
