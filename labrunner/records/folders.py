"""Run folders on disk: creating one, finding the latest, pointing ``latest`` at it,
pruning old ones (``labrunner clean``), and completing a run with every installed lab
(each lab's most recent result from an earlier run, copied: a run folder shares no file
with the cache or another run).

The files inside a run folder, and how they are read back, are :mod:`labrunner.records.runfolder`.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import shutil
from pathlib import Path

from ..base.errors import UsageError
from .files import copy_tree, inside_folder
from .jsonfiles import check_lab_name, write_atomic
from .parts import FigureRecord
from .results import LabResult
from .runinfo import LabEntry, RunInfo
from .sweep import SEEDS_DIR, SWEEP_FILE, load_sweep, seed_dir


def new_run_dir(out: Path) -> Path:
    """``out/<timestamp>``, made unique, and ``out/latest`` pointing at it."""
    out = Path(out)
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    run_dir = out / stamp
    n = 1
    while True:
        try:
            run_dir.mkdir(parents=True)
            break
        except FileExistsError:  # another run started in the same second
            n += 1
            run_dir = out / f"{stamp}-{n}"
    point_latest(out, run_dir)
    return run_dir


def point_latest(out: Path, run_dir: Path) -> None:
    """Point ``out/latest`` at ``run_dir`` (a relative symlink, replaced atomically; where
    symlinks are not available, the text file ``out/LATEST`` names the run)."""
    out = Path(out)
    latest = out / "latest"
    tmp = out / f".latest.{os.getpid()}.{os.urandom(4).hex()}"  # two runs never share it
    try:
        tmp.symlink_to(Path(run_dir).name, target_is_directory=True)
        os.replace(tmp, latest)
    except OSError:  # no symlinks (some Windows setups): a text file names the run
        tmp.unlink(missing_ok=True)
        write_atomic(out / "LATEST", Path(run_dir).name + "\n")


def latest_run_dir(out: Path) -> Path | None:
    """The run folder ``out/latest`` (or ``out/LATEST``) names, or None."""
    out = Path(out)
    latest = out / "latest"
    if latest.is_symlink() or latest.exists():
        target = Path(os.path.realpath(latest))
        return target if target.is_dir() else None
    if (out / "LATEST").is_file():
        name = (out / "LATEST").read_text(encoding="utf-8").strip()
        if name and "/" not in name and "\\" not in name and name not in (".", ".."):
            return out / name
    return None


def find_run_dir(path: Path | None, out: Path = Path("reports")) -> Path:
    """The run folder named, or the latest one under ``out``; raises UsageError."""
    if path is None:
        path = latest_run_dir(out)
        if path is None:
            raise UsageError(f"no runs found in {out}/ (run 'labrunner run' first, or give RUN_DIR)")
    path = Path(path)
    if not (path / "run.json").is_file():
        raise UsageError(f"{path} is not a run folder (no run.json)")
    return path


#: A run folder's name: the time it started, and a counter when two started in one second.
RUN_NAME = re.compile(r"^(\d{8}-\d{6})(?:-(\d+))?$")


def run_folders(out: Path) -> list[Path]:
    """The run folders directly in ``out`` (named by their start time, holding a
    run.json, not links), newest first."""
    out = Path(out)
    if not out.is_dir():
        return []
    found = []
    for child in out.iterdir():
        match = RUN_NAME.match(child.name)
        if match and not child.is_symlink() and child.is_dir() and (child / "run.json").is_file():
            found.append(((match.group(1), int(match.group(2) or 1)), child))
    return [path for _key, path in sorted(found, reverse=True)]


#: In a run folder: the lock its run holds from the folder's creation to its end.
LOCK_FILE = ".lock"


class RunLock:
    """The lock a run holds on its folder for its whole life (``<run>/.lock``; an fcntl
    lock, which the system drops when the process ends however it ends): ``clean``
    never removes a run folder whose lock is held."""

    def __init__(self, run_dir: Path):
        self.path = Path(run_dir) / LOCK_FILE
        self._fd: int | None = None
        self._other: object | None = None

    def acquire(self, *, blocking: bool = False) -> bool:
        """Take the lock; without ``blocking``, False at once when another holds it."""
        try:
            import fcntl
        except ImportError:  # Windows: filelock's msvcrt lock
            from filelock import FileLock, Timeout

            lock = FileLock(str(self.path))
            try:
                lock.acquire(timeout=-1 if blocking else 0)
            except Timeout:
                return False
            self._other = lock
            return True
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX if blocking else fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            return False
        self._fd = fd
        return True

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor drops the lock
            self._fd = None
        if self._other is not None:
            self._other.release()  # type: ignore[attr-defined]
            self._other = None

    def __enter__(self) -> RunLock:
        self.acquire(blocking=True)
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def run_is_locked(run_dir: Path) -> bool:
    """Whether a process holds the lock of ``run_dir`` (a run still running in it)."""
    if not (Path(run_dir) / LOCK_FILE).is_file():
        return False  # a run takes its lock before it writes run.json: none ever ran here
    lock = RunLock(run_dir)
    if lock.acquire():
        lock.release()
        return False
    return True


def clean_runs(
    out: Path, *, keep: int, dry_run: bool = False, skipped: list[tuple[Path, str]] | None = None
) -> list[Path]:
    """Remove all but the newest ``keep`` run folders of ``out``; returns those removed.

    The folder ``latest`` points to is always kept, and only run folders directly in
    ``out`` are candidates (see :func:`run_folders`): nothing else is touched. A run
    still running (its lock is held) or whose jobs were submitted and not collected
    (run.json ``submitted``) is kept too, and listed in ``skipped`` with the reason.
    ``out`` must be a folder: a missing one is a UsageError.
    """
    if keep < 1:
        raise UsageError(f"--keep must be at least 1, got {keep}")
    out = Path(out)
    if not out.is_dir():
        what = "not a folder" if out.exists() else "no such folder"
        raise UsageError(f"--out {out}: {what}")
    latest = latest_run_dir(out)
    latest_real = Path(os.path.realpath(latest)) if latest is not None else None
    root = Path(os.path.realpath(out))
    removed = []
    skipped = skipped if skipped is not None else []
    for path in run_folders(out)[keep:]:
        real = Path(os.path.realpath(path))
        if real == latest_real or real.parent != root:
            continue
        lock = RunLock(path)
        if (path / LOCK_FILE).is_file() and not lock.acquire():
            skipped.append((path, "still running"))
            continue
        try:
            if _status(path) == "submitted":
                skipped.append((path, "its SLURM jobs were submitted and not collected (labrunner status)"))
                continue
            if not dry_run:
                shutil.rmtree(path)
        finally:
            lock.release()
        removed.append(path)
    return removed


def _status(run_dir: Path) -> str:
    try:
        return RunInfo.load(run_dir / "run.json").status
    except UsageError:
        return ""


# --------------------------------------------------------------------------- a complete run


def _finished_at(result: LabResult) -> dt.datetime:
    """When ``result`` finished, for comparing results (the oldest time when unknown)."""
    try:
        when = dt.datetime.fromisoformat(result.finished or result.started)
    except ValueError:
        return dt.datetime.min.replace(tzinfo=dt.timezone.utc)
    return when if when.tzinfo is not None else when.astimezone()


def most_recent_result(out: Path, lab: str, *, skip: Path | None = None) -> tuple[Path, LabResult] | None:
    """The lab's most recent result among the run folders of ``out`` (other than
    ``skip``), whatever settings it ran with: the result of ``lab`` (passed, failed or
    error) that finished last, as (its lab folder, the result); None when there is none.

    A result that cannot be trusted (invalid, or with a figure outside its folder) is
    passed over, not fatal."""
    current = Path(os.path.realpath(skip)) if skip is not None else None
    best: tuple[dt.datetime, Path, LabResult] | None = None
    for folder in run_folders(out):  # newest first: of two equal times, the newer folder's
        if current is not None and Path(os.path.realpath(folder)) == current:
            continue
        lab_dir = folder / lab
        try:
            if lab_dir.is_symlink() or not (lab_dir / "result.json").is_file():
                continue
            result = LabResult.load(lab_dir / "result.json")
            for ex in result.exercises:
                for record in ex.records:
                    if isinstance(record, FigureRecord):
                        inside_folder(folder, f"{lab}/{record.path}")
        except UsageError:  # an unreadable result elsewhere is skipped, not fatal
            continue
        if result.lab != lab or result.status not in ("passed", "failed", "error"):
            continue
        when = _finished_at(result)
        if best is None or when > best[0]:
            best = (when, lab_dir, result)
    return None if best is None else (best[1], best[2])


def complete_run(run_dir: Path, installed: dict[str, str], *, out: Path | None = None) -> list[LabEntry]:
    """Give a run folder every installed lab, so its report is a complete submission.

    ``installed`` maps each installed lab's name to its title. A lab that neither ran
    nor is listed in this run is carried over by one rule: its most recent result in the
    run folders of ``out`` (default: the run folder's parent), whatever settings it ran
    with (:func:`most_recent_result`); its provenance (profile, seed, settings changed,
    code hash, date, run folder) comes with it, and the report and ``check`` say when the
    labs of a run differ in profile or seed. Its files are copied (reflinks where the file system can:
    never hard links, which an edit in one place would change everywhere), and its result records its ``origin`` (the run it ran in, and when). A lab found nowhere
    is listed with status "not run". run.json is updated atomically; returns the entries
    added.
    """
    run_dir = Path(run_dir)
    out = Path(out) if out is not None else run_dir.parent
    info = RunInfo.load(run_dir / "run.json")
    listed = {entry.lab for entry in info.labs} | set(info.selected)
    added = []
    for name, title in installed.items():
        if name in listed:
            continue
        check_lab_name(name, "installed lab")
        found = most_recent_result(out, name, skip=run_dir)
        if found is None:
            entry = LabEntry(lab=name, status="not run", title=title, origin={"kind": "not run"})
        else:
            src_dir, result = found
            ran_in = result.run or src_dir.parent.name
            origin = dict(
                result.origin or {"kind": "earlier run", "run": ran_in, "finished": result.finished}
            )
            lab_dir = run_dir / name
            if lab_dir.exists():
                shutil.rmtree(lab_dir)
            copy_tree(src_dir, lab_dir, skip=frozenset({"result.json"}))
            result.origin = origin
            result.save(lab_dir / "result.json")
            entry = LabEntry(
                lab=name,
                status=result.status,
                duration_s=result.duration_s,
                cached=result.cached,
                title=result.title,
                origin=origin,
            )
        info.labs.append(entry)
        added.append(entry)
    if added:
        info.save(run_dir / "run.json")
    return added


# --------------------------------------------------------------------------- seed views


def seed_view(run_dir: Path, seed: int) -> Path:
    """``<run>/seeds/<seed>/``: the run as if it had run with ``seed`` alone (each swept
    lab's folder is that seed's, the others as they are; files are copies), so the
    report renders that seed's answers (``labrunner report RUN_DIR --seed N``). Raises
    UsageError when no lab of the run ran with ``seed``."""

    run_dir = Path(run_dir)
    info = RunInfo.load(run_dir / "run.json")
    swept = {
        e.lab: load_sweep(run_dir / e.lab) for e in info.labs if (run_dir / e.lab / SWEEP_FILE).is_file()
    }
    seeds = sorted({s for sw in swept.values() if sw for s in sw.seeds})
    if seed not in seeds:
        known = ", ".join(map(str, seeds)) or "none: the run has no seed sweep"
        raise UsageError(f"--seed {seed}: no lab of {run_dir} ran with seed {seed} (seeds: {known})")
    view = run_dir / SEEDS_DIR / str(seed)
    if view.exists():
        shutil.rmtree(view)
    view.mkdir(parents=True)
    for entry in info.labs:
        source = seed_dir(run_dir / entry.lab, seed) if entry.lab in swept else run_dir / entry.lab
        if entry.lab in swept and not source.is_dir():
            entry.status, entry.origin = "not run", {"kind": "not run"}
        elif source.is_dir():
            copy_tree(source, view / entry.lab, skip=frozenset({SEEDS_DIR, SWEEP_FILE}))
            if entry.lab in swept:
                entry.status = LabResult.load(source / "result.json").status
    info.settings = {**info.settings, "seed": seed}
    info.status = "finished" if info.status == "submitted" else info.status
    info.save(view / "run.json")
    if (run_dir / "config.yaml").is_file():
        shutil.copyfile(run_dir / "config.yaml", view / "config.yaml")
    return view
