"""The lab, exercise by exercise: compute the receptive fields, verify them with gradients,
measure the effective field, draw the boxes, and extend to more networks.

Only orchestration and recording live here; the calculator is :mod:`.receptive`, the
gradient measurements :mod:`.verify`, the answers' text :mod:`.text`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

from . import text  # noqa: E402
from .receptive import LayerField, feature_output, receptive_fields, spatial_layers, unsupported  # noqa: E402
from .verify import (  # noqa: E402
    centred_mass_width,
    effective_receptive_field,
    gaussian_fit,
    gradient_boxes,
    nonzero_box,
)

#: The assignment's network (Problem 1, Exercise 1): input 227 x 227.
ASSIGNMENT_INPUT = 227
#: The worked answer: (n, j, r, centre box in 1-based input coordinates) of each layer.
ASSIGNMENT_ANSWER = {
    "conv1": (55, 4, 11, (109, 119)),
    "pool1": (27, 8, 19, (105, 123)),
    "conv2": (27, 8, 51, (89, 139)),
}
#: Final receptive fields published for these architectures (Araujo et al., "Computing
#: receptive fields of convolutional neural networks", Distill 2019), used as a cross-check.
PUBLISHED_RF = {"alexnet": 195, "vgg16": 212, "inception_v3": 1311}
OFFICIAL_ALEXNET = "alexnet-owt-7be5be79.pth"


def assignment_network(relu: bool = True, max_pool: bool = True) -> nn.Sequential:
    """The assignment's network: conv 11x11 stride 4 (96 filters, as AlexNet), max-pool 3x3
    stride 2, conv 5x5 stride 1 padding 2 (256 filters), each conv followed by a ReLU.
    ``relu=False`` / ``max_pool=False`` give the variants used to show why a naive gradient
    measurement fails."""
    act = nn.ReLU if relu else nn.Identity
    pool = nn.MaxPool2d(3, 2) if max_pool else nn.AvgPool2d(3, 2)
    layers = [
        ("conv1", nn.Conv2d(3, 96, 11, stride=4)),
        ("relu1", act()),
        ("pool1", pool),
        ("conv2", nn.Conv2d(96, 256, 5, padding=2)),
        ("relu2", act()),
    ]
    from collections import OrderedDict

    return nn.Sequential(OrderedDict(layers))


def build_model(name: str, meta: bool = False) -> nn.Module:
    """A torchvision classification model with its default initialisation (never downloads).

    ``meta=True`` builds it on the meta device, without allocating or initialising any
    weight: enough for the calculator and the gradient probe, which only need the geometry,
    and much faster (VGG-16's classifier alone has 120 M weights to draw)."""
    import torchvision

    kwargs: dict[str, Any] = {"weights": None}
    if name in ("inception_v3", "googlenet"):
        kwargs.update(aux_logits=False, init_weights=False)
    if meta:
        try:
            with torch.device("meta"):
                return torchvision.models.get_model(name, **kwargs).eval()
        except (NotImplementedError, RuntimeError):  # an initialiser that reads values (RegNet)
            pass
    return torchvision.models.get_model(name, **kwargs).eval()


def classification_models() -> list[str]:
    """Every torchvision classification model name."""
    import torchvision

    return sorted(torchvision.models.list_models(module=torchvision.models))


# --------------------------------------------------------------------------- formatting


def _pair(values: Sequence[Any]) -> str:
    """``55`` when every axis agrees, else ``55 x 54``."""
    values = list(values)
    if all(v == values[0] for v in values):
        v = values[0]
        return f"{v:g}" if isinstance(v, float) else str(v)
    return " x ".join(f"{v:g}" if isinstance(v, float) else str(v) for v in values)


def box_1based(box: Sequence[tuple[int, int]] | None) -> str:
    """``109..119`` (both axes equal) or ``109..119 x 100..110``, 1-based; ``-`` for none."""
    if box is None:
        return "-"
    parts = [f"{lo + 1}..{hi + 1}" for lo, hi in box]
    return parts[0] if all(p == parts[0] for p in parts) else " x ".join(parts)


def field_rows(fields: Sequence[LayerField], names: dict[str, str] | None = None) -> list[dict[str, Any]]:
    """Table rows (layer, n, j, r, start, centre unit, boxes), coordinates 1-based."""
    rows = []
    for f in fields:
        rows.append(
            {
                "layer": "input" if f.kind == "input" else (names or {}).get(f.name, f.name),
                "operation": f.op,
                "n": _pair(f.size),
                "j": _pair(f.jump),
                "r": _pair(f.rf),
                "start": _pair([s + 1 for s in f.start]),
                "centre unit": _pair([c + 1 for c in f.centre_unit]),
                "centre box (padded)": box_1based(f.centre_box),
                "centre box (image)": box_1based(f.centre_box_clipped),
            }
        )
    return rows


def hub_alexnet_weights() -> Path | None:
    """The official AlexNet weights, when they happen to be in the torch hub cache."""
    path = Path(torch.hub.get_dir()) / "checkpoints" / OFFICIAL_ALEXNET
    return path if path.is_file() else None


def load_grace_hopper(size: int) -> np.ndarray:
    """The photo matplotlib ships, centre-cropped to a square and resized to ``size``."""
    from matplotlib import cbook
    from PIL import Image

    with cbook.get_sample_data("grace_hopper.jpg") as fh:
        img = Image.open(fh).convert("RGB")
        side = min(img.size)
        left, top = (img.width - side) // 2, (img.height - side) // 2
        img = img.crop((left, top, left + side, top + side)).resize((size, size), Image.BICUBIC)
        return np.asarray(img)


def verification_size(model: nn.Module, base: int = 224, step: int = 32, limit: int = 640) -> int:
    """The smallest input size (``base``, ``base + step``, ...) at which the centre unit of
    the final layer sees no padding, so that the gradient check tests the whole box and not
    only the image border; ``limit`` when no size up to it fits."""
    size = base
    while size < limit:
        final = feature_output(receptive_fields(model, size))
        if final.centre_box_clipped == final.centre_box:
            return size
        size += step
    return limit


# --------------------------------------------------------------------------- the lab


def run_experiment(ctx: Any) -> None:
    cfg = ctx.config
    assignment = assignment_network()
    a_fields = receptive_fields(assignment, ASSIGNMENT_INPUT)
    a_table = spatial_layers(a_fields)
    alexnet = build_model("alexnet", meta=True)
    x_fields = receptive_fields(alexnet, cfg.alexnet_input)
    x_final = feature_output(x_fields)
    x_table = [f for f in spatial_layers(x_fields) if x_fields.index(f) <= x_fields.index(x_final)]

    exercise_1(ctx, a_table)
    exercise_2(ctx, x_table, x_final)
    exercise_3(ctx, assignment, a_table, alexnet, x_table, x_final)
    exercise_4(ctx, a_table, x_table)
    exercise_5(ctx, x_final)


def exercise_1(ctx: Any, table: list[LayerField]) -> None:
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


def exercise_2(ctx: Any, table: list[LayerField], final: LayerField) -> None:
    with ctx.exercise("2. torchvision's AlexNet", question=text.Q2) as ex:
        ex.table(
            field_rows(table),
            caption=f"AlexNet (torchvision), input {_pair(table[0].size)}; coordinates 1-based.",
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
                "r": _pair(f.rf),
                "computed box": box_1based(f.centre_box_clipped),
                "gradient box": box_1based(measured[f.name]),
                "equal": "yes" if ok else "NO",
            }
        )
        if not ok:
            bad.append(f.name)
    return rows, bad


def naive_measurements(table: list[LayerField], seed_gen: torch.Generator) -> list[dict[str, Any]]:
    """The assignment's network with its default random weights, measured four ways from the
    centre unit of channel 0 of each layer: as built (ReLU, max-pool), with average pooling,
    with identity activations too, and the probe. Rows: variant, layer, non-zero pixels,
    box area, bounding box, whether it equals the computed box."""
    from .verify import probe_model, run_nodes

    base = assignment_network()
    variants = {
        "as built (ReLU, max-pool)": base,
        "average pooling": _copy_weights(assignment_network(max_pool=False), base),
        "average pooling, identity activations": _copy_weights(assignment_network(False, False), base),
        "probe (constant positive weights)": probe_model(base),
    }
    x = torch.randn((1, 3, ASSIGNMENT_INPUT, ASSIGNMENT_INPUT), generator=seed_gen)
    rows = []
    nodes = {"conv1": "conv1", "pool1": "pool1", "conv2": "conv2", "conv2 after ReLU": "relu2"}
    theory = {"conv1": table[1], "pool1": table[2], "conv2": table[3], "conv2 after ReLU": table[3]}
    for variant, model in variants.items():
        # The probe computes in float64 (see verify.py); the real layers in float32, as trained.
        xi = (x.double() if hasattr(model, "graph") else x).clone().requires_grad_(True)
        model.eval()
        with torch.enable_grad():
            outs = _named_outputs(model, xi, run_nodes)
            for label, node in nodes.items():
                out = outs[node]
                c = (out.shape[-1] - 1) // 2
                (grad,) = torch.autograd.grad(out[0, 0, c, c], xi, retain_graph=True)
                box = nonzero_box(grad[0])
                f = theory[label]
                (lo, hi), _ = f.centre_box_clipped
                area = (hi - lo + 1) ** 2
                count = int((grad[0].abs().sum(0) > 0).sum())
                rows.append(
                    {
                        "variant": variant,
                        "layer": label,
                        "non-zero pixels": count,
                        "box area": area,
                        "gradient box": box_1based(box),
                        "equals computed": "yes" if box == f.centre_box_clipped and count == area else "no",
                    }
                )
    return rows


def _named_outputs(model: nn.Module, x: torch.Tensor, run_nodes: Any) -> dict[str, torch.Tensor]:
    """Outputs of the assignment network's layers by name (``conv1``, ``pool1``, ...)."""
    if isinstance(model, nn.Sequential):
        outs = {}
        for name, layer in model.named_children():
            x = layer(x)
            outs[name] = x
        return outs
    return run_nodes(model, x)


def _copy_weights(target: nn.Module, source: nn.Module) -> nn.Module:
    target.load_state_dict(source.state_dict())
    return target


def relu_dead_fraction(seed_gen: torch.Generator) -> float:
    """Share of conv2's channels whose centre unit, measured after its ReLU, has a zero
    gradient everywhere (the unit is inactive for this input)."""
    net = assignment_network().eval()
    x = torch.randn((1, 3, ASSIGNMENT_INPUT, ASSIGNMENT_INPUT), generator=seed_gen)
    with torch.no_grad():
        out = net(x)
    c = (out.shape[-1] - 1) // 2
    return float((out[0, :, c, c] <= 0).double().mean())


def exercise_3(
    ctx: Any,
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
        ex.figure(_erf_figure(erfs), "effective_receptive_field", caption=text.ERF_CAPTION)
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


def erf_networks(x_final: LayerField) -> tuple[list[tuple[nn.Module, LayerField]], str]:
    """The networks whose effective field is measured, with their own weights: AlexNet
    (ImageNet weights when the torch hub cache has them, else its default initialisation)
    at its last pooling layer, and ResNet-18 (default initialisation) at its last block."""
    weights = hub_alexnet_weights()
    alexnet = build_model("alexnet")
    if weights is not None:
        alexnet.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
        how = f"AlexNet with the ImageNet weights found in the torch hub cache (`{weights.name}`)"
    else:
        how = "AlexNet with torchvision's default random initialisation (no trained weights offline)"
    resnet = build_model("resnet18")
    r_final = feature_output(receptive_fields(resnet, x_final.input_size))
    how += ", ResNet-18 with its default random initialisation"
    return [(alexnet, x_final), (resnet, r_final)], how


def erf_statistics(f: LayerField, heat: torch.Tensor) -> dict[str, Any]:
    """Size and shape of an effective receptive field: the standard deviation of a Gaussian
    fitted to its row and column profiles (mean of the two), ``4 std / r`` (the +-2 std width
    against the theoretical field), the centred square holding 95 % of the mass, the worse
    R^2 of the two fits, and the share of the mass inside the theoretical box."""
    heat = heat.double()
    (r0, r1), (c0, c1) = f.centre_box_clipped
    centre = tuple((lo + hi) / 2 for lo, hi in f.centre_box)
    _, std_x, r2_x = gaussian_fit(heat.sum(0))
    _, std_y, r2_y = gaussian_fit(heat.sum(1))
    std = (std_x + std_y) / 2
    return {
        "network": "alexnet" if f.name.startswith("features") else "resnet18",
        "label": "AlexNet" if f.name.startswith("features") else "ResNet-18",
        "layer": f.name,
        "r": f.rf[0],
        "std": std,
        "ratio": 4 * std / f.rf[0],
        "width95": centred_mass_width(heat, centre, 0.95),
        "r2": min(r2_x, r2_y),
        "inside": float(heat[r0 : r1 + 1, c0 : c1 + 1].sum() / heat.sum()),
    }


def _erf_figure(erfs: list[tuple[LayerField, torch.Tensor]]) -> Any:
    from matplotlib.patches import Rectangle

    fig, axes = plt.subplots(1, len(erfs), figsize=(5 * len(erfs), 4.6))
    axes = np.atleast_1d(axes)
    for ax, (f, heat) in zip(axes, erfs, strict=False):
        im = ax.imshow(heat.numpy(), cmap="magma")
        (r0, r1), (c0, c1) = f.centre_box
        ax.add_patch(Rectangle((c0 - 0.5, r0 - 0.5), c1 - c0 + 1, r1 - r0 + 1, fill=False, ec="cyan", lw=1.5))
        lo = min(-0.5, c0 - 2.0, r0 - 2.0)
        hi = max(heat.shape[1] - 0.5, c1 + 2.0, r1 + 2.0)
        ax.set_xlim(lo, hi)
        ax.set_ylim(hi, lo)
        network = "AlexNet" if f.name.startswith("features") else "ResNet-18"
        ax.set_title(f"{network} {f.name}: theoretical r = {f.rf[0]} (cyan)", fontsize=10)
        fig.colorbar(im, ax=ax, fraction=0.046, label="mean |gradient|")
    fig.tight_layout()
    return fig


def exercise_4(ctx: Any, a_table: list[LayerField], x_table: list[LayerField]) -> None:
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


def exercise_5(ctx: Any, x_final: LayerField) -> None:
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
                    "n (224)": _pair(final.size),
                    "j": _pair(final.jump),
                    "r": _pair(final.rf),
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
            rows.append({"model": name, "input": size, "final layer": final.name, "r": _pair(final.rf),
                         "j": _pair(final.jump),
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
