"""``labrunner grade``: a class's submission zips to a gradebook, re-executed in a sandbox.

For each zip: verify it against its manifest (streaming, bounded memory); read the run and the
labs' code out of it; with ``rerun``, run each lab's code again in the sandbox
(:mod:`labrunner.course.sandbox`) at the grading profile, with the instructor's hidden checks
transplanted into the student's code when the instructor's lab package is given
(:func:`labrunner.course.assign.transplant_package`), and compare the re-executed measurements,
claims and checks with the submitted ones. The outputs (:mod:`labrunner.course.gradeout`) go into
one grading folder. A graded zip (same sha256, same options) is not graded again unless
``regrade``.

Scores: with a re-execution, a lab's points are those of its re-executed checks (the hidden
ones included), so an edited result cannot earn points; without one, the submitted checks'.
An exercise that declares the assignment's points is scored out of them (its checks share
them by their own points); a bonus exercise adds to the score and not to the maximum.
A lab whose re-execution fails (an error, a limit, the time-out) earns nothing and is that
student's grading error, with the reason.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import json
import math
import os
import re
import shutil
import sys
import threading
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..base.errors import UsageError
from ..base.hashing import sha256_file
from ..records.files import is_inside
from ..records.results import LabResult, RunFileError
from .bundle import CHUNK, CODE_JSON, BundleError, verify_bundle
from .isolation import Isolation, Limits
from .sandbox import run_sandboxed

#: The grading folder's own files: what resuming reads back.
STATE_DIR = ".state"
WORK_DIR = ".work"
#: A student's identity as it appears in file names: letters, digits, '.', '_', '-'.
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
#: What a rerun profile may be besides a lab's profile names: each lab's submitted profile.
SUBMITTED = "submitted"


def safe_id(text: str) -> str:
    """``text`` as a file name: runs of other characters become '_', no leading '.' or '-',
    at most 64 characters; "student" when nothing is left."""
    clean = _UNSAFE.sub("_", text.strip()).strip("._-")[:64].rstrip("._-")
    return clean or "student"


@dataclass(frozen=True)
class GradeOptions:
    """What ``labrunner grade`` was asked. ``rerun``: None (no re-execution), a profile name,
    or ``"submitted"`` (each lab at its submitted profile and settings); ``rerun_labs``: the
    labs to re-execute (empty: all); ``lab_packages``: the instructor's lab packages (folders
    or importable names) whose hidden checks are transplanted into the students' code;
    ``uid_base``: the first uid of the sandbox users (one per job slot, when run as root)."""

    out: Path
    lab_packages: tuple[str, ...] = ()
    rerun: str | None = None
    rerun_labs: tuple[str, ...] = ()
    jobs: int = 1
    regrade: bool = False
    sandbox: str = "auto"
    limits: Limits = field(default_factory=Limits)
    rtol: float = 1e-6
    atol: float = 1e-9
    threads: int = 1
    uid_base: int = 61000
    #: Where re-executions run: ``"local"`` (this machine, ``jobs`` at a time) or ``"slurm"``
    #: (one SLURM job per lab of a submission, each sandboxed on its node).
    executor: str = "local"
    #: SLURM options (``partition``, ``time``, ``cpus``, ``mem``, ...), as ``run`` takes them.
    executor_options: dict[str, Any] = field(default_factory=dict)

    def key(self) -> str:
        """What decides a grade besides the zip: a graded zip is reused when this matches."""
        data = {
            "rerun": self.rerun,
            "labs": sorted(self.rerun_labs),
            "packages": [_package_digest(p) for p in self.lab_packages],
            "rtol": self.rtol,
            "atol": self.atol,
            "limits": [self.limits.memory, self.limits.processes, self.limits.file_size, self.limits.wall],
        }
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]


def _package_digest(spec: str) -> str:
    from ..base.hashing import stable_hash

    root = _locate_package(spec)
    files = {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and "__pycache__" not in p.parts
    }
    return stable_hash(files)


def _locate_package(spec: str) -> Path:
    from .assign import locate_package

    return locate_package(spec)


# --------------------------------------------------------------------------- one submission


def find_submissions(inputs: Sequence[Path]) -> list[Path]:
    """The zips to grade: each input is a zip or a folder of zips (not searched deeper)."""
    found: list[Path] = []
    for item in inputs:
        item = Path(item)
        if item.is_dir():
            found += sorted(p for p in item.iterdir() if p.suffix.lower() == ".zip" and p.is_file())
        elif item.is_file():
            found.append(item)
        else:
            raise UsageError(f"{item}: no such file or folder")
    if not found:
        raise UsageError(f"no submission zips in {', '.join(str(i) for i in inputs)}")
    seen: set[Path] = set()
    unique = []
    for path in found:
        if path.resolve() not in seen:
            seen.add(path.resolve())
            unique.append(path)
    return unique


def read_submission(zip_path: Path, work: Path) -> dict[str, Any]:
    """Verify one zip and read it: returns the submission's record (``student``, ``status``
    ``"read"`` or ``"invalid"`` with ``error``, each lab's submitted result as JSON, its
    code's description, the run's settings). The files grading needs (run.json, results,
    code, report.html) are extracted below ``work/<digest>/``."""
    digest = sha256_file(zip_path)
    record: dict[str, Any] = {
        "zip": str(zip_path),
        "zip_name": zip_path.name,
        "zip_sha256": digest,
        "student": safe_id(zip_path.stem),
        "identity_from": "file name",
        "status": "read",
        "error": "",
        "flags": [],
        "labs": {},
    }
    try:
        record["files"] = verify_bundle(zip_path)
    except BundleError as exc:
        record.update(status="invalid", error=f"the zip does not verify: {exc}")
        return record
    folder = work / digest[:16]
    try:
        root = _extract(zip_path, folder)
        from ..records.runfolder import load_run

        run = load_run(root / "submitted")
    except (RunFileError, UsageError, OSError, ValueError) as exc:
        record.update(status="invalid", error=f"the run in the zip cannot be read: {exc}")
        return record
    who = run.meta.get("student_id") or run.meta.get("author") or ""
    if who.strip():
        record["student"] = safe_id(who)
        record["identity_from"] = "report"
    record["author"] = run.meta.get("author", "")
    record["folder"] = str(root)
    record["settings"] = {k: run.settings.get(k) for k in ("profile", "seed", "device", "deterministic")}
    code = {}
    code_json = root / "submitted" / CODE_JSON
    if code_json.is_file():
        try:
            code = json.loads(code_json.read_text(encoding="utf-8")).get("labs", {})
        except (ValueError, AttributeError):
            record["flags"].append("code/code.json cannot be read")
    for result in run.labs:
        if result.status == "not run":
            continue
        info = code.get(result.lab) if isinstance(code.get(result.lab), dict) else {}
        if info and info.get("matches_run") is False:
            record["flags"].append(f"{result.lab}: the code in the zip is not the code the run used")
        record["labs"][result.lab] = {"submitted": result.to_json(), "code": info or {}}
    if not record["labs"]:
        record.update(status="invalid", error="the zip holds no lab result")
    return record


#: What grading extracts from a zip (below its one folder); figures stay in the zip.
def _wanted(rel: str) -> bool:
    parts = rel.split("/")
    return (
        rel in ("run.json", "config.yaml", "report.html")
        or (len(parts) == 2 and parts[1] == "result.json")
        or parts[0] == "code"
    )


def _extract(zip_path: Path, folder: Path) -> Path:
    """Extract what grading reads into ``folder/submitted`` (names were checked by
    verify_bundle: relative, normalised, no '..'); returns ``folder``."""
    target = folder / "submitted"
    if folder.exists():
        shutil.rmtree(folder)
    target.mkdir(parents=True)
    with zipfile.ZipFile(zip_path) as zf:
        for info in zf.infolist():
            if info.is_dir() or "/" not in info.filename:
                continue
            rel = info.filename.split("/", 1)[1]
            if not _wanted(rel):
                continue
            dest = target / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            with zf.open(info) as src, open(dest, "wb") as out:
                shutil.copyfileobj(src, out, CHUNK)
    return folder


# --------------------------------------------------------------------------- re-execution


def prepare_rerun(
    record: dict[str, Any], lab: str, opts: GradeOptions, packages: dict[str, Path]
) -> tuple[Path, dict[str, Any]] | str:
    """The code folder for re-executing ``lab`` of a submission (the student's package, with
    the instructor's hidden checks transplanted in when ``packages`` has the lab), and its
    spec; or why it cannot be re-executed."""
    entry = record["labs"][lab]
    info = entry["code"]
    submitted = entry["submitted"]
    if not info.get("installed") or not info.get("package"):
        return "the zip holds no code for this lab"
    root = Path(record["folder"])
    student_code = root / "submitted" / "code" / lab / info["package"]
    if not student_code.exists():
        return f"the zip lacks code/{lab}/{info['package']}"
    code_dir = root / "rerun" / lab / "code"
    if code_dir.exists():
        shutil.rmtree(code_dir)
    code_dir.mkdir(parents=True)
    plugin = Path(info["package"]).stem
    transplanted = ""
    if lab in packages and student_code.is_dir():
        from .assign import transplant_package

        try:
            transplant_package(packages[lab], student_code, code_dir / packages[lab].name)
            plugin = packages[lab].name
            transplanted = "yes"
        except UsageError as exc:
            return f"the student's solution regions cannot be put into the instructor's code: {exc}"
    elif student_code.is_dir():
        shutil.copytree(student_code, code_dir / plugin)
    else:
        shutil.copy2(student_code, code_dir / info["package"])
    if opts.rerun == SUBMITTED:
        profile, config = submitted.get("profile") or "quick", submitted.get("config") or {}
    else:
        profile, config = opts.rerun, {}
    spec = {
        "lab": lab,
        "plugin": plugin,
        "profile": profile,
        "seed": submitted.get("seed", 0),
        "config": config,
        "threads": opts.threads,
    }
    (code_dir / "spec.json").write_text(json.dumps(spec, indent=2), encoding="utf-8")
    spec["transplanted"] = transplanted
    return code_dir, spec


def rerun_lab(
    record: dict[str, Any],
    lab: str,
    opts: GradeOptions,
    isolation: Isolation,
    packages: dict[str, Path],
    hide: Sequence[Path],
    slot: int,
) -> dict[str, Any]:
    """Re-execute one lab of a submission in the sandbox; returns what happened: ``status``
    (``"done"`` or ``"error"``), ``reason``, ``result`` (the re-executed result as JSON),
    ``elapsed_s``, ``output`` (the end of its output) and the spec it ran."""
    prepared = prepare_rerun(record, lab, opts, packages)
    if isinstance(prepared, str):
        return {"status": "error", "reason": prepared}
    code_dir, spec = prepared
    scratch = code_dir.parent / "scratch"
    outcome = run_sandboxed(
        [sys.executable, "-m", "labrunner.course.rerun"],
        isolation=isolation,
        code_dir=code_dir,
        scratch_dir=scratch,
        limits=opts.limits,
        hide=hide,
        slot=slot,
        uid_base=opts.uid_base,
    )
    shutil.rmtree(scratch, ignore_errors=True)
    done: dict[str, Any] = {
        "status": "error",
        "reason": outcome.reason,
        "elapsed_s": round(outcome.elapsed_s, 3),
        "output": outcome.output[-4000:],
        "spec": spec,
    }
    if outcome.payload and not outcome.timed_out:
        try:
            data = json.loads(outcome.payload)
            if isinstance(data, dict) and "rerun_error" in data:
                done["reason"] = f"the lab cannot be loaded: {data['rerun_error']}"
                return done
            result = LabResult.from_json(data, f"{lab} (re-executed)")
        except (ValueError, RunFileError) as exc:
            done["reason"] = f"the re-execution returned no readable result ({exc})"
            return done
        if result.lab != lab:
            done["reason"] = f"the re-execution returned lab {result.lab!r}, not {lab!r}"
            return done
        if outcome.returncode == 0:
            done.update(status="done", reason="", result=result.to_json())
            if result.status == "error" and result.error:
                done.update(
                    status="error",
                    reason=f"the lab raised {result.error.get('type', '')}: {result.error.get('message', '')}",
                )
    elif not done["reason"]:
        done["reason"] = "the re-execution returned no result"
    return done


# --------------------------------------------------------------------------- comparing


def _tolerance(check: dict[str, Any]) -> float | None:
    """A check's declared absolute tolerance (``±0.01``, or a number), or None."""
    tol = check.get("tolerance")
    if isinstance(tol, (int, float)) and not isinstance(tol, bool):
        return abs(float(tol))
    if isinstance(tol, str):
        match = re.fullmatch(r"\s*±?\s*([0-9.eE+-]+)\s*", tol)
        if match:
            try:
                return abs(float(match.group(1)))
            except ValueError:
                return None
    return None


def _close(a: Any, b: Any, rtol: float, atol: float) -> bool:
    if (
        isinstance(a, bool)
        or isinstance(b, bool)
        or not isinstance(a, (int, float))
        or not isinstance(b, (int, float))
    ):
        return a == b
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return abs(a - b) <= atol + rtol * abs(b)


def compare(
    submitted: dict[str, Any], rerun: dict[str, Any], rtol: float, atol: float
) -> list[dict[str, Any]]:
    """Where a re-executed result differs from the submitted one: every metric (within
    ``rtol``/``atol``), every claim's outcome, and every visible check's outcome and actual
    value (within the check's declared tolerance, else ``rtol``/``atol``). Each difference:
    ``kind``, ``name``, ``submitted``, ``rerun``, ``tolerance``."""
    diffs: list[dict[str, Any]] = []
    sm, rm = submitted.get("metrics", {}), rerun.get("metrics", {})
    for name in list(sm) + [n for n in rm if n not in sm]:
        a, b = sm.get(name), rm.get(name)
        if name not in sm or name not in rm or not _close(a, b, rtol, atol):
            diffs.append(
                {"kind": "metric", "name": name, "submitted": a, "rerun": b, "tolerance": f"rtol {rtol:g}"}
            )

    def items(result: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
        return {
            f"{ex['title']} / {item['name']}": item
            for ex in result.get("exercises", [])
            for item in ex.get(kind, [])
            if not item.get("hidden")
        }

    sc, rc = items(submitted, "claims"), items(rerun, "claims")
    for name in list(sc) + [n for n in rc if n not in sc]:
        a, b = sc.get(name, {}).get("holds"), rc.get(name, {}).get("holds")
        if a != b:
            diffs.append(
                {"kind": "claim", "name": name, "submitted": a, "rerun": b, "tolerance": "same outcome"}
            )
    sk, rk = items(submitted, "checks"), items(rerun, "checks")
    for name in list(sk) + [n for n in rk if n not in sk]:
        a, b = sk.get(name), rk.get(name)
        if a is None or b is None or a.get("passed") != b.get("passed"):
            diffs.append(
                {
                    "kind": "check",
                    "name": name,
                    "submitted": None if a is None else ("passed" if a["passed"] else "failed"),
                    "rerun": None if b is None else ("passed" if b["passed"] else "failed"),
                    "tolerance": "same outcome",
                }
            )
            continue
        tol = _tolerance(a)
        same = (
            abs(float(a["actual"]) - float(b["actual"])) <= tol
            if tol is not None and _numeric(a.get("actual")) and _numeric(b.get("actual"))
            else _close(a.get("actual"), b.get("actual"), rtol, atol)
        )
        if not same:
            diffs.append(
                {
                    "kind": "check value",
                    "name": name,
                    "submitted": a.get("actual"),
                    "rerun": b.get("actual"),
                    "tolerance": f"±{tol:g}" if tol is not None else f"rtol {rtol:g}",
                }
            )
    return diffs


def _numeric(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def comparable(submitted: dict[str, Any], spec: dict[str, Any]) -> str:
    """ "" when a re-execution with ``spec`` should reproduce ``submitted``, else why not."""
    if spec["profile"] != submitted.get("profile"):
        return (
            f"submitted at profile {submitted.get('profile')!r}, re-executed at {spec['profile']!r}: "
            "measurements are not compared (the re-executed checks score the code)"
        )
    return ""


# --------------------------------------------------------------------------- scoring


def score_lab(result: dict[str, Any]) -> list[dict[str, Any]]:
    """Each exercise of a result with its score: ``exercise``, ``earned``, ``total``,
    ``bonus``, ``checks`` (name, passed, points earned and possible, hidden, the numbers).

    An exercise that declares the assignment's points (``points``) is scored out of them:
    its checks share them in proportion to their own points, so ``earned`` is the declared
    points times the share of its check points earned (0 when it has no checks), and each
    check's ``earned`` / ``points`` are its part of them. Otherwise the check points are the
    score. A bonus exercise's ``total`` counts towards no maximum (see :func:`finish_record`).
    """
    rows = []
    for ex in result.get("exercises", []):
        checks = [
            {
                "name": c.get("name", ""),
                "passed": bool(c.get("passed")),
                "earned": float(c.get("points", 1.0)) if c.get("passed") else 0.0,
                "points": float(c.get("points", 1.0)),
                "hidden": bool(c.get("hidden", False)),
                "expected": c.get("expected"),
                "actual": c.get("actual"),
                "tolerance": c.get("tolerance"),
                "message": c.get("message", ""),
            }
            for c in ex.get("checks", [])
        ]
        declared = ex.get("points")
        weight = sum(c["points"] for c in checks)
        if isinstance(declared, (int, float)) and not isinstance(declared, bool):
            scale = float(declared) / weight if weight else 0.0
            checks = [dict(c, earned=c["earned"] * scale, points=c["points"] * scale) for c in checks]
            total = float(declared)
        else:
            total = weight
        rows.append(
            {
                "exercise": ex.get("title", ""),
                "earned": sum(c["earned"] for c in checks),
                "total": total,
                "bonus": bool(ex.get("bonus", False)) and declared is not None,
                "scored_by": "assignment" if declared is not None else "checks",
                "checks": checks,
                "not_implemented": ex.get("not_implemented", ""),
            }
        )
    return rows


def finish_record(record: dict[str, Any], opts: GradeOptions) -> dict[str, Any]:
    """Score a read (and possibly re-executed) submission: per lab the exercises with points
    (from the re-executed result when there is one), reproduction differences, errors; and
    the total and status (``graded``, ``flagged``, ``error``, ``invalid``)."""
    if record["status"] == "invalid":
        record.update(score=0.0, max_score=0.0, exercises=[], errors=[])
        return record
    exercises: list[dict[str, Any]] = []
    errors: list[str] = []
    flagged = bool(record["flags"])
    for lab, entry in record["labs"].items():
        rerun = entry.get("rerun")
        if rerun is not None and rerun["status"] == "done":
            scored = score_lab(rerun["result"])
            entry["scored_from"] = "re-executed"
            why = comparable(entry["submitted"], rerun["spec"])
            entry["compared"] = not why
            entry["not_compared"] = why
            entry["differences"] = (
                compare(entry["submitted"], rerun["result"], opts.rtol, opts.atol) if not why else []
            )
            if entry["differences"]:
                flagged = True
        elif rerun is not None:
            scored = [dict(row, earned=0.0) for row in score_lab(entry["submitted"])]
            for row in scored:
                row["checks"] = [dict(c, earned=0.0, passed=False) for c in row["checks"]]
            entry["scored_from"] = "nothing: the re-execution failed"
            errors.append(f"{lab}: {rerun['reason']}")
        else:
            scored = score_lab(entry["submitted"])
            entry["scored_from"] = "submitted"
        entry["exercises"] = scored
        for row in scored:
            exercises.append({"lab": lab, **{k: row[k] for k in ("exercise", "earned", "total", "bonus")}})
    record["exercises"] = exercises
    record["score"] = sum(e["earned"] for e in exercises)
    record["max_score"] = sum(
        e["total"] for e in exercises if not e["bonus"]
    )  # a bonus adds to the score only
    record["errors"] = errors
    record["status"] = "error" if errors else "flagged" if flagged else "graded"
    return record


# --------------------------------------------------------------------------- the batch


@dataclass
class Grading:
    """The outcome of a batch: each submission's record, the isolation that was in force,
    how many were taken from an earlier grading, and the grading folder."""

    records: list[dict[str, Any]]
    out: Path
    isolation: Isolation | None
    reused: int = 0
    written: list[Path] = field(default_factory=list)

    @property
    def exit_status(self) -> int:
        return 0 if all(r["status"] == "graded" for r in self.records) else 1


def _read_job(args: tuple[str, str, str, bool]) -> dict[str, Any]:
    zip_path, work, state_file, regrade = args
    state = Path(state_file)
    if not regrade and state.is_file():
        try:
            return {**json.loads(state.read_text(encoding="utf-8")), "_reused": True}
        except ValueError:
            pass
    return read_submission(Path(zip_path), Path(work))


def _read_all(
    jobs: list[tuple[str, str, str, bool]], processes: int, progress: Callable[[str, int, int], None] | None
) -> list[dict[str, Any]]:
    """Verify and score each submission (``processes`` at a time), in order."""
    records: list[dict[str, Any]] = []
    if processes > 1 and len(jobs) > 1:
        import multiprocessing

        # spawn: the parent may run threads (the progress display), which fork would copy mid-lock
        pool = concurrent.futures.ProcessPoolExecutor(
            max_workers=processes, mp_context=multiprocessing.get_context("spawn")
        )
        mapped = pool.map(_read_job, jobs, chunksize=max(1, min(16, len(jobs) // (4 * processes))))
    else:
        pool, mapped = None, map(_read_job, jobs)
    try:
        for i, record in enumerate(mapped, 1):
            records.append(record)
            if progress:
                progress("verify", i, len(jobs))
    finally:
        if pool is not None:
            pool.shutdown()
    return records


def grade(
    inputs: Sequence[Path],
    opts: GradeOptions,
    *,
    progress: Callable[[str, int, int], None] | None = None,
    warn: Callable[[str], None] | None = None,
) -> Grading:
    """Grade the zips ``inputs`` (files or folders of zips) into ``opts.out``; see the
    module's docstring. ``progress(stage, done, total)`` is called as submissions finish."""
    from .gradeout import write_outputs

    zips = find_submissions(inputs)
    out = Path(opts.out)
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out}: not a folder")
    if (
        opts.rerun is not None
        and opts.rerun != SUBMITTED
        and not re.fullmatch(r"[a-z][a-z0-9_]*", opts.rerun)
    ):
        raise UsageError(f"--rerun {opts.rerun!r}: a profile name (smoke, quick, full) or 'submitted'")
    for z in zips:
        if is_inside(z, out):
            raise UsageError(f"{z}: a submission inside the grading folder {out}")
    packages = _instructor_labs(opts.lab_packages)
    if packages and warn and opts.rerun is None:
        warn(
            "--lab-package: the hidden checks run on the students' code only when it is re-executed (--rerun)"
        )
    isolation = None
    if opts.rerun is not None:
        from .isolation import detect_isolation

        isolation = detect_isolation(opts.sandbox)
        if isolation.warning and warn:
            warn(isolation.warning)
    out.mkdir(parents=True, exist_ok=True)
    (out / STATE_DIR).mkdir(exist_ok=True)
    work = out / WORK_DIR
    work.mkdir(exist_ok=True)
    key = opts.key()
    jobs = [
        (str(z), str(work), str(out / STATE_DIR / f"{sha256_file(z)}-{key}.json"), opts.regrade) for z in zips
    ]
    records = _read_all(jobs, opts.jobs, progress)
    reused = sum(1 for r in records if r.pop("_reused", False))
    if opts.rerun is not None and isolation is not None:
        _rerun_all(
            [r for r in records if "score" not in r and r["status"] == "read"],
            opts,
            isolation,
            packages,
            hide=[out.resolve(), *{z.resolve().parent for z in zips}],
            progress=progress,
        )
    for record, job in zip(records, jobs, strict=True):
        if "score" not in record:
            finish_record(record, opts)
            record["isolation"] = isolation.description if isolation else "not re-executed"
            record["isolation_warning"] = isolation.warning if isolation else ""
            _write_state(Path(job[2]), record)
    _unique_students(records)
    grading = Grading(records=records, out=out, isolation=isolation, reused=reused)
    grading.written = write_outputs(grading, opts)
    return grading


def _write_state(path: Path, record: dict[str, Any]) -> None:
    from ..records.results import write_atomic

    write_atomic(path, json.dumps(record, default=str).encode())


def _instructor_labs(specs: Sequence[str]) -> dict[str, Path]:
    """lab name -> the folder of the instructor's package that registers it."""
    from ..authoring.lab import validate_lab
    from ..settings.plugins import Plugins

    found: dict[str, Path] = {}
    for spec in specs:
        root = _locate_package(spec)
        plugins = Plugins(only={root.name})
        plugins.load_dir(root)
        if plugins.problems:
            raise UsageError(f"--lab-package {spec}: {plugins.problems[0]}")
        for name, lab in plugins.labs.items():
            validate_lab(lab)
            found[name] = root
        if not plugins.labs:
            raise UsageError(f"--lab-package {spec}: registers no lab")
    return found


def _rerun_all(
    records: list[dict[str, Any]],
    opts: GradeOptions,
    isolation: Isolation,
    packages: dict[str, Path],
    hide: list[Path],
    progress: Callable[[str, int, int], None] | None,
) -> None:
    tasks = [
        (record, lab)
        for record in records
        for lab in record["labs"]
        if not opts.rerun_labs or lab in opts.rerun_labs
    ]
    if opts.executor == "slurm":
        _rerun_on_slurm(tasks, opts, packages, hide, progress)
        return
    slots = list(range(max(1, opts.jobs)))
    lock = threading.Lock()
    done = 0

    def one(task: tuple[dict[str, Any], str]) -> None:
        nonlocal done
        record, lab = task
        with lock:
            slot = slots.pop()
        try:
            try:
                outcome = rerun_lab(record, lab, opts, isolation, packages, hide, slot)
            except Exception as exc:  # a grading failure stays that student's
                outcome = {"status": "error", "reason": f"grading failed: {type(exc).__name__}: {exc}"}
            record["labs"][lab]["rerun"] = outcome
        finally:
            with lock:
                slots.append(slot)
                done += 1
                if progress:
                    progress("re-execute", done, len(tasks))

    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, opts.jobs)) as pool:
        list(pool.map(one, tasks))


def slurm_rerun_job(spec: dict[str, Any]) -> dict[str, Any]:
    """What one SLURM job of a grading runs on its node: the re-execution of one lab of one
    submission, in the sandbox the node offers (detected there, as ``--sandbox`` asks)."""
    import socket

    from .isolation import detect_isolation

    opts: GradeOptions = spec["opts"]
    isolation = detect_isolation(opts.sandbox)
    outcome = rerun_lab(
        spec["record"], spec["lab"], opts, isolation, spec["packages"], spec["hide"], spec["slot"]
    )
    outcome["where"] = f"SLURM job on {socket.gethostname()}, {isolation.description}"
    if isolation.warning:
        outcome["isolation_warning"] = isolation.warning
    return outcome


def _rerun_on_slurm(
    tasks: list[tuple[dict[str, Any], str]],
    opts: GradeOptions,
    packages: dict[str, Path],
    hide: list[Path],
    progress: Callable[[str, int, int], None] | None,
) -> None:
    """Each task a SLURM job (submitit keeps its files in ``<out>/.slurm/``); waits for all
    of them. A job that ends without a result is that submission's grading error; Ctrl-C
    cancels the jobs not yet ended."""
    from ..execution.slurm import SlurmExecutor

    executor = SlurmExecutor(Path(opts.out) / ".slurm", opts.executor_options)
    jobs = []
    try:
        for slot, (record, lab) in enumerate(tasks):
            spec = {
                "lab": lab,
                "record": record,
                "opts": opts,
                "packages": packages,
                "hide": hide,
                # a uid of its own per task: jobs on one node never share a sandbox user
                "slot": slot,
            }
            jobs.append(executor.submit(spec, slurm_rerun_job))
        for done, job in enumerate(executor.follow(jobs), 1):
            record, lab = job.spec["record"], job.lab
            reply = (job.outcome or {}).get("reply")
            if isinstance(reply, dict):
                record["labs"][lab]["rerun"] = reply
            else:
                error = (job.outcome or {}).get("error") or {}
                message = error.get("message") or f"SLURM job {job.job_id} returned no result"
                record["labs"][lab]["rerun"] = {"status": "error", "reason": f"grading failed: {message}"}
            if progress:
                progress("re-execute", done, len(tasks))
    except BaseException:
        executor.cancel(jobs)
        list(executor.follow([j for j in jobs if j.outcome is None]))  # until they end (bounded)
        raise


def _unique_students(records: list[dict[str, Any]]) -> None:
    """Two zips of one student: each keeps a row, told apart by its zip's digest, and flagged."""
    by_id: dict[str, list[dict[str, Any]]] = {}
    for record in records:
        by_id.setdefault(record["student"], []).append(record)
    for student, group in by_id.items():
        if len(group) > 1:
            for record in group:
                record["student"] = f"{student}-{record['zip_sha256'][:8]}"
                note = f"{len(group)} submissions for {student}"
                if note not in record["flags"]:
                    record["flags"].append(note)
                    if record["status"] == "graded":
                        record["status"] = "flagged"


def default_jobs() -> int:
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)
