"""One base class for labrunner's errors (labrunner.LabrunnerError), one line and exit status 2
on the command line, and errors that say what went wrong."""

from __future__ import annotations

import importlib
import inspect
import json
import pkgutil
import types

import labrunner
from labrunner.base.errors import LabrunnerError, PluginError, UsageError


def labrunner_error_classes() -> list[type]:
    """Every error class (an Exception; a stop signal is a KeyboardInterrupt) defined in
    labrunner's own modules, not the built-in labs."""
    found = []
    for info in pkgutil.walk_packages(labrunner.__path__, "labrunner."):
        if info.name.startswith("labrunner.labs") or info.name.endswith("__main__"):
            continue
        module = importlib.import_module(info.name)
        for _name, cls in inspect.getmembers(module, inspect.isclass):
            if issubclass(cls, Exception) and cls.__module__ == module.__name__:
                found.append(cls)
    return found


def test_every_labrunner_error_derives_from_labrunner_error():
    classes = labrunner_error_classes()
    names = {f"{c.__module__}.{c.__name__}" for c in classes}
    assert {
        "labrunner.base.errors.UsageError",
        "labrunner.records.jsonfiles.RunFileError",
        "labrunner.data.DataError",
        "labrunner.course.bundle.BundleError",
    } <= names
    offenders = [f"{c.__module__}.{c.__name__}" for c in classes if not issubclass(c, LabrunnerError)]
    assert offenders == []


def test_labrunner_error_is_exported_and_usage_errors_are_labrunner_errors():
    assert "LabrunnerError" in labrunner.__all__ and labrunner.LabrunnerError is LabrunnerError
    assert issubclass(labrunner.UsageError, LabrunnerError) and issubclass(PluginError, LabrunnerError)
    assert not issubclass(LabrunnerError, UsageError)


def test_a_labrunner_error_on_the_command_line_is_one_line_and_status_2(cli, workdir):
    status, out, err = cli("report", str(workdir / "nowhere"))
    assert status == 2 and out == ""
    assert err.startswith("labrunner: error: ") and err.count("\n") == 1, err


def _job_info():
    return types.SimpleNamespace(settings={"profile": "smoke", "device": "cpu"})


def test_a_job_whose_result_cannot_be_read_says_why(tmp_path):
    from labrunner.execution.detached import _ended_job_result
    from labrunner.records.runfolder import JobRecord

    out_dir = tmp_path / "counter"
    out_dir.mkdir()
    (out_dir / "result.json").write_text(json.dumps({"lab": "counter"}))
    job = JobRecord("counter", 0, "counter", "0" * 16, job_id="17")
    result = _ended_job_result(job, "COMPLETED", out_dir, _job_info())
    assert result.status == "error"
    message = result.error.message
    assert message.startswith(
        "SLURM job 17 ended COMPLETED with a result.json that cannot be read (RunFileError: "
    )
    assert "\n" not in message


def test_a_job_that_left_no_result_says_so(tmp_path):
    from labrunner.execution.detached import _ended_job_result
    from labrunner.records.runfolder import JobRecord

    job = JobRecord("counter", 1, "counter", "0" * 16, job_id="18")
    result = _ended_job_result(job, "FAILED", tmp_path / "counter", _job_info())
    assert result.error.message == "SLURM job 18 ended FAILED without a result"
    assert (tmp_path / "counter" / "result.json").is_file()
