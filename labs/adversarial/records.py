"""What an attack produced, one record per (image, target) pair, and the summaries the
tables and answers use."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from .attacks import AttackResult, median, perturbation_norms, png_round_trip, predict, psnr


@dataclass
class AttackExample:
    """One method on one (image, target) pair: the images before and after, and how the
    model classifies the adversarial image and its saved 8-bit file (``rt_``: round trip)."""

    image: str
    original: torch.Tensor
    target: int
    adversarial: torch.Tensor
    round_trip: torch.Tensor
    success: bool
    rt_success: bool
    p_target: float
    rt_p_target: float
    pred: int
    rt_pred: int
    conf: float
    iterations: int

    @property
    def delta(self) -> torch.Tensor:
        return self.adversarial - self.original


@dataclass
class MethodRun:
    """One method on every (image, target) pair, in the order of the attack plan."""

    key: str
    label: str
    examples: list[AttackExample] = field(default_factory=list)
    seconds: float = 0.0

    def add(
        self,
        name: str,
        original: torch.Tensor,
        targets: torch.Tensor,
        result: AttackResult,
        model,
        paths=None,
    ) -> None:
        """Record the attack ``result`` on image ``name`` for each of its ``targets``; the
        adversarial images are saved as PNG (to ``paths`` when given) and classified again."""
        rt = png_round_trip(result.adversarial, paths)
        probs, rt_probs = predict(model, result.adversarial), predict(model, rt)
        for j, t in enumerate(targets.tolist()):
            self.examples.append(
                AttackExample(
                    image=name,
                    original=original.cpu(),
                    target=t,
                    adversarial=result.adversarial[j].cpu(),
                    round_trip=rt[j].cpu(),
                    success=bool(result.success[j]),
                    rt_success=int(rt_probs[j].argmax()) == t,
                    p_target=float(probs[j, t]),
                    rt_p_target=float(rt_probs[j, t]),
                    pred=int(probs[j].argmax()),
                    rt_pred=int(rt_probs[j].argmax()),
                    conf=float(probs[j].max()),
                    iterations=int(result.iterations[j]),
                )
            )
        self.seconds += result.seconds

    @property
    def n(self) -> int:
        return len(self.examples)

    def successes(self) -> torch.Tensor:
        """``(n,)`` bool: which examples reached their target."""
        return torch.tensor([e.success for e in self.examples], dtype=torch.bool)

    def norms(self) -> dict[str, torch.Tensor]:
        """Per-example norms of the float perturbation, 0-255 units, plus the 8-bit L0 and PSNR."""
        orig = torch.stack([e.original for e in self.examples])
        adv = torch.stack([e.adversarial for e in self.examples])
        rt = torch.stack([e.round_trip for e in self.examples])
        out = perturbation_norms(orig, adv)
        out["l0_8bit"] = perturbation_norms(orig, rt)["l0"]
        out["psnr"] = psnr(orig, adv)
        out["size"] = torch.full((self.n,), float(orig[0].numel()), dtype=torch.float64)
        return out

    def summary(self, among: torch.Tensor | None = None) -> dict[str, float]:
        """Success rates over all examples; medians over the successful ones (NaN if none),
        or over the examples in the boolean mask ``among`` (which must be successes)."""
        ok = self.successes()
        if among is not None:
            ok = ok & among
        if not self.n:
            keys = ("iterations", "l0", "l0_pct", "l0_8bit", "l0_8bit_pct", "l1", "l2", "linf", "psnr")
            return {"success": math.nan, "rt_success": math.nan, "ms_per_example": 0.0} | dict.fromkeys(
                keys, math.nan
            )
        norms = self.norms()
        size = float(norms["size"][0])
        iterations = torch.tensor([e.iterations for e in self.examples])
        return {
            "success": sum(e.success for e in self.examples) / self.n,
            "rt_success": sum(e.rt_success for e in self.examples) / self.n,
            "iterations": median(iterations[ok]),
            "l0": median(norms["l0"][ok]),
            "l0_pct": median(norms["l0"][ok]) / size,
            "l0_8bit": median(norms["l0_8bit"][ok]),
            "l0_8bit_pct": median(norms["l0_8bit"][ok]) / size,
            "l1": median(norms["l1"][ok]),
            "l2": median(norms["l2"][ok]),
            "linf": median(norms["linf"][ok]),
            "psnr": median(norms["psnr"][ok]),
            "ms_per_example": 1000.0 * self.seconds / max(self.n, 1),
        }

    def tiny_fraction(self) -> float:
        """Median over successful examples of the fraction of perturbation entries that are
        nonzero but below half an 8-bit level (they vanish when the image is saved)."""
        vals = []
        for e in self.examples:
            if e.success:
                d = e.delta.abs() * 255
                vals.append(float(((d > 0) & (d < 0.5)).double().mean()))
        return median(vals)
