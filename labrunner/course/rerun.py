"""Re-executing one lab of a submission, inside the grading sandbox.

``python -m labrunner.course.rerun`` reads ``spec.json`` from the code folder (``$LABRUNNER_CODE``,
read-only), loads the lab from the plugin package or module there (the student's code, with
the instructor's hidden checks transplanted in when the grader has them), runs it on the CPU
into the scratch folder, and writes its ``result.json`` to the result pipe
(``$LABRUNNER_RESULT_FD``). A lab that cannot be loaded writes ``{"rerun_error": ...}``
instead and exits 3; the lab's own failures are in its result, as in any run.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

from .sandbox import RESULT_FD_ENV

SPEC = "spec.json"


def _emit(data: bytes) -> None:
    fd = int(os.environ[RESULT_FD_ENV])
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]
    os.close(fd)


def rerun(spec: dict[str, Any], code: Path, scratch: Path) -> bytes:
    """Run the lab ``spec`` names from ``code``; returns its result.json's bytes."""
    from ..execution.labrun import run_lab
    from ..settings.labconfig import resolve_lab_config
    from ..settings.plugins import Plugins

    plugins = Plugins(only={spec["plugin"]})
    plugins.load_dir(code)
    lab = plugins.labs.get(spec["lab"])
    if lab is None:
        problems = "; ".join(str(p) for p in plugins.problems) or "the code does not register it"
        raise LookupError(f"lab {spec['lab']!r} cannot be loaded from the submission: {problems}")
    layers = [("the submission", spec["config"])] if spec.get("config") else []
    config = resolve_lab_config(lab, spec["profile"], layers)
    out_dir = scratch / "out" / spec["lab"]
    run_lab(
        lab,
        config,
        out_dir=out_dir,
        device="cpu",
        seed=int(spec["seed"]),
        profile=spec["profile"],
        deterministic=bool(spec.get("deterministic", False)),
        cache_dir=scratch / "cache",
        state_dir=scratch / "state",
        threads=spec.get("threads") or 1,
    )
    return (out_dir / "result.json").read_bytes()


def main() -> int:
    code = Path(os.environ.get("LABRUNNER_CODE", "."))
    scratch = Path(os.environ.get("LABRUNNER_SCRATCH", "."))
    try:
        spec = json.loads((code / SPEC).read_text(encoding="utf-8"))
        data = rerun(spec, code, scratch)
    except Exception as exc:
        from ..base.errors import describe_exception

        _emit(json.dumps({"rerun_error": describe_exception(exc)}).encode())
        return 3
    _emit(data)
    return 0


if __name__ == "__main__":
    sys.exit(main())
