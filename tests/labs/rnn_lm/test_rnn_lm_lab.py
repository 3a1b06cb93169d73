"""The lab end to end in the smoke profile, on the synthetic corpus and on a PTB-format folder."""

from __future__ import annotations

import math

import pytest
from labrunner.labs.rnn_lm import RnnLmLab

from labrunner.testing import assert_checks_pass, assert_metric

REQUIRED = [
    "train_tokens_per_s",
    "free_running_tokens_per_s",
    "valid_ppl",
    "valid_ppl_free_running",
    "optimal_ppl",
    "distance_army_taxpayer",
]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_smoke_run_passes_with_the_required_metrics(run_lab):
    result = run_lab(RnnLmLab())
    assert_checks_pass(result)
    for name in REQUIRED:
        assert math.isfinite(assert_metric(result, name))
    assert_metric(result, "valid_ppl", at_least=0.97 * result.metrics["optimal_ppl"])
    assert_metric(result, "saved_bytes_ratio", at_least=1.5)
    assert [e.title.split()[0] for e in result.exercises[1:]] == ["Q2.1", "Q2.2", "Q2.3", "Q2.4", "Q2.5"]
    # every formula of the questions and answers converts to MathML
    from labrunner.mdmath import markdown_to_html

    texts = result.notes + [t for e in result.exercises for t in (e.question, e.answer)]
    for t in texts:
        assert "math-error" not in str(markdown_to_html(t)), t


def test_runs_on_a_ptb_format_folder(run_lab, tmp_path):
    folder = tmp_path / "corpus"
    folder.mkdir()
    lines = ["the army said N <unk>", "a taxpayer sold the army", "the company said N"] * 40
    for split in ("train", "valid", "test"):
        (folder / f"{split}.txt").write_text("\n".join(lines[: 120 if split == "train" else 30]) + "\n")
    result = run_lab(
        RnnLmLab(), corpus=str(folder), distance_seeds=1, epochs=1, pca_words=10, batch_size=4, seq_len=10
    )
    assert_checks_pass(result)
    assert "optimal_ppl" not in result.metrics
    assert 0.0 <= result.metrics["distance_army_taxpayer"] <= 2.0


def test_a_missing_corpus_folder_is_a_clear_error(run_lab, tmp_path):
    result = run_lab(RnnLmLab(), corpus=str(tmp_path / "nowhere"))
    assert result.status == "error"
    assert "missing train.txt" in result.error["message"]


def test_an_interrupted_run_resumes_from_its_checkpoints(run_lab, monkeypatch):
    from labrunner.labs.rnn_lm import experiment

    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    # Ctrl-C during Q2.1, after the main model and the two Q2.1 models finished training
    with monkeypatch.context() as m:
        m.setattr(experiment, "backward_memory", interrupt)
        with pytest.raises(KeyboardInterrupt):
            run_lab(RnnLmLab())
    result = run_lab(RnnLmLab())
    assert_checks_pass(result)
    note = next(n for n in result.notes if "continued from checkpoints" in n)
    assert "`teacher_seed0` after epoch 1 of 1" in note
    assert "free_seed0" not in note  # trained only after the interruption


def test_full_profile_reads_ptb_from_corpus_path(run_lab, tmp_path):
    folder = tmp_path / "ptb"
    folder.mkdir()
    lines = ["the army said N <unk>", "a taxpayer sold the army", "the company said N"] * 40
    for name in ("ptb.train.txt", "ptb.valid.txt", "ptb.test.txt"):
        (folder / name).write_text("\n".join(lines) + "\n")
    small = dict(embedding_dim=8, hidden_size=16, epochs=1, batch_size=4, seq_len=10, distance_seeds=1)
    result = run_lab(RnnLmLab(), profile="full", corpus_path=str(folder), **small)
    assert_checks_pass(result)
    assert "ptb.train.txt" in result.notes[0] and "ptb_sha256" in result.notes[0]


def test_ptb_without_cache_or_download_is_a_clear_error(run_lab):
    result = run_lab(RnnLmLab(), corpus="ptb", download=False)
    assert result.status == "error"
    assert "download is off" in result.error["message"]
