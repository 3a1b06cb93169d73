"""Wall time of ``labrunner run LABS`` when every lab's result is cached: the parent alone,
which checks each cache entry against its sha256 manifest, copies it into the new run
folder, completes the run and renders the report (no worker, no torch).

    python benchmarks/bench_cached_rerun.py [--labs all] [--profile quick] [--repeat 7]
    python benchmarks/bench_cached_rerun.py --other /path/to/other/checkout   # side by side

With ``--other``, the same command from another checkout of labrunner (``PYTHONPATH``
pointing at it: an earlier commit, say) runs in the same loop, interleaved, each with its
own cache and out folder, and the ratio of the medians is printed. A cache folder without
entries is filled first by one uncached run (minutes for the quick profile); pass
``--cache-dir`` / ``--other-cache-dir`` to reuse filled ones.
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


def command(labs: list[str], profile: str, out: Path) -> list[str]:
    return [sys.executable, "-m", "labrunner", "run", *labs, "--profile", profile, "--out", str(out), "-q"]


def env_for(source: Path, cache: Path) -> dict[str, str]:
    return {
        **os.environ,
        "PYTHONPATH": str(source),
        "LABRUNNER_CACHE_DIR": str(cache),
        "PYTHONDONTWRITEBYTECODE": "1",
    }


def timed(cmd: list[str], env: dict[str, str], cwd: Path) -> float:
    start = time.perf_counter()
    proc = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if proc.returncode not in (0, 1):
        sys.exit(f"{' '.join(cmd)} exited {proc.returncode}:\n{proc.stderr[-2000:]}")
    if "running (" in proc.stderr:
        sys.exit(f"a lab was not cached (it ran): fill the cache first\n{proc.stderr[-2000:]}")
    return elapsed


def summary(values: list[float]) -> str:
    return f"median {statistics.median(values):.2f} s (spread {min(values):.2f}-{max(values):.2f} s, n={len(values)})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--labs", nargs="+", default=["all"])
    parser.add_argument("--profile", default="quick")
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--cache-dir", type=Path, help="this checkout's cache (default: a temporary folder)")
    parser.add_argument("--other", type=Path, help="another checkout of labrunner, timed in the same loop")
    parser.add_argument("--other-cache-dir", type=Path, help="the other checkout's cache")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="labrunner-bench-rerun-"))
    trees = {"this checkout": (ROOT, args.cache_dir or work / "cache-this")}
    if args.other is not None:
        trees["other checkout"] = (args.other.resolve(), args.other_cache_dir or work / "cache-other")
    for name, (source, cache) in trees.items():
        if not (cache / "results").is_dir() or not any((cache / "results").iterdir()):
            print(f"{name}: filling its cache {cache} (one uncached run)", flush=True)
            subprocess.run(
                command(args.labs, args.profile, work / "fill"), env=env_for(source, cache), cwd=work
            )
    times: dict[str, list[float]] = {name: [] for name in trees}
    for i in range(args.repeat):
        order = list(trees) if i % 2 == 0 else list(reversed(trees))  # alternate who goes first
        for name in order:
            source, cache = trees[name]
            out = work / f"reports-{name.split()[0]}"
            times[name].append(timed(command(args.labs, args.profile, out), env_for(source, cache), work))
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(
        f"labrunner run {' '.join(args.labs)} --profile {args.profile}, every lab cached (load average {load:.1f}):"
    )
    for name, values in times.items():
        print(f"  {name:<16} {summary(values)}")
    if len(times) == 2:
        this, other = (statistics.median(v) for v in times.values())
        print(f"  ratio this/other: {this / other:.2f}")


if __name__ == "__main__":
    main()
