"""`labrunner new`: a generated plugin installs, is listed, runs, and its own test passes."""

from __future__ import annotations

import json

import pytest
from conftest import run_cli, run_subprocess

from labrunner.base.errors import UsageError
from labrunner.commands.scaffold import create_lab_package


def test_invalid_names_are_refused(tmp_path, cli):
    with pytest.raises(UsageError, match="invalid lab name 'My-Lab'"):
        create_lab_package("My-Lab", tmp_path)
    with pytest.raises(UsageError, match="reserved"):
        create_lab_package("all", tmp_path)
    with pytest.raises(UsageError, match="already installed"):
        create_lab_package("counter", tmp_path, {"counter"})
    (tmp_path / "taken").mkdir()
    with pytest.raises(UsageError, match="already exists"):
        create_lab_package("taken", tmp_path)
    status, out, err = cli("new", "counter", "--dir", str(tmp_path))
    assert status == 2
    assert "a lab named 'counter' is already installed" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["taken", "work"]


@pytest.mark.slow
def test_generated_plugin_end_to_end(tmp_path):
    env = {"LABRUNNER_CACHE_DIR": str(tmp_path / "cache")}
    proc = run_cli(
        "new", "dice_lab", "--dir", str(tmp_path), env=env, unset=["LABRUNNER_PLUGINS"], timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    package = tmp_path / "dice_lab"
    assert (package / "pyproject.toml").is_file()
    assert (package / "labrunner_dice_lab" / "__init__.py").is_file()
    assert (package / "tests" / "test_dice_lab.py").is_file()

    # install it, without dependencies, into a private folder (not this environment)
    site = tmp_path / "site"
    proc = run_subprocess(
        "-m",
        "pip",
        "install",
        "--quiet",
        "--no-deps",
        "--no-build-isolation",
        "--target",
        str(site),
        str(package),
    )
    assert proc.returncode == 0, proc.stderr
    env["PYTHONPATH"] = str(site)
    env["LABRUNNER_PLUGINS"] = "dice_lab"

    listed = run_cli("list", "--json", env=env, timeout=120)
    assert [lab["name"] for lab in json.loads(listed.stdout)] == ["dice_lab"], listed.stderr
    plugins = run_cli("plugins", "--json", env=env, timeout=120)
    (info,) = json.loads(plugins.stdout)["plugins"]
    assert info["source"] == "entry point (labrunner-dice-lab)" and info["version"] == "0.1.0"

    run = run_cli("run", "dice_lab", "--profile", "smoke", env=env, cwd=tmp_path)
    assert run.returncode == 0, run.stderr + run.stdout
    result = json.loads((tmp_path / "reports" / "latest" / "dice_lab" / "result.json").read_text())
    assert result["status"] == "passed"
    ex = result["exercises"][0]
    assert {r["kind"] for r in ex["records"]} == {"figure", "table"}
    assert ex["metrics"] and ex["checks"] and "$$" in ex["answer"]
    assert (ex["points"], ex["bonus"]) == (10, False)  # the skeleton declares the assignment's points

    tests = run_subprocess(
        "-m", "pytest", "-q", "-p", "no:cacheprovider", str(package / "tests"), env=env, cwd=package
    )
    assert tests.returncode == 0, tests.stdout + tests.stderr
    assert "1 passed" in tests.stdout
