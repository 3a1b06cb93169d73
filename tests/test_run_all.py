"""The whole run as a newcomer meets it: every built-in lab, smoke profile, report included."""

from __future__ import annotations

import base64
import json
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest
from conftest import run_cli


class Images(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.sources: list[str] = []

    def handle_starttag(self, tag, attrs):
        if tag == "img":
            self.sources.append(dict(attrs).get("src", ""))


@pytest.mark.slow
def test_run_all_smoke_then_the_first_five_minutes(tmp_path: Path):
    # the README's first five minutes, as a user types them: the installed labs only
    def labrunner(*args: str) -> subprocess.CompletedProcess:
        env = {"LABRUNNER_CACHE_DIR": str(tmp_path / "cache")}
        return run_cli(*args, env=env, unset=["LABRUNNER_PLUGINS"], cwd=tmp_path, timeout=900)

    proc = labrunner("run", "all", "--profile", "smoke", "--device", "cpu")
    assert proc.returncode == 0, proc.stdout + proc.stderr[-4000:]
    run_dir = (tmp_path / "reports" / "latest").resolve()
    run = json.loads((run_dir / "run.json").read_text())
    assert [lab["lab"] for lab in run["labs"]] == ["cnn_receptive", "adversarial", "rnn_lm", "attention"]
    assert all(lab["status"] == "passed" for lab in run["labs"]), run["labs"]
    figures = list(run_dir.glob("*/figures/*.png"))
    assert len(figures) >= 8
    html = (run_dir / "report.html").read_text()
    parser = Images()
    parser.feed(html)
    assert len(parser.sources) >= len(figures)
    for src in parser.sources:
        assert src.startswith("data:image/png;base64,")
        assert base64.b64decode(src.split(",", 1)[1])[:4] == b"\x89PNG"
    assert (run_dir / "report.md").is_file()

    # the README's first five minutes go on: change a setting, rerun one lab ...
    rerun = labrunner("run", "rnn_lm", "--profile", "smoke", "--device", "cpu", "--set", "rnn_lm.epochs=2")
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr[-4000:]
    second = (tmp_path / "reports" / "latest").resolve()
    assert second != run_dir
    info = json.loads((second / "run.json").read_text())
    # ... and the report of the new run still holds all four labs, three from the first run
    results = {
        name: json.loads((second / name / "result.json").read_text())
        for name in ("cnn_receptive", "adversarial", "rnn_lm", "attention")
    }
    assert results["rnn_lm"]["config"]["epochs"] == 2 and not results["rnn_lm"].get("origin")
    for name in ("cnn_receptive", "adversarial", "attention"):
        assert results[name]["status"] == "passed" and results[name]["origin"]["kind"] in (
            "cache",
            "earlier run",
        )
    html = (second / "report.html").read_text()
    for title in ("receptive fields", "adversarial", "language model", "self-attention"):
        assert title in html.lower()
    assert info["status"] == "finished"

    # hand in: offline, the stand-ins need the explicit opt-in; the zip verifies
    refused = labrunner("submit", "-o", "submission.zip")
    assert refused.returncode == 1 and "--allow-stand-ins" in refused.stderr
    assert not (tmp_path / "submission.zip").exists()
    made = labrunner("submit", "--allow-stand-ins", "-o", "submission.zip")
    assert made.returncode == 0, made.stderr
    verified = labrunner("submit", "--verify", "submission.zip")
    assert verified.returncode == 0 and "match the manifest" in verified.stdout
