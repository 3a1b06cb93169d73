"""What the steps of one run share (:class:`RunState`): its settings, plugins, reporter,
result cache and run folder; the lab job of each lab and seed (:meth:`RunState.job`); and
the book of the labs that ended (:class:`RunBook`), which keeps run.json up to date."""

from __future__ import annotations

import dataclasses
import shutil
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..authoring.lab import Lab
from ..authoring.labfiles import cache_key, source_hash
from ..base.progress import Reporter
from ..records.cache import ResultCache
from ..records.results import LabResult
from ..records.runinfo import LabEntry, RunInfo
from ..records.sweep import worst_status
from ..settings.config import RunSettings
from ..settings.labconfig import config_as_dict
from ..settings.plugins import Plugins
from .labjob import LabJob
from .labrun import changed_settings


class RunBook:
    """The labs of one run that ended, and their listing in run.json (``run_info``, rewritten
    after each lab): a lab is listed once every seed of it has ended, with the worst of its
    seeds' statuses; a sweep's first seed is copied into the lab's folder and its summary
    written (:mod:`labrunner.records.sweep`). Called from several threads."""

    def __init__(
        self,
        run_dir: Path,
        run_info: RunInfo,
        labs: list[str],
        seeds: list[int],
        sweep: bool,
        on_listed: Callable[[str, LabResult], None] = lambda name, result: None,
    ) -> None:
        self.run_dir = run_dir
        self.run_info = run_info
        self.labs = labs
        self.seeds = seeds
        self.sweep = sweep
        self.on_listed = on_listed
        self.lock = threading.RLock()
        self.done: dict[str, dict[int, LabResult]] = {name: {} for name in labs}
        self.listed = {entry.lab for entry in run_info.labs}

    def save(self) -> None:
        with self.lock:
            self.run_info.save(self.run_dir / "run.json")

    def out_dir(self, lab: str, seed: int) -> Path:
        """The folder of ``lab``'s job with ``seed``: the lab's folder, or in a sweep its seed's."""
        from ..records.sweep import seed_dir

        return seed_dir(self.run_dir / lab, seed) if self.sweep else self.run_dir / lab

    def record(self, lab: str, seed: int, result: LabResult, facts: dict[str, Any]) -> None:
        """``lab``'s job with ``seed`` ended with ``result`` (``facts``: the worker's torch facts)."""
        with self.lock:
            self.complete_environment(facts)
            self.done.setdefault(lab, {})[seed] = result
            if len(self.done[lab]) == len(self.seeds):
                self.list_lab(lab)

    def list_lab(self, lab: str) -> None:
        """List ``lab`` in run.json with the seeds that ended (all of them, unless Ctrl-C);
        its status is the worst of its seeds': a sweep with a seed that failed did not pass."""
        with self.lock:
            if lab in self.listed or not self.done.get(lab):
                return
            self.listed.add(lab)
            results = [self.done[lab][s] for s in self.seeds if s in self.done[lab]]
            if self.sweep:
                _gather_sweep(self.run_dir / lab, lab, results)
            self.run_info.labs.append(
                LabEntry(
                    lab=lab,
                    status=worst_status([r.status for r in results]),
                    duration_s=round(sum(r.duration_s for r in results), 3),
                    cached=all(r.cached for r in results),
                )
            )
            self.save()
            self.on_listed(lab, results[0])

    def list_all(self) -> None:
        """List every lab that has an ended job (labs cut short by Ctrl-C included)."""
        for lab in self.labs:
            self.list_lab(lab)
        with self.lock:  # listed as they ended; kept in the labs' order
            order = {name: index for index, name in enumerate(self.labs)}
            self.run_info.labs.sort(key=lambda entry: order.get(entry.lab, len(order)))

    def results(self) -> list[LabResult]:
        """Every job's result, in the order of the labs, then of the seeds."""
        return [self.done[lab][s] for lab in self.labs for s in self.seeds if s in self.done.get(lab, {})]

    def complete_environment(self, facts: dict[str, Any]) -> None:
        """Fill run.json's torch facts from the first worker that reports them."""
        env = self.run_info.environment
        for name in ("torch_threads", "gpu"):
            if env.get(name) is None and facts.get(name) is not None:
                env[name] = facts[name]


def _gather_sweep(lab_dir: Path, lab: str, results: list[LabResult]) -> None:
    """``<lab>/``: copies of the first seed's files beside ``seeds/``, and sweep.json."""
    from ..records.files import copy_tree
    from ..records.sweep import SEEDS_DIR, SWEEP_FILE, seed_dir, summarize_sweep

    for child in lab_dir.iterdir() if lab_dir.is_dir() else []:
        if child.name != SEEDS_DIR:
            shutil.rmtree(child) if child.is_dir() and not child.is_symlink() else child.unlink()
    copy_tree(seed_dir(lab_dir, results[0].seed), lab_dir)
    summarize_sweep(lab, results).save(lab_dir / SWEEP_FILE)


@dataclasses.dataclass
class RunState:
    """What the steps of one run share: the run's settings, the plugins and their hooks,
    where progress goes, the result cache, the run folder and its book (run.json)."""

    settings: RunSettings
    plugins: Plugins
    reporter: Reporter
    cache: ResultCache
    run_dir: Path
    book: RunBook

    def job(self, lab: Lab, seed: int, device: str, threads: int | None) -> LabJob:
        """The lab job of ``lab`` with ``seed`` on ``device`` in this run."""
        out_dir = self.book.out_dir(lab.name, seed)
        return lab_job(
            lab, self.settings, self.plugins, self.cache, out_dir, seed=seed, device=device, threads=threads,
            run=self.run_dir.name,
        )  # fmt: skip

    def will_run(self, lab: Lab, seed: int) -> bool:
        """Whether ``lab`` with ``seed`` will need to run (no cache entry for it, or --force)."""
        if self.settings.force or not self.cache.usable:
            return True
        _config, key = keyed_config(lab, self.settings, seed, self.settings.device)
        return not (self.cache.entry(lab.name, key) / "result.json").is_file()


def keyed_config(lab: Lab, settings: RunSettings, seed: int, device: str) -> tuple[dict[str, Any], str]:
    """``lab``'s resolved config under ``settings`` (as a dict) and its cache key with
    ``seed`` on ``device`` (config, seed, device, determinism and the lab's source hash)."""
    config = config_as_dict(settings.configs[lab.name])
    return config, cache_key(lab, config, seed, device, settings.deterministic, source_hash(lab))


def lab_job(
    lab: Lab,
    settings: RunSettings,
    plugins: Plugins,
    cache: ResultCache,
    out_dir: Path,
    *,
    seed: int | None = None,
    device: str | None = None,
    threads: int | None = None,
    run: str = "",
) -> LabJob:
    """The lab job of ``lab`` under ``settings`` (with ``seed``, ``device`` and ``threads``
    when given, else the run's), into ``out_dir``: the lab's resolved config, its folders and
    its cache key (config, seed, device, determinism and source hash); ``run`` is the name of
    the run folder."""
    seed = settings.seed if seed is None else seed
    device = device or settings.device
    config, key = keyed_config(lab, settings, seed, device)
    return LabJob(
        lab=lab.name,
        plugin=plugins.lab_plugin.get(lab.name, ""),
        config=config,
        out_dir=str(Path(out_dir).resolve()),
        cache_dir=str(cache.lab_cache_dir(lab.name).resolve()),
        state_dir=str(cache.state_dir(lab.name, key).resolve()),
        cache_key=key,
        profile=settings.profile,
        seed=seed,
        device=device,
        deterministic=settings.deterministic,
        threads=threads if threads is not None else settings.threads,
        plugins_dirs=tuple(settings.plugins_dirs),
        changed=changed_settings(lab, settings.profile, config),
        run=run,
    )
