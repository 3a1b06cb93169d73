"""Start-up time of `labrunner list` against `python -c pass`, side by side.

    python benchmarks/bench_cli.py [--repeat 10]

Prints the median wall time of each and their ratio; the target is under 0.5 s
for `labrunner list` on a 2-core laptop-class CPU.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time


def median_time(cmd: list[str], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=10)
    args = parser.parse_args()
    cases = {
        "python -c pass": [sys.executable, "-c", "pass"],
        "labrunner list": [sys.executable, "-m", "labrunner", "list"],
        "labrunner plugins": [sys.executable, "-m", "labrunner", "plugins"],
        "labrunner --help": [sys.executable, "-m", "labrunner", "--help"],
    }
    base = None
    print(f"{'command':<20} {'median s':>9} {'ratio':>7}")
    for name, cmd in cases.items():
        t = median_time(cmd, args.repeat)
        base = base or t
        print(f"{name:<20} {t:9.3f} {t / base:7.2f}")


if __name__ == "__main__":
    main()
