"""Seed sweeps: one lab run once per seed, and the summary the report reads.

The run folder keeps every existing reader working:

    <lab>/                   the first seed's result, as in a run with one seed
    <lab>/seeds/<seed>/      each seed's own folder (result.json, figures)
    <lab>/sweep.json         this summary: each exercise's metrics over the seeds (mean,
                             spread, per-seed values) and each claim with how many seeds
                             support it

A seed sweep is a replication only where the seed changes the inputs. A metric with the same
value under every seed, and a claim decided from the same evidence under every seed (an exact
computation, or material the seed does not touch), are marked ``seed_independent``: the
report says so instead of counting "5 of 5 seeds" as support.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .jsonfiles import (
    RunFileError,
    check_lab_name,
    field_of,
    json_object,
    jsonable,
    load_record,
    seeds_of,
    short,
    where_of,
    write_json,
)
from .results import STATUSES, LabResult

SWEEP_FILE = "sweep.json"
#: The version of sweep.json this labrunner writes and reads (its own, not result.json's).
SWEEP_SCHEMA = 1
SEEDS_DIR = "seeds"


@dataclass
class MetricSpread:
    """One metric over the seeds that recorded it."""

    mean: float
    std: float  # sample standard deviation (0 for a single seed)
    min: float
    max: float
    values: dict[str, float]  # seed (as text, JSON keys) -> value
    #: The same value under every seed (of two or more): the seed does not reach it.
    seed_independent: bool = False


@dataclass
class ClaimTally:
    """One claim over the seeds: how many support it."""

    name: str
    statement: str
    holds: int
    of: int
    by_seed: dict[str, bool]
    #: Decided from the same evidence under every seed (of two or more): one computation
    #: repeated, not a replication, so the seeds are no support for it.
    seed_independent: bool = False

    @property
    def support(self) -> int:
        """The seeds that support the claim as replications (0 for a seed-independent claim)."""
        return 0 if self.seed_independent else self.holds


@dataclass
class ExerciseSweep:
    title: str
    metrics: dict[str, MetricSpread] = field(default_factory=dict)
    claims: list[ClaimTally] = field(default_factory=list)


@dataclass
class SweepSummary:
    """``<lab>/sweep.json``."""

    lab: str
    seeds: list[int]
    status: dict[str, str]  # seed -> the seed's status
    metrics: dict[str, MetricSpread] = field(default_factory=dict)
    exercises: list[ExerciseSweep] = field(default_factory=list)

    def __post_init__(self) -> None:
        check_lab_name(self.lab, "lab")
        for seed in self.seeds:
            if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
                raise ValueError(f"sweep of {self.lab}: a seed must be an integer >= 0, not {short(seed)}")
        for seed, value in self.status.items():
            if value not in STATUSES:
                raise ValueError(f"sweep of {self.lab}: seed {seed}'s status {short(value)} is not a status")

    def to_json(self) -> dict[str, Any]:
        return jsonable({"schema": SWEEP_SCHEMA, **asdict(self)})

    def save(self, path: Path) -> None:
        write_json(path, self.to_json())

    @classmethod
    def from_json(cls, data: Any, where: str = "") -> SweepSummary:
        """Read sweep.json back, checking every field as run.json's reader does (lab name,
        seeds, each seed's status, numbers, claim counts); raises RunFileError naming the
        first field that is wrong."""
        d = json_object(data, where)
        version = field_of(d, "schema", where, int)
        if version != SWEEP_SCHEMA:
            newer = " (written by a newer labrunner; upgrade labrunner)" if version > SWEEP_SCHEMA else ""
            raise RunFileError(
                f"{where_of(where, 'schema')}: expected version {SWEEP_SCHEMA}, got {version}{newer}"
            )
        seeds = seeds_of(d, where)
        status = field_of(d, "status", where, dict)
        for seed, value in status.items():
            if value not in STATUSES:
                raise RunFileError(
                    f"status.{seed}: expected one of {', '.join(STATUSES)}, got {short(value)}"
                )
        exercises = []
        for i, ex in enumerate(field_of(d, "exercises", where, list, [])):
            at = f"exercises[{i}]"
            e = json_object(ex, at)
            claims = [
                _claim_tally(c, f"{at}.claims[{j}]")
                for j, c in enumerate(field_of(e, "claims", at, list, []))
            ]
            exercises.append(
                ExerciseSweep(
                    title=field_of(e, "title", at, str),
                    metrics=_spreads_from_json(field_of(e, "metrics", at, dict, {}), f"{at}.metrics"),
                    claims=claims,
                )
            )
        return cls(
            lab=check_lab_name(d.get("lab"), "lab"),
            seeds=seeds,
            status=status,
            metrics=_spreads_from_json(field_of(d, "metrics", where, dict, {}), "metrics"),
            exercises=exercises,
        )

    @classmethod
    def load(cls, path: Path) -> SweepSummary:
        """Read ``path``; raises RunFileError (one line naming the file and the field)."""
        return load_record(path, cls.from_json)

    @property
    def failed_seeds(self) -> dict[int, str]:
        """Each seed of the sweep whose lab did not pass, with its status (``"no result"``
        for a seed the sweep lists without a status)."""
        return {
            seed: self.status.get(str(seed), "no result")
            for seed in self.seeds
            if self.status.get(str(seed)) != "passed"
        }


def _spreads_from_json(data: dict[str, Any], where: str) -> dict[str, MetricSpread]:
    out = {}
    for name, value in data.items():
        at = f"{where}.{name}"
        v = json_object(value, at)
        values = field_of(v, "values", at, dict)
        for seed in values:
            field_of(values, seed, f"{at}.values", float)
        out[name] = MetricSpread(
            **{key: field_of(v, key, at, float) for key in ("mean", "std", "min", "max")},
            values=values,
            seed_independent=field_of(v, "seed_independent", at, bool, False),
        )
    return out


def _claim_tally(data: Any, where: str) -> ClaimTally:
    d = json_object(data, where)
    by_seed = field_of(d, "by_seed", where, dict)
    for seed in by_seed:
        field_of(by_seed, seed, f"{where}.by_seed", bool)
    return ClaimTally(
        name=field_of(d, "name", where, str),
        statement=field_of(d, "statement", where, str, ""),
        holds=field_of(d, "holds", where, int),
        of=field_of(d, "of", where, int),
        by_seed=by_seed,
        seed_independent=field_of(d, "seed_independent", where, bool, False),
    )


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def spread(values: dict[str, float]) -> MetricSpread:
    numbers = list(values.values())
    return MetricSpread(
        mean=statistics.fmean(numbers),
        std=statistics.stdev(numbers) if len(numbers) > 1 else 0.0,
        min=min(numbers),
        max=max(numbers),
        values=dict(values),
        seed_independent=len(numbers) > 1 and min(numbers) == max(numbers),
    )


def _spreads(per_seed: dict[str, dict[str, Any]]) -> dict[str, MetricSpread]:
    """Numeric metrics, in the order the first seed recorded them."""
    names: list[str] = []
    for metrics in per_seed.values():
        names += [n for n in metrics if n not in names and _number(metrics[n]) is not None]
    out = {}
    for name in names:
        values = {s: _number(m.get(name)) for s, m in per_seed.items()}
        present = {s: v for s, v in values.items() if v is not None}
        if present:
            out[name] = spread(present)
    return out


def summarize_sweep(lab: str, results: list[LabResult]) -> SweepSummary:
    """The summary of one lab's seeds (``results`` in seed order); exercises are matched by
    title, claims by name."""
    summary = SweepSummary(
        lab=lab, seeds=[r.seed for r in results], status={str(r.seed): r.status for r in results}
    )
    summary.metrics = _spreads({str(r.seed): r.metrics for r in results})
    titles: list[str] = []
    for r in results:
        titles += [ex.title for ex in r.exercises if ex.title not in titles]
    for title in titles:
        exercises = {
            str(r.seed): next((ex for ex in r.exercises if ex.title == title), None) for r in results
        }
        found = {s: ex for s, ex in exercises.items() if ex is not None}
        sweep = ExerciseSweep(title=title, metrics=_spreads({s: ex.metrics for s, ex in found.items()}))
        claim_names: list[str] = []
        for ex in found.values():
            claim_names += [c.name for c in ex.claims if c.name not in claim_names]
        for name in claim_names:
            by_seed = {}
            statement = ""
            evidence = set()
            for seed, ex in found.items():
                claim = next((c for c in ex.claims if c.name == name), None)
                if claim is not None:
                    by_seed[seed] = bool(claim.holds)
                    statement = statement or claim.statement
                    evidence.add(claim.evidence)
            sweep.claims.append(
                ClaimTally(
                    name=name,
                    statement=statement,
                    holds=sum(by_seed.values()),
                    of=len(by_seed),
                    by_seed=by_seed,
                    seed_independent=len(by_seed) > 1 and len(evidence) == 1,
                )
            )
        summary.exercises.append(sweep)
    return summary


#: From the best to the worst: a lab run once per seed has its worst seed's status.
_STATUS_ORDER = ("passed", "failed", "not run", "interrupted", "error")


def worst_status(statuses: list[str]) -> str:
    """The status of a lab over its seeds: the worst of theirs ("passed" only when every
    seed passed)."""
    return max(statuses, key=lambda s: _STATUS_ORDER.index(s) if s in _STATUS_ORDER else len(_STATUS_ORDER))


def seed_dir(lab_dir: Path, seed: int) -> Path:
    return Path(lab_dir) / SEEDS_DIR / str(int(seed))


def load_sweep(lab_dir: Path) -> SweepSummary | None:
    """The lab's sweep summary, or None for a lab run with one seed."""
    path = Path(lab_dir) / SWEEP_FILE
    return SweepSummary.load(path) if path.is_file() else None
