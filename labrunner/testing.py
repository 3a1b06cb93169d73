"""Helpers for testing labs with pytest; registered as a pytest plugin.

In a lab package's tests::

    def test_my_lab(run_lab):
        result = run_lab("my_lab")              # smoke profile, into tmp_path
        assert_checks_pass(result)
        assert_metric(result, "accuracy", at_least=0.9)

``run_lab(lab, profile="smoke", seed=0, device="cpu", **overrides)`` accepts a
lab name (looked up among installed plugins) or a Lab instance or class.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from .authoring.lab import Lab, validate_lab
from .records.results import LabResult


def run_lab_in(
    lab: Lab | type[Lab] | str,
    out_dir: Path,
    *,
    profile: str = "smoke",
    seed: int = 0,
    device: str = "cpu",
    **overrides: Any,
) -> LabResult:
    """Run ``lab`` with ``profile`` (plus ``overrides`` of config fields) into ``out_dir``."""
    from .execution.labrun import run_lab
    from .settings.labconfig import resolve_lab_config

    if isinstance(lab, str):
        from .settings.plugins import load_plugins

        lab = load_plugins().select([lab])[0]
    lab = validate_lab(lab)
    config = resolve_lab_config(lab, profile, [("test overrides", overrides)] if overrides else [])
    return run_lab(lab, config, out_dir=Path(out_dir) / lab.name, device=device, seed=seed, profile=profile)


def assert_checks_pass(result: LabResult) -> None:
    """Fail with the failing checks (and any error) listed."""
    if result.error:
        pytest.fail(f"lab {result.lab} raised {result.error}\n{result.error.traceback}")
    failed = [c for c in result.checks if not c.passed]
    if failed:
        lines = [f"  {c.name}: expected {c.expected}, actual {c.actual}" for c in failed]
        pytest.fail(f"lab {result.lab}: {len(failed)} check(s) failed:\n" + "\n".join(lines))


def assert_metric(
    result: LabResult, name: str, *, at_least: float | None = None, at_most: float | None = None
) -> float:
    """Assert that metric ``name`` exists (and lies within bounds); return it."""
    if name not in result.metrics:
        pytest.fail(f"lab {result.lab} has no metric {name!r}; it has {sorted(result.metrics)}")
    value = result.metrics[name]
    if at_least is not None and not value >= at_least:
        pytest.fail(f"metric {name} = {value}, expected >= {at_least}")
    if at_most is not None and not value <= at_most:
        pytest.fail(f"metric {name} = {value}, expected <= {at_most}")
    return value


#: The names a condition in an answer template may read: the recorded claims, the lab's
#: config, what the run was given (``setting``, passed by the lab) and Jinja2's ``loop``.
CONDITION_NAMES = frozenset({"claims", "cfg", "setting", "loop"})


def _names_read(expr: Any) -> list[str]:
    """The names a Jinja2 expression reads; inside ``claims[...]`` and ``setting[...]``
    only the container (the key names a claim or a setting)."""
    from jinja2 import nodes

    out: list[str] = []

    def visit(n: Any) -> None:
        if isinstance(n, nodes.Getitem):  # claims[...] or setting.x[...]: the key names one
            root = n.node
            while isinstance(root, (nodes.Getattr, nodes.Getitem)):
                root = root.node
            if isinstance(root, nodes.Name) and root.name in ("claims", "setting"):
                visit(n.node)
                return
        if isinstance(n, nodes.Name):
            out.append(n.name)
            return
        for child in n.iter_child_nodes():
            visit(child)

    visit(expr)
    return out


def _targets(t: Any) -> set[str]:
    """The names an assignment or loop target binds."""
    from jinja2 import nodes

    return {t.name} if isinstance(t, nodes.Name) else {n.name for n in t.find_all(nodes.Name)}


def unrecorded_conditions(template: str) -> list[str]:
    """Every condition of an answer template that reads something other than a recorded
    claim or a setting of the run: ``"line 3: {% if n_ok %} reads n_ok"``; empty when none.

    The template is parsed (Jinja2's AST), and each ``{% if %}``/``{% elif %}`` test and
    each inline ``x if test else y`` may read only :data:`CONDITION_NAMES`, loop variables
    of a ``{% for %}`` over such names or over a constant list, and ``{% set %}`` names
    computed from them. Inside ``claims[...]`` and ``setting[...]`` the key may be any
    expression (it names a claim or a setting). A verdict written as a branch on a measured number escapes the claims, so the
    report and the seed sweep cannot show it: a lab's test calls this on every template.
    """
    from jinja2 import Environment, nodes

    found: list[str] = []
    source_lines = template.splitlines()

    def check(test: nodes.Node, allowed: set[str]) -> None:
        bad = sorted({n for n in _names_read(test) if n not in allowed})
        if bad:
            line = source_lines[test.lineno - 1].strip() if test.lineno <= len(source_lines) else ""
            found.append(f"line {test.lineno}: {line[:80]} reads {', '.join(bad)}")

    def expressions(node: nodes.Node, allowed: set[str]) -> None:
        for cond in node.find_all(nodes.CondExpr):
            check(cond.test, allowed)

    def walk(node: nodes.Node, allowed: set[str]) -> None:
        if isinstance(node, nodes.For):
            expressions(node.iter, allowed)
            names = _targets(node.target)
            ok = all(n in allowed for n in _names_read(node.iter))
            inner = (allowed | names) if ok else (allowed - names)
            if node.test is not None:
                check(node.test, inner)
            for child in node.body:
                walk(child, inner)
            for child in node.else_:
                walk(child, allowed)
        elif isinstance(node, nodes.If):
            check(node.test, allowed)
            for child in [*node.body, *node.elif_, *node.else_]:
                walk(child, allowed)
        elif isinstance(node, nodes.Assign):
            expressions(node.node, allowed)
            names = _targets(node.target)
            if all(n in allowed for n in _names_read(node.node)):
                allowed |= names
            else:
                allowed -= names
        elif isinstance(node, nodes.Output):
            expressions(node, allowed)
        else:
            for child in node.iter_child_nodes():
                if isinstance(child, nodes.Stmt):
                    walk(child, allowed)
                else:
                    expressions(child, allowed)

    top = set(CONDITION_NAMES)
    for node in Environment().parse(template).body:
        walk(node, top)
    return found


def answer_templates(module: Any) -> dict[str, str]:
    """A lab's answer templates: the module's upper-case string constants that hold a
    Jinja2 tag (``{{`` or ``{%``)."""
    return {
        name: value
        for name, value in vars(module).items()
        if name.isupper() and isinstance(value, str) and ("{{" in value or "{%" in value)
    }


def assert_answers_branch_on_claims(module: Any) -> None:
    """Fail with every offending condition when a template of ``module`` (a lab's
    ``text`` module) branches on anything but a recorded claim or a setting of the run."""
    problems = [
        f"{module.__name__}.{name} {problem}"
        for name, template in answer_templates(module).items()
        for problem in unrecorded_conditions(template)
    ]
    assert not problems, "conditions that are not recorded claims:\n" + "\n".join(problems)


@contextlib.contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Run the block with ``n`` torch intra-op threads, restoring the setting after.

    Tiny models gain nothing from threads, and on a busy CPU OpenMP threads waiting on
    each other can stall small operations for milliseconds.
    """
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@contextlib.contextmanager
def serve_folder(folder: Path) -> Iterator[tuple[str, list[str]]]:
    """Serve ``folder`` over HTTP on 127.0.0.1 while the block runs, for testing download
    code without a network; yields (base URL without a trailing slash, the paths requested,
    in order)::

        with serve_folder(tmp_path / "www") as (url, requests):
            fetch(f"{url}/data.txt", ...)
            assert requests == ["/data.txt"]
    """
    import functools
    import http.server
    import threading

    requests: list[str] = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def do_GET(self) -> None:
            requests.append(self.path)
            super().do_GET()

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(Handler, directory=str(folder))
    )
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", requests
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@pytest.fixture
def one_torch_thread() -> Iterator[None]:
    """One torch thread for the test (``pytestmark = pytest.mark.usefixtures("one_torch_thread")``)."""
    with torch_threads(1):
        yield


@pytest.fixture
def run_lab(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[..., LabResult]:
    """Run a lab in the smoke profile into a temporary folder, with a private cache."""
    monkeypatch.setenv("LABRUNNER_CACHE_DIR", str(tmp_path / "cache"))

    def run(lab: Lab | type[Lab] | str, **kwargs: Any) -> LabResult:
        return run_lab_in(lab, tmp_path / "run", **kwargs)

    return run
