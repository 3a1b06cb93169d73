"""Wall time of ``labrunner run LABS`` when every lab's result is cached: the parent alone,
which checks each cache entry against its sha256 manifest, copies it into the new run
folder, completes the run and renders the report (no worker, no torch). Prints the wall
time and the CPU time of the process (which a busy machine stretches much less).

    python benchmarks/bench_cached_rerun.py [--labs all] [--profile quick] [--repeat 7]
    python benchmarks/bench_cached_rerun.py --other /path/to/other/checkout   # side by side

With ``--other``, the same command from another checkout of labrunner (an earlier commit,
say: its labrunner package, labs and templates, see ``checkouts.py``) runs in the same loop,
interleaved, each with its own cache and out folder, and the ratio of the medians is
printed. A cache folder without entries is filled first by one uncached run (minutes for
the quick profile); pass ``--cache-dir`` / ``--other-cache-dir`` to reuse filled ones.
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from checkouts import check_import_root, import_root

ROOT = Path(__file__).resolve().parent.parent


def command(labs: list[str], profile: str, out: Path) -> list[str]:
    return [sys.executable, "-m", "labrunner", "run", *labs, "--profile", profile, "--out", str(out), "-q"]


def env_for(root: Path, cache: Path) -> dict[str, str]:
    return {
        **os.environ,
        "PYTHONPATH": str(root),
        "LABRUNNER_CACHE_DIR": str(cache),
        "PYTHONDONTWRITEBYTECODE": "1",
    }


def cpu_of_children() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed(cmd: list[str], env: dict[str, str], cwd: Path) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of one run, which must have found every lab cached."""
    cpu, start = cpu_of_children(), time.perf_counter()
    proc = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True)
    elapsed, cpu = time.perf_counter() - start, cpu_of_children() - cpu
    if proc.returncode not in (0, 1):
        sys.exit(f"{' '.join(cmd)} exited {proc.returncode}:\n{proc.stderr[-2000:]}")
    # the summary's line of each lab: "  NAME  passed  4/4 checks  cached (ran earlier)"
    labs = re.findall(r"^  \S+ +(?:passed|failed|error)\b.*$", proc.stdout, re.MULTILINE)
    if not labs or any("cached" not in line for line in labs):
        sys.exit(f"a lab was not cached (it ran): fill the cache first\n{proc.stdout[-2000:]}")
    return elapsed, cpu


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
    # each tree's labrunner from an import root of its own: PYTHONPATH=checkout alone would
    # take the labs and templates from the installed labrunner
    roots = {
        name: import_root(source, work / f"import-{name.split()[0]}") for name, (source, _) in trees.items()
    }
    for name, (source, _) in trees.items():
        check_import_root(roots[name], source)
    trees = {name: (roots[name], cache) for name, (_, cache) in trees.items()}
    for name, (root, cache) in trees.items():
        if not (cache / "results").is_dir() or not any((cache / "results").iterdir()):
            print(f"{name}: filling its cache {cache} (one uncached run)", flush=True)
            subprocess.run(
                command(args.labs, args.profile, work / "fill"), env=env_for(root, cache), cwd=work
            )
    times: dict[str, list[float]] = {name: [] for name in trees}
    cpus: dict[str, list[float]] = {name: [] for name in trees}
    for i in range(args.repeat):
        order = list(trees) if i % 2 == 0 else list(reversed(trees))  # alternate who goes first
        for name in order:
            root, cache = trees[name]
            out = work / f"reports-{name.split()[0]}"
            elapsed, cpu = timed(command(args.labs, args.profile, out), env_for(root, cache), work)
            times[name].append(elapsed)
            cpus[name].append(cpu)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(
        f"labrunner run {' '.join(args.labs)} --profile {args.profile}, every lab cached (load average {load:.1f}):"
    )
    for name, values in times.items():
        print(f"  {name:<16} {summary(values)}; CPU time {summary(cpus[name])}")
    if len(times) == 2:
        this, other = (statistics.median(v) for v in times.values())
        print(f"  ratio this/other: {this / other:.2f}")


if __name__ == "__main__":
    main()
