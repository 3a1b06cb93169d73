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

from .lab import Lab, validate_lab
from .results import LabResult


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
    from .config import resolve_lab_config
    from .runner import run_lab

    if isinstance(lab, str):
        from .plugins import load_plugins

        lab = load_plugins().select([lab])[0]
    lab = validate_lab(lab)
    config = resolve_lab_config(lab, profile, [("test overrides", overrides)] if overrides else [])
    return run_lab(lab, config, out_dir=Path(out_dir) / lab.name, device=device, seed=seed, profile=profile)


def assert_checks_pass(result: LabResult) -> None:
    """Fail with the failing checks (and any error) listed."""
    if result.error:
        pytest.fail(
            f"lab {result.lab} raised {result.error['type']}: {result.error['message']}\n"
            f"{result.error['traceback']}"
        )
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
