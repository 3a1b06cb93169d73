"""The lab end to end in the smoke profile, on the synthetic corpus and on a PTB-format folder;
every answer template rendered on both sides of each of its claims."""

from __future__ import annotations

import itertools
import math
import random
import re

import pytest
from conftest import write_ptb_folder
from labrunner.labs.rnn_lm import RnnLmLab

from labrunner.authoring.context import ExerciseRecorder, render_markdown
from labrunner.testing import assert_checks_pass, assert_metric, run_lab_in

REQUIRED = [
    "train_tokens_per_s",
    "teacher_forcing_tokens_per_s",
    "free_running_tokens_per_s",
    "free_running_cost_per_token",
    "valid_ppl",
    "valid_ppl_free_running",
    "optimal_ppl",
    "unigram_ppl",
    "distance_army_taxpayer",
    "distance_army_taxpayer_init",
    "distance_random_sd",
    "saved_bytes_ratio",
]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    """One smoke run, with every answer and Markdown template captured with its values and
    the claims it could see."""
    captured: list[tuple[str, dict, dict]] = []
    answer, markdown = ExerciseRecorder.answer, ExerciseRecorder.markdown

    def capture(original):
        def wrapper(self, template, **values):
            captured.append((template, {"cfg": self._lab.config, **values}, dict(self._lab.claims)))
            return original(self, template, **values)

        return wrapper

    tmp = tmp_path_factory.mktemp("rnn_lm")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LABRUNNER_CACHE_DIR", str(tmp / "cache"))
        mp.setattr(ExerciseRecorder, "answer", capture(answer))
        mp.setattr(ExerciseRecorder, "markdown", capture(markdown))
        from labrunner.testing import torch_threads

        with torch_threads(1):
            result = run_lab_in(RnnLmLab(), tmp / "run")
    return result, captured


BAD = [
    (re.compile(r"\b(nan|inf)\b", re.I), "a missing number"),
    (re.compile(r"\bNone\b(?! of)"), "a missing value"),
    (re.compile(r"\{\{|\{%|%\}"), "template syntax"),
    (re.compile(r"[a-z)][.!?][A-Z]"), "two sentences joined without a space"),
    (re.compile(r"\.\s*\.(?!\.)|\(\s*\)|\s[,.;:](?!\d)"), "an empty sentence or clause"),
]
#: Phrases that must never appear together in one answer.
CONTRADICTIONS = [
    ("The LSTM is better than the unigram model", "not measurably better than the unigram model"),
    ("still falling at the last measurement", "no longer fell measurably at the last"),
    ("It has not reached the optimum", "not measurably worse than the true"),
    ("Greedy decoding reaches the highest", "does not reach a measurably higher"),
    ("Teacher forcing is better than free running", "Free running is better than teacher"),
    ("training brought the two\nwords closer", "no conclusion about these two words"),
]


def check_text(text: str, where: str) -> None:
    assert text.strip(), f"{where}: empty"
    prose = re.sub(r"\$\$.*?\$\$|\$[^$]*\$|```.*?```|`[^`]*`", "X", text, flags=re.S)
    for pattern, what in BAD:
        m = pattern.search(prose)
        assert m is None, f"{where}: {what}: ...{prose[max(m.start() - 60, 0) : m.end() + 60]}..."
    for a, b in CONTRADICTIONS:
        assert not (a in text and b in text), f"{where}: says both {a!r} and {b!r}"


@pytest.mark.slow
def test_smoke_run_passes_with_the_required_metrics(smoke):
    result, _ = smoke
    assert_checks_pass(result)
    for name in REQUIRED:
        assert math.isfinite(assert_metric(result, name)), name
    assert_metric(result, "saved_bytes_ratio", at_least=1.0)
    assert [e.title.split()[0] for e in result.exercises[1:]] == ["Q2.1", "Q2.2", "Q2.3", "Q2.4", "Q2.5"]
    # the assignment's points for Problem 2, the last two a bonus; the training is no question
    assert [(e.points, e.bonus) for e in result.exercises] == [
        (None, False), (10, False), (7, False), (8, False), (2, True), (1, True)
    ]  # fmt: skip
    # smoke timings are sensible: the interleaved medians put free running within a small
    # factor of teacher forcing, never orders of magnitude apart
    assert 0.2 < result.metrics["free_running_cost_per_token"] < 20
    # honest about what was not done
    for ex in result.exercises:
        assert ex.fidelity == "stand-in"
        assert (
            "did not use Penn Treebank" in ex.fidelity_reason
            and "smaller than the assignment" in ex.fidelity_reason
        )
    assert "did not use Penn Treebank" in result.notes[0]
    # every formula converts, and no answer shows a missing number or an empty sentence
    from labrunner.report.mdmath import markdown_to_html

    texts = result.notes + [t for e in result.exercises for t in (e.question, e.answer)]
    for t in texts:
        assert "math-error" not in str(markdown_to_html(t)), t
    for e in result.exercises:
        check_text(e.answer, e.title)
        for c in e.claims:
            assert c.evidence and c.statement and "nan" not in c.evidence


@pytest.mark.slow
def test_every_template_renders_on_both_sides_of_each_claim(smoke):
    _, captured = smoke
    assert len(captured) >= 7
    rng = random.Random(0)
    for template, values, claims in captured:
        names = sorted(claims)
        referenced = {n for n in names if re.search(rf"claims\.{n}\b|_{n.split('_', 1)[-1]}\"\]", template)}
        bases = [dict(claims), dict.fromkeys(names, True), dict.fromkeys(names, False)]
        bases += [{n: rng.random() < 0.5 for n in names} for _ in range(20)]
        flipped_changes = dict.fromkeys(referenced, False)
        for base in bases:
            text = render_markdown(template, claims=base, **values)
            check_text(text, template[:40])
            for n in referenced:
                other = render_markdown(template, claims={**base, n: not base[n]}, **values)
                check_text(other, f"{template[:40]} with {n} flipped")
                flipped_changes[n] |= other != text
        silent = [n for n, changed in flipped_changes.items() if not changed]
        assert not silent, f"claims that never change the text: {silent}"


@pytest.mark.slow
def test_bf16_smoke_run_on_the_cpu(run_lab):
    from labrunner.labs.rnn_lm.training import cpu_runs_bf16_lstm

    result = run_lab(RnnLmLab(), precision="bf16", distance_seeds=1, timing_repeats=1)
    if not cpu_runs_bf16_lstm():  # refused in one line, as the lab's error
        assert result.status == "error"
        assert "oneDNN has no bf16 LSTM for this processor" in result.error.message
        return
    assert_checks_pass(result)
    assert "bf16" in result.notes[0]
    assert result.metrics["valid_ppl"] < result.metrics["unigram_ppl"] * 2


@pytest.mark.slow
def test_fp16_on_the_cpu_is_a_clear_error(run_lab):
    result = run_lab(RnnLmLab(), precision="fp16")
    assert result.status == "error"
    assert "fp16 needs a CUDA device" in result.error.message


def test_unknown_precision_is_a_config_error():
    from labrunner.base.errors import UsageError
    from labrunner.settings.labconfig import resolve_lab_config

    with pytest.raises(
        UsageError,
        match=r"--set: rnn_lm\.precision: expected one of 'fp32' \| 'bf16' \| 'fp16', got str 'fp8'",
    ):
        resolve_lab_config(RnnLmLab(), "smoke", [("--set", {"precision": "fp8"})])
    for key, value, bound in (("epochs", 0, ">= 1"), ("bptt_window", 1, ">= 2"), ("top_p", 1.5, "<= 1.0")):
        with pytest.raises(UsageError, match=f"rnn_lm.{key} must be {bound}"):
            resolve_lab_config(RnnLmLab(), "smoke", [("--set", {key: value})])


@pytest.mark.slow
def test_runs_on_a_ptb_format_folder(run_lab, tmp_path):
    folder = write_ptb_folder(tmp_path / "corpus")
    result = run_lab(
        RnnLmLab(),
        corpus=str(folder),
        distance_seeds=2,
        epochs=1,
        pca_words=10,
        batch_size=4,
        seq_len=10,
        timing_repeats=1,
    )
    assert_checks_pass(result)
    assert "optimal_ppl" not in result.metrics and "unigram_ppl" in result.metrics
    assert 0.0 <= result.metrics["distance_army_taxpayer"] <= 2.0
    assert "did not use Penn Treebank" in result.exercises[0].fidelity_reason
    for e in result.exercises:
        check_text(e.answer, e.title)


@pytest.mark.slow
def test_other_distance_words_name_the_metrics(run_lab):
    result = run_lab(RnnLmLab(), distance_words=["company", "market"], distance_seeds=1, timing_repeats=1)
    assert_checks_pass(result)
    assert "distance_company_market_init" in result.metrics
    assert "distance_army_taxpayer" not in result.metrics
    q23 = result.exercises[3]
    assert '"company" and "market"' in q23.question and "army" not in q23.answer


def test_a_missing_corpus_folder_is_a_clear_error(run_lab, tmp_path):
    result = run_lab(RnnLmLab(), corpus=str(tmp_path / "nowhere"))
    assert result.status == "error"
    assert "missing train.txt" in result.error.message


@pytest.mark.slow
def test_an_interrupted_run_resumes_from_its_checkpoints(run_lab, monkeypatch):
    from labrunner.labs.rnn_lm import bptt

    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    # Ctrl-C during Q2.1, after the main model finished training
    with monkeypatch.context() as m:
        m.setattr(bptt, "backward_memory", interrupt)
        with pytest.raises(KeyboardInterrupt):
            run_lab(RnnLmLab(), distance_seeds=1, timing_repeats=1)
    result = run_lab(RnnLmLab(), distance_seeds=1, timing_repeats=1)
    assert_checks_pass(result)
    note = next(n for n in result.notes if "continued from checkpoints" in n)
    assert "`teacher_seed0` after epoch 1 of 1" in note
    assert "free_seed0" not in note  # trained only after the interruption


@pytest.mark.slow
def test_full_profile_reads_ptb_from_corpus_path(run_lab, tmp_path):
    names = {split: f"ptb.{split}.txt" for split in ("train", "valid", "test")}
    folder = write_ptb_folder(tmp_path / "ptb", names, lines={"valid": 120, "test": 120})
    small = dict(
        embedding_dim=8,
        hidden_size=16,
        epochs=1,
        batch_size=4,
        seq_len=10,
        distance_seeds=1,
        timing_repeats=1,
    )
    result = run_lab(RnnLmLab(), profile="full", corpus_path=str(folder), **small)
    assert_checks_pass(result)
    assert "ptb.train.txt" in result.notes[0] and "ptb_sha256" in result.notes[0]
    # PTB itself, but a smaller model than the assignment's
    reason = result.exercises[0].fidelity_reason
    assert "Penn Treebank" not in reason and "smaller than the assignment" in reason


def test_ptb_without_cache_or_download_is_a_clear_error(run_lab):
    result = run_lab(RnnLmLab(), corpus="ptb", download=False)
    assert result.status == "error"
    assert "download is off" in result.error.message


def test_claim_names_cover_every_referenced_claim():
    # every claims.<name> a template reads is one the lab records (a typo would fail only
    # on the branch that reads it)
    import inspect

    from labrunner.labs.rnn_lm import (
        bptt,
        distances,
        embeddings,
        forcing,
        sampling,
        session,
        text,
        trained_model,
    )

    source = "".join(
        inspect.getsource(m) for m in (bptt, distances, embeddings, forcing, sampling, session, trained_model)
    )
    templates = "".join(v for v in vars(text).values() if isinstance(v, str))
    for name in set(re.findall(r"claims\.(\w+)", templates)):
        recorded = re.search(
            rf'"{name}"|f"{{m}}_{name.split("_", 1)[1]}"|f"{{mode}}_{name.split("_", 1)[1]}"', source
        )
        generic = any(
            name.startswith(p) and re.search(rf'f"{{\w+}}_{name[len(p) :]}"', source)
            for p in ("temperature_", "top_k_", "top_p_", "free_", "scheduled_", "teacher_")
        )
        assert recorded or generic, name
    assert list(itertools.islice(re.finditer(r"claims\.", templates), 1))
