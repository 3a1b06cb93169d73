"""Time the receptive-field calculator over every torchvision classification model.

    python benchmarks/bench_cnn_receptive.py [--size 224] [--threads 1] [--models a,b,...]
    python benchmarks/bench_cnn_receptive.py --other /path/to/other/checkout --repeat 5

Each model is built on the meta device (no weights are allocated: the calculator needs the
geometry only), then traced with torch.fx and its fields computed. Building the model is
timed apart from the calculator. Prints one line per model (final layer, r, time, what it
could not reason about) and the totals: the calculator's time over all models (what the lab's
claim, "every model in under a few seconds", is about), its mean and median per model, and
the model building time.

With ``--other``, this checkout and another one (an earlier commit, say) each run the whole
pass in a fresh subprocess, ``--repeat`` times, in alternating order (interleaved, so a change
of load hits both alike); it prints each one's calculator and building totals (median and
spread), the ratio of the medians, and whether both computed the same final field, jump and
stopping point for every model. The calculator's CPU time is printed beside its wall time:
a busy machine stretches it much less.
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


def measure(names: list[str], size: int, verbose: bool) -> dict:
    """One pass over ``names``: the totals, and each model's final layer, r, j and first problem."""
    from labrunner.labs.cnn_receptive.networks import build_model
    from labrunner.labs.cnn_receptive.receptive import feature_output, receptive_fields, unsupported

    build_total = calc_total = calc_cpu = 0.0
    calc_times: list[float] = []
    computed = complete = 0
    models: dict[str, str] = {}
    for name in names:
        model_size = max(size, 299) if name == "inception_v3" else size
        t0 = time.perf_counter()
        try:
            model = build_model(name, meta=True)
        except Exception as exc:  # noqa: BLE001 - report and go on
            models[name] = f"cannot build: {exc}"
            if verbose:
                print(f"{name:28s} cannot build: {exc}")
            continue
        t1, c1 = time.perf_counter(), time.process_time()
        try:
            fields = receptive_fields(model, model_size)
            final = feature_output(fields)
            problems = unsupported(fields)
            t2 = time.perf_counter()
            computed += 1
            complete += not problems
            note = f"stops at {problems[0].name}: {problems[0].reason}" if problems else ""
            models[name] = f"r = {final.rf} j = {final.jump} at {final.name} {note}"
            if verbose:
                print(f"{name:28s} {t2 - t1:7.3f} s  r = {final.rf[0]:5d} at {final.name:32s} {note[:70]}")
        except Exception as exc:  # noqa: BLE001
            t2 = time.perf_counter()
            models[name] = f"error: {exc}"
            if verbose:
                print(f"{name:28s} {t2 - t1:7.3f} s  error: {str(exc)[:90]}")
        build_total += t1 - t0
        calc_total += t2 - t1
        calc_cpu += time.process_time() - c1
        calc_times.append(t2 - t1)
    return {
        "names": len(names),
        "computed": computed,
        "complete": complete,
        "calculator_s": calc_total,
        "calculator_cpu_s": calc_cpu,
        "timed": len(calc_times),
        "median_s": statistics.median(calc_times or [0.0]),
        "build_s": build_total,
        "models": models,
    }


def spread(values: list[float]) -> str:
    return f"median {statistics.median(values):.2f} s (spread {min(values):.2f}-{max(values):.2f} s)"


def side_by_side(args: argparse.Namespace) -> None:
    """This checkout and ``args.other``, each pass in its own subprocess, interleaved."""
    from checkouts import check_import_root, import_root

    work = Path(tempfile.mkdtemp(prefix="labrunner-bench-cnn-"))
    trees = {"this checkout": ROOT, "other checkout": args.other.resolve()}
    roots = {name: import_root(source, work / name.split()[0]) for name, source in trees.items()}
    for name, root in roots.items():
        check_import_root(root, trees[name])
    command = [sys.executable, str(Path(__file__).resolve()), "--json", "--size", str(args.size)]
    command += ["--threads", str(args.threads), "--models", args.models]
    runs: dict[str, list[dict]] = {name: [] for name in trees}
    for i in range(args.repeat):
        for name in list(trees) if i % 2 == 0 else list(reversed(trees)):
            env = {**os.environ, "PYTHONPATH": str(roots[name]), "PYTHONDONTWRITEBYTECODE": "1"}
            proc = subprocess.run(command, env=env, cwd=work, capture_output=True, text=True)
            if proc.returncode != 0:
                sys.exit(f"{name}: {' '.join(command)} exited {proc.returncode}:\n{proc.stderr[-2000:]}")
            runs[name].append(json.loads(proc.stdout.splitlines()[-1]))
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    first = runs["this checkout"][0]
    print(
        f"receptive fields of {first['names']} models at input {args.size}, {args.threads} thread(s), "
        f"{args.repeat} interleaved passes each (load average {load:.1f} at the end):"
    )
    for name, results in runs.items():
        calc = [r["calculator_s"] for r in results]
        cpu = [r["calculator_cpu_s"] for r in results]
        build = [r["build_s"] for r in results]
        print(
            f"  {name:<15} calculator {spread(calc)}, its CPU time {spread(cpu)}; building the models {spread(build)}"
        )
    for what, key in (("time", "calculator_s"), ("CPU time", "calculator_cpu_s")):
        this, other = (statistics.median(r[key] for r in results) for results in runs.values())
        print(f"  calculator {what} ratio this/other: {this / other:.2f}")
    ours, theirs = runs["this checkout"][0]["models"], runs["other checkout"][0]["models"]
    differ = sorted(n for n in ours.keys() | theirs.keys() if ours.get(n) != theirs.get(n))
    print(f"  final field, jump and stopping point: {'the same for every model' if not differ else 'DIFFER'}")
    for name in differ:
        print(f"    {name}: this {ours.get(name)!r}\n    {' ' * len(name)}  other {theirs.get(name)!r}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--models", default="", help="comma-separated names (default: all)")
    parser.add_argument("--other", type=Path, help="another checkout of labrunner, timed side by side")
    parser.add_argument("--repeat", type=int, default=5, help="passes of each checkout with --other")
    parser.add_argument("--json", action="store_true", help="print one JSON line of totals (used by --other)")
    args = parser.parse_args()
    if args.other is not None:
        side_by_side(args)
        return

    import torch

    torch.set_num_threads(args.threads)
    from labrunner.labs.cnn_receptive.networks import classification_models

    names = [n for n in args.models.split(",") if n] or classification_models()
    result = measure(names, args.size, verbose=not args.json)
    if args.json:
        print(json.dumps(result))
        return
    calc_total = result["calculator_s"]
    print(
        f"\n{result['computed']}/{len(names)} models traced and computed, {result['complete']} to the end of "
        f"their spatial part; calculator {calc_total:.2f} s in all "
        f"({1000 * calc_total / max(result['timed'], 1):.0f} ms per model on average, "
        f"median {1000 * result['median_s']:.0f} ms; CPU time {result['calculator_cpu_s']:.2f} s), "
        f"model building {result['build_s']:.2f} s"
    )


if __name__ == "__main__":
    main()
