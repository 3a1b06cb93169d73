"""The record of the effective fields in exercise 3 (what :func:`.erf.measure_effective_fields`
measured): the figure, the table, the metrics and the claims, and the check of the mass
inside the box, which reads the outcome of the claim on the same condition.

The effective field is a property of the trained networks: measured on a random
initialisation it is a stand-in, and so is each part that rests on it. The exact parts of the
exercise (computed boxes against gradient boxes) are the assignment's either way.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from . import text
from .erf import INSIDE_TOLERANCE, EffectiveField, EffectiveFields, gaussian_fit_batch


def fidelity_on(m: EffectiveFields, *networks: str) -> dict[str, str]:
    """The fidelity keywords of a part resting on the effective fields of ``networks``: one
    reason for every part on the stand-in, so that the report says it once."""
    untrained = m.untrained
    if not any(f.network in networks for f in untrained):
        return {}
    why = (
        f"no trained ImageNet weights for {' and '.join(f.label for f in untrained)} in the torch hub "
        f"cache (offline): {'their effective fields are' if len(untrained) > 1 else 'its effective field is'} "
        "measured on random initialisations"
    )
    return {"fidelity": "stand-in", "reason": why}


def record_effective_fields(ex: Any, m: EffectiveFields) -> None:
    """Record the effective fields: figure, table, each network's metrics and claims, then
    the comparison of the two networks and the mass inside the box."""
    every = [f.network for f in m.fields]
    ex.figure(erf_figure(m.fields, m.stats), "effective_receptive_field", caption=text.ERF_CAPTION,
              **fidelity_on(m, *every))  # fmt: skip
    ex.table([erf_row(s) for s in m.stats], caption=text.ERF_TABLE_CAPTION, **fidelity_on(m, *every))
    for s in m.stats:
        net = s["network"]
        for key in ("input_px", "std", "ratio", "width", "share", "r2"):
            ex.metric(f"erf_{key}_{net}" if key != "r2" else f"erf_gaussian_r2_{net}", s[key])
        ex.metric(f"erf_share_lo_{net}", s["share_lo"])
        ex.metric(f"erf_share_hi_{net}", s["share_hi"])
        ex.claim(
            f"erf_smaller_than_box_{net}",
            s["width_hi"] < s["uniform_width"],
            statement=f"The effective field of {s['label']} is smaller than its theoretical field.",
            evidence=f"95 % of the mean gradient lies in a centred square of {s['width']:.1f} px "
            f"(95 % interval {s['width_lo']:.1f} to {s['width_hi']:.1f} px over {s['interval_units']}; r = {s['r']})",
            baseline=f"a field that used its whole box evenly: 95 % of its mass in {s['uniform_width']:.1f} px",
            **fidelity_on(m, net),
        )
        ex.claim(
            f"erf_gaussian_{net}",
            s["r2_gain_lo"] > 0,
            statement=f"The profiles of {s['label']}'s effective field are closer to a Gaussian than to a flat box.",
            evidence=f"R^2 of the Gaussian fit {s['r2']:.3f} (interval {s['r2_lo']:.3f} to {s['r2_hi']:.3f})",
            baseline=f"R^2 of a flat profile over the box, {s['r2_flat']:.3f}; the interval of the "
            f"difference is {s['r2_gain_lo']:.3f} to {s['r2_gain_hi']:.3f}",
            **fidelity_on(m, net),
        )
    record_comparison(ex, m)


def record_comparison(ex: Any, m: EffectiveFields) -> None:
    """Which network uses the larger share of its field (decided on the interval of the
    difference), and the mass inside the box (a claim, and the check that reads it)."""
    stats, diff = m.stats, m.share_difference
    on = fidelity_on(m, *(f.network for f in m.fields))
    evidence = (f"share of r in the 95 % square: {stats[0]['label']} {stats[0]['share']:.3f}, "
                f"{stats[1]['label']} {stats[1]['share']:.3f}; difference {diff['value']:.3f} "
                f"(95 % interval {diff['lo']:.3f} to {diff['hi']:.3f})")  # fmt: skip
    baseline = (
        "no difference, with the 95 % interval of the difference (Student's t over the initialisations)"
    )
    ex.claim("erf_share_alexnet_larger", diff["lo"] > 0, evidence=evidence, baseline=baseline, **on,
             statement="AlexNet's effective field covers a larger share of its theoretical field than ResNet-18's.")  # fmt: skip
    ex.claim("erf_share_resnet18_larger", diff["hi"] < 0, evidence=evidence, baseline=baseline, **on,
             statement="ResNet-18's effective field covers a larger share of its theoretical field than AlexNet's.")  # fmt: skip
    # No gradient reaches outside the theoretical box, whatever the weights: an exact check of
    # the box, the assignment's even on random initialisations.
    inside = ex.claim("erf_mass_inside_box", m.mass_inside_box, evidence=f"smallest share inside: {m.inside:.12f}",
                      statement="All of the gradient mass lies inside the theoretical box.",
                      baseline="1, up to float64 rounding (1e-9)")  # fmt: skip
    ex.check("erf_mass_inside_box", inside, expected=1.0, actual=m.inside, tolerance=f"±{INSIDE_TOLERANCE:g}")


def erf_row(s: dict[str, Any]) -> dict[str, Any]:
    return {
        "network": s["label"],
        "layer": s["layer"],
        "input (px)": s["input_px"],
        "weights": "ImageNet" if s["trained"] else f"random, {s['inits']} initialisations",
        "theoretical r": s["r"],
        "95 % mass square (px)": f"{s['width']:.1f} ({s['width_lo']:.1f} to {s['width_hi']:.1f})",
        "uniform box (px)": f"{s['uniform_width']:.1f}",
        "share of r": f"{s['share']:.3f} ({s['share_lo']:.3f} to {s['share_hi']:.3f})",
        "Gaussian std (px)": f"{s['std']:.1f} ({s['std_lo']:.1f} to {s['std_hi']:.1f})",
        "4 std / r": f"{s['ratio']:.3f}",
        "Gaussian R^2": f"{s['r2']:.3f}",
        "flat-box R^2": f"{s['r2_flat']:.3f}",
        "mass inside box": f"{s['inside']:.6f}",
    }


# --------------------------------------------------------------------------- the figure


def erf_figure(fields: Sequence[EffectiveField], stats: Sequence[dict[str, Any]]) -> Any:
    """Top: each network's mean gradient map with its theoretical box (cyan) and the 95 %
    mass square (white, dashed). Bottom: the column profile, its Gaussian fit and the box."""
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    fig, axes = plt.subplots(2, len(fields), figsize=(5.2 * len(fields), 8.4), squeeze=False,
                             gridspec_kw={"height_ratios": [1.6, 1]})  # fmt: skip
    for col, (f, s) in enumerate(zip(fields, stats, strict=True)):
        ax = axes[0, col]
        im = ax.imshow(f.heat.numpy(), cmap="magma")
        (r0, r1), (c0, c1) = f.box
        ax.add_patch(Rectangle((c0 - 0.5, r0 - 0.5), c1 - c0 + 1, r1 - r0 + 1, fill=False, ec="cyan", lw=1.5))
        w = s["width"]
        cr, cc = (r0 + r1) / 2, (c0 + c1) / 2
        ax.add_patch(Rectangle((cc - w / 2, cr - w / 2), w, w, fill=False, ec="white", lw=1.2, ls="--"))
        ax.set_title(f"{f.label} {f.layer.name}\ninput {f.input_px} px, r = {f.r} (cyan)", fontsize=10)
        fig.colorbar(im, ax=ax, fraction=0.046, label="mean |gradient|")
        ax = axes[1, col]
        profile = f.cols.reshape(-1, f.cols.shape[-1]).mean(0)
        x = np.arange(len(profile))
        mean, std, _ = gaussian_fit_batch(profile)
        curve = np.exp(-0.5 * ((x - mean) / std) ** 2)
        ax.plot(x, profile, color="black", lw=1.2, label="mean gradient, summed over columns")
        ax.plot(
            x, curve * (curve @ profile) / (curve @ curve), color="tab:orange", lw=1.2, label="Gaussian fit"
        )
        ax.axvspan(r0, r1, color="cyan", alpha=0.15, label="theoretical box")
        ax.set_xlabel("input row (pixels)")
        ax.set_title(f"{f.label}: profile; 95 % of the mass in {w:.0f} px", fontsize=10)
    fig.tight_layout()
    # one legend under the profiles: inside, it covers the top of a curve
    handles, labels = axes[1, 0].get_legend_handles_labels()
    fig.legend(
        handles, labels, loc="upper center", bbox_to_anchor=(0.5, 0.0), ncols=3, fontsize=8, frameon=False
    )
    return fig
