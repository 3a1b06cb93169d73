"""The lab's figures, each sized for an A4 page (at most about 7.5 inches wide)."""

from __future__ import annotations

import matplotlib.pyplot as plt
import matplotlib.ticker
import numpy as np

from . import corpus as corpora

#: Width of a figure that fills the text width of an A4 page, in inches.
PAGE_WIDTH = 7.5


def word_classes(corpus: corpora.Corpus) -> dict[str, str]:
    """The grammatical class of each word of the synthetic corpus (empty for other corpora)."""
    if corpus.grammar is None:
        return {}
    return {w: corpora.CLASSES[c] for w, (c, _) in corpus.grammar.word_table().items()}


def unrolled_graph(k: int):
    """The unrolled graph of three segments, with the cuts detach() makes."""
    fig, ax = plt.subplots(figsize=(PAGE_WIDTH, 2.8))
    n_seg, steps = 3, 3
    x = 0.0
    for s in range(n_seg):
        for t in range(steps):
            xi = x + t
            ax.add_patch(plt.Rectangle((xi - 0.3, 1.0), 0.6, 0.6, fc="#cfe2f3", ec="k"))
            ax.text(xi, 1.3, f"$h_{{{s * steps + t + 1}}}$", ha="center", va="center", fontsize=9)
            ax.annotate("", xy=(xi, 1.0), xytext=(xi, 0.4), arrowprops={"arrowstyle": "->"})
            ax.text(xi, 0.25, f"$x_{{{s * steps + t + 1}}}$", ha="center", fontsize=9)
            ax.annotate("", xy=(xi, 2.3), xytext=(xi, 1.6), arrowprops={"arrowstyle": "->"})
            ax.text(xi, 2.4, f"$L_{{{s * steps + t + 1}}}$", ha="center", fontsize=9)
            if t < steps - 1:
                ax.annotate("", xy=(xi + 0.7, 1.3), xytext=(xi + 0.3, 1.3), arrowprops={"arrowstyle": "->"})
        if s < n_seg - 1:
            xe = x + steps - 1
            ax.annotate(
                "",
                xy=(xe + 1.2, 1.3),
                xytext=(xe + 0.3, 1.3),
                arrowprops={"arrowstyle": "->", "ls": "--", "color": "grey"},
            )
            ax.plot([xe + 0.75] * 2, [0.1, 2.7], color="crimson", lw=2, ls="--")
            ax.text(
                xe + 0.75,
                2.8,
                "detach(): values pass,\ngradients stop",
                color="crimson",
                ha="center",
                fontsize=8,
            )
        x += steps + 0.5
    ax.set_xlim(-0.8, x - 0.2)
    ax.set_ylim(0, 3.3)
    ax.axis("off")
    ax.set_title(
        f"Truncated BPTT cuts the graph after every segment; a window of {k} segments cuts after every {k}th",
        fontsize=9,
    )
    return fig


def embedding_pca(words: list[str], xy: np.ndarray, corpus: corpora.Corpus, highlight: tuple[str, ...]):
    """The embeddings of ``words`` on their first two principal components, coloured by class."""
    classes = word_classes(corpus)
    fig, ax = plt.subplots(figsize=(PAGE_WIDTH * 0.8, 4.8))
    groups = sorted({classes.get(w, "word") for w in words})
    for i, group in enumerate(groups):
        idx = [j for j, w in enumerate(words) if classes.get(w, "word") == group]
        ax.scatter(xy[idx, 0], xy[idx, 1], s=10, color=plt.cm.tab10(i % 10), label=group.lower())
    for w, (x, y) in zip(words, xy, strict=True):
        ax.annotate(w, (x, y), fontsize=7, color="crimson" if w in highlight else "k")
    if len(groups) > 1:  # beside the axes: every corner holds words
        ax.legend(fontsize=8, title="class in the grammar", title_fontsize=8, loc="upper left",
                  bbox_to_anchor=(1.01, 1.0), frameon=False)  # fmt: skip
    ax.set_xlabel("PC 1")
    ax.set_ylabel("PC 2")
    ax.set_title(f"Embeddings of frequent words ({corpus.source})", fontsize=10)
    return fig


def learning_curves(curves: dict[str, tuple[list[int], list[float], list[float]]], refs: dict[str, float]):
    """Validation perplexity against steps and wall time, per trainer; ``refs`` are
    horizontal reference lines (the unigram model, the true grammar)."""
    fig, axes = plt.subplots(1, 2, figsize=(PAGE_WIDTH, 3.6), sharey=True, layout="constrained")
    for label, (steps, seconds, ppl) in curves.items():
        axes[0].plot(steps, ppl, marker="o", ms=3, label=label)
        axes[1].plot(seconds, ppl, marker="o", ms=3, label=label)
    for ax, xl in zip(axes, ("optimizer steps", "training wall time (s)"), strict=True):
        for (name, value), style in zip(refs.items(), (":", "--"), strict=False):
            ax.axhline(value, color="grey", ls=style, label=name)
        ax.set_xlabel(xl, fontsize=9)
        ax.set_yscale("log")
        ax.yaxis.set_major_formatter(matplotlib.ticker.FormatStrFormatter("%g"))
        ax.yaxis.set_minor_formatter(matplotlib.ticker.FormatStrFormatter("%g"))
        ax.tick_params(labelsize=8)
        ax.grid(alpha=0.3, which="both")
    axes[0].set_ylabel("validation perplexity", fontsize=9)
    # one legend for both panels, below them: inside, it covers the free-running curve
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncols=3, fontsize=7, frameon=False)
    return fig


def paired_distances(
    seeds: list[int], init: list[float], final: dict[str, list[float]], words: tuple[str, str]
):
    """Per seed, the pair's distance at initialisation and after each training, joined by lines."""
    fig, ax = plt.subplots(figsize=(PAGE_WIDTH * 0.8, 3.2))
    labels = ["initialised", *final]
    for i, s in enumerate(seeds):
        ys = [init[i]] + [final[m][i] for m in final]
        ax.plot(range(len(labels)), ys, marker="o", ms=4, alpha=0.8, label=f"seed {s}")
    ax.set_xticks(range(len(labels)), labels, fontsize=8)
    ax.set_ylabel(f"cosine distance {words[0]}–{words[1]}", fontsize=9)
    ax.grid(alpha=0.3)
    # beside the axes: above the lines, it covers the highest seed's
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    return fig
