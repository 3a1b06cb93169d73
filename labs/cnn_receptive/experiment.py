"""The lab, exercise by exercise: compute the receptive fields, verify them with gradients,
measure the effective field, draw the boxes, and extend to more networks.

Only orchestration and recording live here: :func:`run` calls one function per exercise,
named after the assignment's question. The calculator is :mod:`.receptive`, the gradient
measurements :mod:`.verify`, the effective field :mod:`.erf`, the networks and images
:mod:`.networks`, the answers' text :mod:`.text`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import matplotlib.pyplot as plt
from torch import nn

from labrunner import LabContext, exercise_function

from . import ReceptiveConfig, text
from .erf import RESAMPLES, effective_fields
from .networks import (
    ASSIGNMENT_ANSWER,
    ASSIGNMENT_INPUT,
    PUBLISHED_RF,
    assignment_network,
    build_model,
    load_grace_hopper,
)
from .receptive import (
    LayerField,
    feature_output,
    fraction_fully_inside,
    receptive_fields,
    spatial_layers,
)
from .tables import box_1based, field_rows, pair
from .verify import (
    average_pooling_coverage,
    gradient_boxes,
    naive_measurements,
    relu_dead_fraction,
)
from .zoo import check_model, survey_all_models

# --------------------------------------------------------------------------- the lab


def run(ctx: LabContext[ReceptiveConfig]) -> None:
    assignment = assignment_network()
    alexnet = build_model("alexnet", meta=True)

    a_table = receptive_field_of_each_layer(ctx, assignment)
    x_table = alexnet_table(ctx, alexnet)
    erf = verify_and_measure_effective_field(ctx, assignment, a_table, alexnet, x_table)
    boxes_on_a_real_image(ctx, a_table, x_table, erf)
    more_networks(ctx)


def _axis0(f: LayerField) -> dict[str, Any]:
    """The first axis of a layer as plain numbers for an answer template (1-based boxes)."""
    a = f.axes[0]
    lo, hi = a.box(a.centre)
    start = int(a.start + 1) if float(a.start).is_integer() else a.start + 1
    return {
        "n": a.size,
        "j": a.jump,
        "r": a.rf,
        "start": start,
        "centre": a.centre + 1,
        "lo": lo + 1,
        "hi": hi + 1,
    }


def _span(box: Sequence[tuple[int, int]] | None) -> int:
    """Pixels covered along the first axis by a 0-based box (0 for none)."""
    return 0 if box is None else box[0][1] - box[0][0] + 1


@exercise_function
def receptive_field_of_each_layer(
    ctx: LabContext[ReceptiveConfig], assignment: nn.Module
) -> list[LayerField]:
    """Exercise 1; returns the table of the assignment's network (its spatial layers)."""
    with ctx.exercise("1. The assignment's network", question=text.Q1) as ex:
        table = spatial_layers(receptive_fields(assignment, ASSIGNMENT_INPUT))
        rows = field_rows(table)
        for row, label in zip(rows, ["input", *ASSIGNMENT_ANSWER], strict=False):
            row["layer"] = label
        ex.table(rows, caption="Receptive fields at the centre unit; input 227 x 227, coordinates 1-based.")
        layers = table[1:]
        for f, (label, (n, j, r, box)) in zip(layers, ASSIGNMENT_ANSWER.items(), strict=False):
            (lo, hi), _ = f.centre_box_clipped
            ex.check_equal(f"{label}_n_j_r", [f.size[0], f.jump[0], f.rf[0]], [n, j, r])
            ex.check_equal(f"{label}_centre_box", [lo + 1, hi + 1], list(box), points=2)
            ex.metric(f"assignment_{label}_rf", f.rf[0])
        computed = {label: _axis0(f) for label, f in zip(ASSIGNMENT_ANSWER, layers, strict=True)}
        found = {label: (c["n"], c["j"], c["r"], (c["lo"], c["hi"])) for label, c in computed.items()}
        ex.claim(
            "matches_worked_answer",
            found == dict(ASSIGNMENT_ANSWER),
            statement="The computed n, j, r and centre box of every layer equal the worked answer's.",
            evidence="; ".join(f"{k}: computed {v}" for k, v in found.items()),
            baseline="the worked answer (n, j, r, box): "
            + "; ".join(f"{k}: {v}" for k, v in ASSIGNMENT_ANSWER.items()),
        )
        centres = [sum(b[0]) / 2 for b in (f.centre_box for f in layers)]
        nested = all(
            big.centre_box[0][0] <= small.centre_box[0][0] and big.centre_box[0][1] >= small.centre_box[0][1]
            for small, big in zip(layers, layers[1:], strict=False)
        )
        ex.claim(
            "assignment_boxes_concentric",
            nested and len(set(centres)) == 1 and all(len({c for c in f.centre_box}) == 1 for f in layers),
            statement="The centre units of all layers see nested boxes centred on the same pixel.",
            evidence="box centres (1-based): " + ", ".join(f"{c + 1:g}" for c in centres),
            baseline="exact geometry of the three layers",
        )
        ex.claim(
            "assignment_boxes_inside_image",
            all(f.centre_box == f.centre_box_clipped for f in layers),
            statement="No centre box reaches into the padding.",
            evidence="boxes (1-based): " + ", ".join(box_1based(f.centre_box) for f in layers),
            baseline=f"the image, pixels 1..{ASSIGNMENT_INPUT}",
        )
        # STUDENT ANSWER
        ex.answer(text.A1, conv1=computed["conv1"], pool1=computed["pool1"], conv2=computed["conv2"],
                  n_in=ASSIGNMENT_INPUT, expected=ASSIGNMENT_ANSWER, centre_pixel=centres[-1] + 1)  # fmt: skip
    return table


def _record_alexnet_boxes(ex: Any, final: LayerField, size: int) -> tuple[Any, Any, int, float]:
    """Exercise 2's claims on the last layer's boxes: clipped by the padding at the centre and
    at the border, what a border unit sees, and the units wholly inside the image. Returns
    (centre box, border box, units, share of units wholly inside)."""
    centre, border = final.centre_box_clipped, final.border_box_clipped
    ex.claim(
        "alexnet_centre_box_clipped",
        final.centre_box != centre,
        statement="The box of the last layer's centre unit reaches into the zero padding.",
        evidence=f"box {box_1based(final.centre_box)}, of which {box_1based(centre)} is image",
        baseline=f"the image, pixels 1..{size}",
    )
    ex.claim(
        "alexnet_border_box_clipped",
        final.unit_box((0,) * len(final.size)) != border,
        statement="The box of the last layer's corner unit reaches into the zero padding.",
        evidence=f"box {box_1based(final.unit_box((0, 0)))}, of which {box_1based(border)} is image",
        baseline=f"the image, pixels 1..{size}",
    )
    ex.claim(
        "alexnet_border_sees_less",
        _span(border) < _span(centre),
        statement="A unit at the border of the last layer's map sees fewer image pixels than the centre unit.",
        evidence=f"corner unit: {_span(border)} pixels per axis; centre unit: {_span(centre)}",
        baseline="the centre unit of the same layer (exact)",
    )
    units = final.size[0] * final.size[1]
    inside = fraction_fully_inside(final)
    ex.metric("alexnet_centre_unit_image_share", _span(centre) / size)
    ex.metric("alexnet_border_unit_image_share", _span(border) / size)
    ex.metric("alexnet_units_fully_inside_share", inside)
    ex.claim(
        "alexnet_some_units_wholly_inside",
        round(inside * units) > 0,
        statement="Some units of the last layer have their whole box inside the image.",
        evidence=f"{round(inside * units)} of the {units} units",
        baseline="the image's pixels 1..{size} (exact geometry)".replace("{size}", str(size)),
    )
    return centre, border, units, inside


@exercise_function
def alexnet_table(ctx: LabContext[ReceptiveConfig], alexnet: nn.Module) -> list[LayerField]:
    """Exercise 2; returns AlexNet's table, up to its last feature layer."""
    with ctx.exercise("2. torchvision's AlexNet", question=text.Q2) as ex:
        fields = receptive_fields(alexnet, ctx.config.alexnet_input)
        final = feature_output(fields)
        table = [f for f in spatial_layers(fields) if fields.index(f) <= fields.index(final)]
        size = table[0].size[0]
        ex.table(
            field_rows(table),
            caption=f"AlexNet (torchvision), input {pair(table[0].size)}; coordinates 1-based.",
        )
        ex.metric("alexnet_rf", final.rf[0])
        ex.check_equal("alexnet_final_rf", final.rf[0], PUBLISHED_RF["alexnet"], points=2)
        sizes = [f.size[0] for f in table[1:4]]
        expected = [n for n, _, _, _ in ASSIGNMENT_ANSWER.values()]
        ex.claim(
            "alexnet_maps_match_assignment",
            sizes == expected,
            statement="AlexNet's first three layers have the map sizes of the assignment's network.",
            evidence=f"AlexNet at {size} pixels: n = {', '.join(map(str, sizes))}",
            baseline=f"the assignment's network at {ASSIGNMENT_INPUT} pixels: n = {', '.join(map(str, expected))}",
        )
        ex.claim(
            "alexnet_rf_matches_published",
            final.rf[0] == PUBLISHED_RF["alexnet"],
            statement="AlexNet's final receptive field equals the published value.",
            evidence=f"computed r = {final.rf[0]}",
            baseline=f"r = {PUBLISHED_RF['alexnet']} (Araujo et al., Distill 2019)",
        )
        ex.claim(
            "alexnet_rf_exceeds_image",
            final.rf[0] > size,
            statement=f"AlexNet's final receptive field is wider than the {size}-pixel image.",
            evidence=f"r = {final.rf[0]}",
            baseline=f"the image width, {size} pixels",
        )
        centre, border, units, inside = _record_alexnet_boxes(ex, final, size)
        # STUDENT ANSWER
        ex.answer(
            text.A2,
            rows=[_axis0(f) | {"name": f.name, "op": f.op} for f in table[1:]],
            final=_axis0(final),
            final_name=final.name,
            size=size,
            published=PUBLISHED_RF["alexnet"],
            setting={"even_map": final.size[0] % 2 == 0},
            centre_box=box_1based(centre),
            centre_px=_span(centre),
            border_box=box_1based(border),
            border_px=_span(border),
            units=units,
            units_inside=round(inside * units),
        )
    return table


def _box_matches(
    model: nn.Module, fields: Sequence[LayerField], size: Sequence[int]
) -> tuple[list[dict[str, Any]], list[str]]:
    """Computed vs measured (probe gradient) centre boxes: table rows and the mismatches."""
    layers = [f for f in fields if f.kind != "input"]
    measured = gradient_boxes(model, size, layers)
    rows, bad = [], []
    for f in layers:
        ok = measured[f.name] == f.centre_box_clipped
        rows.append({"layer": f.name, "r": pair(f.rf), "computed box": box_1based(f.centre_box_clipped),
                     "gradient box": box_1based(measured[f.name]), "equal": "yes" if ok else "NO"})  # fmt: skip
        if not ok:
            bad.append(f.name)
    return rows, bad


def _record_box_matches(
    ex: Any, assignment: nn.Module, a_table: list[LayerField], alexnet: nn.Module, x_table: list[LayerField]
) -> tuple[list[dict[str, Any]], list[str], list[dict[str, Any]], list[str]]:
    """Exercise 3's first part: computed vs gradient boxes of both networks, as tables, checks
    and a claim. Returns (rows, mismatches) of the assignment's network, then AlexNet's."""
    rows_a, bad_a = _box_matches(assignment, a_table, (ASSIGNMENT_INPUT, ASSIGNMENT_INPUT))
    rows_x, bad_x = _box_matches(alexnet, x_table, x_table[0].size)
    for row, label in zip(rows_a, ASSIGNMENT_ANSWER, strict=False):
        row["layer"] = label
    ex.table(rows_a, caption="The assignment's network: computed vs gradient (probe) box, 1-based.")
    ex.table(rows_x, caption="AlexNet: computed vs gradient (probe) box, 1-based.")
    ex.check_equal("assignment_computed_equals_gradient", bad_a, [], points=2)
    ex.check_equal("alexnet_computed_equals_gradient", bad_x, [], points=2)
    ex.metric("layers_verified_ex3", len(rows_a) + len(rows_x))
    ex.claim(
        "computed_boxes_match_gradient",
        not bad_a and not bad_x,
        statement="Every computed centre box equals the bounding box of the probe's non-zero gradient.",
        evidence=f"{len(rows_a) + len(rows_x)} layers compared; mismatches: {', '.join(bad_a + bad_x) or 'none'}",
        baseline="the probe's gradient box, to the pixel",
    )
    return rows_a, bad_a, rows_x, bad_x


def _record_average_pooling(
    ex: Any, gen: Any, naive: list[dict[str, Any]], area: int
) -> tuple[list[int], int]:
    """Exercise 3's average-pooling part: how much of pool1's field the gradient reaches over
    random inputs, and whether identity activations make every box whole. Returns (pixels
    reached per input, inputs with holes)."""
    coverage = average_pooling_coverage(gen)
    holes = sum(c < area for c in coverage)
    ex.metric("avg_pool_inputs_with_holes", holes)
    ex.claim(
        "avg_pool_alone_leaves_holes",
        holes > 0,
        statement="Average pooling alone does not always give pool1's centre unit a gradient on its whole field.",
        evidence=f"over {len(coverage)} random inputs the gradient reached {min(coverage)} to {max(coverage)} "
        f"pixels; fewer than {area} in {holes} of them",
        baseline=f"the {area} pixels of the computed box",
    )
    linear = [r for r in naive if r["variant"].startswith("average pooling, identity")]
    ex.claim(
        "avg_pool_identity_exact",
        all(r["equals computed"] == "yes" for r in linear),
        statement="With average pooling and identity activations every layer's gradient covers its whole box.",
        evidence="; ".join(f"{r['layer']}: {r['non-zero pixels']} of {r['box area']}" for r in linear),
        baseline="the computed boxes",
    )
    return coverage, holes


@exercise_function
def verify_and_measure_effective_field(
    ctx: LabContext[ReceptiveConfig],
    assignment: nn.Module,
    a_table: list[LayerField],
    alexnet: nn.Module,
    x_table: list[LayerField],
) -> list[dict[str, Any]]:
    """Exercise 3; returns the statistics of the effective fields (AlexNet first)."""
    with ctx.exercise("3. Empirical verification, and the effective receptive field", question=text.Q3) as ex:
        rows_a, bad_a, rows_x, bad_x = _record_box_matches(ex, assignment, a_table, alexnet, x_table)
        gen = ctx.torch_generator(offset=3)
        naive = naive_measurements(a_table, gen)
        ex.table(naive, caption="Back-propagating from the centre unit of channel 0, one random input.")
        dead = relu_dead_fraction(gen)
        ex.metric("relu_dead_fraction_conv2", dead)
        ex.claim(
            "relu_silences_conv2_units",
            dead > 0,
            statement="After its ReLU, the centre unit of some of conv2's channels has no gradient at all.",
            evidence=f"{100 * dead:.1f} % of the channels, for one random input",
            baseline="zero channels: a field the gradient would show whole (an exact count)",
        )
        pool_naive = next(r for r in naive if r["layer"] == "pool1")
        probe_ok = all(r["equals computed"] == "yes" for r in naive if r["variant"].startswith("probe"))
        ex.check("probe_variant_exact", probe_ok, expected=True, actual=probe_ok)
        ex.metric("naive_pool1_nonzero_pixels", pool_naive["non-zero pixels"])
        count, area, conv1_area = pool_naive["non-zero pixels"], pool_naive["box area"], a_table[1].rf[0] ** 2
        ex.claim(
            "naive_pool1_misses_field",
            count < area,
            statement="The naive gradient of pool1's centre unit misses part of its receptive field.",
            evidence=f"{count} non-zero pixels",
            baseline=f"the {area} pixels of the computed box",
        )
        ex.claim(
            "naive_pool1_one_conv1_field",
            count == conv1_area,
            statement="The naive gradient of pool1's centre unit covers exactly one conv1 unit's field.",
            evidence=f"{count} non-zero pixels",
            baseline=f"one conv1 field, {a_table[1].rf[0]} x {a_table[1].rf[0]} = {conv1_area} pixels",
        )
        ex.claim(
            "probe_exact",
            probe_ok,
            statement="The probe's gradient reproduces the computed box of every layer, every pixel non-zero.",
            evidence="; ".join(
                f"{r['layer']}: {r['equals computed']}" for r in naive if r["variant"].startswith("probe")
            ),
            baseline="the computed boxes",
        )
        coverage, holes = _record_average_pooling(ex, gen, naive, area)
        stats, diff = effective_fields(ctx, ex, gen)
        # STUDENT ANSWER
        ex.answer(
            text.A3,
            bad_a=bad_a,
            bad_x=bad_x,
            n_a=len(rows_a),
            n_x=len(rows_x),
            pool_naive=pool_naive,
            pool_area=area,
            dead=dead,
            coverage=coverage,
            holes=holes,
            stats=stats,
            diff=diff,
            setting={
                "trained": {s["network"]: s["trained"] for s in stats},
                "all_trained": all(s["trained"] for s in stats),
            },
            resamples=RESAMPLES,
        )
    return stats


def boxes_on_a_real_image(
    ctx: LabContext[ReceptiveConfig],
    a_table: list[LayerField],
    x_table: list[LayerField],
    erf: list[dict[str, Any]],
) -> None:
    from matplotlib.patches import Rectangle

    with ctx.exercise("4. The fields on a real image", question=text.Q4) as ex:
        fig, axes = plt.subplots(1, 2, figsize=(11, 5.6))
        colours = plt.get_cmap("viridis")
        for ax, table, label in ((axes[0], a_table, "assignment network"), (axes[1], x_table, "AlexNet")):
            size = table[0].size[0]
            ax.imshow(load_grace_hopper(size), extent=(-0.5, size - 0.5, size - 0.5, -0.5))
            layers = table[1:]
            for i, f in enumerate(layers):
                (r0, r1), (c0, c1) = f.centre_box
                ax.add_patch(Rectangle((c0 - 0.5, r0 - 0.5), c1 - c0 + 1, r1 - r0 + 1, fill=False, lw=1.6,
                                       ec=colours(i / max(len(layers) - 1, 1)), label=f"{f.name}: r = {f.rf[0]}"))  # fmt: skip
            if table is x_table:  # the corner unit of the last layer: part of its box is padding
                (r0, r1), (c0, c1) = layers[-1].unit_box((0, 0))
                ax.add_patch(Rectangle((c0 - 0.5, r0 - 0.5), c1 - c0 + 1, r1 - r0 + 1, fill=False, lw=1.6, ls="--",
                                       ec="red", label=f"{layers[-1].name}, corner unit"))  # fmt: skip
            # room around the image for the padding the boxes reach into
            lo = min(-0.5 - 0.1 * size, *(p.get_x() - 4 for p in ax.patches))
            hi = max(size - 0.5 + 0.1 * size, *(p.get_x() + p.get_width() + 4 for p in ax.patches))
            ax.set_xlim(lo, hi)
            ax.set_ylim(hi, lo)
            ax.set_title(f"{label}, input {size} x {size}", fontsize=11)
            # below the axes: inside, any corner covers the photo or a box
            ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.08), ncols=3, fontsize=7, frameon=False)
        fig.tight_layout()
        ex.figure(fig, "receptive_fields_grace_hopper", caption=text.FIG_CAPTION)
        final = x_table[-1]
        # STUDENT ANSWER
        ex.answer(text.A4, a_table=[_axis0(f) | {"name": f.name} for f in a_table[1:]], x_final=_axis0(final),
                  size=x_table[0].size[0], centre_px=_span(final.centre_box_clipped),
                  erf=erf[0])  # fmt: skip


def more_networks(ctx: LabContext[ReceptiveConfig]) -> None:
    cfg = ctx.config
    with ctx.exercise("5. More networks", question=text.Q5) as ex:
        rows, mismatches, results = [], [], []
        models = ["alexnet", *[m for m in cfg.models if m != "alexnet"]]
        with ctx.progress(total=len(models), desc="models") as bar:
            for name in models:
                row, result, bad = check_model(ctx, ex, bar, name)
                rows.append(row)
                results.append(result)
                mismatches += [f"{name}:{b}" for b in bad]
                bar.update(1)
        ex.table(rows, caption="Final receptive field of each network (input 224) and its gradient check.")
        ex.check_equal("computed_equals_gradient_all_models", mismatches, [], points=3)
        ex.claim("computed_equals_gradient_all_models", not mismatches,
                 statement="For every model the probe's gradient box equals the computed box.",
                 evidence=f"mismatches: {', '.join(mismatches) or 'none'}",
                 baseline="the probe's gradient box, to the pixel")  # fmt: skip
        survey = survey_all_models(ctx) if cfg.all_models else None
        if survey is not None:
            ex.table(
                survey["rows"], caption="Every torchvision classification model at input 224 (computed only)."
            )
            ex.metric("models_computed", survey["computed"])
            ex.metric("models_total", survey["total"])
            ex.claim(
                "calculator_follows_every_model",
                survey["computed"] == survey["total"],
                statement="The calculator follows the whole spatial part of every torchvision classification model.",
                evidence=f"{survey['computed']} of {survey['total']} models",
                baseline="every model torchvision lists (exact)",
            )
        by_r = sorted(results, key=lambda m: m["r"])
        # STUDENT ANSWER
        ex.answer(
            text.A5, results=results, survey=survey, mismatches=mismatches, narrowest=by_r[0], widest=by_r[-1]
        )
