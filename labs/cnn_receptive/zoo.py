"""Exercise 5, measured then recorded: :func:`measure_zoo` computes the receptive field of
each network at input 224 and checks it against the probe's gradient (:func:`measure_model`),
and with ``all_models`` surveys every torchvision classification model
(:func:`survey_all_models`); it returns a :class:`Zoo` (no context needed) whose properties
are the conditions of its checks and claims. :func:`record_zoo` records the tables, metrics,
checks and claims; :func:`answer_values` gives the answer its numbers."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from labrunner import quiet_progress

from .geometry import LayerField
from .networks import PUBLISHED_RF, build_model, classification_models, verification_size
from .receptive import feature_output, receptive_fields, unsupported
from .tables import box_1based, pair
from .verify import gradient_boxes

Box = tuple[tuple[int, int], ...]


@dataclass(frozen=True)
class ModelCheck:
    """One network: its final layer at input 224, the size it is verified at (the smallest
    whose centre unit sees no padding), that layer there and its gradient box, the layers
    whose box differs from the gradient's, and how many layers were checked."""

    name: str
    final: LayerField
    size: int
    verified: LayerField
    gradient_box: Box | None
    bad: tuple[str, ...]
    checked: int

    @property
    def published(self) -> int | None:
        return PUBLISHED_RF.get(self.name)

    @property
    def exceeds_image(self) -> bool:
        return self.final.rf[0] > 224

    @property
    def whole_box_verified(self) -> bool:
        """The gradient check tests both edges of the centre unit's box (no padding in it)."""
        return self.verified.centre_box_clipped == self.verified.centre_box

    @property
    def row(self) -> dict[str, Any]:
        final, published = self.final, self.published
        return {
            "model": self.name,
            "final layer": final.name,
            "n (224)": pair(final.size),
            "j": pair(final.jump),
            "r": pair(final.rf),
            "published r": published if published is not None else "",
            "verified at": self.size,
            "layers verified": self.checked,
            "computed box": box_1based(self.verified.centre_box_clipped),
            "gradient box": box_1based(self.gradient_box),
            "equal": "yes" if not self.bad else f"NO ({len(self.bad)})",
        }

    @property
    def result(self) -> dict[str, Any]:
        """The answer's entry."""
        more = f" and {self.checked - 1} layers at input 224" if self.checked > 1 else ""
        return {"name": self.name, "r": self.final.rf[0], "j": self.final.jump[0], "size": self.size,
                "layers_checked": "the final layer" + more}  # fmt: skip


@dataclass(frozen=True)
class Survey:
    """Every torchvision classification model at its input size (computed, not verified):
    table rows, and how many of the ``total`` the calculator follows to the end."""

    rows: tuple[dict[str, Any], ...]
    computed: int
    total: int


@dataclass(frozen=True)
class Zoo:
    """What Exercise 5 measured: each network's check, and the survey when asked for."""

    models: tuple[ModelCheck, ...]
    survey: Survey | None

    @property
    def mismatches(self) -> list[str]:
        return [f"{m.name}:{b}" for m in self.models for b in m.bad]

    @property
    def results(self) -> list[dict[str, Any]]:
        return [m.result for m in self.models]


def measure_model(
    name: str, verify_all_layers: bool = False, bar: Any = None, progress: Callable[..., Any] = quiet_progress
) -> ModelCheck:
    """torchvision's ``name`` at input 224, and the gradient check of its final layer (and of
    every layer at input 224, with ``verify_all_layers``). ``bar`` shows the step; ``progress``
    is ``ctx.progress`` or, without a context, a silent one."""
    bar = bar if bar is not None else quiet_progress()
    bar.update(0, model=name, step="input size")
    model = build_model(name, meta=True)
    fields = receptive_fields(model, 224)
    size = verification_size(model, tick=lambda n: bar.update(0, size=n))
    vfinal = feature_output(receptive_fields(model, size) if size != 224 else fields)
    bar.update(0, step="gradient check")
    measured = gradient_boxes(model, (size, size), [vfinal])
    bad = [vfinal.name] if measured[vfinal.name] != vfinal.centre_box_clipped else []
    checked = 1
    if verify_all_layers:  # every layer, at input 224 (one backward pass per layer)
        layers = [f for f in fields if f.known and f.kind != "input"]
        with progress(total=len(layers), desc=f"layers of {name}") as layer_bar:
            at_224 = gradient_boxes(model, (224, 224), layers, tick=layer_bar.update)
        bad += [f"{f.name}@224" for f in layers if at_224[f.name] != f.centre_box_clipped]
        checked += len(layers)
    return ModelCheck(name, feature_output(fields), size, vfinal, measured[vfinal.name], tuple(bad), checked)


def measure_zoo(
    models: Sequence[str],
    verify_all_layers: bool = False,
    all_models: bool = False,
    progress: Callable[..., Any] = quiet_progress,
) -> Zoo:
    """AlexNet first, then each of ``models``, checked by :func:`measure_model`; with
    ``all_models`` also the survey of every torchvision classification model."""
    names = ["alexnet", *[m for m in models if m != "alexnet"]]
    checks = []
    with progress(total=len(names), desc="models") as bar:
        for name in names:
            checks.append(measure_model(name, verify_all_layers, bar, progress))
            bar.update(1)
    return Zoo(tuple(checks), survey_all_models(progress) if all_models else None)


def survey_all_models(progress: Callable[..., Any] = quiet_progress) -> Survey:
    """The final receptive field of every torchvision classification model that traces;
    ``computed`` counts those whose whole spatial part the calculator could reason about."""
    rows, computed = [], 0
    names = classification_models()
    for name in progress(names, desc="every torchvision model"):
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
    return Survey(tuple(rows), computed, len(names))


def record_zoo(ex: Any, m: Zoo) -> None:
    """Record Exercise 5: each network's metric, check and claims, the table, the claim that
    every gradient box equals its computed box (and the check that reads it), the survey."""
    for model in m.models:
        record_model(ex, model)
    ex.table([c.row for c in m.models], caption="Final receptive field of each network (input 224) and its gradient check.")  # fmt: skip
    mismatches = m.mismatches
    every = ex.claim("computed_equals_gradient_all_models", not mismatches,
                     statement="For every model the probe's gradient box equals the computed box.",
                     evidence=f"mismatches: {', '.join(mismatches) or 'none'}",
                     baseline="the probe's gradient box, to the pixel")  # fmt: skip
    ex.check("computed_equals_gradient_all_models", every, expected=[], actual=mismatches, points=3)
    if m.survey is not None:
        survey = m.survey
        ex.table(
            list(survey.rows), caption="Every torchvision classification model at input 224 (computed only)."
        )
        ex.metric("models_computed", survey.computed)
        ex.metric("models_total", survey.total)
        ex.claim(
            "calculator_follows_every_model",
            survey.computed == survey.total,
            statement="The calculator follows the whole spatial part of every torchvision classification model.",
            evidence=f"{survey.computed} of {survey.total} models",
            baseline="every model torchvision lists (exact)",
        )


def record_model(ex: Any, m: ModelCheck) -> None:
    """One network's metric, its check against the published field, and its claims."""
    r = m.final.rf[0]
    ex.metric(f"rf_{m.name}", r)
    if m.published is not None:
        ex.check_equal(f"{m.name}_published_rf", r, m.published)
    ex.claim(f"rf_exceeds_image_{m.name}", m.exceeds_image, evidence=f"r = {r}",
             statement=f"The final receptive field of {m.name} is wider than the 224-pixel image.",
             baseline="the image width, 224 pixels")  # fmt: skip
    ex.claim(f"whole_box_verified_{m.name}", m.whole_box_verified,
             statement=f"The gradient check of {m.name} tests both edges of the centre unit's whole box.",
             evidence=f"at input {m.size}: box {box_1based(m.verified.centre_box)}",
             baseline=f"the image, pixels 1..{m.size}")  # fmt: skip


def answer_values(m: Zoo) -> dict[str, Any]:
    """The values the answer template (A5) is filled with."""
    by_r = sorted(m.results, key=lambda result: result["r"])
    return dict(
        results=m.results, survey=m.survey, mismatches=m.mismatches, narrowest=by_r[0], widest=by_r[-1]
    )
