"""What ``labrunner grade`` was asked (:class:`GradeOptions`), and the key that decides
whether a zip graded before is graded again."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .isolation import Limits

#: What a rerun profile may be besides a lab's profile names: each lab's submitted profile.
SUBMITTED = "submitted"


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
    from .assign import locate_package

    root = locate_package(spec)
    files = {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and "__pycache__" not in p.parts
    }
    return stable_hash(files)
