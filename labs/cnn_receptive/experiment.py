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

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
from torch import nn  # noqa: E402

from labrunner import LabContext  # noqa: E402

from . import text  # noqa: E402
from .erf import erf_figure, erf_networks, erf_statistics  # noqa: E402
from .networks import (  # noqa: E402
    ASSIGNMENT_ANSWER,
    ASSIGNMENT_INPUT,
    PUBLISHED_RF,
    assignment_network,
    build_model,
    classification_models,
    load_grace_hopper,
    verification_size,
)
from .receptive import LayerField, feature_output, receptive_fields, spatial_layers, unsupported  # noqa: E402
from .tables import box_1based, field_rows, pair  # noqa: E402
from .verify import effective_receptive_field, gradient_boxes, naive_measurements, relu_dead_fraction  # noqa: E402

# --------------------------------------------------------------------------- the lab


def run(ctx: LabContext) -> None:
    cfg = ctx.config
    assignment = assignment_network()
    a_fields = receptive_fields(assignment, ASSIGNMENT_INPUT)
    a_table = spatial_layers(a_fields)
    alexnet = build_model("alexnet", meta=True)
    x_fields = receptive_fields(alexnet, cfg.alexnet_input)
    x_final = feature_output(x_fields)
    x_table = [f for f in spatial_layers(x_fields) if x_fields.index(f) <= x_fields.index(x_final)]

    receptive_field_of_each_layer(ctx, a_table)
    alexnet_table(ctx, x_table, x_final)
    verify_and_measure_effective_field(ctx, assignment, a_table, alexnet, x_table, x_final)
    boxes_on_a_real_image(ctx, a_table, x_table)
    more_networks(ctx, x_final)


def receptive_field_of_each_layer(ctx: LabContext, table: list[LayerField]) -> None:
    with ctx.exercise("1. The assignment's network", question=text.Q1) as ex:
        rows = field_rows(table)
        labels = ["input", *ASSIGNMENT_ANSWER]
        for row, label in zip(rows, labels, strict=False):
            row["layer"] = label
        ex.table(rows, caption="Receptive fields at the centre unit; input 227 x 227, coordinates 1-based.")
        layers = table[1:]
        for f, (label, (n, j, r, box)) in zip(layers, ASSIGNMENT_ANSWER.items(), strict=False):
            (lo, hi), _ = f.centre_box_clipped
            ex.check_equal(f"{label}_n_j_r", [f.size[0], f.jump[0], f.rf[0]], [n, j, r])
            ex.check_equal(f"{label}_centre_box", [lo + 1, hi + 1], list(box), points=2)
            ex.metric(f"assignment_{label}_rf", f.rf[0])
        conv1, pool1, conv2 = layers
        computed = {label: _axis0(f) for label, f in zip(ASSIGNMENT_ANSWER, layers, strict=True)}
        matches = all(
            (c["n"], c["j"], c["r"], (c["lo"], c["hi"])) == ASSIGNMENT_ANSWER[label]
            for label, c in computed.items()
        )
        ex.answer(
            text.A1,
            conv1=computed["conv1"],
            pool1=computed["pool1"],
            conv2=computed["conv2"],
            n_in=ASSIGNMENT_INPUT,
            expected=ASSIGNMENT_ANSWER,
            matches=matches,
        )


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


def alexnet_table(ctx: LabContext, table: list[LayerField], final: LayerField) -> None:
    with ctx.exercise("2. torchvision's AlexNet", question=text.Q2) as ex:
        ex.table(
            field_rows(table),
            caption=f"AlexNet (torchvision), input {pair(table[0].size)}; coordinates 1-based.",
        )
        ex.metric("alexnet_rf", final.rf[0])
        ex.check_equal("alexnet_final_rf", final.rf[0], 195, points=2)
        ex.answer(
            text.A2,
            rows=[_axis0(f) | {"name": f.name, "op": f.op} for f in table[1:]],
            final=_axis0(final),
            final_name=final.name,
            size=table[0].size[0],
        )


def _box_matches(
    model: nn.Module, fields: Sequence[LayerField], size: Sequence[int]
) -> tuple[list[dict[str, Any]], list[str]]:
    """Computed vs measured (probe gradient) centre boxes: table rows and the mismatches."""
    layers = [f for f in fields if f.kind != "input"]
    measured = gradient_boxes(model, size, layers)
    rows, bad = [], []
    for f in layers:
        ok = measured[f.name] == f.centre_box_clipped
        rows.append(
            {
                "layer": f.name,
                "r": pair(f.rf),
                "computed box": box_1based(f.centre_box_clipped),
                "gradient box": box_1based(measured[f.name]),
                "equal": "yes" if ok else "NO",
            }
        )
        if not ok:
            bad.append(f.name)
    return rows, bad


def verify_and_measure_effective_field(
    ctx: LabContext,
    assignment: nn.Module,
    a_table: list[LayerField],
    alexnet: nn.Module,
    x_table: list[LayerField],
    x_final: LayerField,
) -> None:
    cfg = ctx.config
    with ctx.exercise("3. Empirical verification, and the effective receptive field", question=text.Q3) as ex:
        size_a = (ASSIGNMENT_INPUT, ASSIGNMENT_INPUT)
        rows_a, bad_a = _box_matches(assignment, a_table, size_a)
        rows_x, bad_x = _box_matches(alexnet, x_table, x_table[0].size)
        for row, label in zip(rows_a, ASSIGNMENT_ANSWER, strict=False):
            row["layer"] = label
        ex.table(rows_a, caption="The assignment's network: computed vs gradient (probe) box, 1-based.")
        ex.table(rows_x, caption="AlexNet: computed vs gradient (probe) box, 1-based.")
        ex.check_equal("assignment_computed_equals_gradient", bad_a, [], points=2)
        ex.check_equal("alexnet_computed_equals_gradient", bad_x, [], points=2)
        ex.metric("layers_verified_ex3", len(rows_a) + len(rows_x))

        gen = ctx.torch_generator(offset=3)
        naive = naive_measurements(a_table, gen)
        ex.table(naive, caption="Back-propagating from the centre unit of channel 0, one random input.")
        dead = relu_dead_fraction(gen)
        ex.metric("relu_dead_fraction_conv2", dead)
        pool_naive = next(r for r in naive if r["layer"] == "pool1")
        probe_ok = all(r["equals computed"] == "yes" for r in naive if r["variant"].startswith("probe"))
        ex.check("probe_variant_exact", probe_ok, expected=True, actual=probe_ok)
        ex.metric("naive_pool1_nonzero_pixels", pool_naive["non-zero pixels"])

        # The effective receptive field (Luo et al., 2016), with the models' own weights.
        erf_models, weights_how = erf_networks(x_final)
        if "hub cache" not in weights_how:
            ctx.note(
                "The effective receptive fields (exercise 3) use the networks' default random "
                "initialisation: no trained AlexNet weights were found in the torch hub cache."
            )
        erfs = []
        with ctx.progress(total=len(erf_models), desc="effective receptive field") as bar:
            for model, f in erf_models:
                heat = effective_receptive_field(model, f, f.input_size, cfg.erf_samples, gen)
                erfs.append((f, heat))
                bar.update(1)
        stats = [erf_statistics(f, heat) for f, heat in erfs]
        ex.figure(erf_figure(erfs), "effective_receptive_field", caption=text.ERF_CAPTION)
        ex.table(
            [
                {
                    "network": s["label"],
                    "layer": s["layer"],
                    "theoretical r": s["r"],
                    "Gaussian std (px)": round(s["std"], 1),
                    "4 std / r": round(s["ratio"], 3),
                    "95 % mass square (px)": s["width95"],
                    "Gaussian fit R^2": round(s["r2"], 3),
                    "mass inside box": round(s["inside"], 6),
                }
                for s in stats
            ],
            caption=f"Effective receptive fields, {cfg.erf_samples} random inputs.",
        )
        for s in stats:
            ex.metric(f"erf_std_{s['network']}", s["std"])
            ex.metric(f"erf_ratio_{s['network']}", s["ratio"])
            ex.metric(f"erf_gaussian_r2_{s['network']}", s["r2"])
        deepest = stats[-1]
        ex.check_at_most(f"erf_much_smaller_{deepest['network']}", deepest["ratio"], 0.5)
        ex.check_close("erf_mass_inside_box", min(s["inside"] for s in stats), 1.0, 1e-9)
        ex.answer(
            text.A3,
            bad_a=bad_a,
            bad_x=bad_x,
            n_a=len(rows_a),
            n_x=len(rows_x),
            naive=naive,
            pool_naive=pool_naive,
            pool_area=pool_naive["box area"],
            dead=dead,
            probe_ok=probe_ok,
            weights_how=weights_how,
            stats=stats,
            deepest=deepest,
            samples=cfg.erf_samples,
        )


def boxes_on_a_real_image(ctx: LabContext, a_table: list[LayerField], x_table: list[LayerField]) -> None:
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
                colour = colours(i / max(len(layers) - 1, 1))
                ax.add_patch(
                    Rectangle(
                        (c0 - 0.5, r0 - 0.5),
                        c1 - c0 + 1,
                        r1 - r0 + 1,
                        fill=False,
                        ec=colour,
                        lw=1.6,
                        label=f"{f.name}: r = {f.rf[0]}",
                    )  # fmt: skip
                )
            ax.set_xlim(-0.5 - 0.1 * size, size - 0.5 + 0.1 * size)
            ax.set_ylim(size - 0.5 + 0.1 * size, -0.5 - 0.1 * size)
            ax.set_title(f"{label}, input {size} x {size}")
            ax.legend(loc="lower left", fontsize=7, framealpha=0.8)
        fig.tight_layout()
        ex.figure(fig, "receptive_fields_grace_hopper", caption=text.FIG_CAPTION)
        ex.answer(text.A4, a_table=[_axis0(f) | {"name": f.name} for f in a_table[1:]],
                  x_final=_axis0(x_table[-1]), size=x_table[0].size[0])  # fmt: skip


def more_networks(ctx: LabContext, x_final: LayerField) -> None:
    cfg = ctx.config
    with ctx.exercise("5. More networks", question=text.Q5) as ex:
        rows, mismatches, results = [], [], []
        models = ["alexnet", *[m for m in cfg.models if m != "alexnet"]]
        for name in ctx.progress(models, desc="models"):
            model = build_model(name, meta=True)
            fields = receptive_fields(model, 224)
            final = feature_output(fields)
            size = verification_size(model)
            vfields = receptive_fields(model, size) if size != 224 else fields
            vfinal = feature_output(vfields)
            measured = gradient_boxes(model, (size, size), [vfinal])
            bad = [vfinal.name] if measured[vfinal.name] != vfinal.centre_box_clipped else []
            checked = 1
            if cfg.verify_all_layers:  # every layer, at input 224 (one backward pass per layer)
                layers = [f for f in fields if f.known and f.kind != "input"]
                at_224 = gradient_boxes(model, (224, 224), layers)
                bad += [f"{f.name}@224" for f in layers if at_224[f.name] != f.centre_box_clipped]
                checked += len(layers)
            mismatches += [f"{name}:{b}" for b in bad]
            published = PUBLISHED_RF.get(name)
            rows.append(
                {
                    "model": name,
                    "final layer": final.name,
                    "n (224)": pair(final.size),
                    "j": pair(final.jump),
                    "r": pair(final.rf),
                    "published r": published if published is not None else "",
                    "verified at": size,
                    "layers verified": checked,
                    "computed box": box_1based(vfinal.centre_box_clipped),
                    "gradient box": box_1based(measured[vfinal.name]),
                    "equal": "yes" if not bad else f"NO ({len(bad)})",
                }
            )
            results.append({"name": name, "r": final.rf[0], "j": final.jump[0], "size": size,
                            "clipped": vfinal.centre_box_clipped != vfinal.centre_box, "layers": checked})  # fmt: skip
            ex.metric(f"rf_{name}", final.rf[0])
            if published is not None:
                ex.check_equal(f"{name}_published_rf", final.rf[0], published)
        ex.table(rows, caption="Final receptive field of each network (input 224) and its gradient check.")
        ex.check_equal("computed_equals_gradient_all_models", mismatches, [], points=3)
        survey = survey_all_models() if cfg.all_models else None
        if survey is not None:
            ex.table(
                survey["rows"], caption="Every torchvision classification model at input 224 (computed only)."
            )
            ex.metric("models_computed", survey["computed"])
            ex.metric("models_total", survey["total"])
        ex.answer(text.A5, results=results, survey=survey, mismatches=mismatches,
                  verify_all=cfg.verify_all_layers)  # fmt: skip


def survey_all_models() -> dict[str, Any]:
    """The final receptive field of every torchvision classification model that traces;
    ``computed`` counts those whose whole spatial part the calculator could reason about."""
    rows, computed = [], 0
    names = classification_models()
    for name in names:
        size = 299 if name == "inception_v3" else 224
        try:
            model = build_model(name, meta=True)
            fields = receptive_fields(model, size)
            final = feature_output(fields)
            problems = unsupported(fields)
            rows.append({"model": name, "input": size, "final layer": final.name, "r": pair(final.rf),
                         "j": pair(final.jump),
                         "stops at": f"{problems[0].name}: {problems[0].reason}" if problems else ""})  # fmt: skip
            computed += not problems
        except Exception as exc:  # a model fx cannot trace is reported, not fatal
            rows.append(
                {
                    "model": name,
                    "input": size,
                    "final layer": "-",
                    "r": "-",
                    "j": "-",
                    "stops at": str(exc)[:120],
                }
            )
    return {"rows": rows, "computed": computed, "total": len(names)}
