"""The lab's run: load the corpus, train the models, answer Q2.1-Q2.5 from measurements."""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass

import matplotlib
import matplotlib.ticker

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

import labrunner  # noqa: E402
from labrunner.data import DataError  # noqa: E402

from . import corpus as corpora  # noqa: E402
from . import text  # noqa: E402
from .model import (  # noqa: E402
    History,
    LSTMLanguageModel,
    TrainConfig,
    UnknownWordError,
    WordVectors,
    backward_memory,
    batchify,
    cosine_distance,
    distinct_n,
    pca_2d,
    repetition_rate,
    sample_ids,
    segment_starts,
    train_model,
)

MODE_LABELS = {"teacher": "teacher forcing", "free": "free running", "scheduled": "scheduled sampling"}


@dataclass
class Trained:
    model: LSTMLanguageModel
    history: History


def load_corpus(ctx: labrunner.LabContext) -> corpora.Corpus:
    """The corpus the config names (synthetic, PTB, or a folder)."""
    cfg = ctx.config
    if cfg.corpus == "synthetic":
        return corpora.synthetic_corpus(
            ctx.seed, cfg.synthetic_tokens, cfg.synthetic_vocab, cfg.synthetic_zipf, cfg.synthetic_end_prob
        )
    if cfg.corpus == "ptb":
        if cfg.corpus_path:
            return corpora.load_folder(cfg.corpus_path, corpora.PTB_FILES)
        folder = ctx.cache_dir / "ptb"
        if not all((folder / n).is_file() for n in corpora.PTB_FILES.values()) and not cfg.download:
            raise DataError(
                f"PTB is not in the cache ({folder}) and download is off: set corpus_path to a folder "
                "with ptb.train.txt, ptb.valid.txt and ptb.test.txt, or download: true"
            )
        return corpora.load_folder(
            corpora.fetch_ptb(ctx.cache_dir, cfg.ptb_url, cfg.ptb_sha256), corpora.PTB_FILES
        )
    return corpora.load_folder(cfg.corpus)


def run_experiment(ctx: labrunner.LabContext) -> None:
    cfg = ctx.config
    device = ctx.device
    corpus = load_corpus(ctx)
    vocab = len(corpus.dictionary)
    train = batchify(corpus.train, cfg.batch_size, device)
    valid = batchify(corpus.valid, cfg.batch_size, device)
    ctx.note(
        text.NOTE,
        source=corpus.source,
        vocab=vocab,
        n_train=len(corpus.train),
        n_valid=len(corpus.valid),
        optimal_ppl=corpus.optimal_ppl,
        sha256=corpus.sha256,
        pinned=bool(cfg.ptb_sha256),
        md5_checked=cfg.corpus == "ptb" and not cfg.corpus_path and cfg.ptb_url == corpora.PTB_BASE_URL,
        cfg=cfg,
        device=str(device),
    )

    def train_cfg(mode: str, **kw) -> TrainConfig:
        return TrainConfig(
            epochs=kw.pop("epochs", cfg.epochs),
            batch_size=cfg.batch_size,
            seq_len=cfg.seq_len,
            lr=cfg.lr,
            clip=cfg.clip,
            mode=mode,
            evals_per_epoch=kw.pop("evals_per_epoch", cfg.evals_per_epoch),
            **kw,
        )

    resumed: list[str] = []

    def fit(mode: str, seed: int, tag: str = "", **kw) -> Trained:
        tc = train_cfg(mode, **kw)
        torch.manual_seed(seed)
        model = LSTMLanguageModel(vocab, cfg.embedding_dim, cfg.hidden_size).to(device)
        steps = tc.epochs * len(segment_starts(train.shape[1], tc.seq_len * tc.bptt_window))
        name = f"{tag or mode}_seed{seed}"
        with ctx.progress(
            total=steps, desc=f"{MODE_LABELS.get(mode, mode)} {tag} seed {seed}".replace("  ", " ")
        ) as bar:
            hist = train_model(
                model,
                train,
                valid,
                tc,
                checkpoint=ctx.state_dir / f"{name}.pt",
                progress=lambda n, post: bar.update(n, **post),
                log=ctx.log,
                generator=torch.Generator().manual_seed(seed + 7919),
            )
        if hist.resumed_from_epoch:
            resumed.append(f"`{name}` after epoch {hist.resumed_from_epoch} of {tc.epochs}")
        return Trained(model, hist)

    # ---------------------------------------------------------------- the assignment's model
    _warm_up(vocab, cfg, train, device)
    main = fit("teacher", ctx.seed)
    h = main.history
    with ctx.exercise("Training the language model", question=text.TRAIN_Q) as ex:
        ex.table(
            [
                [s, round(sec, 2), round(loss, 4), round(math.exp(loss), 2), round(ppl, 2)]
                for s, sec, loss, ppl in zip(h.steps, h.seconds, h.train_loss, h.valid_ppl, strict=False)
            ],
            columns=["step", "train time (s)", "train loss", "train ppl", "valid ppl"],
            caption="Teacher-forced training; validation perplexity measured during training.",
        )
        ex.metric("train_tokens_per_s", h.tokens_per_s)
        ex.metric("valid_ppl", h.valid_ppl[-1])
        ex.metric("train_ppl", math.exp(h.train_loss[-1]))
        if corpus.optimal_ppl is not None:
            ex.metric("optimal_ppl", corpus.optimal_ppl)
            ex.check_at_least(
                "valid_ppl_not_below_optimum", h.valid_ppl[-1], 0.97 * corpus.optimal_ppl, points=1
            )
        ex.check_at_most("valid_ppl_below_uniform", h.valid_ppl[-1], float(vocab), points=1)
        ex.check_equal(
            "checkpoint_per_epoch",
            (ctx.state_dir / f"teacher_seed{ctx.seed}.pt").is_file() and h.epochs_done == cfg.epochs,
            True,
            points=1,
        )
        ex.answer(
            text.TRAIN_A,
            valid_ppl=h.valid_ppl[-1],
            first_ppl=h.valid_ppl[0],
            train_ppl=math.exp(h.train_loss[-1]),
            optimal_ppl=corpus.optimal_ppl,
            entropy=corpus.entropy,
            tokens_per_s=h.tokens_per_s,
            epochs=cfg.epochs,
            vocab=vocab,
        )

    # ---------------------------------------------------------------- Q2.1
    with ctx.exercise("Q2.1 Detach or not", question=text.Q21) as ex:
        k = cfg.bptt_window
        runs = {
            "truncated": fit("teacher", ctx.seed, "tbptt", epochs=cfg.detach_epochs, evals_per_epoch=1),
            "full": fit(
                "teacher", ctx.seed, f"bptt{k}", epochs=cfg.detach_epochs, evals_per_epoch=1, bptt_window=k
            ),
        }
        n_seg = train.shape[1] // cfg.seq_len
        mem = {}
        for kind, win in (("truncated", 1), ("full", k)):
            span = min(win * cfg.seq_len, train.shape[1] - 1)
            mem[kind] = backward_memory(runs[kind].model, train[:, :span], train[:, 1 : span + 1])
        rows, vals = [], {}
        for kind, win in (("truncated", 1), ("full", k)):
            hist = runs[kind].history
            updates = hist.steps[-1]
            vals[kind] = {
                "s_per_update": hist.train_seconds / updates,
                "us_per_token": 1e6 / hist.tokens_per_s,
                "saved_mb": mem[kind]["saved_bytes"] / 2**20,
                "cuda_mb": mem[kind].get("cuda_peak_bytes", float("nan")) / 2**20,
                "ppl": hist.valid_ppl[-1],
                "updates": updates,
            }
            v = vals[kind]
            rows.append(
                [
                    "truncated (detach every segment)" if win == 1 else f"full BPTT over {k} segments",
                    win * cfg.seq_len,
                    updates,
                    round(v["s_per_update"] * 1e3, 2),
                    round(v["us_per_token"], 2),
                    round(v["saved_mb"], 3),
                    round(v["cuda_mb"], 2) if device.type == "cuda" else "n/a (CPU)",
                    round(v["ppl"], 2),
                ]
            )
        ex.figure(_unrolled_graph_figure(k), "bptt_graph", caption=text.GRAPH_CAPTION)
        ex.table(
            rows,
            columns=[
                "training",
                "tokens per backward",
                "updates",
                "ms per update",
                "us per token",
                "saved for backward (MiB)",
                "CUDA peak (MiB)",
                "valid ppl",
            ],
            caption=f"The same data ({cfg.detach_epochs} epoch(s), {n_seg} segments per row of the batch) "
            "with and without detaching the state.",
        )
        ratio_mem = vals["full"]["saved_mb"] / vals["truncated"]["saved_mb"]
        ratio_time = vals["full"]["s_per_update"] / vals["truncated"]["s_per_update"]
        ex.metric("saved_bytes_truncated", mem["truncated"]["saved_bytes"])
        ex.metric("saved_bytes_full_bptt", mem["full"]["saved_bytes"])
        ex.metric("saved_bytes_ratio", ratio_mem)
        ex.metric("time_per_update_ratio", ratio_time)
        ex.metric("valid_ppl_full_bptt", vals["full"]["ppl"])
        ex.check_at_least("full_bptt_saves_more_for_backward", ratio_mem, 1.5, points=1)
        ex.answer(
            text.A21,
            k=k,
            seq=cfg.seq_len,
            t=vals["truncated"],
            f=vals["full"],
            ratio_mem=ratio_mem,
            ratio_time=ratio_time,
            cuda=device.type == "cuda",
        )

    # ---------------------------------------------------------------- Q2.2
    with ctx.exercise("Q2.2 Sampling", question=text.Q22) as ex:
        methods = [
            ("multinomial", {}, "multinomial (T = 1)"),
            ("greedy", {}, "greedy (argmax)"),
            ("temperature", {"temperature": cfg.temperature}, f"temperature T = {cfg.temperature}"),
            ("top_k", {"top_k": cfg.top_k}, f"top-k, k = {cfg.top_k}"),
            ("top_p", {"top_p": cfg.top_p}, f"top-p (nucleus), p = {cfg.top_p}"),
        ]
        eos = corpus.dictionary.index[corpora.EOS]
        rows, samples, stats = [], [], {}
        for i, (method, kw, label) in enumerate(methods):
            gen = torch.Generator().manual_seed(ctx.seed * 1000 + i)
            ids, mean_logp = sample_ids(main.model, eos, cfg.sample_tokens, method, gen, **kw)
            words = corpus.dictionary.decode(ids)
            st = {
                "d1": distinct_n(words, 1),
                "d2": distinct_n(words, 2),
                "rep": repetition_rate(words),
                "logp": mean_logp,
            }
            stats[method] = st
            rows.append(
                [label, round(st["d1"], 3), round(st["d2"], 3), round(st["rep"], 3), round(st["logp"], 3)]
            )
            samples.append((label, " ".join(words).replace(" <eos> ", " <eos>\n")))
            ex.metric(f"distinct2_{method}", st["d2"])
            ex.metric(f"mean_logprob_{method}", st["logp"])
        ex.table(
            rows,
            columns=[
                "decoding",
                "distinct-1",
                "distinct-2",
                "repetition rate (4-grams)",
                "mean log p (nats/token)",
            ],
            caption=f"{cfg.sample_tokens} tokens each, starting after <eos>; log-probabilities under the untempered model.",
        )
        ex.markdown(text.SAMPLES, samples=samples)
        ex.check_at_least(
            "greedy_more_likely_than_multinomial",
            stats["greedy"]["logp"],
            stats["multinomial"]["logp"],
            points=1,
        )
        ex.answer(text.A22, s=stats, cfg=cfg, entropy=corpus.entropy)

    # ---------------------------------------------------------------- Q2.3
    word_a, word_b = cfg.distance_words
    vectors = WordVectors.of(main.model, corpus.dictionary.words)
    with ctx.exercise("Q2.3 Embedding distance", question=text.Q23) as ex:
        try:
            dist = cosine_distance(vectors, word_a, word_b)
        except UnknownWordError as exc:
            ctx.log(str(exc), level="warning")
            dist = float("nan")
        ex.metric("distance_army_taxpayer", dist)
        counts = corpus.counts()
        probe = [w for w in (word_a, word_b, "company", "the", "said", "N") if w in corpus.dictionary]
        ex.table(
            [
                [
                    w,
                    int(counts[corpus.dictionary.index[w]]),
                    ", ".join(f"{n} ({d:.2f})" for n, d in vectors.nearest(w, cfg.neighbours)),
                ]
                for w in probe
            ],
            columns=["word", "training count", f"{cfg.neighbours} nearest by cosine distance"],
            caption="Nearest neighbours in the teacher-forced model's embedding space.",
        )
        frequent = [w for w in corpus.dictionary.words[: cfg.pca_words] if w not in (corpora.UNK,)]
        extra = [w for w in (word_a, word_b) if w in corpus.dictionary and w not in frequent]
        shown = frequent + extra
        xy = pca_2d(np.stack([vectors.vector(w) for w in shown]))
        ex.figure(
            _pca_figure(shown, xy, corpus), "embedding_pca", caption=text.PCA_CAPTION.format(n=len(shown))
        )
        ex.check(
            "distance_in_range", bool(math.isnan(dist) or 0.0 <= dist <= 2.0), expected="[0, 2]", actual=dist
        )
        purity = _neighbour_purity(vectors, corpus) if corpus.source == "synthetic" else None
        if purity is not None:
            ex.metric("neighbour_class_purity", purity[0])
        ex.answer(text.A23, a=word_a, b=word_b, dist=dist, purity=purity, k=cfg.neighbours)

    # ---------------------------------------------------------------- Q2.4
    free = fit("free", ctx.seed)
    sched = fit("scheduled", ctx.seed)
    models = {"teacher": main, "free": free, "scheduled": sched}
    with ctx.exercise("Q2.4 Teacher forcing", question=text.Q24) as ex:
        ex.figure(
            _curves_figure(models, corpus.optimal_ppl), "teacher_forcing_curves", caption=text.CURVES_CAPTION
        )
        rows, res = [], {}
        for mode, tr in models.items():
            hh = tr.history
            res[mode] = {
                "ppl": hh.valid_ppl[-1],
                "time": hh.train_seconds,
                "tps": hh.tokens_per_s,
                "best": min(hh.valid_ppl),
            }
            rows.append(
                [
                    MODE_LABELS[mode],
                    round(hh.valid_ppl[-1], 2),
                    round(min(hh.valid_ppl), 2),
                    round(hh.train_seconds, 2),
                    round(hh.tokens_per_s),
                ]
            )
        ex.table(
            rows,
            columns=["training", "final valid ppl", "best valid ppl", "train time (s)", "tokens/s"],
            caption="Validation perplexity is always measured with teacher forcing (the standard perplexity).",
        )
        cost = res["teacher"]["tps"] / res["free"]["tps"]
        ex.metric("free_running_tokens_per_s", res["free"]["tps"])
        ex.metric("scheduled_sampling_tokens_per_s", res["scheduled"]["tps"])
        ex.metric("valid_ppl_free_running", res["free"]["ppl"])
        ex.metric("valid_ppl_scheduled_sampling", res["scheduled"]["ppl"])
        ex.metric("free_running_cost_per_token", cost)
        ex.check_at_most("teacher_forcing_no_worse", res["teacher"]["ppl"], res["free"]["ppl"], points=1)
        ex.answer(text.A24, r=res, cost=cost, optimal_ppl=corpus.optimal_ppl)

    # ---------------------------------------------------------------- Q2.5
    with ctx.exercise("Q2.5 Distance under each training", question=text.Q25) as ex:
        seeds = [ctx.seed + i for i in range(cfg.distance_seeds)]
        dists: dict[str, list[float]] = {mode: [] for mode in models}
        for s in seeds:
            for mode in dists:
                tr = models[mode] if s == ctx.seed else fit(mode, s)
                v = WordVectors.of(tr.model, corpus.dictionary.words)
                try:
                    dists[mode].append(cosine_distance(v, word_a, word_b))
                except UnknownWordError:
                    dists[mode].append(float("nan"))
        summary = {m: _mean_sd(d) for m, d in dists.items()}
        ex.table(
            [[s] + [round(dists[m][i], 4) for m in dists] for i, s in enumerate(seeds)]
            + [["mean ± sd"] + [f"{summary[m][0]:.4f} ± {summary[m][1]:.4f}" for m in dists]],
            columns=["seed"] + [MODE_LABELS[m] for m in dists],
            caption=f"Cosine distance between '{word_a}' and '{word_b}'.",
        )
        diff = summary["free"][0] - summary["teacher"][0]
        spread = math.sqrt(summary["teacher"][1] ** 2 + summary["free"][1] ** 2)
        ex.metric("distance_army_taxpayer_free_running", dists["free"][0])
        ex.metric("distance_mean_teacher", summary["teacher"][0])
        ex.metric("distance_mean_free_running", summary["free"][0])
        ex.metric("distance_sd_teacher", summary["teacher"][1])
        ex.metric("distance_sd_free_running", summary["free"][1])
        ex.metric("distance_mean_scheduled_sampling", summary["scheduled"][0])
        ex.metric("distance_sd_scheduled_sampling", summary["scheduled"][1])
        if all(w in corpus.dictionary for w in (word_a, word_b)):
            ex.check(
                "distances_finite",
                all(math.isfinite(d) for ds in dists.values() for d in ds),
                expected=True,
                actual=dists,
            )
        ex.answer(
            text.A25,
            a=word_a,
            b=word_b,
            t=summary["teacher"],
            f=summary["free"],
            ss=summary["scheduled"],
            diff=diff,
            spread=spread,
            n=len(seeds),
        )
    if resumed:
        ctx.note(text.RESUMED, resumed=resumed)


def _warm_up(vocab: int, cfg, train: torch.Tensor, device: torch.device) -> None:
    """A few throw-away steps of both trainers, so that the first timed run does not pay
    for kernel selection and allocator growth."""
    model = LSTMLanguageModel(vocab, cfg.embedding_dim, cfg.hidden_size).to(device)
    part = train[:, : 2 * cfg.seq_len + 1]
    for mode in ("teacher", "free"):
        tc = TrainConfig(epochs=1, batch_size=cfg.batch_size, seq_len=cfg.seq_len, mode=mode)
        train_model(model, part, part, tc)


def _mean_sd(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def _word_classes(corpus: corpora.Corpus) -> dict[str, str]:
    """The grammatical class of each word of the synthetic corpus (empty for other corpora)."""
    if corpus.source != "synthetic":
        return {}
    classes = {w: c for c, ws in corpora.SEED_WORDS.items() for w in ws}
    classes.update({"N": "NUM", corpora.EOS: "EOS"})
    for w in corpus.dictionary.words:
        for c in ("noun", "verb", "adj", "adv"):
            if w.startswith(c) and w[len(c) :].isdigit():
                classes[w] = c.upper()
    return classes


def _neighbour_purity(vectors: WordVectors, corpus: corpora.Corpus) -> tuple[float, float]:
    """Share of open-class words whose nearest neighbour has the same grammatical class, and
    the share random neighbours would give."""
    cls = _word_classes(corpus)
    open_classes = ("NOUN", "VERB", "ADJ", "ADV")
    words = [w for w in corpus.dictionary.words if cls.get(w) in open_classes]
    hits = sum(cls.get(vectors.nearest(w, 1)[0][0]) == cls[w] for w in words)
    vocab = len(corpus.dictionary)
    shares = {c: sum(cls.get(x) == c for x in corpus.dictionary.words) / vocab for c in open_classes}
    chance = sum(shares[cls[w]] for w in words) / max(len(words), 1)
    return hits / max(len(words), 1), chance


def _unrolled_graph_figure(k: int):
    """The unrolled graph of two windows of segments, with the cuts detach() makes."""
    fig, ax = plt.subplots(figsize=(9, 3.2))
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
        f"Truncated BPTT cuts the graph at every segment; full BPTT keeps {k} segments connected", fontsize=10
    )
    return fig


def _pca_figure(words: list[str], xy: np.ndarray, corpus: corpora.Corpus):
    classes = _word_classes(corpus)
    fig, ax = plt.subplots(figsize=(7, 6))
    groups = sorted({classes.get(w, "word") for w in words})
    for i, group in enumerate(groups):
        idx = [j for j, w in enumerate(words) if classes.get(w, "word") == group]
        ax.scatter(xy[idx, 0], xy[idx, 1], s=10, color=plt.cm.tab10(i % 10), label=group.lower())
    for w, (x, y) in zip(words, xy, strict=True):
        ax.annotate(w, (x, y), fontsize=7, color="crimson" if w in ("army", "taxpayer") else "k")
    if len(groups) > 1:
        ax.legend(fontsize=8, title="class in the grammar", title_fontsize=8)
    ax.set_xlabel("PC 1")
    ax.set_ylabel("PC 2")
    ax.set_title(f"Embeddings of frequent words ({corpus.source})")
    return fig


def _curves_figure(models: dict[str, Trained], optimal_ppl: float | None):
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
    for mode, tr in models.items():
        hh = tr.history
        axes[0].plot(hh.steps, hh.valid_ppl, marker="o", label=MODE_LABELS[mode])
        axes[1].plot(hh.seconds, hh.valid_ppl, marker="o", label=MODE_LABELS[mode])
    for ax, xl in zip(axes, ("optimizer steps", "training wall time (s)"), strict=False):
        if optimal_ppl is not None:
            ax.axhline(optimal_ppl, color="grey", ls=":", label="best achievable (true entropy)")
        ax.set_xlabel(xl)
        ax.set_yscale("log")
        ax.yaxis.set_major_formatter(matplotlib.ticker.FormatStrFormatter("%g"))
        ax.yaxis.set_minor_formatter(matplotlib.ticker.FormatStrFormatter("%g"))
        ax.grid(alpha=0.3, which="both")
    axes[0].set_ylabel("validation perplexity (teacher-forced)")
    axes[1].legend(loc="upper right", fontsize=8)
    return fig
