"""Start-up cost of a lab's worker process, spawn against zygote: the same tiny lab run in
a fresh spawned worker, in a worker forked from a zygote (its first lab, which waits for
the zygote to import torch, and a later lab), and in this process (``--isolation none``),
interleaved.

    python benchmarks/bench_worker.py [--repeat 7]

The lab (``failing`` from tests/plugins) records two checks and imports nothing, so each
time less the in-process time is what a worker adds per lab: for spawn, starting Python,
importing labrunner, the lab's plugin and torch, and seeding; for a zygote's later lab,
a fork and the plugin. In-process runs reuse this process's torch, imported once before
timing. Prints the median and the spread (min-max) of each, beside ``python -c "import
torch"`` timed in the same loop, and the wall time of a ``labrunner run`` whose lab is
cached (the parent alone, which never imports torch).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PLUGINS = ROOT / "tests" / "plugins"


def spec_for(tmp: Path) -> tuple[object, object]:
    from labrunner.execution.runstate import lab_job
    from labrunner.records.cache import ResultCache
    from labrunner.settings.config import RunConfig
    from labrunner.settings.options import RunOptions
    from labrunner.settings.plugins import load_plugins
    from labrunner.settings.resolve import resolve_settings

    plugins = load_plugins([PLUGINS])
    options = RunOptions(labs=("failing",), profile="smoke", plugins_dir=(str(PLUGINS),))
    settings = resolve_settings(plugins, options, RunConfig())
    (lab,) = settings.labs
    return lab_job(lab, settings, plugins, ResultCache(tmp / "cache"), tmp / "out" / "failing"), lab


def summary(times: list[float]) -> str:
    return f"median {statistics.median(times):7.3f} s   spread {min(times):7.3f} - {max(times):7.3f} s"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    os.environ["LABRUNNER_PLUGINS"] = "core_labs"
    import torch  # noqa: F401  (the in-process runs reuse it, as --isolation none does)

    from labrunner.base.progress import Reporter
    from labrunner.execution.labrun import run_lab_job
    from labrunner.execution.worker import LocalWorker, WorkerStarter, spawn_worker

    def timed(starter: WorkerStarter | None) -> float:
        start = time.perf_counter()
        worker = starter.start() if starter is not None else spawn_worker()
        outcome = LocalWorker(Reporter()).run(spec, worker)
        took = time.perf_counter() - start
        assert outcome.reply and outcome.reply["status"] == "failed", outcome
        return took

    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        os.environ["LABRUNNER_CACHE_DIR"] = str(tmp / "cache")
        spec, _ = spec_for(tmp)
        spawn, first, later, here, torch_import = [], [], [], [], []
        for _ in range(args.repeat):  # interleaved, so load changes hit all alike
            start = time.perf_counter()
            subprocess.run([sys.executable, "-c", "import torch"], check=True)
            torch_import.append(time.perf_counter() - start)
            spawn.append(timed(None))
            starter = WorkerStarter("zygote")  # a fresh zygote: its first lab waits for torch
            try:
                first.append(timed(starter))
                later.append(timed(starter))
            finally:
                starter.close()
            start = time.perf_counter()
            assert run_lab_job(spec)["status"] == "failed"
            here.append(time.perf_counter() - start)
        cmd = [sys.executable, "-m", "labrunner", "run", "failing", "--plugins-dir", str(PLUGINS), "-q"]
        env = {**os.environ}
        subprocess.run(cmd, cwd=tmp, env=env, capture_output=True)  # fills the cache
        cached = []
        for _ in range(args.repeat):
            start = time.perf_counter()
            subprocess.run(cmd, cwd=tmp, env=env, capture_output=True)
            cached.append(time.perf_counter() - start)
    print(f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}, {args.repeat} repeats")
    print(f"{'spawned worker':<30} {summary(spawn)}")
    print(f"{'zygote, its first lab':<30} {summary(first)}")
    print(f"{'zygote, a later lab':<30} {summary(later)}")
    print(f"{'lab in this process':<30} {summary(here)}")
    print(f"{'import torch (alone)':<30} {summary(torch_import)}")
    print(f"{'labrunner run, lab cached':<30} {summary(cached)}")
    ratio = statistics.median(later) / statistics.median(spawn)
    print(f"per lab after the first: zygote / spawn = {ratio:.3f}")


if __name__ == "__main__":
    main()
