"""Running one lab job in this process: :func:`run_lab_job` is the one function that runs a
lab job (a :class:`~labrunner.execution.labjob.LabJob`) wherever it runs: in the process of
the run (``--isolation none``), in a worker process (:mod:`.job`), in a SLURM job
(:mod:`.slurm`) or on a plugin's executor. :func:`run_lab` runs the lab: its context,
seeding and threads, what it raises (``SystemExit`` included) saved as its error, the
operations without a deterministic implementation named in its notes, and its
``result.json``.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import shutil
import time
import traceback
import warnings
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from ..authoring.context import LabContext
from ..authoring.lab import Lab
from ..authoring.labfiles import cache_key, source_hash
from ..base.devices import seed_everything, set_threads
from ..base.progress import Reporter
from ..records.cache import cache_root
from ..records.results import LabError, LabResult
from ..settings.labconfig import config_as_dict, config_from_values
from .labjob import LabJob

#: ``run_lab(changed=...)`` not given: the settings changed from the profile are worked out here.
_FROM_PROFILE: Any = object()


def now_iso() -> str:
    return dt.datetime.now(dt.timezone.utc).astimezone().isoformat(timespec="seconds")


def status_of(result: LabResult) -> str:
    """``passed`` when every check passed and no exercise was left "not implemented yet"."""
    done = all(c.passed for c in result.checks) and not any(ex.not_implemented for ex in result.exercises)
    return "passed" if done else "failed"


def changed_settings(lab: Lab, profile: str, config: dict[str, Any]) -> dict[str, Any] | None:
    """The settings of ``config`` (a lab's resolved config as a dict) whose value differs
    from the one ``profile`` gives (the lab's defaults, then the profile's values): what a
    config file or ``--set`` changed. None when the profile cannot be resolved."""
    from ..base.errors import UsageError
    from ..settings.labconfig import resolve_lab_config

    try:
        base = config_as_dict(resolve_lab_config(lab, profile, []))
    except UsageError:
        return None
    return {name: value for name, value in config.items() if name not in base or base[name] != value}


def run_lab_job(
    job: LabJob | Mapping[str, Any], reporter: Reporter | None = None, lab: Lab | None = None
) -> dict[str, Any]:
    """Run the lab job ``job`` (a :class:`~labrunner.execution.labjob.LabJob`, or its JSON,
    checked as it is read) into its ``out_dir``; ``lab`` is the lab when this process has it
    loaded already, else the job's plugin is loaded to find it. The lab's Config is built
    from the job's resolved values as they are (no profile or config file is read again).

    Returns ``{"status": ..., "result": <path of result.json>, "facts": {...}}``; the lab's
    errors are in its result.json. Raises only when the record is bad or the lab cannot be
    found or configured."""
    from ..base.environment import torch_facts

    if not isinstance(job, LabJob):
        job = LabJob.from_json(job)
    lab = lab or _find_lab(job)
    config = config_from_values(lab, job.config)
    try:
        result = run_lab(
            lab,
            config,
            out_dir=Path(job.out_dir),
            device=job.device,
            seed=job.seed,
            profile=job.profile,
            deterministic=job.deterministic,
            reporter=reporter,
            key=job.cache_key,
            cache_dir=Path(job.cache_dir),
            state_dir=Path(job.state_dir),
            threads=job.threads,
            run=job.run,
            changed=job.changed,
        )
        status = result.status
    except KeyboardInterrupt:  # saved as "interrupted" by run_lab
        status = "interrupted"
    return {"status": status, "result": str(job.result_path), "facts": torch_facts(job.device)}


def _find_lab(job: LabJob) -> Lab:
    """The job's lab, from its plugin alone (a worker or a cluster job loads nothing else)."""
    from ..settings.plugins import load_plugins

    plugins = load_plugins([Path(p) for p in job.plugins_dirs], only={job.plugin})
    lab = plugins.labs.get(job.lab)
    if lab is None:
        problems = "; ".join(str(p) for p in plugins.problems) or "it does not register it"
        raise LookupError(f"lab {job.lab!r} not found in plugin {job.plugin!r}: {problems}")
    return lab


def run_lab(
    lab: Lab,
    config: Any,
    *,
    out_dir: Path,
    device: str = "cpu",
    seed: int = 0,
    profile: str = "quick",
    deterministic: bool = False,
    reporter: Reporter | None = None,
    key: str = "",
    cache_dir: Path | None = None,
    state_dir: Path | None = None,
    threads: int | None = None,
    run: str = "",
    changed: Mapping[str, Any] | None = _FROM_PROFILE,
) -> LabResult:
    """Run one lab into ``out_dir`` and save ``result.json`` there, with its provenance
    (profile, seed, the settings changed from the profile, the code hash, and ``run``, the
    name of the run folder it runs in; ``changed``: the settings changed from the profile,
    when the caller knows them).

    An exception inside the lab (``SystemExit`` included) becomes status ``error`` with its
    traceback; KeyboardInterrupt is saved as ``interrupted`` and raised again.
    """
    import torch

    reporter = reporter or Reporter()
    out_dir = Path(out_dir)
    if out_dir.exists():
        shutil.rmtree(out_dir)
    out_dir.mkdir(parents=True)
    cfg_dict = config_as_dict(config)
    code_hash = source_hash(lab)
    key = key or cache_key(lab, cfg_dict, seed, device, deterministic, code_hash)
    if changed is _FROM_PROFILE:
        changed = changed_settings(lab, profile, cfg_dict)
    result = started_result(lab, cfg_dict, profile, seed, device, key, code_hash, run, changed)
    root = cache_root()
    ctx = LabContext(
        result,
        config,
        device=torch.device(device),
        seed=seed,
        profile=profile,
        out_dir=out_dir,
        cache_dir=cache_dir or root / "labs" / lab.name,
        state_dir=state_dir or root / "state" / lab.name / key,
        reporter=reporter,
        deterministic=deterministic,
    )
    set_threads(threads)
    seed_everything(seed, deterministic)
    start = time.perf_counter()
    interrupted = _record_run(lab, ctx, result, reporter, deterministic=deterministic, device=device)
    result.duration_s = round(time.perf_counter() - start, 3)
    result.finished = now_iso()
    _save_result(result, out_dir / "result.json")
    if interrupted:
        raise KeyboardInterrupt
    return result


def started_result(
    lab: Lab,
    cfg_dict: dict[str, Any],
    profile: str,
    seed: int,
    device: str,
    key: str,
    code_hash: str,
    run: str,
    changed: Mapping[str, Any] | None,
) -> LabResult:
    """The result of a lab about to run, with its provenance; the lab fills in the rest."""
    return LabResult.new(
        lab.name,
        lab.title,
        lab.version,
        profile=profile,
        seed=seed,
        device=device,
        cache_key=key,
        config=cfg_dict,
        changed=None if changed is None else dict(changed),
        code_hash=code_hash,
        run=run,
        started=now_iso(),
        part=lab.part,
        order=lab.order,
    )


def _record_run(
    lab: Lab, ctx: LabContext, result: LabResult, reporter: Reporter, *, deterministic: bool, device: str
) -> bool:
    """Run ``lab.run(ctx)`` and set the result's status (an exception is the lab's error);
    returns whether Ctrl-C stopped it."""
    interrupted = False
    fallbacks: list[str] = []
    try:
        reporter.lab_running(lab.name)
        with nondeterministic_operations(fallbacks, enabled=deterministic):
            lab.run(ctx)
        result.status = status_of(result)
    except KeyboardInterrupt:
        interrupted = True
        result.stop(LabError.interrupted())
    except (Exception, SystemExit) as exc:  # a lab's sys.exit() ends the lab, not the run
        result.stop(LabError.from_exception(exc, traceback.format_exc()))
    if fallbacks:
        names = ", ".join(f"`{name}`" for name in fallbacks)
        result.notes.append(
            f"With `--deterministic`, PyTorch has no deterministic implementation of {names} on "
            f"{device}: {'it' if len(fallbacks) == 1 else 'they'} ran as usual, so repeated runs can "
            "differ in the last digits of what depends on them."
        )
    return interrupted


#: How PyTorch words the warning of an operation without a deterministic implementation
#: (``torch.use_deterministic_algorithms(True, warn_only=True)``).
_NONDETERMINISTIC = " does not have a deterministic implementation"


@contextlib.contextmanager
def nondeterministic_operations(found: list[str], *, enabled: bool = True) -> Iterator[list[str]]:
    """Collect into ``found`` the operations PyTorch warns have no deterministic
    implementation (on CUDA: scatter_add, index_add, some pooling backward passes, ...);
    every other warning is shown as usual."""
    if not enabled:
        yield found
        return
    original = warnings.showwarning

    def show(message, category, filename, lineno, file=None, line=None):
        text = str(message)
        if _NONDETERMINISTIC in text:
            name = text.split(_NONDETERMINISTIC, 1)[0].strip()
            if name not in found:
                found.append(name)
            return
        original(message, category, filename, lineno, file, line)

    warnings.showwarning = show
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("always", message=f".*{_NONDETERMINISTIC}")
            yield found
    finally:
        warnings.showwarning = original


def _save_result(result: LabResult, path: Path) -> None:
    """Save ``result``; if what the lab recorded cannot be saved, save the error instead."""
    try:
        result.save(path)
    except Exception as exc:
        result.exercises = []
        result.metrics = {}
        result.notes = []
        error = LabError.from_exception(exc, traceback.format_exc())
        result.stop(error.with_message(f"the lab's records cannot be saved: {error.message}"))
        result.save(path)
