"""Every example the docs show is executed or validated: the tutorial's Python blocks form one
lab plus its tests, and every config file, ``--set`` and command line of README.md and
docs/*.md is loaded, resolved, parsed or run (the rules are listed below)."""

from __future__ import annotations

import dataclasses
import json
import re
import shlex
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from labrunner.api import prepare
from labrunner.base.errors import UsageError
from labrunner.settings.config import REPORT_KEYS, load_run_config, parse_set
from labrunner.settings.plugins import load_plugins
from labrunner.testing import run_lab_in

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    tomllib = pytest.importorskip("tomli")

DOC = Path(__file__).resolve().parent.parent / "docs" / "writing-a-lab.md"


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.S)


def tutorial_lab(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """The tutorial's Python blocks, joined into one plugin file and loaded: its lab."""
    blocks = python_blocks()
    assert len(blocks) >= 4
    plugin_dir = tmp_path / "plugins"
    plugin_dir.mkdir()
    (plugin_dir / "softmax_lab.py").write_text("\n\n".join(blocks))
    monkeypatch.setenv("LABRUNNER_PLUGINS", "softmax_lab")
    monkeypatch.setenv("LABRUNNER_CACHE_DIR", str(tmp_path / "cache"))
    plugins = load_plugins([plugin_dir])
    assert plugins.problems == []
    return plugins.labs["softmax_lab"]


def test_tutorial_validate_example_is_the_labs_own_and_refuses_what_it_says(tmp_path, monkeypatch):
    """Section 2's ``validate`` is, word for word, the method of the lab section 4 builds
    (run by the test below), on settings its Config has; it refuses what the prose says."""
    from labrunner.settings.labconfig import resolve_lab_config

    (shown,) = re.findall(r"```py\n(.*?)```", DOC.read_text(), flags=re.S)
    assert "def validate(self, config: SoftmaxConfig)" in shown
    assert shown in "\n\n".join(python_blocks())
    lab = tutorial_lab(tmp_path, monkeypatch)
    for profile in ("smoke", "quick", "full"):
        resolve_lab_config(lab, profile, [])
    resolve_lab_config(lab, "quick", [("--set", {"dtype": "float64", "scale": 1e38})])
    message = "--set: softmax_lab.scale: 1e+38 makes logits beyond float32's largest number (3.4e+38)"
    assert f"`{message}`" in DOC.read_text()
    with pytest.raises(UsageError) as refused:
        resolve_lab_config(lab, "quick", [("--set", {"dtype": "float32", "scale": 1e38})])
    assert str(refused.value) == message


@pytest.mark.slow
def test_tutorial_lab_runs_and_its_tests_pass(tmp_path, monkeypatch):
    lab = tutorial_lab(tmp_path, monkeypatch)
    result = run_lab_in(lab, tmp_path / "run", profile="smoke")
    assert result.status == "passed", result.error
    assert result.metrics["naive_nan_rate"] > 0.5
    assert "The measurement agrees with the derivation." in result.exercises[0].answer
    # the claim the answer reads is decided against its baseline, with the uncertainty shown
    (claim,) = result.exercises[0].claims
    assert claim.name == "naive_overflows" and claim.holds is True
    assert "95 % interval" in claim.evidence and "the stable form" in claim.baseline
    assert "95 % interval" in claim.baseline

    # the tutorial's own tests, run against the same module
    import sys

    module = sys.modules["labrunner_plugins_dir.softmax_lab"]
    module.test_naive_softmax_overflows()
    from labrunner.testing import assert_checks_pass, assert_metric

    assert_checks_pass(result)
    assert_metric(result, "stable_nan_rate", at_most=0.0)


# --------------------------------------------------------------------------- every example the docs show
#
# Every fenced block of README.md and docs/*.md that shows a config file (```yaml) or command
# lines (```bash), and every inline `labrunner ...` command and `--set LAB.KEY=VALUE` of their
# prose, is checked against the code and the installed labs. How each kind is checked:
#
# - a config file: loaded by labrunner's config loader and resolved against the installed labs
#   (every lab it names, with its executor options), as `labrunner run` would before it starts;
# - a `--set`: resolved against the installed labs (a placeholder such as LAB.KEY=VALUE is
#   only checked for its shape);
# - `labrunner ...`: parsed by labrunner's own parser (every option must exist; [optional]
#   parts and placeholders such as RUN_DIR, NAME and N are filled in); `run` and `config` are
#   then resolved without running (dry: every lab, profile, setting, device name, executor
#   option), `list`, `plugins`, `config`, and `new` and `assign` (which make the packages that
#   later commands install and run) run, being quick; in the slow tier,
#   every `labrunner run` of a code block runs with `--profile smoke` on the CPU (running the
#   quick and full profiles would take minutes to hours; `--executor slurm` needs a cluster and
#   stays dry: tests/test_slurm.py runs the executor) and the commands that read a run folder
#   (report, check, submit, clean, status) run against what they made;
# - `pip install`: the extras it names exist in pyproject.toml and the folder it installs
#   exists (nothing is downloaded);
# - `python benchmarks/X.py ...`: the script exists and its source defines every option and
#   sub-command the example uses (running the benchmarks takes minutes); `bash X.sh`: bash -n;
# - `python -m pytest ...`: every marker it selects is registered;
# - anything else must be in EXTERNAL with the reason it is not run. A command line that no
#   rule covers fails the test, so a new example cannot go unchecked.

DOC_FILES = [DOC.parent.parent / "README.md", *sorted(DOC.parent.glob("*.md"))]
ROOT = DOC.parent.parent
#: Commands shown but not run, each with the reason.
EXTERNAL = {
    ("python", "-m", "pip", "install", "build", "twine"): "installs the publishing tools (network)",
    (
        "python",
        "-m",
        "build",
    ): "builds a wheel of the tutorial's package; tests/test_packaging.py builds labrunner's",
    ("python", "-m", "twine"): "uploads to PyPI",
    ("pytest",): "the generated lab's own tests; tests/test_new.py runs them end to end",
}
#: Placeholders of synopsis lines, and what stands in for them.
PLACEHOLDERS = {
    "RUN_DIR": "{run_dir}",
    "RUN_DIR...": "{run_dir}",
    "NAME.zip": "{work}/submission.zip",
    "ZIP": "{work}/submission.zip",
    "NAME": "ada",
    "N": "2",
    "DIR": "{work}",
    "LAB": "attention",
    "SECONDS": "600",
    "PATH": "{work}/labrunner.yaml",
}


@dataclass
class DocExample:
    """One example: a config file, a command line or a ``--set``, and where it is shown."""

    where: str  # README.md:12
    kind: str  # "yaml", "command" or "set"
    text: str
    inline: bool = False


def doc_examples(path: Path) -> list[DocExample]:
    """The examples of one Markdown file, in the order it shows them."""
    text = path.read_text(encoding="utf-8")
    found: list[tuple[int, DocExample]] = []
    name = path.relative_to(ROOT).as_posix() if path.is_relative_to(ROOT) else path.name
    fence = re.compile(r"^```(\w*)[^\n]*\n(.*?)^```", flags=re.S | re.M)
    for m in fence.finditer(text):
        line = text.count("\n", 0, m.start()) + 2
        lang, body = m.group(1), m.group(2)
        if lang == "yaml":
            found.append((m.start(), DocExample(f"{name}:{line}", "yaml", body)))
        elif lang in ("bash", "sh", "shell", "console"):
            for offset, command in command_lines(body):
                found.append((m.start() + offset, DocExample(f"{name}:{line + offset}", "command", command)))
    prose = fence.sub(lambda m: "\n" * m.group(0).count("\n"), text)
    for m in re.finditer(r"`(labrunner [a-z][^`]*|--set [^`]+)`", prose):
        where = f"{name}:{prose.count(chr(10), 0, m.start()) + 1}"
        kind = "set" if m.group(1).startswith("--set") else "command"
        value = m.group(1).removeprefix("--set ").strip() if kind == "set" else m.group(1)
        found.append((m.start(), DocExample(where, kind, value, inline=True)))
    return [example for _, example in sorted(found, key=lambda item: item[0])]


def command_lines(body: str) -> list[tuple[int, str]]:
    """(line offset, command) of a shell block: comments dropped, ``\\`` continuations joined."""
    lines, current, start = [], "", 0
    for i, raw in enumerate(body.splitlines()):
        if not current:
            start = i
        line = raw.rstrip()
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        current += line
        if shlex.split(current, comments=True):
            lines.append((start, current))
        current = ""
    return lines


def all_examples() -> list[DocExample]:
    return [example for path in DOC_FILES for example in doc_examples(path)]


class DocState:
    """What the examples of one file have made so far: packages from ``labrunner new``, the
    working folder, the run folder."""

    def __init__(self, work: Path) -> None:
        self.work = work
        self.packages: dict[str, Path] = {}

    def fill(self, token: str) -> str | None:
        """A token with its [brackets] dropped and a placeholder filled; None to drop it."""
        token = token.strip("[]")
        if token in ("", "..."):
            return None
        if token in PLACEHOLDERS:
            return PLACEHOLDERS[token].format(run_dir=self.work / "reports" / "latest", work=self.work)
        return token

    def tokens(self, command: str) -> list[str]:
        return [t for t in (self.fill(t) for t in shlex.split(command, comments=True)) if t is not None]


def _has_placeholder(text: str) -> bool:
    """Whether a command (its comment aside) holds a placeholder: ``RUN_DIR``, ``...``."""
    command = " ".join(shlex.split(text, comments=True))
    return bool(re.search(r"\b[A-Z][A-Z_]+\b|\.\.\.", command))


def check_set(item: str, where: str) -> None:
    """``--set item`` resolves against the installed labs (a placeholder: its shape only)."""
    lab, dot, rest = item.partition(".")
    key, eq, value = rest.partition("=")
    assert dot and eq and key, f"{where}: --set {item}: not LAB.KEY=VALUE"
    if lab.isupper() or key.isupper():
        return
    if _has_placeholder(value):  # `--set rnn_lm.corpus_path=DIR`: the key must exist
        keys = (
            REPORT_KEYS
            if lab == "report"
            else [f.name for f in dataclasses.fields(installed_plugins().labs[lab].Config)]
        )
        assert key in keys, f"{where}: --set {item}: {lab} has no setting {key!r}"
    elif lab == "report":
        parse_set([item])
    else:
        prepare([lab], set=[item], writes=False, plugins=installed_plugins())


def check_yaml(example: DocExample, work: Path) -> None:
    """Load a config file shown in the docs and resolve every lab it names."""
    path = work / "labrunner.yaml"
    path.write_text(example.text, encoding="utf-8")
    file_cfg = load_run_config(path)
    labs = list(file_cfg.labs) or ["all"]
    for name in file_cfg.report.get("order", []):
        assert name in installed_plugins().labs, f"{example.where}: report.order names {name!r}, not a lab"
    prepare(labs, config=path, writes=False, plugins=installed_plugins())


def check_command(example: DocExample, state: DocState, ran: list[list[str]]) -> None:
    """Validate one command line (see the rules above); ``ran`` collects the labrunner
    command lines the slow tier runs."""
    tokens = state.tokens(example.text)
    parts = [[]]
    for token in tokens:
        parts.append([]) if token == "&&" else parts[-1].append(token)
    for tokens in parts:
        shown = " ".join(tokens)
        reason = next(
            (why for prefix, why in EXTERNAL.items() if tuple(tokens[: len(prefix)]) == prefix), None
        )
        if reason:
            if tokens[0] == "pytest":
                assert (state.work / tokens[1]).is_dir(), f"{example.where}: {tokens[1]} does not exist"
        elif tokens[0] == "labrunner":
            check_labrunner(tokens[1:], example, state, ran)
        elif tokens[:2] == ["pip", "install"] or tokens[:4] == ["python", "-m", "pip", "install"]:
            check_pip(tokens, example, state)
        elif tokens[:3] == ["python", "-m", "pytest"]:
            markers = [tokens[i + 1] for i, t in enumerate(tokens) if t == "-m" and i > 1]
            registered = {m.split(":")[0] for m in PYPROJECT["tool"]["pytest"]["ini_options"]["markers"]}
            for marker in markers:
                words = set(re.findall(r"[a-z_]+", marker)) - {"not", "and", "or"}
                assert words <= registered, (
                    f"{example.where}: {shown}: marker {words - registered} is not registered"
                )
        elif tokens[0] == "python" and tokens[1].startswith(("benchmarks/", "tools/")):
            check_script(tokens[1:], example)
        elif tokens[0] == "bash" and tokens[1].endswith(".sh"):
            script = ROOT / tokens[1]
            assert script.is_file(), f"{example.where}: {tokens[1]} does not exist"
            subprocess.run(["bash", "-n", str(script)], check=True, timeout=30)
        else:
            raise AssertionError(
                f"{example.where}: no rule checks the example {shown!r}: add one (or add it to EXTERNAL, saying why)"
            )


def check_pip(tokens: list[str], example: DocExample, state: DocState) -> None:
    """The extras exist in pyproject.toml; the folder installed exists; packages are ours."""
    args = tokens[tokens.index("install") + 1 :]
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "--index-url":
            assert args[i + 1].startswith("https://download.pytorch.org/whl/"), example.where
            i += 2
            continue
        if arg in ("-e", "--quiet", "-q"):
            i += 1
            continue
        target, _, extras = arg.partition("[")
        for extra in filter(None, extras.rstrip("]").split(",")):
            assert extra in PYPROJECT["project"]["optional-dependencies"], (
                f"{example.where}: no extra [{extra}]"
            )
        if target in (".", "labrunner") or Path(target).resolve() == state.work.resolve():
            pass  # this checkout, labrunner itself, or `pip install -e DIR` (a placeholder)
        elif target in ("torch", "torchvision"):
            assert any(d.startswith(target + ">") for d in PYPROJECT["project"]["dependencies"]), target
        else:
            assert target in state.packages, f"{example.where}: pip install {target}: nothing made it"
        i += 1


def check_script(tokens: list[str], example: DocExample) -> None:
    """The script exists and its source defines every option and sub-command used."""
    script = ROOT / tokens[0]
    assert script.is_file(), f"{example.where}: {tokens[0]} does not exist"
    source = script.read_text(encoding="utf-8")
    options = [token.split("=")[0] for token in tokens[1:] if token.startswith("--")]
    for option in options:
        assert f'"{option}"' in source, f"{example.where}: {tokens[0]} has no option {option}"
    if len(tokens) > 1 and re.fullmatch(r"[a-z]+", tokens[1]):  # a sub-command: `bench_rnn_lm.py speed`
        assert f'"{tokens[1]}"' in source, f"{example.where}: {tokens[0]} has no sub-command {tokens[1]}"


def check_labrunner(args: list[str], example: DocExample, state: DocState, ran: list[list[str]]) -> None:
    from labrunner.api import prepare_options
    from labrunner.cli import build_parser, main, options_of

    parser = build_parser()
    commands = next(a for a in parser._actions if a.dest == "command").choices
    if example.inline and len(args) == 1:  # the command named in prose: `labrunner run`
        assert args[0] in commands, f"{example.where}: there is no command labrunner {args[0]}"
        return
    plugin_dirs = [arg for path in state.packages.values() for arg in ("--plugins-dir", str(path))]
    attempts = [args + plugin_dirs]
    if example.inline and args[0] == "run":  # prose that names an option: `labrunner run --executor NAME`
        attempts.append([*args, "all", *plugin_dirs])
    for attempt in attempts:
        try:
            parsed = parser.parse_args(attempt)
            break
        except SystemExit:
            continue
    else:
        raise AssertionError(f"{example.where}: labrunner {' '.join(args)}: refused by the parser")
    command = parsed.command
    # An inline synopsis (`labrunner status RUN_DIR`) or a lab the page has not made
    # (`labrunner run my_lab --plugins-dir ./plugins`) is parsed only.
    known = {*installed_plugins().labs, *state.packages, "all"}
    named = getattr(parsed, "labs", None) or []
    dry = example.inline and (_has_placeholder(example.text) or not set(named) <= known)
    if command in ("run", "config") and not dry:
        options = dataclasses.replace(options_of(parsed), labs=tuple(named or ["all"]))
        plugins = installed_plugins(options.plugins_dir)
        try:
            prepare_options(options, writes=False, plugins=plugins)
        except UsageError as exc:
            raise AssertionError(f"{example.where}: labrunner {' '.join(args)}: {exc}") from None
        if command == "run" and not example.inline:
            ran.append(args + plugin_dirs)
    if command in ("list", "plugins", "config") and not dry:
        assert main(args + plugin_dirs) == 0, f"{example.where}: labrunner {' '.join(args)} failed"
    if command in ("new", "assign") and not (example.inline or _has_placeholder(example.text)):
        assert main(args) == 0, f"{example.where}: labrunner {' '.join(args)} failed"
        made = Path(parsed.dir) / parsed.name if command == "new" else Path(parsed.out)
        state.packages[made.name] = made.resolve()
    if command in ("report", "check", "status") and len(args) == 1 and not example.inline:
        ran.append(args)


COMMANDS = ("run", "status", "list", "plugins", "config", "report", "check", "submit", "clean", "new")
_PLUGINS: dict[tuple[str, ...], object] = {}


def installed_plugins(plugin_dirs: tuple[str, ...] = ()):
    """The installed labs (plus ``plugin_dirs``), loaded once per test session."""
    if plugin_dirs not in _PLUGINS:
        _PLUGINS[plugin_dirs] = load_plugins([Path(p) for p in plugin_dirs])
    return _PLUGINS[plugin_dirs]


PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8")) if tomllib else {}


@pytest.fixture
def doc_work(tmp_path, monkeypatch):
    """A working folder with a private cache and the installed labs (not the test plugins)."""
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.setenv("LABRUNNER_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("LABRUNNER_PLUGINS", raising=False)
    return work


def test_the_docs_show_examples_of_every_kind():
    kinds = {example.kind for example in all_examples()}
    assert kinds == {"yaml", "command", "set"}
    assert len(all_examples()) > 60


@pytest.mark.parametrize("path", DOC_FILES, ids=lambda p: p.name)
def test_every_config_file_and_set_the_docs_show_resolves(path, doc_work):
    for example in doc_examples(path):
        if example.kind == "yaml":
            check_yaml(example, doc_work)
        elif example.kind == "set":
            check_set(example.text, example.where)


#: Pages whose commands take seconds to check (teaching.md assigns the four labs).
SLOW_PAGES = ("teaching.md",)


@pytest.mark.parametrize(
    "path",
    [pytest.param(p, marks=[pytest.mark.slow] if p.name in SLOW_PAGES else []) for p in DOC_FILES],
    ids=lambda p: p.name,
)
def test_every_command_line_the_docs_show_is_valid(path, doc_work, capsys):
    state = DocState(doc_work)
    for example in doc_examples(path):
        if example.kind == "command":
            check_command(example, state, [])
    capsys.readouterr()


@pytest.mark.parametrize(
    ("markdown", "message"),
    [
        ("```bash\nlabrunner run all --set attention.trials=5\n```\n", "unknown key 'attention.trials'"),
        ("```yaml\nlabs:\n  attention:\n    trials: 200\n```\n", "unknown key 'attention.trials'"),
        ("Run `labrunner run all --profile fast`.\n", "unknown profile 'fast'"),
        ("Set `--set rnn_lm.epoch=2`.\n", "unknown key 'rnn_lm.epoch'"),
        ("```bash\nlabrunner run all --turbo\n```\n", "refused by the parser"),
        ("```bash\nlabrunner frobnicate\n```\n", "refused by the parser"),
        ("```bash\nmake everything\n```\n", "no rule checks the example"),
        ("```bash\npip install -e '.[gpu]'\n```\n", "no extra [gpu]"),
        ("```bash\npython benchmarks/bench_cli.py --fast\n```\n", "has no option --fast"),
        ("```bash\npython -m pytest -m 'not sluggish'\n```\n", "is not registered"),
    ],
)
def test_a_wrong_example_fails(markdown, message, doc_work, tmp_path):
    page = tmp_path / "page.md"
    page.write_text(markdown)
    state = DocState(doc_work)
    with pytest.raises((AssertionError, UsageError), match=re.escape(message)):
        for example in doc_examples(page):
            if example.kind == "yaml":
                check_yaml(example, doc_work)
            elif example.kind == "set":
                check_set(example.text, example.where)
            else:
                check_command(example, state, [])


def smoke(args: list[str]) -> list[str]:
    """A ``labrunner run`` command with the smoke profile, on the CPU."""
    args = list(args)
    for option, value in (("--profile", "smoke"), ("--device", "cpu")):
        if option in args:
            args[args.index(option) + 1] = value
        else:
            args += [option, value]
    return args


@pytest.mark.slow
def test_the_commands_that_train_run_with_the_smoke_profile(doc_work, capsys):
    """Every ``labrunner run`` of a code block runs (smoke profile, CPU; with one cache, so a
    lab runs once per setting), and then the docs' bare ``report``, ``check`` and ``status``
    on what they made. ``--executor slurm`` stays dry here (no cluster)."""
    from labrunner.cli import main

    ran: list[list[str]] = []
    for path in DOC_FILES:
        state = DocState(doc_work)
        for example in doc_examples(path):
            if example.kind == "command" and not example.inline:
                check_command(example, state, ran)
    runs = [args for args in ran if args[0] == "run" and "slurm" not in args]
    assert len(runs) >= 5 and any(args[1:2] == ["all"] for args in runs)
    for args in [smoke(args) if args[0] == "run" else args for args in ran if "slurm" not in args]:
        status = main(args)
        out, err = capsys.readouterr()
        assert "Traceback" not in err, (args, err)
        assert status in (0, 1), f"labrunner {' '.join(args)}: exit status {status}: {err}"
    run = json.loads((doc_work / "reports" / "latest" / "run.json").read_text())
    assert run["status"] == "finished"
