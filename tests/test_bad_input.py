"""Bad input, through the real command line: one line naming the problem and where,
exit status 2, and nothing written (no run folder, no change to ``latest``, no cache).

Every case is refused before any lab runs, so these tests stay fast."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml
from conftest import TEST_PLUGINS, run_cli, without_root_powers

from labrunner.settings.configfile import MAX_CONFIG_BYTES

CPUS = os.cpu_count() or 1


def snapshot(*roots: Path) -> dict[str, tuple]:
    """Every path under ``roots`` with what it is: a link and its target, a folder, a file's
    size and modification time."""
    seen: dict[str, tuple] = {}
    for root in roots:
        if not root.exists():
            continue
        for path in [root, *sorted(root.rglob("*"))]:
            if path.is_symlink():
                seen[str(path)] = ("link", os.readlink(path))
            elif path.is_dir():
                seen[str(path)] = ("dir",)
            else:
                stat = path.stat()
                seen[str(path)] = ("file", stat.st_size, stat.st_mtime_ns)
    return seen


@pytest.fixture
def refused(cli, workdir, tmp_path):
    """Run the CLI with arguments that must be refused; check the contract; return the line.

    A previous run is in place (``reports/latest`` points at it), so a run folder or a moved
    ``latest`` would show."""
    previous = workdir / "reports" / "20250101-000000"
    previous.mkdir(parents=True)
    (previous / "run.json").write_text('{"status": "finished"}\n')
    (workdir / "reports" / "latest").symlink_to(previous.name, target_is_directory=True)

    def run(*args: str) -> str:
        before = snapshot(workdir, tmp_path / "cache")
        status, out, err = cli(*args)
        assert status == 2, (out, err)
        lines = err.strip().splitlines()
        assert len(lines) == 1, err
        assert lines[0].startswith("labrunner: error: "), err
        assert "Traceback" not in err
        assert len(lines[0]) < 300, "a message names the problem; it never repeats a whole value"
        assert snapshot(workdir, tmp_path / "cache") == before, "something was written"
        return lines[0]

    return run


def write(path: Path, data: str | bytes) -> Path:
    if isinstance(data, bytes):
        path.write_bytes(data)
    else:
        path.write_text(data)
    return path


# --------------------------------------------------------------------------- options


def test_seed_beyond_64_bits(refused):
    line = refused("run", "counter", "--seed", str(2**64))
    assert "--seed must be below 2**64" in line
    assert str(2**64) in line


def test_negative_seed(refused):
    assert "--seed must be >= 0, got -5" in refused("run", "counter", "--seed", "-5")


def test_seed_beyond_64_bits_in_config_file(refused, workdir):
    write(workdir / "labrunner.yaml", f"profile: smoke\nseed: {2**70}\n")
    assert "labrunner.yaml:2: seed must be below 2**64" in refused("run", "counter")


def test_threads_beyond_the_machine(refused):
    line = refused("run", "counter", "--threads", str(CPUS + 1))
    assert f"--threads is {CPUS + 1}, more than this machine's {CPUS} CPUs" in line


def test_threads_below_one(refused):
    assert "--threads must be >= 1, got 0" in refused("run", "counter", "--threads", "0")


def test_threads_beyond_the_machine_in_config_file(refused, workdir):
    write(workdir / "labrunner.yaml", f"threads: {CPUS + 7}\n")
    assert f"labrunner.yaml:1: threads is {CPUS + 7}, more than this machine's" in refused("run", "counter")


def test_out_is_a_file(refused, workdir):
    write(workdir / "notes.txt", "mine\n")
    assert "--out notes.txt: it is a file, not a folder" in refused("run", "counter", "--out", "notes.txt")


def test_out_below_a_file(refused, workdir):
    write(workdir / "notes.txt", "mine\n")
    line = refused("run", "counter", "--out", "notes.txt/runs")
    assert "--out notes.txt/runs: notes.txt is a file, not a folder" in line


def test_out_in_config_file_is_a_file(refused, workdir):
    write(workdir / "notes.txt", "mine\n")
    write(workdir / "labrunner.yaml", "seed: 1\nout: notes.txt\n")
    assert "labrunner.yaml:2: out notes.txt: it is a file" in refused("run", "counter")


def test_out_unwritable(workdir, tmp_path):
    prefix = without_root_powers()  # root writes anywhere, except without its capabilities
    locked = workdir / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        before = snapshot(workdir, tmp_path / "cache")
        args = ["run", "counter", "--plugins-dir", str(TEST_PLUGINS), "--out", "locked/runs"]
        proc = run_cli(*args, prefix=prefix, cwd=workdir, timeout=120)
        assert snapshot(workdir, tmp_path / "cache") == before
    finally:
        locked.chmod(0o755)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.splitlines() == ["labrunner: error: --out locked/runs: locked is not writable"]


def test_empty_profile(refused):
    line = refused("run", "counter", "--profile", "")
    assert "--profile is empty; expected a profile name such as smoke, quick or full" in line


def test_empty_device(refused):
    assert "--device is empty; expected auto, cpu, cuda, cuda:N or mps" in refused(
        "run", "counter", "--device", ""
    )


def test_empty_profile_in_config_file(refused, workdir):
    write(workdir / "labrunner.yaml", "seed: 1\nprofile: ''\n")
    assert "labrunner.yaml:2: profile is empty" in refused("run", "counter")


def test_set_for_a_lab_not_selected(refused):
    line = refused("run", "counter", "--set", "failing.threshold=0.1")
    assert "--set failing.threshold: lab 'failing' is not selected in this run (selected: counter)" in line


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["run", "counter", "--seed", "abc"],
            "labrunner run: error: argument --seed: invalid int value: 'abc'",
        ),
        (
            ["run", "counter", "--threads", "1.5"],
            "labrunner run: error: argument --threads: invalid int value",
        ),
        (["run", "counter", "--bogus"], "labrunner: error: unrecognized arguments: --bogus"),
        (["run"], "labrunner run: error: name the labs to run, or 'all' for every installed lab"),
    ],
)
def test_bad_arguments_are_one_line_too(workdir, capsys, args, message):
    from labrunner.cli import main

    before = snapshot(workdir)
    with pytest.raises(SystemExit) as info:
        main([*args, "--plugins-dir", str(TEST_PLUGINS)])
    err = capsys.readouterr().err
    assert info.value.code == 2
    assert err.splitlines() == [err.strip()], "argparse's usage block is not printed"
    assert err.startswith(message), err
    assert "--help" in err
    assert snapshot(workdir) == before


# --------------------------------------------------------------------------- config files


def test_config_file_not_utf8(refused, workdir):
    write(workdir / "labrunner.yaml", b"seed: 1\nlabs:\n  counter:\n    label: caf\xe9\n")
    assert "labrunner.yaml:4:15: not valid UTF-8 (byte 0xe9)" in refused("run", "counter")


def test_config_file_nested_thousands_deep(refused, workdir):
    write(workdir / "labrunner.yaml", "labs: {counter: {sizes: " + "[" * 5000 + "]" * 5000 + "}}\n")
    assert "labrunner.yaml:1:" in (line := refused("run", "counter"))
    assert "nested deeper than 64 levels" in line


def test_config_file_alias_bomb(refused, workdir):
    # "billion laughs": 9 levels of 9 aliases each, under 400 bytes for 9**9 strings
    rows = ["a: &a [" + ",".join(["lol"] * 9) + "]"]
    rows += [f"{b}: &{b} [{','.join([f'*{a}'] * 9)}]" for a, b in zip("abcdefgh", "bcdefghi", strict=True)]
    text = "\n".join(rows) + "\n"
    assert len(text.encode()) < 400
    write(workdir / "labrunner.yaml", text)
    line = refused("run", "counter")
    assert "labrunner.yaml:" in line
    assert "more than 100,000 values once aliases are expanded" in line
    assert "lol" not in line


def test_set_value_alias_bomb(refused):
    value, previous = "[&a0 [" + ", ".join(["1"] * 10) + "]", "a0"
    for i in range(1, 5):
        value += f", &a{i} [{', '.join([f'*{previous}'] * 10)}]"
        previous = f"a{i}"
    value += "]"
    line = refused("run", "counter", "--set", f"counter.sizes={value}")
    assert "--set 'counter.sizes=" in line
    assert "more than 100,000 values once aliases are expanded" in line


def test_config_file_too_large(refused, workdir):
    write(workdir / "labrunner.yaml", "seed: 1\n" + "#" * MAX_CONFIG_BYTES + "\n")
    line = refused("run", "counter")
    assert "config file labrunner.yaml is too large" in line
    assert f"the limit is {MAX_CONFIG_BYTES:,}" in line


def test_config_file_key_path_and_line(refused, workdir):
    write(workdir / "labrunner.yaml", "seed: 1\nlabs:\n  counter:\n    steps: 2\n    scale: lots\n")
    assert "labrunner.yaml:5: counter.scale: expected float, got str 'lots'" in refused("run", "counter")


def test_config_file_threads_reach_the_run(cli, workdir):
    write(workdir / "labrunner.yaml", "threads: 1\n")
    status, out, err = cli("config", "counter")
    assert status == 0, err
    assert yaml.safe_load(out)["threads"] == 1


def test_exponent_without_dot_is_a_number(cli, workdir):
    # YAML 1.1 reads 1e-3 as a string; a float setting takes it as the number it is
    write(workdir / "labrunner.yaml", "labs:\n  counter:\n    scale: 2E+1\n")
    status, out, err = cli("config", "counter", "--set", "counter.sleep_s=1e-3")
    assert status == 0, err
    lab = yaml.safe_load(out)["labs"]["counter"]
    assert (lab["sleep_s"], lab["scale"]) == (0.001, 20.0)


# --------------------------------------------------------------------------- lab constraints

BOUNDED_LAB = """
from dataclasses import dataclass, field

import labrunner


@dataclass(frozen=True)
class BoundedConfig:
    draws: int = field(default=4, metadata={"min": 1})
    epochs: int = field(default=2, metadata={"min": 1, "max": 1000})
    lr: float = field(default=0.1, metadata={"above": 0})
    sizes: tuple[int, ...] = field(default=(8, 16), metadata={"min": 1})
    low: float = 0.0
    high: float = 1.0


class BoundedLab(labrunner.Lab):
    name = "bounded"
    title = "A lab with bounds on its settings"
    Config = BoundedConfig
    profiles = {"broken": {"draws": 0}}

    def validate(self, config):
        if config.low >= config.high:
            raise ValueError(f"low: must be below high ({config.high}), got {config.low}")

    def run(self, ctx):
        raise AssertionError("a lab with bad settings never runs")


@labrunner.hookimpl
def register_labs(register):
    register(BoundedLab())
"""


@pytest.fixture
def bounded(tmp_path, monkeypatch):
    """``--plugins-dir`` arguments that add the lab 'bounded' to the test plugins."""
    folder = tmp_path / "plugins"
    folder.mkdir()
    write(folder / "bounded_lab.py", BOUNDED_LAB)
    monkeypatch.setenv("LABRUNNER_PLUGINS", "core_labs,bounded_lab")
    return ["--plugins-dir", str(folder)]


def test_bounds_hold_for_the_defaults(cli, bounded):
    status, out, err = cli("config", "bounded", *bounded)
    assert status == 0, err
    assert yaml.safe_load(out)["labs"]["bounded"]["draws"] == 4


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ("bounded.draws=0", "--set: bounded.draws must be >= 1, got 0"),
        ("bounded.epochs=0", "--set: bounded.epochs must be >= 1, got 0"),
        ("bounded.epochs=5000", "--set: bounded.epochs must be <= 1000, got 5000"),
        ("bounded.lr=0", "--set: bounded.lr must be > 0, got 0.0"),
        ("bounded.lr=.nan", "--set: bounded.lr: expected a finite number, got nan"),
        ("bounded.lr=.inf", "--set: bounded.lr: expected a finite number, got inf"),
        ("bounded.lr=inf", "--set: bounded.lr: expected a finite number, got 'inf'"),
        ("bounded.sizes=[8, -2]", "--set: bounded.sizes[1] must be >= 1, got -2"),
        ("bounded.low=3", "--set: bounded.low: must be below high (1.0), got 3.0"),
    ],
)
def test_lab_settings_the_lab_cannot_run_with(refused, bounded, setting, message):
    assert message in refused("run", "bounded", *bounded, "--set", setting)


def test_lab_bound_names_file_and_line(refused, workdir, bounded):
    write(workdir / "labrunner.yaml", "labs:\n  bounded:\n    lr: 0.5\n    draws: -3\n")
    assert "labrunner.yaml:4: bounded.draws must be >= 1, got -3" in refused("run", "bounded", *bounded)


def test_lab_bound_names_the_profile(refused, bounded):
    line = refused("run", "bounded", *bounded, "--profile", "broken")
    assert "profile 'broken' of lab 'bounded': bounded.draws must be >= 1, got 0" in line
