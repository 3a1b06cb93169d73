"""Q2.2: the decoding methods, scored under the model and under the true grammar."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

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


def decoding_methods(cfg) -> dict[str, tuple[dict[str, Any], str]]:
    """The decoding methods Q2.2 compares: name -> (the sampler's arguments, the label)."""
    return {
        "multinomial": ({}, "multinomial (T = 1)"),
        "greedy": ({}, "greedy (argmax)"),
        "temperature": ({"temperature": cfg.temperature}, f"temperature T = {cfg.temperature}"),
        "top_k": ({"top_k": cfg.top_k}, f"top-k, k = {cfg.top_k}"),
        "top_p": ({"top_p": cfg.top_p}, f"top-p (nucleus), p = {cfg.top_p}"),
    }


#: The label of the reference: pieces of the validation text.
TRUE_TEXT = "validation text (the true distribution)"


@dataclass(frozen=True)
class Sampling:
    """What Q2.2 measured: per decoding method (and ``true_text``, pieces of the validation
    text), the scores of each sequence (:func:`sequence_scores`), and one example per method.
    Every comparison between methods is decided here."""

    #: Method -> its label, the decoding methods first, then ``true_text``.
    labels: dict[str, str]
    #: Method -> score -> one value per (distinct) sequence.
    per: dict[str, dict[str, list[float]]]
    #: (label, text) of each method's first sequence.
    examples: list[tuple[str, str]]
    n: int
    length: int
    #: Whether the corpus has a true grammar (the grammar's scores are measured).
    grammar: bool
    entropy: float | None

    @property
    def methods(self) -> list[str]:
        return [m for m in self.labels if m != "true_text"]

    @property
    def stats(self) -> dict[str, dict[str, tuple[float, float]]]:
        """Method -> score -> (mean, standard error) over its sequences."""
        return {m: {key: mean_se(vals) for key, vals in d.items()} for m, d in self.per.items()}

    def compare(self, key: str, a: str, b: str) -> Difference:
        return difference(self.per[a][key], self.per[b][key])

    def evidence(self, key: str, a: str, bs: list[str]) -> str:
        return "; ".join(f"{a} − {b}: {self.compare(key, a, b).text()}" for b in bs)

    @property
    def every_sampler_scored(self) -> bool:
        return all(math.isfinite(s["logp"][0]) for s in self.stats.values())


def measure_sampling(lab: Lab, main: Trained) -> Sampling:
    """Sample ``sample_count`` sequences of ``sample_tokens`` with each decoding method from the
    trained model (after <eos>, each method with its own seeded generator), and score them and
    as many pieces of the validation text of the same length."""
    cfg, ctx, corpus = lab.cfg, lab.ctx, lab.corpus
    methods = decoding_methods(cfg)
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
    labels = {m: label for m, (_, label) in methods.items()} | {"true_text": TRUE_TEXT}
    return Sampling(labels, per, examples, n, length, corpus.grammar is not None, corpus.entropy)


# --------------------------------------------------------------------------- recording


def record_sampling(ex: Any, m: Sampling) -> None:
    """Q2.2's table, samples, metrics, claims and check."""
    stats = m.stats
    columns = ["decoding", "model log p / token", "distinct-2", "4-gram repetition"]
    if m.grammar:
        columns += ["grammar log p / grammatical token", "ungrammatical tokens"]
    rows = []
    for method, s in stats.items():
        size = len(m.per[method]["logp"])
        row = [m.labels[method], pm(s["logp"], size), pm(s["d2"], size), pm(s["rep"], size)]
        if m.grammar:
            row += [
                pm(s["grammar_logp"], len(m.per[method]["grammar_logp"])),
                pm(s["errors"], size, pct=True),
            ]
        rows.append(row)
    ex.table(
        rows,
        columns=columns,
        caption=f"{m.n} sequences of {m.length} tokens per decoding method, each starting after <eos>: mean ± "
        "the 95 % interval over the sequences. Model log-probabilities are under the untempered model.",
    )
    ex.markdown(text.SAMPLES, samples=m.examples)
    for method in m.methods:
        ex.metric(f"distinct2_{method}", stats[method]["d2"][0])
        ex.metric(f"mean_logprob_{method}", stats[method]["logp"][0])
        if m.grammar:
            ex.metric(f"grammar_logprob_{method}", stats[method]["grammar_logp"][0])
            ex.metric(f"ungrammatical_share_{method}", stats[method]["errors"][0])
    ex.metric("mean_logprob_true_text", stats["true_text"]["logp"][0])
    record_sampling_claims(ex, m)
    ex.check(
        "every_sampler_scored",
        m.every_sampler_scored,
        expected="a finite mean log-probability for every sampler",
        actual={method: round(s["logp"][0], 4) for method, s in stats.items()},
        points=1,
    )


#: The decoding methods that draw at random with a reshaped distribution.
SAMPLED = ("temperature", "top_k", "top_p")


def record_sampling_claims(ex: Any, m: Sampling) -> None:
    """Greedy decoding against the samplers, the reshaped samplers against multinomial
    sampling, and (with a true grammar) the errors each makes: over independent sequences."""
    others = [method for method in m.methods if method != "greedy"]
    baseline = (
        f"{m.n} independent sequences per sampling method (greedy decoding: its distinct sequences, "
        f"{len(m.per['greedy']['logp'])}, a fixed value when only one); ± is the 95 % interval (Student's t)"
    )
    claims = [
        (
            "greedy_highest_model_logp",
            "logp", "greedy", others, "above",
            "greedy decoding reaches a higher mean log-probability under the model than every other sampler",
        ),
        (
            "greedy_loops",
            "rep", "greedy", [*others, "true_text"], "above",
            "greedy decoding repeats its 4-grams more than every sampler and than true text",
        ),
    ]  # fmt: skip
    for method in SAMPLED:
        label = m.labels[method]
        claims += [
            (
                f"{method}_more_likely_than_multinomial",
                "logp", method, ["multinomial"], "above",
                f"{label} samples are more likely under the model than multinomial samples",
            ),
            (
                f"{method}_less_repetitive_than_greedy",
                "rep", method, ["greedy"], "below",
                f"{label} repeats its 4-grams less than greedy decoding",
            ),
        ]  # fmt: skip
    for name, key, a, bs, side, statement in claims:
        holds = all(getattr(m.compare(key, a, b), side) for b in bs)
        ex.claim(name, holds, statement=statement, evidence=m.evidence(key, a, bs), baseline=baseline)
    if m.grammar:
        record_grammar_claims(ex, m, baseline)


def record_grammar_claims(ex: Any, m: Sampling, baseline: str) -> None:
    """The true grammar's verdict on the samples: ungrammatical tokens and likelihood."""
    ex.claim(
        "multinomial_makes_errors",
        m.compare("errors", "multinomial", "true_text").above,
        statement="multinomial sampling produces tokens the true grammar forbids",
        evidence=m.evidence("errors", "multinomial", ["true_text"]),
        baseline="true text, which has none; " + baseline,
    )
    for method in SAMPLED:
        ex.claim(
            f"{method}_fewer_errors",
            m.compare("errors", method, "multinomial").below,
            statement=f"{m.labels[method]} produces fewer ungrammatical tokens than multinomial sampling",
            evidence=m.evidence("errors", method, ["multinomial"]),
            baseline=baseline,
        )
    ex.claim(
        "multinomial_less_likely_than_true_text",
        m.compare("grammar_logp", "multinomial", "true_text").below,
        statement="under the true grammar, multinomial samples are less likely per grammatical token than "
        "true text (the model has not learned the true distribution)",
        evidence=m.evidence("grammar_logp", "multinomial", ["true_text"]),
        baseline=baseline,
    )


def answer_values(m: Sampling, setting: dict) -> dict[str, Any]:
    """The values the answer template (A22) is filled with."""
    return dict(
        s=m.stats,
        entropy=m.entropy,
        n=m.n,
        n_greedy=len(m.per["greedy"]["logp"]),
        labels=m.labels,
        setting=setting,
    )


@exercise_function
def q2_2_sampling(lab: Lab, main: Trained) -> None:
    ex = lab.exercise("Q2.2 Sampling", text.Q22, points=7)  # opened first: a stub below ends this exercise
    m = measure_sampling(lab, main)
    with ex:
        record_sampling(ex, m)
        # STUDENT ANSWER
        ex.answer(text.A22, **answer_values(m, lab.setting))


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
