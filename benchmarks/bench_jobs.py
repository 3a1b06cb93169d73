"""Labs in parallel, and what a SLURM job adds per lab.

    python benchmarks/bench_jobs.py [--profile quick] [--repeat 3] [--labs all] [--slurm]

1. ``labrunner run LABS --profile P --threads 1 --force`` with ``--jobs 1`` and ``--jobs 2``,
   interleaved, ``--repeat`` times each, into a temporary folder (datasets and weights come
   from the usual cache, ``$LABRUNNER_CACHE_DIR``; ``--force`` reruns every lab). Prints the
   median and spread (min-max) of each, and the ratio of the medians (jobs 2 / jobs 1).
2. With ``--slurm`` (a running cluster, ``scripts/slurm-cluster.sh start``): the same tiny lab
   (``failing`` from tests/plugins, two checks, no torch work) run as a SLURM job and in a
   local worker, interleaved: the difference of the medians is what a job costs per lab here
   (sbatch, the scheduler's start, submitit's pickles, sacct polling).
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


def summary(times: list[float]) -> str:
    return f"median {statistics.median(times):7.2f} s   spread {min(times):7.2f} - {max(times):7.2f} s"


def timed_run(args: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "labrunner", "run", *args], env=env, capture_output=True, text=True
    )
    elapsed = time.perf_counter() - start
    if done.returncode not in (0, 1):
        raise SystemExit(f"labrunner run {' '.join(args)} failed ({done.returncode}):\n{done.stderr[-2000:]}")
    return elapsed


def bench_parallel(labs: list[str], profile: str, repeat: int, tmp: Path) -> None:
    env = dict(os.environ)
    common = [*labs, "--profile", profile, "--threads", "1", "--force", "-q"]
    times: dict[int, list[float]] = {1: [], 2: []}
    for i in range(repeat):
        for jobs in (1, 2) if i % 2 == 0 else (2, 1):  # interleaved, alternating which goes first
            times[jobs].append(timed_run([*common, "--jobs", str(jobs), "--out", str(tmp / f"j{jobs}")], env))
            print(f"  repeat {i + 1}: --jobs {jobs}: {times[jobs][-1]:.2f} s", flush=True)
    print(f"run {' '.join(labs)} --profile {profile} --threads 1 (wall time, {repeat} repeats, interleaved)")
    for jobs in (1, 2):
        print(f"  --jobs {jobs}: {summary(times[jobs])}")
    ratio = statistics.median(times[2]) / statistics.median(times[1])
    print(f"  ratio jobs 2 / jobs 1: {ratio:.2f}")


def bench_slurm(repeat: int, tmp: Path) -> None:
    env = {**os.environ, "LABRUNNER_PLUGINS": "core_labs", "LABRUNNER_CACHE_DIR": str(tmp / "cache")}
    common = [
        "failing",
        "--plugins-dir",
        str(PLUGINS),
        "--profile",
        "smoke",
        "--threads",
        "1",
        "--force",
        "-q",
    ]
    kinds = {"local worker": [], "SLURM job": []}
    for i in range(repeat):
        order = ("local worker", "SLURM job") if i % 2 == 0 else ("SLURM job", "local worker")
        for kind in order:
            extra = ["--executor", "slurm", "--executor-option", "cpus=1"] if kind == "SLURM job" else []
            kinds[kind].append(timed_run([*common, *extra, "--out", str(tmp / "slurm")], env))
            print(f"  repeat {i + 1}: {kind}: {kinds[kind][-1]:.2f} s", flush=True)
    print(f"one tiny lab, whole labrunner run ({repeat} repeats, interleaved)")
    for kind, times in kinds.items():
        print(f"  {kind:<12}: {summary(times)}")
    overhead = statistics.median(kinds["SLURM job"]) - statistics.median(kinds["local worker"])
    print(f"  a SLURM job adds {overhead:.2f} s per lab (difference of the medians)")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--profile", default="quick")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--labs", default="all", help="labs to run, comma-separated (default all)")
    parser.add_argument("--slurm", action="store_true", help="also measure a SLURM job's overhead")
    parser.add_argument("--no-parallel", action="store_true", help="skip the --jobs 1 / --jobs 2 comparison")
    args = parser.parse_args()
    print(f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}")
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        if not args.no_parallel:
            bench_parallel(args.labs.split(","), args.profile, args.repeat, tmp)
        if args.slurm:
            bench_slurm(args.repeat, tmp)
    print(f"load average after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
