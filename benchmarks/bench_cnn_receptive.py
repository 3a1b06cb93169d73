"""Time the receptive-field calculator over every torchvision classification model.

    python benchmarks/bench_cnn_receptive.py [--size 224] [--threads 1] [--models a,b,...]

Each model is built on the meta device (no weights are allocated: the calculator needs the
geometry only), then traced with torch.fx and its fields computed. Building the model is
timed apart from the calculator. Prints one line per model (final layer, r, time, what it
could not reason about) and the totals: the calculator's time over all models (what the lab's
claim, "every model in under a few seconds", is about), its mean and median per model, and
the model building time.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--models", default="", help="comma-separated names (default: all)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    from labrunner.labs.cnn_receptive.networks import build_model, classification_models
    from labrunner.labs.cnn_receptive.receptive import feature_output, receptive_fields, unsupported

    names = [n for n in args.models.split(",") if n] or classification_models()
    build_total = calc_total = 0.0
    calc_times: list[float] = []
    computed = complete = 0
    for name in names:
        size = max(args.size, 299) if name == "inception_v3" else args.size
        t0 = time.perf_counter()
        try:
            model = build_model(name, meta=True)
        except Exception as exc:  # noqa: BLE001 - report and go on
            print(f"{name:28s} cannot build: {exc}")
            continue
        t1 = time.perf_counter()
        try:
            fields = receptive_fields(model, size)
            final = feature_output(fields)
            problems = unsupported(fields)
            t2 = time.perf_counter()
            computed += 1
            complete += not problems
            note = f"stops at {problems[0].name}: {problems[0].reason}" if problems else ""
            print(f"{name:28s} {t2 - t1:7.3f} s  r = {final.rf[0]:5d} at {final.name:32s} {note[:70]}")
        except Exception as exc:  # noqa: BLE001
            t2 = time.perf_counter()
            print(f"{name:28s} {t2 - t1:7.3f} s  error: {str(exc)[:90]}")
        build_total += t1 - t0
        calc_total += t2 - t1
        calc_times.append(t2 - t1)
    print(
        f"\n{computed}/{len(names)} models traced and computed, {complete} to the end of their spatial part; "
        f"calculator {calc_total:.2f} s in all "
        f"({1000 * calc_total / max(len(calc_times), 1):.0f} ms per model on average, "
        f"median {1000 * statistics.median(calc_times or [0.0]):.0f} ms), model building {build_total:.2f} s"
    )


if __name__ == "__main__":
    main()
