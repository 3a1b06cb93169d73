"""Exercise 5's work on each network of the model zoo: the receptive field at input 224 and
the gradient check of one model, and the survey of every torchvision classification model."""

from __future__ import annotations

from typing import Any

from labrunner import LabContext

from . import ReceptiveConfig
from .networks import PUBLISHED_RF, build_model, classification_models, verification_size
from .receptive import feature_output, receptive_fields, unsupported
from .tables import box_1based, pair
from .verify import gradient_boxes


def check_model(
    ctx: LabContext[ReceptiveConfig], ex: Any, bar: Any, name: str
) -> tuple[dict[str, Any], dict[str, Any], list[str]]:
    """Exercise 5 for one model: its receptive field at input 224, the gradient check of its
    final layer (and of every layer, with ``verify_all_layers``), its metric, check and claims.
    Returns (table row, the answer's entry, mismatching layers)."""
    cfg = ctx.config
    bar.update(0, model=name, step="input size")
    model = build_model(name, meta=True)
    fields = receptive_fields(model, 224)
    final = feature_output(fields)
    size = verification_size(model, tick=lambda n: bar.update(0, size=n))
    vfields = receptive_fields(model, size) if size != 224 else fields
    vfinal = feature_output(vfields)
    bar.update(0, step="gradient check")
    measured = gradient_boxes(model, (size, size), [vfinal])
    bad = [vfinal.name] if measured[vfinal.name] != vfinal.centre_box_clipped else []
    checked = 1
    if cfg.verify_all_layers:  # every layer, at input 224 (one backward pass per layer)
        layers = [f for f in fields if f.known and f.kind != "input"]
        with ctx.progress(total=len(layers), desc=f"layers of {name}") as layer_bar:
            at_224 = gradient_boxes(model, (224, 224), layers, tick=layer_bar.update)
        bad += [f"{f.name}@224" for f in layers if at_224[f.name] != f.centre_box_clipped]
        checked += len(layers)
    published = PUBLISHED_RF.get(name)
    row = {
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
    result = {
        "name": name,
        "r": final.rf[0],
        "j": final.jump[0],
        "size": size,
        "layers_checked": "the final layer"
        + (f" and {checked - 1} layers at input 224" if checked > 1 else ""),
    }  # fmt: skip
    ex.metric(f"rf_{name}", final.rf[0])
    if published is not None:
        ex.check_equal(f"{name}_published_rf", final.rf[0], published)
    ex.claim(f"rf_exceeds_image_{name}", final.rf[0] > 224, evidence=f"r = {final.rf[0]}",
             statement=f"The final receptive field of {name} is wider than the 224-pixel image.",
             baseline="the image width, 224 pixels")  # fmt: skip
    ex.claim(f"whole_box_verified_{name}", vfinal.centre_box_clipped == vfinal.centre_box,
             statement=f"The gradient check of {name} tests both edges of the centre unit's whole box.",
             evidence=f"at input {size}: box {box_1based(vfinal.centre_box)}",
             baseline=f"the image, pixels 1..{size}")  # fmt: skip
    return row, result, bad


def survey_all_models(ctx: LabContext[ReceptiveConfig]) -> dict[str, Any]:
    """The final receptive field of every torchvision classification model that traces;
    ``computed`` counts those whose whole spatial part the calculator could reason about."""
    rows, computed = [], 0
    names = classification_models()
    for name in ctx.progress(names, desc="every torchvision model"):
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
            rows.append({"model": name, "input": size, "final layer": "-", "r": "-", "j": "-",
                         "stops at": str(exc)[:120]})  # fmt: skip
    return {"rows": rows, "computed": computed, "total": len(names)}
