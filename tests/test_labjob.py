"""The lab job record: what the runner sends to wherever a lab runs (this process, a worker,
a SLURM job), as JSON, checked field by field when it is read back."""

from __future__ import annotations

import json

import pytest

from labrunner.base.errors import LabrunnerError, UsageError
from labrunner.execution.labjob import LabJob, LabJobError
from labrunner.settings.labconfig import config_as_dict, config_from_values, resolve_lab_config
from labrunner.settings.plugins import load_plugins


def a_job(tmp_path, **changes) -> LabJob:
    values = dict(
        lab="attention",
        plugin="core_labs",
        config={"trials": 3, "sizes": [1, 2]},
        out_dir=str(tmp_path / "run" / "attention"),
        cache_dir=str(tmp_path / "cache"),
        state_dir=str(tmp_path / "state"),
        cache_key="0123456789abcdef",
        profile="smoke",
        seed=7,
        device="cpu",
        deterministic=True,
        threads=2,
        plugins_dirs=(str(tmp_path / "plugins"),),
        changed={"trials": 3},
        run="2026-01-01_000000",
    )
    values.update(changes)
    return LabJob(**values)


def test_a_job_survives_the_trip_through_json(tmp_path):
    job = a_job(tmp_path)
    assert LabJob.from_json(json.loads(json.dumps(job.to_json()))) == job
    plain = a_job(tmp_path, threads=None, changed=None, plugins_dirs=())
    assert LabJob.from_json(json.loads(json.dumps(plain.to_json()))) == plain
    assert job.result_path == tmp_path / "run" / "attention" / "result.json"


def test_the_record_is_frozen(tmp_path):
    with pytest.raises(AttributeError):
        a_job(tmp_path).seed = 3  # type: ignore[misc]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d.pop("cache_dir"), "cache_dir: missing"),
        (lambda d: d.update(seed="7"), "seed: expected an integer, got a string"),
        (lambda d: d.update(seed=-1), "seed: expected a seed >= 0"),
        (lambda d: d.update(threads=0), "threads: expected a number of threads >= 1"),
        (lambda d: d.update(lab="../etc"), "lab: invalid lab name"),
        (lambda d: d.update(cache_key="../../x"), "cache_key: invalid cache key"),
        (lambda d: d.update(out_dir="relative/folder"), "out_dir: expected an absolute path"),
        (lambda d: d.update(deterministic="yes"), "deterministic: expected true or false"),
        (lambda d: d.update(config=[1]), "config: expected an object, got a list"),
        (lambda d: d.update(plugins_dirs=[""]), "plugins_dirs[0]: expected a folder"),
        (lambda d: d.update(surprise=1), "'surprise': not a field of a lab job"),
        (lambda d: d.update(kind="labrunner.other"), "kind/version: expected 'labrunner.lab-job' version 1"),
        (lambda d: d.pop("version"), "kind/version: expected 'labrunner.lab-job' version 1"),
    ],
)
def test_a_bad_record_is_one_clear_error(tmp_path, change, message):
    data = a_job(tmp_path).to_json()
    change(data)
    with pytest.raises(LabJobError) as caught:
        LabJob.from_json(data)
    text = str(caught.value)
    assert text.startswith("invalid lab job record: ") and message in text, text
    assert "\n" not in text
    assert isinstance(caught.value, LabrunnerError)


def test_a_record_that_is_not_an_object_is_refused():
    with pytest.raises(LabJobError, match="invalid lab job record: the file: expected an object"):
        LabJob.from_json(["attention"])


def test_the_worker_builds_the_config_from_the_values_it_is_sent():
    """No profile is read: the values are the config (a list comes back as the tuple the
    field declares); a missing or unknown key is refused, naming it."""
    lab = load_plugins([]).labs["attention"]
    config = resolve_lab_config(lab, "smoke", [])
    values = json.loads(json.dumps(config_as_dict(config)))
    assert config_from_values(lab, values) == config
    name = next(iter(values))
    with pytest.raises(UsageError, match=rf"the lab job: attention\.{name} is missing"):
        config_from_values(lab, {k: v for k, v in values.items() if k != name})
    with pytest.raises(UsageError, match="the lab job: unknown key 'attention.nope'"):
        config_from_values(lab, {**values, "nope": 1})
