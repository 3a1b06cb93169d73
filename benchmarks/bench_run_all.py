"""`labrunner run all` as a newcomer meets it: a cold run, then the same command again.

    python benchmarks/bench_run_all.py [--profile quick] [--device cpu]

Runs in a temporary folder with a fresh cache (so the cold run includes training any
fallback models), prints the wall time of both runs and each lab's time. Targets on a
2-core CPU, quick profile: cold run under 5 minutes, cached rerun under 5 seconds.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def run_all(work: Path, env: dict[str, str], profile: str, device: str) -> tuple[float, dict]:
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "labrunner", "run", "all", "--profile", profile, "--device", device, "-q"],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
    )
    took = time.perf_counter() - start
    if proc.returncode not in (0, 1):
        raise SystemExit(f"labrunner failed ({proc.returncode}):\n{proc.stderr}")
    run = json.loads((work / "reports" / "latest" / "run.json").read_text())
    return took, run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--profile", default="quick")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        env = {**os.environ, "LABRUNNER_CACHE_DIR": str(work / "cache")}
        env.pop("LABRUNNER_PLUGINS", None)
        cold, run = run_all(work, env, args.profile, args.device)
        warm, run2 = run_all(work, env, args.profile, args.device)
    print(f"profile {args.profile}, device {args.device}, {os.cpu_count()} CPUs")
    print(f"{'lab':<16} {'status':<8} {'seconds':>8}")
    for lab in run["labs"]:
        print(f"{lab['lab']:<16} {lab['status']:<8} {lab['duration_s']:8.1f}")
    print(f"{'cold run (wall)':<25} {cold:8.1f} s")
    print(
        f"{'cached rerun (wall)':<25} {warm:8.1f} s   ({sum(lab['cached'] for lab in run2['labs'])} labs cached)"
    )
    print(f"{'ratio cached/cold':<25} {warm / cold:8.3f}")


if __name__ == "__main__":
    main()
