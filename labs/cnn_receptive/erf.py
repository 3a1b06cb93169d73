"""The effective receptive field (Luo et al., 2016) of AlexNet and ResNet-18 and how sure the
measurement is: :func:`measure_effective_fields` measures both without a context and returns
an :class:`EffectiveFields`, which :mod:`.erf_record` records in exercise 3.

Each network is measured on an input large enough to hold the whole theoretical box of its
last feature layer's centre unit (:func:`~.networks.smallest_input_holding_box`), so the
heat map is never cut by the image. With trained weights (from the torch hub cache) the
inputs are the only randomness; with random weights the samples are spread over several
initialisations too, and the initialisations are the units of the uncertainty: another
seed draws other initialisations, so an interval over the inputs alone (or a bootstrap over
four initialisations, which underestimates their spread) would not cover what another seed
measures. Every statistic comes with the 95 % interval in which another seed's measurement
falls: Student's t on the delete-one jackknife's standard error over the initialisations
(:func:`uncertainty`), times √2 for the new measurement's own spread; with trained weights,
where the inputs are the only randomness, the standard error is a bootstrap's over the inputs.
A difference between the networks is decided on the interval of the expected difference.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from labrunner import quiet_progress
from labrunner.stats import t_critical

from .geometry import LayerField
from .networks import build_model, hub_weights, smallest_input_holding_box
from .receptive import feature_output, receptive_fields
from .verify import effective_field_gradients

#: The networks whose effective field is measured: name -> label in the report.
ERF_NETWORKS = {"alexnet": "AlexNet", "resnet18": "ResNet-18"}
#: Share of the gradient mass that defines the extent of the effective field.
MASS = 0.95
#: Bootstrap resamples.
RESAMPLES = 1000


# --------------------------------------------------------------------------- statistics of a map


def chebyshev_rings(shape: Sequence[int], centre: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """The distinct Chebyshev distances ``max(|row - c_r|, |col - c_c|)`` from ``centre`` in
    a map of ``shape``, ascending, and for every pixel (flattened) the index of its ring."""
    rows = np.arange(shape[0], dtype=np.float64)[:, None]
    cols = np.arange(shape[1], dtype=np.float64)[None, :]
    dist = np.maximum(np.abs(rows - centre[0]), np.abs(cols - centre[1]))
    values, ring = np.unique(dist.ravel(), return_inverse=True)
    return values, ring


def mass_width(ring_mass: np.ndarray, distances: np.ndarray, fraction: float = MASS) -> np.ndarray:
    """Side (pixels) of the smallest centred square holding ``fraction`` of the mass, from
    the mass per ring (last axis; any leading axes are batches). The square of half-side
    ``d`` is ``2 d + 1`` pixels wide; between two rings the side is interpolated linearly in
    the mass, so that the measure does not move in steps of two pixels."""
    cum = np.cumsum(ring_mass, axis=-1)
    target = fraction * cum[..., -1:]
    k = np.minimum((cum < target).sum(axis=-1), len(distances) - 1)
    side = 2 * distances + 1
    inner_side = np.where(k > 0, side[np.maximum(k - 1, 0)], 0.0)
    inner_mass = np.where(k > 0, np.take_along_axis(cum, np.maximum(k - 1, 0)[..., None], -1)[..., 0], 0.0)
    ring = np.take_along_axis(cum, k[..., None], -1)[..., 0] - inner_mass
    step = np.divide(target[..., 0] - inner_mass, ring, out=np.ones_like(ring), where=ring > 0)
    return inner_side + step * (side[k] - inner_side)


def centred_mass_width(heat: torch.Tensor, centre: Sequence[float], fraction: float = MASS) -> float:
    """Side (in pixels, interpolated as in :func:`mass_width`) of the smallest square centred
    on ``centre`` (row, column) that holds ``fraction`` of the total of a 2-D non-negative
    map: the size of the effective field."""
    values, ring = chebyshev_rings(tuple(heat.shape), centre)
    mass = np.bincount(ring, weights=heat.double().flatten().numpy(), minlength=len(values))
    return float(mass_width(mass, values, fraction))


def gaussian_fit_batch(profiles: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Fit a Gaussian to each 1-D non-negative profile (last axis) by its moments; return
    (mean, standard deviation, R^2 of the fit), R^2 = 1 - SS_res / SS_tot against the curve
    with its least-squares amplitude."""
    p = np.asarray(profiles, dtype=np.float64)
    x = np.arange(p.shape[-1], dtype=np.float64)
    total = p.sum(-1, keepdims=True)
    mean = (p * x).sum(-1, keepdims=True) / total
    std = np.sqrt((p * (x - mean) ** 2).sum(-1, keepdims=True) / total)
    curve = np.exp(-0.5 * ((x - mean) / np.maximum(std, 1e-9)) ** 2)
    scale = (curve * p).sum(-1, keepdims=True) / (curve * curve).sum(-1, keepdims=True)
    return mean[..., 0], std[..., 0], _r2(p, scale * curve)


def gaussian_fit(profile: torch.Tensor) -> tuple[float, float, float]:
    """:func:`gaussian_fit_batch` for one profile: (mean, standard deviation, R^2)."""
    mean, std, r2 = gaussian_fit_batch(profile.double().numpy())
    return float(mean), float(std), float(r2)


def flat_fit_r2(profiles: np.ndarray, lo: int, hi: int) -> np.ndarray:
    """R^2 of the profile a uniform field would give: constant on ``lo..hi`` (the box), zero
    elsewhere, with its least-squares amplitude (the mean over the box)."""
    p = np.asarray(profiles, dtype=np.float64)
    flat = np.zeros(p.shape[-1])
    flat[lo : hi + 1] = 1.0
    return _r2(p, p[..., lo : hi + 1].mean(-1, keepdims=True) * flat)


def _r2(p: np.ndarray, fit: np.ndarray) -> np.ndarray:
    ss_res = ((p - fit) ** 2).sum(-1)
    ss_tot = ((p - p.mean(-1, keepdims=True)) ** 2).sum(-1)
    # A constant profile has nothing to explain: a perfect fit is 1, any other 0 (never NaN).
    safe = np.where(ss_tot > 0, ss_tot, 1.0)
    return np.where(ss_tot > 0, 1.0 - ss_res / safe, np.where(ss_res > 0, 0.0, 1.0))


# --------------------------------------------------------------------------- the measurement


@dataclass(frozen=True)
class EffectiveField:
    """The effective field of one network: the mean map and, per sample (one row per
    initialisation, one column per input), what the statistics need."""

    network: str
    label: str
    layer: LayerField  # at the measurement's input size
    trained: bool
    heat: torch.Tensor  # mean |gradient|, shape (H, W)
    ring_mass: np.ndarray  # (inits, inputs, rings)
    rows: np.ndarray  # (inits, inputs, W): the map summed over rows
    cols: np.ndarray  # (inits, inputs, H)
    ring_distances: np.ndarray

    @property
    def input_px(self) -> int:
        return self.layer.input_size[0]

    @property
    def r(self) -> int:
        return self.layer.rf[0]

    @property
    def box(self) -> tuple[tuple[int, int], ...]:
        return self.layer.centre_box

    @property
    def inits(self) -> int:
        return self.ring_mass.shape[0]

    @property
    def inputs_per_init(self) -> int:
        return self.ring_mass.shape[1]


def measure_effective_field(
    name: str,
    samples: int,
    initialisations: int,
    generator: torch.Generator,
    tick: Callable[[int], None] = lambda n: None,
    chunk: int = 2,
) -> EffectiveField:
    """The effective field of torchvision's ``name`` at its last feature layer: trained
    weights when the torch hub cache has them (one initialisation), else ``initialisations``
    default random initialisations (drawn from the global torch RNG, which the run seeds),
    ``samples`` standard-normal inputs in all, split evenly between them. ``tick(n)`` is
    called after every ``n`` inputs (for a progress bar)."""
    size = smallest_input_holding_box(build_model(name, meta=True))
    layer = feature_output(receptive_fields(build_model(name, meta=True), size))
    weights = hub_weights(name)
    inits = 1 if weights is not None else initialisations
    per_init = samples // inits
    values, ring = chebyshev_rings((size, size), [(lo + hi) / 2 for lo, hi in layer.centre_box])
    heat = torch.zeros((size, size), dtype=torch.float64)
    ring_mass = np.zeros((inits, per_init, len(values)))
    rows, cols = np.zeros((inits, per_init, size)), np.zeros((inits, per_init, size))
    for i in range(inits):
        model = build_model(name)
        if weights is not None:
            model.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
        for start in range(0, per_init, chunk):
            n = min(chunk, per_init - start)
            x = torch.randn((n, 3, size, size), generator=generator)
            maps = effective_field_gradients(model, layer, x).double()
            heat += maps.sum(0)
            flat = maps.flatten(1).numpy()
            for j in range(n):
                ring_mass[i, start + j] = np.bincount(ring, weights=flat[j], minlength=len(values))
            rows[i, start : start + n] = maps.sum(1).numpy()
            cols[i, start : start + n] = maps.sum(2).numpy()
            tick(n)
    return EffectiveField(name, ERF_NETWORKS.get(name, name), layer, weights is not None,
                          heat / (inits * per_init), ring_mass, rows, cols, values)  # fmt: skip


def bootstrap_indices(
    inits: int, inputs: int, rng: np.random.Generator, resamples: int = RESAMPLES
) -> np.ndarray:
    """Two-stage bootstrap: for each resample, ``inits`` initialisations drawn with
    replacement and, within each, ``inputs`` inputs drawn with replacement; flat indices
    into an ``(inits, inputs)`` grid, shape ``(resamples, inits * inputs)``."""
    which = rng.integers(0, inits, size=(resamples, inits, 1))
    within = rng.integers(0, inputs, size=(resamples, inits, inputs))
    return (which * inputs + within).reshape(resamples, -1)


def jackknife_indices(inits: int, inputs: int) -> np.ndarray:
    """Delete-one jackknife over the initialisations: row ``i`` holds the flat indices of
    every input of every initialisation but ``i``, shape ``(inits, (inits - 1) * inputs)``."""
    grid = np.arange(inits * inputs).reshape(inits, inputs)
    return np.stack([np.delete(grid, i, axis=0).ravel() for i in range(inits)])


def jackknife_se(values: np.ndarray) -> float:
    """The jackknife standard error from the ``k`` delete-one values of a statistic."""
    k = len(values)
    return float(np.sqrt((k - 1) / k * np.sum((values - values.mean()) ** 2)))


def resampled(field: EffectiveField, idx: np.ndarray) -> dict[str, np.ndarray]:
    """The statistics of :func:`statistics` for each row of ``idx`` (flat indices into the
    ``(inits, inputs)`` grid of measurements)."""
    n = field.inits * field.inputs_per_init
    ring = field.ring_mass.reshape(n, -1)[idx].mean(1)
    rows = field.rows.reshape(n, -1)[idx].mean(1)
    cols = field.cols.reshape(n, -1)[idx].mean(1)
    (r0, r1), (c0, c1) = field.box
    _, std_x, r2_x = gaussian_fit_batch(rows)
    _, std_y, r2_y = gaussian_fit_batch(cols)
    width = mass_width(ring, field.ring_distances)
    std = (std_x + std_y) / 2
    return {
        "width": width,
        "share": width / field.r,
        "std": std,
        "ratio": 4 * std / field.r,
        "r2": np.minimum(r2_x, r2_y),
        "r2_flat": np.maximum(flat_fit_r2(rows, c0, c1), flat_fit_r2(cols, r0, r1)),
    }


@dataclass(frozen=True)
class Spread:
    """A measured statistic with its standard error and the degrees of freedom behind it
    (initialisations - 1 for the jackknife, inputs - 1 for the bootstrap)."""

    value: float
    se: float
    df: int

    @property
    def confidence(self) -> tuple[float, float]:
        """The 95 % Student-t interval of the expected value, ``value ± t(df) se``."""
        margin = t_critical(self.df + 1) * self.se
        return self.value - margin, self.value + margin

    @property
    def prediction(self) -> tuple[float, float]:
        """Where another seed's measurement falls with 95 %: ``value ± t(df) se √2`` (the
        new measurement has the same spread as this one)."""
        margin = t_critical(self.df + 1) * self.se * 2**0.5
        return self.value - margin, self.value + margin

    def minus(self, other: Spread) -> Spread:
        """The difference of two independent measurements."""
        return Spread(self.value - other.value, float(np.hypot(self.se, other.se)), min(self.df, other.df))


def uncertainty(
    field: EffectiveField, rng: np.random.Generator, resamples: int = RESAMPLES
) -> dict[str, Spread]:
    """Each statistic of :func:`resampled` (and ``r2_gain``, the Gaussian fit's R^2 over the
    flat profile's) with its standard error: the delete-one jackknife over the
    initialisations when there are several (they are what another seed redraws), else the
    bootstrap over the inputs (trained weights: the inputs are the only randomness)."""
    n = field.inits * field.inputs_per_init
    measured = resampled(field, np.arange(n)[None, :])
    measured["r2_gain"] = measured["r2"] - measured["r2_flat"]
    if field.inits >= 2:
        reps = resampled(field, jackknife_indices(field.inits, field.inputs_per_init))
        reps["r2_gain"] = reps["r2"] - reps["r2_flat"]
        se, df = jackknife_se, field.inits - 1
    else:
        reps = resampled(field, bootstrap_indices(1, field.inputs_per_init, rng, resamples))
        reps["r2_gain"] = reps["r2"] - reps["r2_flat"]

        def se(values: np.ndarray) -> float:
            return float(values.std(ddof=1))

        df = field.inputs_per_init - 1
    return {key: Spread(float(measured[key][0]), se(reps[key]), df) for key in measured}


def statistics(field: EffectiveField, spreads: dict[str, Spread]) -> dict[str, Any]:
    """Size and shape of an effective field, each with the 95 % interval in which another
    seed's measurement falls (:attr:`Spread.prediction`): the
    centred square holding 95 % of the mass (``width``, and ``share`` = width / r), the
    standard deviation of a Gaussian fitted to the row and column profiles (mean of the two;
    ``ratio`` = 4 std / r, the +-2 std width against r), the worse R^2 of the two Gaussian
    fits, the better R^2 of a flat profile over the box (what a uniform field would give),
    the share of the mass inside the theoretical box, and the baseline ``uniform_width``:
    the 95 % square of a field that used its whole box evenly."""
    (r0, r1), (c0, c1) = field.box
    heat = field.heat
    uniform = torch.zeros_like(heat)
    uniform[r0 : r1 + 1, c0 : c1 + 1] = 1.0
    centre = [(lo + hi) / 2 for lo, hi in field.box]
    out: dict[str, Any] = {
        "network": field.network,
        "label": field.label,
        "layer": field.layer.name,
        "r": field.r,
        "input_px": field.input_px,
        "trained": field.trained,
        "inits": field.inits,
        "inputs": field.inputs_per_init,
        "uniform_width": centred_mass_width(uniform, centre),
        "inside": float(heat[r0 : r1 + 1, c0 : c1 + 1].sum() / heat.sum()),
    }
    for key, spread in spreads.items():
        out[key] = spread.value
        out[f"{key}_lo"], out[f"{key}_hi"] = spread.prediction
    out["interval_units"] = (
        f"{field.inits} initialisations (jackknife)"
        if field.inits >= 2
        else f"{field.inputs_per_init} inputs (bootstrap)"
    )
    return out


def share_difference(a: dict[str, Spread], b: dict[str, Spread]) -> tuple[float, float, float]:
    """``share`` of ``a`` minus ``share`` of ``b`` (independent measurements): the measured
    difference and its 95 % interval."""
    diff = a["share"].minus(b["share"])
    return (diff.value, *diff.confidence)


# --------------------------------------------------------------------------- the exercise's measurement


@dataclass(frozen=True)
class EffectiveFields:
    """What exercise 3 measured of the effective fields: each network's field (in the order
    of :data:`ERF_NETWORKS`, AlexNet first), the spread of each statistic, and the
    statistics of :func:`statistics`; the properties are the conditions of its claims."""

    fields: tuple[EffectiveField, ...]
    spreads: tuple[dict[str, Spread], ...]
    stats: tuple[dict[str, Any], ...]

    @property
    def untrained(self) -> list[EffectiveField]:
        """The networks measured on random initialisations (no trained weights cached)."""
        return [f for f in self.fields if not f.trained]

    @property
    def share_difference(self) -> dict[str, float]:
        """AlexNet's share of r minus ResNet-18's, with its 95 % interval."""
        value, lo, hi = share_difference(self.spreads[0], self.spreads[1])
        return {"value": value, "lo": lo, "hi": hi}

    @property
    def inside(self) -> float:
        """The smallest share of a network's mean gradient inside its theoretical box."""
        return min(s["inside"] for s in self.stats)

    @property
    def mass_inside_box(self) -> bool:
        """All of the gradient mass inside the box, up to float64 rounding."""
        return abs(self.inside - 1.0) <= INSIDE_TOLERANCE


#: How far from 1 the share of the mass inside the box may be: float64 rounding.
INSIDE_TOLERANCE = 1e-9


def measure_effective_fields(
    samples: int,
    initialisations: int,
    generator: torch.Generator,
    seed: int,
    progress: Callable[..., Any] = quiet_progress,
) -> EffectiveFields:
    """The effective field of each network of :data:`ERF_NETWORKS` (inputs from
    ``generator``, random initialisations from the global torch RNG; see
    :func:`measure_effective_field`) and the uncertainty of its statistics (bootstraps drawn
    from ``seed + 3``, the run's seed and the exercise's offset). ``progress`` is
    ``ctx.progress`` or, without a context, a silent one."""
    fields, spreads = [], []
    rng = np.random.default_rng(seed + 3)
    with progress(total=len(ERF_NETWORKS) * samples, desc="effective receptive field") as bar:
        for name in ERF_NETWORKS:
            field = measure_effective_field(name, samples, initialisations, generator, tick=bar.update)
            fields.append(field)
            spreads.append(uncertainty(field, rng))
    stats = tuple(statistics(f, s) for f, s in zip(fields, spreads, strict=True))
    return EffectiveFields(tuple(fields), tuple(spreads), stats)
