"""Names of labs and of the entries of a run folder: the rules every layer checks a name against."""

from __future__ import annotations

import re

#: Entries of a run folder (and of the folder of runs) that a lab's folder would collide
#: with: the report's figures, a sweep's per-seed views, the ``latest`` link, and the
#: stems of run.json, config.yaml, jobs.json and report.* (lab names hold no dots).
RUN_FOLDER_NAMES = frozenset({"figures", "seeds", "latest", "report", "run", "config", "jobs"})


#: Names a lab cannot take: they mean something else on the command line or in a config,
#: or in a run folder.
RESERVED_NAMES = frozenset({"all", "labs", "seed", "device", "profile"}) | RUN_FOLDER_NAMES


NAME_PATTERN = re.compile(r"^[a-z][a-z0-9_]{0,63}$")


def reserved_why(name: str) -> str:
    """Why ``name`` (one of :data:`RESERVED_NAMES`) cannot be a lab's name."""
    if name in RUN_FOLDER_NAMES:
        return "it is reserved: a run folder has an entry of that name, which the lab's folder would collide with"
    return "it is reserved: it means something else on the command line or in a config"
