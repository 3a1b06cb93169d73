"""Synthetic run folders for the tests: real files written through the real records,
no lab run and no torch (test_report, test_check, test_submit, test_runfolder and
benchmarks/bench_report.py use them)."""

from __future__ import annotations

import io
from pathlib import Path

from labrunner.records.results import (
    Check,
    Exercise,
    FigureRecord,
    LabError,
    LabResult,
    MarkdownRecord,
    TableRecord,
    write_json,
)

EVIL_TITLE = "Counting <script>alert(1)</script>"


def png_bytes(width: int = 64, height: int = 48, seed: int = 0) -> bytes:
    """A small real PNG (a gradient), made with Pillow."""
    from PIL import Image

    image = Image.new("RGB", (width, height))
    image.putdata(
        [
            ((x * 4 + seed * 40) % 256, (y * 5) % 256, (x + y + seed) % 256)
            for y in range(height)
            for x in range(width)
        ]
    )
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


def make_lab(run_dir: Path, name: str, *, status: str = "passed", figures: int = 1, png: bytes | None = None):
    """A LabResult with a figure, a table, math, metrics and a passing check, saved."""
    lab_dir = run_dir / name
    (lab_dir / "figures").mkdir(parents=True, exist_ok=True)
    records: list = []
    for i in range(figures):
        (lab_dir / "figures" / f"fig{i}.png").write_bytes(png or png_bytes(seed=i))
        records.append(FigureRecord(f"figures/fig{i}.png", f"Loss curve ${i}\\epsilon$"))
    records.append(
        TableRecord(
            columns=["layer", "$r$", "stride"],
            rows=[["conv1", 11, 4], ["pool <b>1</b>", 19.5, 0.000012]],
            caption="Receptive fields",
        )
    )
    records.append(MarkdownRecord("Extra block with $$\\sum_{i=1}^{n} i = \\frac{n(n+1)}{2}$$"))
    ex = Exercise(
        title="1. Sums",
        question="What is $\\sum_{i=1}^{n} i$?",
        answer="It is $\\frac{n(n+1)}{2} = 6$ for $n = 3$.\n\n| a | b |\n|---|---|\n| 1 | 2 |",
        records=records,
        metrics={"total": 6.0, "tiny": 1.5e-7},
        checks=[Check("sum formula", True, expected=6.0, actual=6.0, tolerance="±1e-09", points=2.0)],
    )
    result = LabResult(
        lab=name,
        title=f"Lab {name}",
        version="1",
        status=status,
        duration_s=1.25,
        profile="smoke",
        device="cpu",
        config={"steps": 3},
        notes=["A note with *emphasis* and $x^2$."],
        metrics={"total": 6.0, "tiny": 1.5e-7, "lab_only": 3},
        exercises=[ex],
    )
    result.save(lab_dir / "result.json")
    return result


def make_run(
    tmp_path: Path, *, labs: int = 1, figures: int = 1, png: bytes | None = None, report=None
) -> Path:
    """A run folder: ``labs`` passing labs, then a lab with a failing check, then one that raised."""
    run_dir = tmp_path / "reports" / "20261129-041000"
    run_dir.mkdir(parents=True)
    results = [make_lab(run_dir, f"lab{i}", figures=figures, png=png) for i in range(labs)]
    failing = LabResult(
        lab="counter",
        title=EVIL_TITLE,
        version="1",
        status="failed",
        duration_s=0.5,
        profile="smoke",
        exercises=[
            Exercise(
                title="1. Compare <i>x</i>",
                question="Is $x \\ge 0.5$? And $\\badmacro{x}$?",
                answer="No: $x = 0.1$.",
                checks=[
                    Check("value above threshold", False, expected="≥ 0.5", actual=0.1, points=3.0),
                    Check("always true", True, points=1.0),
                ],
            )
        ],
    )
    failing.save(run_dir / "counter" / "result.json")
    crashing = LabResult(
        lab="crashing",
        title="A lab that raises",
        version="1",
        status="error",
        duration_s=0.1,
        profile="smoke",
        error=LabError(
            "ZeroDivisionError",
            "division by zero",
            'Traceback (most recent call last):\n  File "lab.py", line 3, in run\n    1 / 0\nZeroDivisionError: division by zero\n',
        ),
    )
    crashing.save(run_dir / "crashing" / "result.json")
    results += [failing, crashing]
    write_json(
        run_dir / "run.json",
        {
            "labrunner": "0.1.0",
            "status": "finished",
            "started": "2026-11-29T04:10:00+00:00",
            "finished": "2026-11-29T04:12:00+00:00",
            "settings": {
                "profile": "smoke",
                "device": "cpu",
                "seed": 0,
                "deterministic": False,
                "config_file": "",
                "report": report
                if report is not None
                else {
                    "title": "Assignment 2",
                    "course": "Deep Learning",
                    "author": "Ada",
                    "student_id": "12345",
                },
                "labs": [r.lab for r in results],
            },
            "environment": {
                "labrunner": "0.1.0",
                "python": "3.11.2",
                "torch": "2.14.1",
                "torchvision": "0.29.1",
                "platform": "Linux",
                "cpu": "Test CPU",
                "cpu_count": 2,
                "gpu": None,
                "git": {"commit": "abc123", "dirty": True},
            },
            "labs": [
                {"lab": r.lab, "status": r.status, "duration_s": r.duration_s, "cached": False}
                for r in results
            ],
            "config": {r.lab: r.config for r in results},
        },
    )
    (run_dir / "config.yaml").write_text("profile: smoke\nseed: 0\nlabs:\n  lab0:\n    steps: 3\n")
    return run_dir
