"""Q2.2: the decoding methods, scored under the model and under the true grammar."""

from __future__ import annotations

import math

import numpy as np
import torch

from labrunner import exercise_function
from labrunner.stats import (
    Difference,
    mean_se,
    t_critical,
    unpaired,
)

from . import corpus as corpora
from . import text
from .model import (
    LSTMLanguageModel,
    distinct_n,
    repetition_rate,
    sample_ids,
)
from .session import Lab, Trained

# --------------------------------------------------------------------------- Q2.2


@exercise_function
def q2_2_sampling(lab: Lab, main: Trained) -> None:
    cfg, ctx, corpus = lab.cfg, lab.ctx, lab.corpus
    ex = lab.exercise("Q2.2 Sampling", text.Q22, points=7)  # opened first: a stub below ends this exercise
    methods = {
        "multinomial": ({}, "multinomial (T = 1)"),
        "greedy": ({}, "greedy (argmax)"),
        "temperature": ({"temperature": cfg.temperature}, f"temperature T = {cfg.temperature}"),
        "top_k": ({"top_k": cfg.top_k}, f"top-k, k = {cfg.top_k}"),
        "top_p": ({"top_p": cfg.top_p}, f"top-p (nucleus), p = {cfg.top_p}"),
    }
    eos = corpus.dictionary.index[corpora.EOS]
    n, length = cfg.sample_count, cfg.sample_tokens
    # the reference: true text, cut into as many pieces of the same length (as far as the split allows)
    pieces = [corpus.valid[i * length : (i + 1) * length] for i in range(min(n, len(corpus.valid) // length))]
    per: dict[str, dict[str, list[float]]] = {}
    examples = []
    for i, (method, (kw, label)) in enumerate(methods.items()):
        samples = sample_ids(
            main.model, eos, length, method, torch.Generator().manual_seed(ctx.seed * 1000 + i), n, **kw
        )
        ids, logp = samples.ids, samples.mean_logp()
        if method in DETERMINISTIC:  # n identical sequences are one sample, not n
            first = {tuple(seq): i for i, seq in reversed(list(enumerate(ids)))}
            keep = sorted(first.values())
            ids, logp = [ids[j] for j in keep], [logp[j] for j in keep]
        per[method] = sequence_scores(lab, ids, logp)
        words = corpus.dictionary.decode(samples.ids[0])
        examples.append((label, " ".join(words).replace(" <eos> ", " <eos>\n")))
    true_logp = [-float(x) for x in main_model_nll(lab, main.model, pieces)]
    per["true_text"] = sequence_scores(lab, [p.tolist() for p in pieces], true_logp, after=None)
    stats = {m: {key: mean_se(vals) for key, vals in d.items()} for m, d in per.items()}
    grammar = corpus.grammar is not None
    labels = {m: lab_ for m, (_, lab_) in methods.items()} | {
        "true_text": "validation text (the true distribution)"
    }
    columns = ["decoding", "model log p / token", "distinct-2", "4-gram repetition"]
    if grammar:
        columns += ["grammar log p / grammatical token", "ungrammatical tokens"]
    rows = []
    for m, s in stats.items():
        size = len(per[m]["logp"])
        row = [labels[m], pm(s["logp"], size), pm(s["d2"], size), pm(s["rep"], size)]
        if grammar:
            row += [pm(s["grammar_logp"], len(per[m]["grammar_logp"])), pm(s["errors"], size, pct=True)]
        rows.append(row)
    with ex:
        ex.table(
            rows,
            columns=columns,
            caption=f"{n} sequences of {length} tokens per decoding method, each starting after <eos>: mean ± "
            "the 95 % interval over the sequences. Model log-probabilities are under the untempered model.",
        )
        ex.markdown(text.SAMPLES, samples=examples)
        for m in methods:
            ex.metric(f"distinct2_{m}", stats[m]["d2"][0])
            ex.metric(f"mean_logprob_{m}", stats[m]["logp"][0])
            if grammar:
                ex.metric(f"grammar_logprob_{m}", stats[m]["grammar_logp"][0])
                ex.metric(f"ungrammatical_share_{m}", stats[m]["errors"][0])
        ex.metric("mean_logprob_true_text", stats["true_text"]["logp"][0])
        others = [m for m in methods if m != "greedy"]
        sampled = ["temperature", "top_k", "top_p"]

        def compare(key: str, a: str, b: str) -> Difference:
            return difference(per[a][key], per[b][key])

        def evidence(key: str, a: str, bs: list[str]) -> str:
            return "; ".join(f"{a} − {b}: {compare(key, a, b).text()}" for b in bs)

        sample_baseline = (
            f"{n} independent sequences per sampling method (greedy decoding: its distinct sequences, "
            f"{len(per['greedy']['logp'])}, a fixed value when only one); ± is the 95 % interval (Student's t)"
        )
        ex.claim(
            "greedy_highest_model_logp",
            all(compare("logp", "greedy", m).above for m in others),
            statement="greedy decoding reaches a higher mean log-probability under the model than every other sampler",
            evidence=evidence("logp", "greedy", others),
            baseline=sample_baseline,
        )
        ex.claim(
            "greedy_loops",
            all(compare("rep", "greedy", m).above for m in [*others, "true_text"]),
            statement="greedy decoding repeats its 4-grams more than every sampler and than true text",
            evidence=evidence("rep", "greedy", [*others, "true_text"]),
            baseline=sample_baseline,
        )
        for m in sampled:
            ex.claim(
                f"{m}_more_likely_than_multinomial",
                compare("logp", m, "multinomial").above,
                statement=f"{labels[m]} samples are more likely under the model than multinomial samples",
                evidence=evidence("logp", m, ["multinomial"]),
                baseline=sample_baseline,
            )
            ex.claim(
                f"{m}_less_repetitive_than_greedy",
                compare("rep", m, "greedy").below,
                statement=f"{labels[m]} repeats its 4-grams less than greedy decoding",
                evidence=evidence("rep", m, ["greedy"]),
                baseline=sample_baseline,
            )
        if grammar:
            ex.claim(
                "multinomial_makes_errors",
                compare("errors", "multinomial", "true_text").above,
                statement="multinomial sampling produces tokens the true grammar forbids",
                evidence=evidence("errors", "multinomial", ["true_text"]),
                baseline="true text, which has none; " + sample_baseline,
            )
            for m in sampled:
                ex.claim(
                    f"{m}_fewer_errors",
                    compare("errors", m, "multinomial").below,
                    statement=f"{labels[m]} produces fewer ungrammatical tokens than multinomial sampling",
                    evidence=evidence("errors", m, ["multinomial"]),
                    baseline=sample_baseline,
                )
            ex.claim(
                "multinomial_less_likely_than_true_text",
                compare("grammar_logp", "multinomial", "true_text").below,
                statement="under the true grammar, multinomial samples are less likely per grammatical token than "
                "true text (the model has not learned the true distribution)",
                evidence=evidence("grammar_logp", "multinomial", ["true_text"]),
                baseline=sample_baseline,
            )
        ex.check(
            "every_sampler_scored",
            all(math.isfinite(stats[m]["logp"][0]) for m in stats),
            expected="a finite mean log-probability for every sampler",
            actual={m: round(stats[m]["logp"][0], 4) for m in stats},
            points=1,
        )
        # STUDENT ANSWER
        ex.answer(
            text.A22,
            s=stats,
            entropy=corpus.entropy,
            n=n,
            n_greedy=len(per["greedy"]["logp"]),
            labels=labels,
            setting=lab.setting,
        )


def sequence_scores(
    lab: Lab, seqs: list[list[int]], model_logp: list[float], after: str | None = corpora.EOS
):
    """Per sequence: model log-probability per token, distinct-2, 4-gram repetition and,
    for the synthetic corpus, the true grammar's log-probability per grammatical token and
    the share of tokens it forbids. ``after``: the token the sequences start after (None:
    the first token is context only, as for pieces of true text)."""
    corpus = lab.corpus
    out: dict[str, list[float]] = {"logp": model_logp, "d2": [], "rep": []}
    if corpus.grammar is not None:
        out["grammar_logp"], out["errors"] = [], []
    for ids in seqs:
        words = corpus.dictionary.decode(ids)
        out["d2"].append(distinct_n(words, 2))
        out["rep"].append(repetition_rate(words))
        if corpus.grammar is None:
            continue
        arr = np.asarray(ids)
        if after is None:
            prev, cur = arr[:-1], arr[1:]
        else:
            prev, cur = np.concatenate([[corpus.dictionary.index[after]], arr[:-1]]), arr
        lp = corpus.grammar_logp(prev, cur)
        ok = np.isfinite(lp)
        out["grammar_logp"].append(float(lp[ok].mean()) if ok.any() else float("nan"))
        out["errors"].append(float(1 - ok.mean()))
    if "grammar_logp" in out:  # a sequence with no grammatical token has no grammar score
        out["grammar_logp"] = [x for x in out["grammar_logp"] if math.isfinite(x)] or [float("nan")]
    return out


@torch.no_grad()
def main_model_nll(lab: Lab, model: LSTMLanguageModel, pieces: list[np.ndarray]) -> list[float]:
    """Mean cross-entropy of each piece of true text under the model (first token as context)."""
    if not pieces:
        return [float("nan")]
    x = torch.as_tensor(np.stack(pieces), device=lab.ctx.device)
    model.eval()
    logits, _ = model(x[:, :-1], model.init_state(x.shape[0]))
    nll = torch.nn.functional.cross_entropy(logits.float().transpose(1, 2), x[:, 1:], reduction="none")
    model.train()
    return nll.mean(1).tolist()


#: Decoding methods without randomness: their identical sequences count once.
DETERMINISTIC = ("greedy",)


def difference(a: list[float], b: list[float]) -> Difference:
    """mean(a) - mean(b) with its standard error; a single value (a deterministic decoder's one
    distinct sequence) is a fixed number, so only the other side's spread counts."""
    if len(a) == 1 or len(b) == 1:
        fixed, other, sign = (a, b, 1.0) if len(a) == 1 else (b, a, -1.0)
        mean, se = mean_se(other)
        if len(other) < 2:
            return Difference(sign * (fixed[0] - mean), math.inf, 1)
        return Difference(sign * (fixed[0] - mean), se, len(other))
    return unpaired(a, b)


def pm(est: tuple[float, float], n: int, pct: bool = False) -> str:
    """``mean ± half-width of the 95 % interval`` for a mean and its standard error over n
    distinct values; one value has no interval (``-1.626 (one distinct sequence)``)."""
    mean, se = est
    if not math.isfinite(mean):
        return "—"
    if n < 2:
        return f"{100 * mean:.1f} % (one distinct sequence)" if pct else f"{mean:.3f} (one distinct sequence)"
    margin = t_critical(n) * se
    if pct:
        return f"{100 * mean:.1f} ± {100 * margin:.1f} %"
    return f"{mean:.3f} ± {margin:.3f}"
