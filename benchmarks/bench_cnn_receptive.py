"""Time the receptive-field calculator over every torchvision classification model, or
check that the lab's answers do not change with the seed.

    python benchmarks/bench_cnn_receptive.py [--size 224] [--threads 1] [--models a,b,...]
    python benchmarks/bench_cnn_receptive.py --seeds 0-4 [--profile quick] [--threads 1]

With ``--seeds`` the whole lab runs once per seed (in a temporary folder and cache) and the
script prints every claim whose outcome differs between seeds (none, when the answers hold
under any seed), then the spread of the effective-field figures over the seeds; it exits 1
when a claim flips.

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
    parser.add_argument("--seeds", default="", help="run the lab for these seeds (0-4 or 0,3,7)")
    parser.add_argument("--profile", default="quick", help="the lab's profile with --seeds")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.seeds:
        raise SystemExit(claims_over_seeds(parse_seeds(args.seeds), args.profile))

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


def parse_seeds(text: str) -> list[int]:
    """``0-4`` or ``0,3,7`` as a list of seeds."""
    if "-" in text:
        lo, hi = (int(v) for v in text.split("-", 1))
        return list(range(lo, hi + 1))
    return [int(v) for v in text.split(",") if v]


def claims_over_seeds(seeds: list[int], profile: str) -> int:
    """Run the lab once per seed; print the claims that flip and the spread of the effective
    field's figures; return 1 if any claim flips, else 0."""
    import os
    import tempfile
    from pathlib import Path

    from labrunner.testing import run_lab_in

    outcomes: dict[str, dict[int, bool]] = {}
    metrics: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["LABRUNNER_CACHE_DIR"] = str(Path(tmp) / "cache")
        for seed in seeds:
            t0 = time.perf_counter()
            result = run_lab_in("cnn_receptive", Path(tmp) / f"seed{seed}", profile=profile, seed=seed)
            print(f"seed {seed}: {result.status} in {time.perf_counter() - t0:.0f} s")
            for ex in result.exercises:
                for claim in ex.claims:
                    outcomes.setdefault(claim.name, {})[seed] = claim.holds
            for name, value in result.metrics.items():
                if name.startswith("erf_") and isinstance(value, (int, float)):
                    metrics.setdefault(name, []).append(float(value))
    flips = {name: by_seed for name, by_seed in outcomes.items() if len(set(by_seed.values())) > 1}
    print(f"\n{len(outcomes)} claims over seeds {seeds}: {len(flips)} differ between seeds")
    for name, by_seed in flips.items():
        print(f"  {name}: " + ", ".join(f"seed {s} {'holds' if v else 'fails'}" for s, v in by_seed.items()))
    print("\neffective field over the seeds (median, min to max):")
    for name, values in sorted(metrics.items()):
        print(f"  {name:28s} {statistics.median(values):10.4g}  {min(values):.4g} to {max(values):.4g}")
    return 1 if flips else 0


if __name__ == "__main__":
    main()
