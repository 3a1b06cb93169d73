"""A newcomer's first `labrunner run all`: this tree side by side with a git ref.

    python benchmarks/bench_run_all.py [--ref f759cba] [--repeat 3] [--profile quick]

Each repeat runs a cold `labrunner run all` (empty cache folder, fresh run folder) with this
tree and with ``--ref``, in alternating order (interleaved, so load changes hit both alike).
The ref is exported with ``git archive`` into a temporary folder and installed there
(``pip install --no-deps --no-build-isolation -e``) in a temporary venv made with
``python -m venv --system-site-packages`` (torch and the rest come from this Python's
site-packages); nothing is written into the source tree. This tree runs with the current
interpreter, which must import labrunner from this tree.

Prints the wall time of each version (median and spread), the ratio of the medians
(this tree / ref) and each lab's time (median, from run.json). Add ``--repeat 1 --profile
smoke`` for a quick check that it works. Another run's load on the machine changes every
figure: state the load average (printed) beside them.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_REF = "f759cba"


def install_ref(ref: str, tmp: Path) -> Path:
    """``ref`` exported into ``tmp/src`` and installed into the venv ``tmp/venv``; returns
    that venv's python."""
    src = tmp / "src"
    src.mkdir()
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", "--format=tar", ref], capture_output=True, check=False
    )
    if archive.returncode != 0:
        raise SystemExit(f"git archive {ref}: {archive.stderr.decode().strip()}")
    subprocess.run(["tar", "-x", "-C", str(src)], input=archive.stdout, check=True)
    base = getattr(sys, "_base_executable", sys.executable)
    subprocess.run([base, "-m", "venv", "--system-site-packages", str(tmp / "venv")], check=True)
    python = tmp / "venv" / "bin" / "python"
    subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "-e", str(src)],
        check=True,
        env={**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"},
    )
    where = subprocess.run(
        [str(python), "-c", "import labrunner; print(labrunner.__file__)"],
        capture_output=True,
        text=True,
        check=True,
        cwd=tmp,
    )
    if not Path(where.stdout.strip()).is_relative_to(src):
        raise SystemExit(f"the ref's venv imports labrunner from {where.stdout.strip()}, not {src}")
    return python


def settle(limit: float, below: float = 0.5) -> float:
    """Wait up to ``limit`` seconds for the one-minute load average to fall below ``below``
    (the previous run's own load fades with a time constant of a minute); returns it."""
    deadline = time.monotonic() + limit
    while os.getloadavg()[0] >= below and time.monotonic() < deadline:
        time.sleep(2)
    return os.getloadavg()[0]


def run_all(
    python: str, work: Path, profile: str, device: str
) -> tuple[float, dict[str, float], int, dict[str, str], str]:
    """One cold `labrunner run all` in ``work``; returns (wall seconds, lab -> seconds, exit
    status, lab -> status of each lab that did not pass, the labs at a time and threads it
    chose)."""
    work.mkdir(parents=True)
    env = {**os.environ, "LABRUNNER_CACHE_DIR": str(work / "cache"), "PYTHONDONTWRITEBYTECODE": "1"}
    env.pop("LABRUNNER_PLUGINS", None)
    command = [python, "-m", "labrunner", "run", "all", "--profile", profile, "--device", device, "-q"]
    start = time.perf_counter()
    proc = subprocess.run(command, cwd=work, env=env, capture_output=True, text=True)
    took = time.perf_counter() - start
    if proc.returncode not in (0, 1):
        raise SystemExit(f"{python} -m labrunner failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    run = json.loads((work / "reports" / "latest" / "run.json").read_text())
    labs = {lab["lab"]: float(lab["duration_s"]) for lab in run["labs"] if lab.get("status") != "not run"}
    failing = {
        lab["lab"]: why_not_passed(
            work / "reports" / "latest" / lab["lab"] / "result.json", lab.get("status")
        )
        for lab in run["labs"]
        if lab.get("status") != "passed"
    }
    used = run.get("settings") or {}
    plan = f"{used.get('jobs') or '?'} at a time x {used.get('threads') or '?'} thread(s)"
    return took, labs, proc.returncode, failing, plan


def why_not_passed(result_json: Path, status: object) -> str:
    """The status of a lab that did not pass, with its error's last line or its failed checks
    (the run folder is temporary: this is all that is left of it)."""
    try:
        result = json.loads(result_json.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return f"{status} (no result.json)"
    error = result.get("error") or {}
    if error:
        text = str(error.get("message") or error.get("traceback") or error).strip().splitlines()
        return f"{status}: {text[-1] if text else error}"
    failed = [
        f"{ex.get('title', '?')}: {check.get('name')}"
        for ex in result.get("exercises", [])
        for check in ex.get("checks", [])
        if not check.get("passed")
    ]
    return f"{status}: failed checks " + "; ".join(failed) if failed else str(status)


def spread(times: list[float]) -> str:
    return f"median {statistics.median(times):7.1f} s   spread {min(times):7.1f} - {max(times):7.1f} s"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--ref", default=DEFAULT_REF, help=f"git ref to compare with (default {DEFAULT_REF})")
    parser.add_argument("--repeat", type=int, default=3, help="cold runs of each version (default 3)")
    parser.add_argument("--profile", default="quick")
    parser.add_argument("--device", default="cpu")
    parser.add_argument(
        "--settle",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="before each run, wait up to this long for the load average to fall below 0.5 "
        "(default 0: back to back, as a student running again would)",
    )
    args = parser.parse_args()
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    import labrunner

    if not Path(labrunner.__file__).resolve().is_relative_to(ROOT):
        raise SystemExit(f"this Python imports labrunner from {labrunner.__file__}, not from {ROOT}")
    loads = [os.getloadavg()[0]]
    with tempfile.TemporaryDirectory(prefix="bench-run-all-") as tmp_name:
        tmp = Path(tmp_name)
        versions = {"this tree": sys.executable, args.ref: str(install_ref(args.ref, tmp))}
        walls: dict[str, list[float]] = {name: [] for name in versions}
        labs: dict[str, dict[str, list[float]]] = {name: {} for name in versions}
        for repeat in range(args.repeat):
            order = list(versions) if repeat % 2 == 0 else list(reversed(versions))
            for name in order:
                work = tmp / f"run-{repeat}-{'tree' if name == 'this tree' else 'ref'}"
                start_load = settle(args.settle) if args.settle > 0 else os.getloadavg()[0]
                took, split, status, failing, plan = run_all(versions[name], work, args.profile, args.device)
                walls[name].append(took)
                for lab, seconds in split.items():
                    labs[name].setdefault(lab, []).append(seconds)
                loads.append(os.getloadavg()[0])
                print(
                    f"  repeat {repeat + 1}: {name:<10} {took:7.1f} s (exit {status}; load average "
                    f"{start_load:.1f} at the start; {plan})",
                    flush=True,
                )
                for lab, lab_status in failing.items():
                    print(f"      {lab}: {lab_status} (see {work / 'reports' / 'latest'})", flush=True)
    print(
        f"\ncold `labrunner run all --profile {args.profile} --device {args.device}`, {args.repeat} repeat(s), "
        f"{len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else os.cpu_count()} usable cores, "
        f"load average {min(loads):.1f}-{max(loads):.1f}"
    )
    for name, times in walls.items():
        print(f"{name:<12} {spread(times)}")
    ratio = statistics.median(walls["this tree"]) / statistics.median(walls[args.ref])
    print(f"ratio (this tree / {args.ref}): {ratio:.2f}")
    names = sorted({lab for split in labs.values() for lab in split})
    print(f"\n{'lab (median s)':<16}" + "".join(f"{name:>14}" for name in versions))
    for lab in names:
        cells = [labs[name].get(lab) for name in versions]
        print(f"{lab:<16}" + "".join(f"{statistics.median(c):14.1f}" if c else f"{'-':>14}" for c in cells))


if __name__ == "__main__":
    main()
