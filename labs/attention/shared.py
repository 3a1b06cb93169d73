"""What Exercises 1 and 2 share: the random cases they run on (:class:`Setup`) and the
evidence line of a claim decided against the rounding bound."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from . import attention as att


@dataclass(frozen=True)
class Setup:
    """The random cases and the temperature (``None``: ``sqrt(D_k)``)."""

    shapes: tuple[tuple[int, int, int, int], ...]
    draws: int
    permutations: int
    seed: int
    alpha: float | None

    def sweep_args(self) -> dict[str, Any]:
        return dict(draws=self.draws, permutations=self.permutations, seed=self.seed, alpha=self.alpha)

    @property
    def has_single_token(self) -> bool:
        """A shape with one token: its only permutation is the identity, which tests nothing."""
        return any(shape[0] == 1 for shape in self.shapes)


def within(sweep: att.Sweep, what: str) -> str:
    """Evidence of a bound-based claim: the largest error and its ratio to the bound."""
    return (
        f"largest {what} = {sweep.max_error:.2e}; largest ratio to its rounding bound "
        f"{sweep.max_ratio:.2e} over {sweep.cases} cases ({sweep.nontrivial} of them permuting something)"
    )
