"""Wall time of ``labrunner run adversarial`` offline (the stand-in CNN), with an empty cache
(the stand-in is trained) against a cache that holds only the stand-in of the run's seed (a
rerun with another attack setting: the lab runs, the stand-in is loaded and verified).

    python benchmarks/bench_adversarial_standin.py [--profile quick] [--seed 1] [--repeat 3]
    python benchmarks/bench_adversarial_standin.py --other /path/to/other/checkout   # side by side

Each timed run is a fresh ``labrunner run adversarial --profile P --seed S --threads T`` with
its own cache folder and an empty torch hub cache (so the stand-in runs). The variants
alternate in a rotating order within each round, so a change of load hits all alike; the
median and the spread over the rounds are printed per variant, with the ratio of the medians
and the load average before and after. With ``--other``, another checkout of labrunner (an
earlier commit, say) runs in the same rounds. Each checkout's ``labrunner``, ``labs`` and
``templates`` are copied into a temporary folder first, laid out as installed
(``labrunner/labs``), so the runs import exactly that code whatever is installed.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MODELS = Path("labs") / "adversarial" / "models"


def install_copy(checkout: Path, target: Path) -> Path:
    """``checkout``'s package as installed (labs and templates inside it), copied under ``target``."""
    shutil.copytree(
        checkout / "labrunner", target / "labrunner", ignore=shutil.ignore_patterns("__pycache__")
    )
    for name in ("labs", "templates"):
        shutil.copytree(
            checkout / name, target / "labrunner" / name, ignore=shutil.ignore_patterns("__pycache__")
        )
    return target


def run_lab(source: Path, cache: Path, out: Path, args: argparse.Namespace) -> float:
    cmd = [sys.executable, "-m", "labrunner", "run", "adversarial", "--profile", args.profile]
    cmd += ["--seed", str(args.seed), "--threads", str(args.threads), "--out", str(out), "-q"]
    env = {
        **os.environ,
        "PYTHONPATH": str(source),
        "LABRUNNER_CACHE_DIR": str(cache),
        "TORCH_HOME": str(cache.parent / f"{cache.name}-torch"),  # empty: the stand-in runs
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    start = time.perf_counter()
    proc = subprocess.run(cmd, env=env, cwd=out.parent, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"{' '.join(cmd)} exited {proc.returncode}:\n{proc.stderr[-2000:]}")
    return elapsed


def load() -> str:
    return "load average " + ", ".join(f"{v:.2f}" for v in os.getloadavg())


def summary(values: list[float]) -> str:
    return f"median {statistics.median(values):.1f} s (spread {min(values):.1f}-{max(values):.1f} s, n={len(values)})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="quick")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--other", type=Path, help="another checkout of labrunner, timed in the same rounds")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="labrunner-bench-standin-"))
    checkouts = {"this checkout": ROOT}
    if args.other is not None:
        checkouts["other checkout"] = args.other.resolve()
    sources = {
        name: install_copy(path, work / f"src-{i}") for i, (name, path) in enumerate(checkouts.items())
    }
    # One cold run per checkout first: its stored stand-in is what the warm runs start from.
    stored = {}
    for i, (name, source) in enumerate(sources.items()):
        print(f"{name}: training its stand-in once ({load()})", flush=True)
        cache = work / f"fill-{i}"
        run_lab(source, cache, work / f"fill-{i}-out", args)
        stored[name] = cache / MODELS
    variants = [(name, warm) for name in sources for warm in (False, True)]
    times: dict[tuple[str, bool], list[float]] = {v: [] for v in variants}
    print(f"start: {load()}", flush=True)
    for r in range(args.repeat):
        order = variants[r % len(variants) :] + variants[: r % len(variants)]  # rotate who goes first
        for name, warm in order:
            tag = f"r{r}-{list(sources).index(name)}-{int(warm)}"
            cache = work / f"cache-{tag}"
            if warm:
                shutil.copytree(stored[name], cache / MODELS)
            times[name, warm].append(run_lab(sources[name], cache, work / f"out-{tag}", args))
            shutil.rmtree(cache, ignore_errors=True)
    print(f"end: {load()}")
    for name in sources:
        cold, warm = times[name, False], times[name, True]
        print(f"{name}: empty cache {summary(cold)}; stand-in cached {summary(warm)}")
        print(f"  cached / empty: {statistics.median(warm) / statistics.median(cold):.2f}")
    if len(sources) == 2:
        this, other = list(sources)
        for warm in (False, True):
            ratio = statistics.median(times[this, warm]) / statistics.median(times[other, warm])
            print(f"this / other, {'stand-in cached' if warm else 'empty cache'}: {ratio:.2f}")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
