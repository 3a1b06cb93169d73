"""A figure's legend never covers its data: printed, a legend over a curve or a photo hides
what the figure is there to show. The check draws the figure and looks for any line point,
patch edge, image or text of any axes inside a legend's box."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def _inside(box, points: np.ndarray) -> bool:
    x, y = points[:, 0], points[:, 1]
    return bool(np.any((x > box.x0) & (x < box.x1) & (y > box.y0) & (y < box.y1)))


def _densified(points: np.ndarray, per_segment: int = 25) -> np.ndarray:
    """The points of a polyline with ``per_segment`` more along each segment (a segment may
    cross a legend with both ends outside it)."""
    points = points[np.all(np.isfinite(points), axis=1)]
    if len(points) < 2:
        return points
    t = np.linspace(0, 1, per_segment, endpoint=False)[None, :, None]
    steps = points[:-1, None, :] + t * (points[1:, None, :] - points[:-1, None, :])
    return np.concatenate([steps.reshape(-1, 2), points[-1:]])


def legends_over_data(fig) -> list[str]:
    """What each legend of ``fig`` (of an axes or of the figure) covers: a line, a patch (a
    bar, a box, a histogram), an image or a text of any axes."""
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    legends = [ax.get_legend() for ax in fig.axes if ax.get_legend() is not None] + list(fig.legends)
    found = []
    for legend in legends:
        box = legend.get_window_extent(renderer)
        for ax in fig.axes:
            for line in ax.get_lines():
                if _inside(box, _densified(line.get_transform().transform(line.get_xydata()))):
                    found.append(f"line {line.get_label()!r}")
            for patch in ax.patches:
                edge = patch.get_transform().transform(patch.get_path().vertices)
                if _inside(box, _densified(edge)):
                    found.append(f"patch {patch.get_label()!r}")
            for image in ax.get_images():
                if box.overlaps(image.get_window_extent(renderer)):
                    found.append("an image")
            for text in ax.texts:
                if text.get_text() and box.overlaps(text.get_window_extent(renderer)):
                    found.append(f"text {text.get_text()!r}")
    plt.close(fig)
    return found


def test_the_check_finds_a_legend_over_a_curve_and_an_image():
    fig, (left, right) = plt.subplots(1, 2)
    x = np.linspace(0, 1, 50)
    left.plot(x, np.full_like(x, 0.5), label="flat")
    left.legend(loc="center")
    right.imshow(np.zeros((8, 8)))
    right.plot([0, 1], [0, 1], label="diagonal")
    right.legend(loc="upper right")
    found = legends_over_data(fig)
    assert "line 'flat'" in found and "an image" in found


def test_rnn_lm_curves_and_seed_lines_keep_their_legends_off_the_data():
    """Q2.4's learning curves (the legend covered the free-running curve) and Q2.5's
    distance per seed (it covered the highest seed's line), with the quick run's numbers."""
    from labs.rnn_lm import figures

    steps = [33, 66, 99, 132, 165, 198]
    curves = {
        "teacher forcing": (steps, [0.6, 1.0, 1.5, 1.9, 2.4, 2.8], [52.0, 37.5, 30.2, 26.0, 24.3, 23.2]),
        "free running": (steps, [0.8, 1.6, 2.4, 3.2, 4.0, 4.9], [60.0, 59.3, 59.0, 58.3, 58.0, 57.2]),
        "scheduled sampling": (steps, [0.8, 1.5, 2.3, 3.0, 3.8, 4.6], [52.5, 38.6, 34.5, 33.8, 33.9, 36.3]),
    }
    refs = {"unigram model": 57.5, "true grammar (best achievable)": 21.8}
    assert legends_over_data(figures.learning_curves(curves, refs)) == []
    init = [1.06, 1.02, 1.17, 1.05, 0.92, 0.78, 0.82, 1.11]
    final = {name: [v + 0.02 * k for v in init] for k, name in enumerate(("teacher forcing", "free running"))}
    final["scheduled sampling"] = [v + 0.12 for v in init]  # one seed reaches the top edge
    assert (
        legends_over_data(figures.paired_distances(list(range(8)), init, final, ("army", "taxpayer"))) == []
    )
