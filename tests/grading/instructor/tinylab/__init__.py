"""A tiny assignment for the grading tests: two exercises, solution regions, hidden checks.

``tests/grading/student/tinylab`` is its student version (what ``labrunner assign`` makes:
the markers kept around the student's code, the hidden checks left out).
"""

from __future__ import annotations

from dataclasses import dataclass

import labrunner


@dataclass(frozen=True)
class TinyConfig:
    n: int = 10
    draws: int = 200


def triangle(n: int) -> int:
    """The n-th triangle number."""
    # BEGIN SOLUTION
    return n * (n + 1) // 2
    # END SOLUTION


def mean_of_draws(rng, draws: int) -> float:
    """The mean of ``draws`` uniform draws in [0, 1)."""
    # BEGIN SOLUTION
    return float(rng.random(draws).mean())
    # END SOLUTION


class TinyLab(labrunner.Lab):
    name = "tiny"
    title = "A tiny assignment"
    version = "1"
    Config = TinyConfig
    profiles = {"smoke": {"n": 5, "draws": 100}, "quick": {"n": 10, "draws": 200}, "full": {"n": 100}}

    def run(self, ctx):
        n = ctx.config.n
        with ctx.exercise("1. Triangle numbers", question="What is $1 + 2 + \\dots + n$?") as ex:
            t = ex.metric("triangle", triangle(n))
            ex.check_equal("triangle formula", t, n * (n + 1) // 2, points=2)
            ex.check_equal("triangle of 7", triangle(7), 28, points=1, hidden=True)
            ex.claim("grows", triangle(n + 1) > t, statement="the next triangle number is larger")
            ex.answer("$T_{{ n }} = {{ t }}$.", n=n, t=t)
        with ctx.exercise("2. Mean of uniform draws") as ex:
            m = ex.metric("mean", mean_of_draws(ctx.rng, ctx.config.draws))
            ex.check_close("mean near 1/2", m, 0.5, 0.15, points=2)
            ex.claim("below_one", m < 1, statement="the mean is below 1", hidden=True)
            ex.answer("The mean is {{ m | fmt }}.", m=m)


@labrunner.hookimpl
def register_labs(register):
    register(TinyLab)
