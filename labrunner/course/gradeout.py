"""What ``labrunner grade`` writes into the grading folder.

::

    gradebook.csv                 one row per student: a column per exercise, the total, status
    grading.json                  every submission's record (scores, flags, errors, comparisons)
    results/<student>/results.json   Gradescope's format: score, max_score, tests
    feedback/<student>/index.html    the outcome of every check (hidden ones included), the
                                     reproduction, the errors; report.html beside it
    cohort.html, cohort.json      each metric and claim across the class, outliers, submissions
                                  whose results are identical to another's under other seeds

Every file is written whole (temporary file, then renamed); student identities were made
safe for file names before any path is built (:func:`labrunner.course.submissions.safe_id`).
"""

from __future__ import annotations

import csv
import io
import json
import math
import shutil
import statistics
from pathlib import Path
from typing import Any

from ..records.results import write_atomic
from .graderecords import Submission
from .gradescope import gradescope_results, reproduction_text, show

#: A metric value this many robust standard deviations (MAD-based) from the median is an outlier.
OUTLIER_Z = 3.5


def exercise_columns(records: list[Submission]) -> list[tuple[str, str]]:
    """(lab, exercise) of every exercise any submission has, in first-seen order."""
    seen: dict[tuple[str, str], None] = {}
    for record in records:
        for ex in record.exercises or ():
            seen.setdefault((ex.lab, ex.exercise), None)
    return list(seen)


def gradebook_csv(records: list[Submission]) -> str:
    """The gradebook: ``student``, a column per exercise (``lab: exercise``, points earned: the
    assignment's points where the exercise declares them, else its check points; a bonus
    exercise's heading ends in ``(bonus)``), ``total``, ``max_total``, ``status``, ``flags``;
    the second row gives each column's maximum points (``Points Possible``, as LMS imports
    expect), its total leaving out the bonus columns as ``max_total`` does."""
    columns = exercise_columns(records)
    maxima: dict[tuple[str, str], float] = {}
    bonus: set[tuple[str, str]] = set()
    for record in records:
        for ex in record.exercises or ():
            key = (ex.lab, ex.exercise)
            maxima[key] = max(maxima.get(key, 0.0), ex.total)
            if ex.bonus:
                bonus.add(key)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(
        [
            "student",
            *[f"{lab}: {title}{' (bonus)' if (lab, title) in bonus else ''}" for lab, title in columns],
            "total",
            "max_total",
            "status",
            "flags",
        ]
    )
    possible = sum(v for c, v in maxima.items() if c not in bonus)
    writer.writerow(["Points Possible", *[_num(maxima[c]) for c in columns], _num(possible), "", "", ""])
    for record in sorted(records, key=lambda r: r.student):
        earned = {(ex.lab, ex.exercise): ex.earned for ex in record.exercises or ()}
        notes = list(record.flags) + list(record.errors or ())
        if record.error:
            notes.insert(0, record.error)
        writer.writerow(
            [
                _cell(record.student),
                *[_num(earned[c]) if c in earned else "" for c in columns],
                _num(record.score or 0.0),
                _num(record.max_score or 0.0),
                record.status,
                _cell("; ".join(notes)),
            ]
        )
    return buf.getvalue()


def _num(value: float) -> str:
    return f"{value:g}"


def _cell(text: str) -> str:
    """A cell a spreadsheet will not run as a formula."""
    text = " ".join(str(text).split())
    return "'" + text if text[:1] in ("=", "+", "-", "@") else text


# --------------------------------------------------------------------------- the cohort


def cohort(records: list[Submission]) -> dict[str, Any]:
    """Every metric (per lab) across the class: count, mean, median, spread, range, the
    outliers (robust z-score over ``OUTLIER_Z``); every claim: how many hold; and groups of
    submissions whose results are identical although their seeds differ."""
    values: dict[tuple[str, str], list[tuple[str, float]]] = {}
    claims: dict[tuple[str, str], list[tuple[str, bool]]] = {}
    fingerprints: dict[tuple[str, str], list[tuple[str, Any]]] = {}
    for record in records:
        for lab, entry in record.labs.items():
            result = entry.submitted or {}
            metrics = result.get("metrics", {})
            for name, value in metrics.items():
                if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
                    values.setdefault((lab, name), []).append((record.student, float(value)))
            for ex in result.get("exercises", []):
                for claim in ex.get("claims", []):
                    claims.setdefault((lab, claim["name"]), []).append((record.student, bool(claim["holds"])))
            if metrics:
                key = json.dumps({k: _round(v) for k, v in sorted(metrics.items())}, sort_keys=True)
                fingerprints.setdefault((lab, key), []).append((record.student, result.get("seed")))
    metric_rows = []
    for (lab, name), items in values.items():
        xs = [v for _, v in items]
        median = statistics.median(xs)
        mad = statistics.median([abs(x - median) for x in xs])
        outliers = []
        if mad > 0:
            outliers = [
                {"student": s, "value": v, "z": round(0.6745 * (v - median) / mad, 2)}
                for s, v in items
                if abs(0.6745 * (v - median) / mad) > OUTLIER_Z
            ]
        metric_rows.append(
            {
                "lab": lab,
                "metric": name,
                "n": len(xs),
                "mean": statistics.fmean(xs),
                "median": median,
                "stdev": statistics.stdev(xs) if len(xs) > 1 else 0.0,
                "min": min(xs),
                "max": max(xs),
                "histogram": _histogram(xs),
                "outliers": outliers,
            }
        )
    claim_rows = [
        {"lab": lab, "claim": name, "n": len(items), "holds": sum(h for _, h in items)}
        for (lab, name), items in claims.items()
    ]
    identical = []
    for (lab, _key), group in fingerprints.items():
        if len(group) > 1 and len({seed for _, seed in group}) > 1:
            identical.append({"lab": lab, "students": [{"student": s, "seed": seed} for s, seed in group]})
    return {"metrics": metric_rows, "claims": claim_rows, "identical_under_different_seeds": identical}


def _round(value: Any) -> Any:
    return float(f"{value:.12g}") if isinstance(value, float) else value


def _histogram(xs: list[float], bins: int = 10) -> list[int]:
    lo, hi = min(xs), max(xs)
    if hi == lo:
        return [len(xs)]
    counts = [0] * bins
    for x in xs:
        counts[min(bins - 1, int((x - lo) / (hi - lo) * bins))] += 1
    return counts


# --------------------------------------------------------------------------- pages

_FEEDBACK = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Feedback: {{ r.student }}</title>
<style>body{font:15px/1.45 system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem}
table{border-collapse:collapse;margin:.5rem 0}td,th{border:1px solid #ccc;padding:.2rem .5rem;text-align:left}
.pass{color:#176b2c}.fail{color:#a01818}.warn{background:#fff3cd;padding:.5rem}.hidden{font-style:italic}
pre{background:#f5f5f5;padding:.5rem;white-space:pre-wrap}</style></head><body>
<h1>Feedback: {{ r.student }}</h1>
<p>Submission <code>{{ r.zip_name }}</code> (sha256 {{ r.zip_sha256[:16] }}…) ·
<strong>{{ "%g"|format(r.score) }} / {{ "%g"|format(r.max_score) }} points</strong> · status: {{ r.status }}
{% if has_report %} · <a href="report.html">the submitted report</a>{% endif %}</p>
<p>Isolation while grading: {{ r.isolation }}</p>
{% if r.isolation_warning %}<p class="warn">WARNING: {{ r.isolation_warning }}</p>{% endif %}
{% if r.error %}<p class="warn">{{ r.error }}</p>{% endif %}
{% for e in r.errors %}<p class="warn">Grading error: {{ e }}</p>{% endfor %}
{% for f in r.flags %}<p class="warn">Flag: {{ f }}</p>{% endfor %}
{% for lab, entry in r.labs.items() %}
<h2>{{ lab }}</h2>
<p>Points from: {{ entry.scored_from }}</p>
{% if entry.rerun is defined and entry.rerun is not none %}<pre>{{ reproduction(entry) }}</pre>{% endif %}
{% for row in entry.exercises %}
<h3>{{ row.exercise }} — {{ "%g"|format(row.earned) }} / {{ "%g"|format(row.total) }}</h3>
{% if row.not_implemented %}<p class="fail">{{ row.not_implemented }}</p>{% endif %}
<table><tr><th>check</th><th>outcome</th><th>points</th><th>expected</th><th>actual</th><th>tolerance</th></tr>
{% for c in row.checks %}<tr{% if c.hidden %} class="hidden"{% endif %}><td>{{ c.name }}{% if c.hidden %} (hidden){% endif %}</td>
<td class="{{ 'pass' if c.passed else 'fail' }}">{{ 'passed' if c.passed else 'failed' }}</td>
<td>{{ "%g"|format(c.earned) }} / {{ "%g"|format(c.points) }}</td><td>{{ show(c.expected) }}</td>
<td>{{ show(c.actual) }}</td><td>{{ show(c.tolerance) }}</td></tr>{% endfor %}</table>
{% endfor %}{% endfor %}
</body></html>
"""

_COHORT = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Cohort</title>
<style>body{font:15px/1.45 system-ui,sans-serif;max-width:70rem;margin:2rem auto;padding:0 1rem}
table{border-collapse:collapse;margin:.5rem 0}td,th{border:1px solid #ccc;padding:.2rem .5rem;text-align:right}
td:first-child,td:nth-child(2){text-align:left}.bar{display:inline-block;background:#4a74b4;width:6px;margin-right:1px;vertical-align:bottom}
.warn{background:#fff3cd;padding:.5rem}</style></head><body>
<h1>Cohort: {{ records|length }} submissions</h1>
<p>{% for status, n in statuses.items() %}{{ status }}: {{ n }}{% if not loop.last %} · {% endif %}{% endfor %}</p>
<p>Scores: {% if scores %}median {{ "%g"|format(score_median) }}, range {{ "%g"|format(scores|min) }}–{{ "%g"|format(scores|max) }}{% else %}none{% endif %}</p>
{% if isolation_warning %}<p class="warn">WARNING: {{ isolation_warning }}</p>{% endif %}
<h2>Metrics</h2>
<table><tr><th>lab</th><th>metric</th><th>n</th><th>mean</th><th>median</th><th>stdev</th><th>min</th><th>max</th><th>distribution</th><th>outliers</th></tr>
{% for m in c.metrics %}<tr><td>{{ m.lab }}</td><td>{{ m.metric }}</td><td>{{ m.n }}</td><td>{{ show(m.mean) }}</td><td>{{ show(m.median) }}</td>
<td>{{ show(m.stdev) }}</td><td>{{ show(m.min) }}</td><td>{{ show(m.max) }}</td>
<td>{% set top = m.histogram|max %}{% for h in m.histogram %}<span class="bar" style="height:{{ (2 + 28 * h / top)|round(0)|int }}px" title="{{ h }}"></span>{% endfor %}</td>
<td>{% for o in m.outliers %}{{ o.student }} ({{ show(o.value) }}, z {{ o.z }}){% if not loop.last %}, {% endif %}{% endfor %}</td></tr>{% endfor %}</table>
<h2>Claims</h2>
<table><tr><th>lab</th><th>claim</th><th>holds</th></tr>
{% for k in c.claims %}<tr><td>{{ k.lab }}</td><td>{{ k.claim }}</td><td>{{ k.holds }} / {{ k.n }}</td></tr>{% endfor %}</table>
<h2>Identical results under different seeds</h2>
{% if not c.identical_under_different_seeds %}<p>None.</p>{% endif %}
<ul>{% for g in c.identical_under_different_seeds %}<li>{{ g.lab }}: {% for s in g.students %}{{ s.student }} (seed {{ s.seed }}){% if not loop.last %}, {% endif %}{% endfor %}</li>{% endfor %}</ul>
</body></html>
"""

_ENV = None


def _template(text: str):
    global _ENV
    if _ENV is None:
        import jinja2

        _ENV = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)
        _ENV.globals.update(show=show, reproduction=reproduction_text)
    return _ENV.from_string(text)


def write_outputs(grading: Any, opts: Any) -> list[Path]:
    """Write every output of a batch into the grading folder; returns the files written."""
    out = Path(grading.out)
    records = grading.records
    written: list[Path] = []

    def put(rel: str, data: str | bytes) -> None:
        path = out / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(path, data.encode("utf-8") if isinstance(data, str) else data)
        written.append(path)

    put("gradebook.csv", gradebook_csv(records))
    feedback = _template(_FEEDBACK)
    for record in records:
        student = record.student
        results = gradescope_results(record).to_json()
        put(f"results/{student}/results.json", json.dumps(results, indent=2, default=str))
        report = Path(record.folder or "") / "submitted" / "report.html"
        has_report = bool(record.folder) and report.is_file()
        if has_report:
            target = out / "feedback" / student / "report.html"
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(report, target)
            written.append(target)
        put(f"feedback/{student}/index.html", feedback.render(r=record, has_report=has_report))
    summary = cohort(records)
    put("cohort.json", json.dumps(summary, indent=2, default=str))
    scores = [r.score or 0.0 for r in records if r.status != "invalid"]
    statuses: dict[str, int] = {}
    for record in records:
        statuses[record.status] = statuses.get(record.status, 0) + 1
    put(
        "cohort.html",
        _template(_COHORT).render(
            c=summary,
            records=records,
            statuses=statuses,
            scores=scores,
            score_median=statistics.median(scores) if scores else 0,
            isolation_warning=grading.isolation.warning if grading.isolation else "",
        ),
    )
    put(
        "grading.json",
        json.dumps(
            {
                "isolation": grading.isolation.description if grading.isolation else "not re-executed",
                "isolation_warning": grading.isolation.warning if grading.isolation else "",
                "rerun": opts.rerun,
                "submissions": [r.to_json() for r in records],
            },
            indent=2,
            default=str,
        ),
    )
    return written
