"""Small labs that exercise the core: one passes, one fails a check, one raises."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Literal

import labrunner

__version__ = "2.5"


@dataclass(frozen=True)
class CounterConfig:
    steps: int = 10
    scale: float = 1.0
    mode: Literal["sum", "mean"] = "sum"
    sizes: list[int] = field(default_factory=lambda: [1, 2])
    noisy: bool = False
    label: str = "counter"
    sleep_s: float = 0.0
    interrupt: bool = False


class CounterLab(labrunner.Lab):
    name = "counter"
    title = "Counting <script>alert(1)</script>"
    version = "1"
    description = "adds numbers and checks the sum"
    Config = CounterConfig
    profiles = {"smoke": {"steps": 3}, "quick": {"steps": 5}, "full": {"steps": 100}, "tiny": {"steps": 1}}

    def run(self, ctx):
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        import torch

        cfg = ctx.config
        total = 0.0
        with ctx.exercise("1. Count", question="What is $\\sum_{i=1}^{n} i$?") as ex:
            with ctx.progress(total=cfg.steps, desc="counting") as bar:
                for i in range(1, cfg.steps + 1):
                    total += i * cfg.scale
                    bar.update(1, total=total)
                    if cfg.sleep_s:
                        time.sleep(cfg.sleep_s)
                    if cfg.interrupt:
                        raise KeyboardInterrupt
            expected = cfg.scale * cfg.steps * (cfg.steps + 1) / 2
            ex.metric("total", total)
            ex.metric("random_draw", torch.rand(1).item())
            ex.metric("device_is_cpu", int(ctx.device.type == "cpu"))
            fig, ax = plt.subplots()
            ax.plot(range(cfg.steps))
            ex.figure(fig, "steps", caption="Steps")
            ex.table([{"n": cfg.steps, "total": total}], caption="Totals")
            ex.check_close("sum formula", total, expected, 1e-9, points=2)
            ex.answer("$\\frac{n(n+1)}{2} = {{ total | fmt }}$ for $n = {{ n }}$.", total=total, n=cfg.steps)
        ctx.log("counted")


@dataclass(frozen=True)
class EmptyConfig:
    threshold: float = 0.5


class FailingLab(labrunner.Lab):
    name = "failing"
    title = "A lab whose check fails"
    version = "1"
    Config = EmptyConfig

    def run(self, ctx):
        with ctx.exercise("1. Compare") as ex:
            ex.check_at_least("value above threshold", 0.1, ctx.config.threshold)
            ex.check("always true", True)


class CrashingLab(labrunner.Lab):
    name = "crashing"
    title = "A lab that raises"
    version = "1"

    def run(self, ctx):
        with ctx.exercise("1. Divide"):
            return 1 / 0


@labrunner.hookimpl
def register_labs(register):
    register(CounterLab())
    register(FailingLab)
    register(CrashingLab())


EVENTS: list[tuple[str, str]] = []


@labrunner.hookimpl
def lab_started(lab, config, out_dir):
    EVENTS.append(("started", lab.name))


@labrunner.hookimpl
def lab_finished(lab, result):
    EVENTS.append(("finished", f"{lab.name}:{result.status}"))
