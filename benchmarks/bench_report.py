"""Rendering speed: a run of 4 labs and 40 figures must render (HTML + Markdown) in under 2 s.

    python benchmarks/bench_report.py [--repeat 3]

Builds a synthetic run folder (tests/test_report.py's ``make_run``: 4 passing labs
with 10 figures each, plus a failing and an errored lab) with figures the size of
a typical matplotlib plot, then times ``render_report`` from a fresh interpreter
(so Jinja2, markdown-it and latex2mathml are imported and compiled inside the
measurement, as they are for ``labrunner report``). Prints the best time per format
and its ratio to the 2 s budget; exits 1 when over budget.
"""

from __future__ import annotations

import argparse
import io
import json
import random
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BUDGET_S = 2.0

CHILD = """
import json, sys, time
t0 = time.perf_counter()
from labrunner.report.render import render_report
t1 = time.perf_counter()
render_report(sys.argv[1], formats=sys.argv[2].split(","))
t2 = time.perf_counter()
print(json.dumps({"import_s": t1 - t0, "render_s": t2 - t1}))
"""


def figure_png(seed: int) -> bytes:
    """A plot-like PNG (~800x500, lines on white) of a realistic size, without matplotlib."""
    from PIL import Image, ImageDraw

    image = Image.new("RGB", (800, 500), "white")
    draw = ImageDraw.Draw(image)
    for k in range(4):
        points = [
            (x, 250 + int(180 * ((x * (k + 1) + seed * 37) % 200 - 100) / 100 * (1 - x / 900)))
            for x in range(0, 800, 4)
        ]
        draw.line(points, fill=(40 * k, 90, 200 - 40 * k), width=2)
    for x in range(0, 800, 80):
        draw.line([(x, 0), (x, 500)], fill=(230, 230, 230))
    rng = random.Random(seed)
    for _ in range(3000):  # a scatter, so the PNG is as large as a real plot's (~60 kB)
        x, y = rng.randrange(800), rng.randrange(500)
        draw.ellipse([x, y, x + 3, y + 3], fill=(rng.randrange(256), 60, 120))
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


def time_render(run_dir: Path, formats: str) -> dict[str, float]:
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, str(run_dir), formats], capture_output=True, text=True, check=True
    )
    return json.loads(proc.stdout)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT / "tests"))
    from test_report import make_run

    with tempfile.TemporaryDirectory() as tmp:
        run_dir = make_run(Path(tmp), labs=4, figures=10, png=figure_png(0))
        n_figures = len(list(run_dir.glob("*/figures/*.png")))
        size_mb = sum(p.stat().st_size for p in run_dir.glob("*/figures/*.png")) / 1e6
        print(
            f"run: {len(list(run_dir.glob('*/result.json')))} labs, {n_figures} figures ({size_mb:.1f} MB of PNG)"
        )
        worst = 0.0
        for formats in ("html", "md", "html,md"):
            runs = [time_render(run_dir, formats) for _ in range(args.repeat)]
            best = min(r["import_s"] + r["render_s"] for r in runs)
            render = min(r["render_s"] for r in runs)
            worst = max(worst, best)
            print(
                f"{formats:<8} {best:6.3f} s (imports {best - render:.3f} s + render {render:.3f} s)"
                f"  = {best / BUDGET_S:.2f} x the {BUDGET_S:g} s budget"
            )
        html_mb = (run_dir / "report.html").stat().st_size / 1e6
        print(f"report.html: {html_mb:.1f} MB")
    if worst > BUDGET_S:
        print(f"over budget: {worst:.2f} s > {BUDGET_S:g} s")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
