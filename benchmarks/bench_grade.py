"""Grading throughput: a generated cohort graded without and with re-execution.

    python benchmarks/bench_grade.py [--students 500] [--repeat 3] [--rerun 6] [--jobs 2]

Generates the cohort first: a few real submissions of the tiny test lab
(tests/grading/student/tinylab, run in this process and submitted, one per seed), each
copied to many students (another author in run.json, a manifest that matches). Then, timed
as wall clock of the whole ``labrunner grade`` command in a fresh process:

1. ``grade SUBS --jobs N --regrade`` over every student, no re-execution, ``--repeat`` times;
2. ``grade --rerun submitted`` over the first ``--rerun`` students with the bubblewrap sandbox,
   with resource limits only, and with no isolation at all (the unsandboxed worker), the three
   interleaved and repeated: throughput in submissions per minute per core, and the sandbox's
   cost per submission (the difference of the medians divided by the submissions);
3. the sandbox's start-up alone: ``python -c "import labrunner"`` through each isolation,
   interleaved ``--startup`` times (a re-execution's own time varies more than this cost).

Prints the median and spread (min-max) of each and the load average before and after: on a
shared machine no single figure is a benchmark.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))


def make_cohort(folder: Path, students: int, seeds: int) -> Path:
    from gradecohort import make_submission, rewrite_zip

    subs = folder / "subs"
    subs.mkdir()
    work = folder / "work"
    work.mkdir()
    bases = [make_submission(work, f"base{s}", seed=s) for s in range(seeds)]
    for i in range(students):
        name = f"student{i:04d}"

        def author(rel, data, name=name):
            if rel == "run.json":
                info = json.loads(data)
                info["settings"]["report"]["author"] = name
                return json.dumps(info).encode()
            return None

        rewrite_zip(bases[i % seeds], subs / f"{name}.zip", author)
    return subs


def timed(args: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "labrunner", *args], capture_output=True, text=True, env=env)
    elapsed = time.perf_counter() - start
    if proc.returncode not in (0, 1):
        raise SystemExit(f"labrunner {' '.join(args)} failed:\n{proc.stderr[-2000:]}")
    return elapsed


def show(name: str, times: list[float], per: int | None = None) -> str:
    med = statistics.median(times)
    line = f"{name}: median {med:.1f} s (spread {min(times):.1f}-{max(times):.1f} s, {len(times)} runs)"
    if per:
        line += f", {med / per * 1000:.0f} ms per submission"
    return line


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--students", type=int, default=500)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--rerun", type=int, default=6, help="submissions re-executed (0: skip)")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument(
        "--startup", type=int, default=20, help="repeats of the sandbox start-up timing (0: skip)"
    )
    parser.add_argument("--out", type=Path, help="keep the cohort here (default: a temporary folder)")
    args = parser.parse_args()
    folder = Path(args.out or tempfile.mkdtemp(prefix="bench-grade-"))
    folder.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "LABRUNNER_CACHE_DIR": str(folder / "cache"), "PYTHONDONTWRITEBYTECODE": "1"}
    os.environ["LABRUNNER_CACHE_DIR"] = env["LABRUNNER_CACHE_DIR"]
    load_before = os.getloadavg()
    start = time.perf_counter()
    subs = make_cohort(folder, args.students, args.seeds)
    size = sum(p.stat().st_size for p in subs.iterdir())
    print(f"cohort: {args.students} zips, {size / 1e6:.1f} MB, made in {time.perf_counter() - start:.1f} s")
    grading = folder / "grading"
    plain = [
        timed(["grade", str(subs), "--out", str(grading), "--jobs", str(args.jobs), "--regrade", "-q"], env)
        for _ in range(args.repeat)
    ]
    print(show(f"grade {args.students} without re-execution, --jobs {args.jobs}", plain, args.students))
    if args.rerun:
        few = folder / "few"
        few.mkdir()
        for p in sorted(subs.iterdir())[: args.rerun]:
            shutil.copy(p, few / p.name)
        modes = {"bubblewrap": [], "rlimits": [], "none": []}
        for _ in range(args.repeat):
            for mode in modes:
                modes[mode].append(rerun_once(few, folder / f"g-{mode}", mode, args.jobs, env))
        for mode, times in modes.items():
            print(
                show(f"grade {args.rerun} with --rerun submitted, sandbox {mode}, --jobs {args.jobs}", times)
            )
        med = {m: statistics.median(t) for m, t in modes.items()}
        per_core = args.rerun / (med["bubblewrap"] / 60) / args.jobs
        print(f"re-execution throughput (bubblewrap): {per_core:.1f} submissions per minute per core")
        for mode in ("bubblewrap", "rlimits"):
            cost = (med[mode] - med["none"]) / args.rerun * args.jobs
            print(f"cost of the {mode} sandbox per submission against an unsandboxed worker: {cost:+.2f} s")
    if args.startup:
        startup_cost(folder, args.startup)
    print(
        f"load average before {load_before[0]:.1f}, after {os.getloadavg()[0]:.1f} ({os.cpu_count()} cores)"
    )
    if not args.out:
        shutil.rmtree(folder, ignore_errors=True)
    return 0


def startup_cost(folder: Path, repeat: int) -> None:
    """The sandbox's own cost, without a lab's noise: ``python -c "import labrunner"`` started
    through run_sandboxed with each isolation, interleaved ``repeat`` times."""
    from labrunner.course.isolation import Limits, detect_isolation
    from labrunner.course.sandbox import run_sandboxed

    code = folder / "startup-code"
    code.mkdir(exist_ok=True)
    modes = {m: detect_isolation(m) for m in ("bubblewrap", "rlimits", "none")}
    times: dict[str, list[float]] = {m: [] for m in modes}
    for _ in range(repeat):
        for mode, isolation in modes.items():
            done = run_sandboxed(
                [sys.executable, "-c", "import labrunner"],
                isolation=isolation,
                code_dir=code,
                scratch_dir=folder / f"startup-{mode}",
                limits=Limits(wall=120),
            )
            if done.returncode != 0:
                raise SystemExit(f"start-up in sandbox {mode} failed: {done.reason}")
            times[mode].append(done.elapsed_s)
    base = statistics.median(times["none"])
    for mode, values in times.items():
        med = statistics.median(values)
        print(
            f"start python + import labrunner, sandbox {mode}: median {med * 1000:.0f} ms "
            f"(spread {min(values) * 1000:.0f}-{max(values) * 1000:.0f} ms), {(med - base) * 1000:+.0f} ms"
        )


def rerun_once(subs: Path, out: Path, mode: str, jobs: int, env: dict[str, str]) -> float:
    code = (
        "import sys; from pathlib import Path; from labrunner.course.grade import GradeOptions, grade; "
        f"grade([Path({str(subs)!r})], GradeOptions(out=Path({str(out)!r}), rerun='submitted', "
        f"jobs={jobs}, regrade=True, sandbox={mode!r}))"
    )
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise SystemExit(f"grading with sandbox {mode} failed:\n{proc.stderr[-2000:]}")
    return time.perf_counter() - start


if __name__ == "__main__":
    sys.exit(main())
