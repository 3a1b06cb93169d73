"""Run the labs under several seeds and show every claim whose outcome depends on the seed.

    python benchmarks/seed_claims.py                         # all labs, quick profile, seeds 0-4
    python benchmarks/seed_claims.py --labs attention rnn_lm --seeds 0-2 --profile smoke
    python benchmarks/seed_claims.py --threads 1 --out /tmp/seeds --cache-dir /tmp/seeds-cache

Each seed runs `labrunner run LABS --profile P --seed N` in a fresh process, into its own run
folder (OUT/seed-N) and, by default, with its own cache (OUT/cache-N), so no seed reuses
another's results; with --cache-dir the seeds share that cache (downloads and datasets too)
and run with --force. Then it reads every result.json back and prints:

- each claim (lab, name) whose outcome differs between seeds, with the seeds on each side;
- prose verdicts: an answer whose wording (numbers, and names that the exercise's tables
  list, masked) differs between seeds although no claim of its lab changed, so the text
  says something no recorded claim decided;
- the claims decided from the same evidence under every seed and the measurements with the
  same value under every seed: seed-independent, so the seeds repeat them rather than
  replicate them, and they are not counted as support;
- every answer, question or note that contains "nan";
- the labs that did not finish (error, interrupted) under some seed.

A conclusion the report states should not flip with the seed unless it says that it might.
Exit status: 0 when every claim agrees across seeds, no answer has a prose verdict and none
shows "nan", 1 otherwise, 2 when a run failed to start (bad input).
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

from labrunner.records.results import LabResult

NAN = re.compile(r"\bnan\b", re.IGNORECASE)
NUMBER = re.compile(r"[-+−]?\d[\d,]*(?:\.\d+)?(?:e[-+]?\d+)?", re.IGNORECASE)


def parse_seeds(text: str) -> list[int]:
    """``0-4`` or ``0,2,5`` or ``3`` -> a list of seeds."""
    seeds: list[int] = []
    for part in text.split(","):
        part = part.strip()
        if re.fullmatch(r"\d+-\d+", part):
            low, high = (int(x) for x in part.split("-"))
            if high < low:
                raise argparse.ArgumentTypeError(f"--seeds {text}: {part} runs backwards")
            seeds += range(low, high + 1)
        elif part.isdigit():
            seeds.append(int(part))
        else:
            raise argparse.ArgumentTypeError(f"--seeds {text}: expected 0-4 or 0,1,2")
    if not seeds:
        raise argparse.ArgumentTypeError("--seeds: no seed given")
    return sorted(set(seeds))


def run_seed(
    seed: int, labs: list[str], profile: str, out: Path, cache: Path | None, threads: int | None
) -> tuple[int, float]:
    """One `labrunner run` for ``seed``; returns its exit status and wall time."""
    cmd = [sys.executable, "-m", "labrunner", "run", *labs, "--profile", profile, "--seed", str(seed)]
    cmd += ["--out", str(out / f"seed-{seed}")]
    if threads:
        cmd += ["--threads", str(threads)]
    env = dict(os.environ)
    if cache is None:
        env["LABRUNNER_CACHE_DIR"] = str(out / f"cache-{seed}")
    else:
        env["LABRUNNER_CACHE_DIR"] = str(cache)
        cmd.append("--force")
    start = time.perf_counter()
    proc = subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if proc.returncode not in (0, 1):  # 1: some check failed, which is a result too
        sys.stderr.write(proc.stderr[-3000:])
    return proc.returncode, time.perf_counter() - start


def results_of(run_dir: Path, seed: int) -> list[LabResult]:
    """The labs that ran under ``seed`` in this run folder (not results shown from elsewhere)."""
    results = []
    for path in sorted(run_dir.glob("*/result.json")):
        result = LabResult.load(path)
        if result.status != "not run" and result.origin is None and result.seed == seed:
            results.append(result)
    return results


def claim_outcomes(by_seed: dict[int, list[LabResult]]) -> dict[tuple[str, str], dict[int, bool]]:
    """``(lab, claim) -> {seed: holds}`` over every seed."""
    outcomes: dict[tuple[str, str], dict[int, bool]] = defaultdict(dict)
    for seed, results in by_seed.items():
        for result in results:
            for ex in result.exercises:
                for claim in ex.claims:
                    outcomes[(result.lab, claim.name)][seed] = claim.holds
    return outcomes


def statements(by_seed: dict[int, list[LabResult]]) -> dict[tuple[str, str], str]:
    return {
        (r.lab, c.name): c.statement
        for results in by_seed.values()
        for r in results
        for ex in r.exercises
        for c in ex.claims
    }


def varying(outcomes: dict[tuple[str, str], dict[int, bool]], seeds: list[int]) -> list[tuple[str, str]]:
    """Claims that hold under some seeds and not others, or that some seeds never recorded."""
    return sorted(
        key
        for key, per_seed in outcomes.items()
        if len(set(per_seed.values())) > 1 or set(per_seed) != set(seeds)
    )


def masked_answer(exercise) -> str:
    """The answer with every number, and every text cell of the exercise's tables (image and
    class names, which the seed draws), replaced by a mark: what is left is its wording."""
    text = exercise.answer or ""
    names = {
        cell
        for record in exercise.records
        if getattr(record, "kind", None) == "table"
        for row in record.rows
        for cell in row
        if isinstance(cell, str) and len(cell) > 2 and not NUMBER.fullmatch(cell)
    }
    for name in sorted(names, key=len, reverse=True):
        text = text.replace(name, "‹name›")
    return NUMBER.sub("#", text)


def prose_verdicts(
    by_seed: dict[int, list[LabResult]], flips: list[tuple[str, str]]
) -> list[tuple[str, str, str]]:
    """``(lab, exercise, line)``: answers whose wording differs between seeds in a lab none of
    whose claims changed: a verdict the template drew from a number, not from a claim."""
    changed = {lab for lab, _name in flips}
    wording: dict[tuple[str, str], dict[int, str]] = defaultdict(dict)
    for seed, results in by_seed.items():
        for result in results:
            for ex in result.exercises:
                wording[(result.lab, ex.title)][seed] = masked_answer(ex)
    found = []
    for (lab, title), per_seed in sorted(wording.items()):
        if lab in changed or len(set(per_seed.values())) < 2:
            continue
        lines = [set(text.splitlines()) for text in per_seed.values()]
        differing = sorted(set.union(*lines) - set.intersection(*lines))
        found.append((lab, title, differing[0] if differing else "(line breaks only)"))
    return found


def seed_independent(by_seed: dict[int, list[LabResult]]) -> tuple[list[str], list[str], int, int]:
    """Claims decided from the same evidence under every seed, measurements with the same value
    under every seed, and how many of each vary (the ones the seeds replicate)."""
    evidence: dict[str, set[str]] = defaultdict(set)
    values: dict[str, set[float]] = defaultdict(set)
    for results in by_seed.values():
        for result in results:
            for ex in result.exercises:
                for claim in ex.claims:
                    evidence[f"{result.lab}.{claim.name}"].add(claim.evidence)
                for name, value in ex.metrics.items():
                    if isinstance(value, (int, float)) and not isinstance(value, bool):
                        values[f"{result.lab}.{name}"].add(float(value))
    if len(by_seed) < 2:
        return [], [], len(evidence), len(values)
    same_claims = sorted(k for k, v in evidence.items() if len(v) == 1)
    same_metrics = sorted(k for k, v in values.items() if len(v) == 1)
    return same_claims, same_metrics, len(evidence) - len(same_claims), len(values) - len(same_metrics)


def nan_texts(by_seed: dict[int, list[LabResult]]) -> list[tuple[int, str, str, str]]:
    """``(seed, lab, where, excerpt)`` for every question, answer or note showing "nan"."""
    found = []
    for seed, results in sorted(by_seed.items()):
        for result in results:
            texts = [("note", note) for note in result.notes]
            for ex in result.exercises:
                texts += [(f"{ex.title}: question", ex.question), (f"{ex.title}: answer", ex.answer)]
            for where, body in texts:
                for match in NAN.finditer(body or ""):
                    start = max(0, match.start() - 60)
                    excerpt = " ".join(body[start : match.end() + 60].split())
                    found.append((seed, result.lab, where, excerpt))
    return found


def seeds_text(seeds: list[int]) -> str:
    return ",".join(str(s) for s in seeds) or "-"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--labs", nargs="+", default=["all"], help="labs to run (default: all)")
    parser.add_argument("--profile", default="quick", help="profile (default: quick)")
    parser.add_argument(
        "--seeds", type=parse_seeds, default=parse_seeds("0-4"), help="0-4 (default) or 0,1,5"
    )
    parser.add_argument(
        "--out", type=Path, default=None, help="parent of the run folders (default: a new temp folder)"
    )
    parser.add_argument(
        "--cache-dir", type=Path, default=None, help="one cache shared by the seeds (runs use --force)"
    )
    parser.add_argument(
        "--threads", type=int, default=None, help="torch threads per run (passed to labrunner run)"
    )
    args = parser.parse_args(argv)

    out = args.out or Path(tempfile.mkdtemp(prefix="labrunner-seeds-"))
    out.mkdir(parents=True, exist_ok=True)
    print(
        f"labs {' '.join(args.labs)}, profile {args.profile}, seeds {seeds_text(args.seeds)}; runs in {out}"
    )
    by_seed: dict[int, list[LabResult]] = {}
    for seed in args.seeds:
        status, wall = run_seed(seed, args.labs, args.profile, out, args.cache_dir, args.threads)
        if status not in (0, 1):
            print(
                f"seed {seed}: labrunner run exited with status {status}; see the message above",
                file=sys.stderr,
            )
            return 2
        run_dir = (out / f"seed-{seed}" / "latest").resolve()
        by_seed[seed] = results_of(run_dir, seed)
        states = ", ".join(f"{r.lab} {r.status}" for r in by_seed[seed])
        print(f"seed {seed}: {wall:.0f} s, {states}")

    outcomes = claim_outcomes(by_seed)
    said = statements(by_seed)
    flips = varying(outcomes, args.seeds)
    print(f"\n{len(outcomes)} claims, {len(flips)} with an outcome that depends on the seed")
    for lab, name in flips:
        per_seed = outcomes[(lab, name)]
        holds = [s for s in args.seeds if per_seed.get(s) is True]
        fails = [s for s in args.seeds if per_seed.get(s) is False]
        absent = [s for s in args.seeds if s not in per_seed]
        line = f"  {lab}.{name}: holds for seeds {seeds_text(holds)}, fails for {seeds_text(fails)}"
        if absent:
            line += f", not recorded for {seeds_text(absent)}"
        print(line + f"\n      {said[(lab, name)]}")

    prose = prose_verdicts(by_seed, flips)
    print(f"\n{len(prose)} answer(s) whose wording changes with the seed while no claim of the lab does")
    for lab, title, line in prose:
        print(f"  {lab} {title}: {line[:160]}")

    same_claims, same_metrics, varying_claims, varying_metrics = seed_independent(by_seed)
    print(
        f"\nseed-independent (the same under every seed: repeated, not replicated, not counted as support): "
        f"{len(same_claims)} claims, {len(same_metrics)} measurements; varying with the seed: "
        f"{varying_claims} claims, {varying_metrics} measurements"
    )
    for name in same_claims:
        print(f"  claim {name}")
    for name in same_metrics:
        print(f"  measurement {name}")

    nans = nan_texts(by_seed)
    print(f"\n{len(nans)} text(s) containing 'nan'")
    for seed, lab, where, excerpt in nans:
        print(f"  seed {seed} {lab} {where}: ...{excerpt}...")

    unfinished = [
        (s, r.lab, r.status) for s, rs in by_seed.items() for r in rs if r.status in ("error", "interrupted")
    ]
    for seed, lab, status in unfinished:
        print(f"  seed {seed}: {lab} {status}")
    return 1 if flips or prose or nans or unfinished else 0


if __name__ == "__main__":
    raise SystemExit(main())
