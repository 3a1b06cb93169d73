"""The record of one lab job: everything needed to run one lab once (its resolved config,
seed, device, folders and cache key), wherever it runs (this process, a worker process, a
SLURM job). The runner builds it once from the run's resolved settings; it travels as JSON
(:meth:`LabJob.to_json`) and is checked field by field when it is read back
(:meth:`LabJob.from_json`): a bad record is one :class:`LabJobError` naming the field."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..base.errors import LabrunnerError
from ..records.cache import check_cache_key
from ..records.jsonfiles import RunFileError, check_lab_name, field_of, json_object, short

#: The kind of record :meth:`LabJob.to_json` writes, and its version.
KIND = "labrunner.lab-job"
VERSION = 1


class LabJobError(LabrunnerError, ValueError):
    """A lab job record that is not what labrunner writes (one line naming the field)."""


@dataclass(frozen=True)
class LabJob:
    """One lab to run once, with the settings it runs with."""

    #: The lab's name, and the plugin that registers it (a worker loads only that plugin).
    lab: str
    plugin: str
    #: The lab's resolved config (JSON values): the worker builds the lab's Config from it
    #: as it is, without resolving profiles or config files again.
    config: Mapping[str, Any]
    #: The lab's folder in the run folder; ``ctx.cache_dir``; ``ctx.state_dir`` (absolute paths).
    out_dir: str
    cache_dir: str
    state_dir: str
    cache_key: str
    profile: str = "quick"
    seed: int = 0
    #: A resolved device name (``cpu``, ``cuda:0``).
    device: str = "cpu"
    deterministic: bool = False
    #: torch CPU threads, or None for torch's choice.
    threads: int | None = None
    #: ``--plugins-dir`` folders, to find a lab that lives in one.
    plugins_dirs: tuple[str, ...] = ()
    #: The settings whose value differs from the profile's (None: unknown); provenance.
    changed: Mapping[str, Any] | None = None
    #: The name of the run folder (the result's provenance).
    run: str = ""

    @property
    def result_path(self) -> Path:
        return Path(self.out_dir) / "result.json"

    def to_json(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["plugins_dirs"] = list(self.plugins_dirs)
        data["config"] = dict(self.config)
        data["changed"] = None if self.changed is None else dict(self.changed)
        return {"kind": KIND, "version": VERSION, **data}

    @classmethod
    def from_json(cls, data: Any) -> LabJob:
        """Read a record :meth:`to_json` wrote; raises :class:`LabJobError` (one line)."""
        try:
            return cls._read(json_object(data, ""))
        except RunFileError as exc:
            raise LabJobError(f"invalid lab job record: {exc}") from None

    @classmethod
    def _read(cls, d: dict[str, Any]) -> LabJob:
        if d.get("kind") != KIND or d.get("version") != VERSION:
            raise RunFileError(
                f"kind/version: expected {KIND!r} version {VERSION}, got {short(d.get('kind'))} "
                f"version {short(d.get('version'))}"
            )
        known = {f.name for f in dataclasses.fields(cls)} | {"kind", "version"}
        unknown = sorted(set(d) - known)
        if unknown:
            raise RunFileError(f"{short(unknown[0])}: not a field of a lab job")
        paths = {
            name: _absolute(field_of(d, name, "", str), name)
            for name in ("out_dir", "cache_dir", "state_dir")
        }
        seed = field_of(d, "seed", "", int)
        if seed < 0:
            raise RunFileError(f"seed: expected a seed >= 0, got {short(seed)}")
        threads = field_of(d, "threads", "", int, None, optional=True)
        if threads is not None and threads < 1:
            raise RunFileError(f"threads: expected a number of threads >= 1, got {short(threads)}")
        dirs = field_of(d, "plugins_dirs", "", list, [])
        for i, folder in enumerate(dirs):
            if not isinstance(folder, str) or not folder:
                raise RunFileError(f"plugins_dirs[{i}]: expected a folder, got {short(folder)}")
        return cls(
            lab=check_lab_name(d.get("lab"), "lab"),
            plugin=field_of(d, "plugin", "", str),
            config=field_of(d, "config", "", dict),
            **paths,
            cache_key=check_cache_key(d.get("cache_key"), "cache_key"),
            profile=field_of(d, "profile", "", str),
            seed=seed,
            device=field_of(d, "device", "", str),
            deterministic=field_of(d, "deterministic", "", bool),
            threads=threads,
            plugins_dirs=tuple(dirs),
            changed=field_of(d, "changed", "", dict, None, optional=True),
            run=field_of(d, "run", "", str, ""),
        )


def _absolute(path: str, name: str) -> str:
    if not Path(path).is_absolute():
        raise RunFileError(f"{name}: expected an absolute path, got {short(path)}")
    return path
