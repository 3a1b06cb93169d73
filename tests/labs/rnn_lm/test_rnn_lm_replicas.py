"""The seeds of one trainer trained as one batched model: each replica must be the model its
seed trains alone (initialisation, data order, optimiser, clipping, sampling coins), to
float tolerance, and its checkpoint must resume in the one-at-a-time trainer."""

from __future__ import annotations

import pytest
import torch
from labrunner.labs.rnn_lm import RnnLmLab, session
from labrunner.labs.rnn_lm import corpus as C
from labrunner.labs.rnn_lm import model as M
from labrunner.labs.rnn_lm import replicas as RP
from labrunner.labs.rnn_lm import training as TR
from torch import nn

from labrunner.testing import assert_checks_pass

pytestmark = pytest.mark.usefixtures("one_torch_thread")

SEEDS = [3, 5, 8]
E, H = 8, 16
#: After a few Adam steps, float rounding leaves differences around 1e-6.
ATOL = 1e-5


@pytest.fixture(scope="module")
def data():
    corpus = C.synthetic_corpus(0, 3000, 60)
    return M.batchify(corpus.train, 4)[:, :41], M.batchify(corpus.valid, 4), len(corpus.dictionary)


def fresh(seed: int, vocab: int) -> M.LSTMLanguageModel:
    torch.manual_seed(seed)  # as the lab's Lab.new_model
    return M.LSTMLanguageModel(vocab, E, H)


def generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed + 7919)


def config(mode: str, epochs: int = 1) -> TR.TrainConfig:
    # clip low enough that clipping acts on every step
    return TR.TrainConfig(
        epochs=epochs, batch_size=4, seq_len=5, lr=0.01, clip=0.1, mode=mode, evals_per_epoch=2
    )


def alone(seed: int, data, cfg: TR.TrainConfig, **kw) -> tuple[M.LSTMLanguageModel, TR.History]:
    train, valid, vocab = data
    model = fresh(seed, vocab)
    return model, TR.train_model(model, train, valid, cfg, generator=generator(seed), **kw)


def batched(seeds: list[int], data, cfg: TR.TrainConfig, **kw) -> tuple[list, list[TR.History]]:
    train, valid, vocab = data
    models = [fresh(s, vocab) for s in seeds]
    return models, RP.train_replicas(
        models, train, valid, cfg, generators=[generator(s) for s in seeds], **kw
    )


def max_difference(a: nn.Module, b: nn.Module) -> float:
    return max((p - q).abs().max().item() for p, q in zip(a.parameters(), b.parameters(), strict=True))


@pytest.mark.parametrize("mode", ["teacher", "free", "scheduled"])
def test_each_replica_is_its_seed_trained_alone(data, mode):
    cfg = config(mode)
    models, hists = batched(SEEDS, data, cfg)
    singles = {s: alone(s, data, cfg) for s in SEEDS}
    for seed, model, hist in zip(SEEDS, models, hists, strict=True):
        ref, ref_hist = singles[seed]
        assert max_difference(model, ref) < ATOL, f"seed {seed}"
        assert hist.steps == ref_hist.steps == [4, 8]
        assert hist.train_loss == pytest.approx(ref_hist.train_loss, abs=ATOL)
        for rows, ref_rows in zip(hist.valid_row_nll, ref_hist.valid_row_nll, strict=True):
            assert rows == pytest.approx(ref_rows, abs=ATOL)
        assert hist.train_tokens == ref_hist.train_tokens and hist.epochs_done == 1
    # the comparison can fail: a replica is far from another seed trained alone
    assert max_difference(models[0], singles[SEEDS[1]][0]) > 100 * ATOL


def test_swapped_seeds_are_told_apart(data):
    cfg = config("teacher")
    models, _ = batched(list(reversed(SEEDS)), data, cfg)
    assert max_difference(models[0], alone(SEEDS[0], data, cfg)[0]) > 100 * ATOL
    assert max_difference(models[-1], alone(SEEDS[0], data, cfg)[0]) < ATOL


def test_the_coins_of_scheduled_sampling_are_each_replicas_own(data):
    """A replica given another seed's generator ends elsewhere than its seed alone: the
    coins (not only the initialisation) are pinned."""
    train, valid, vocab = data
    cfg = config("scheduled")
    models = [fresh(s, vocab) for s in SEEDS]
    RP.train_replicas(models, train, valid, cfg, generators=[generator(s) for s in reversed(SEEDS)])
    assert max_difference(models[0], alone(SEEDS[0], data, cfg)[0]) > ATOL
    assert max_difference(models[1], alone(SEEDS[1], data, cfg)[0]) < ATOL  # the middle one kept its own


def test_clipping_is_per_replica_as_clip_grad_norm():
    torch.manual_seed(0)
    params = [torch.randn(3, 4, 5, requires_grad=True), torch.randn(3, 7, requires_grad=True)]
    (params[0].pow(2).sum() * torch.tensor(10.0) + params[1].sum()).backward()
    params[0].grad[2] *= 1e-4  # the last replica's norm below the threshold: left alone
    params[1].grad[2] *= 1e-4
    expected = []
    for r in range(3):
        own = [p.detach()[r].clone().requires_grad_() for p in params]
        for o, p in zip(own, params, strict=True):
            o.grad = p.grad[r].clone()
        nn.utils.clip_grad_norm_(own, 1.0)
        expected.append([o.grad for o in own])
    RP.clip_per_replica(params, 1.0)
    for r in range(3):
        for got, want in zip((p.grad[r] for p in params), expected[r], strict=True):
            torch.testing.assert_close(got, want)


def interrupt_after(steps: int):
    """A progress callback that stops training (as Ctrl-C does) at the given step."""
    done = []

    def progress(n: int, post: dict) -> None:
        done.extend([1] * n)
        if len(done) > steps:
            raise KeyboardInterrupt

    return progress


def test_a_replicas_checkpoint_resumes_alone(data, tmp_path):
    """Interrupted in the second epoch batched, finished one at a time from the checkpoints:
    the same as the whole training alone, so parameters, Adam's moments and the generator
    were saved in the one-at-a-time trainer's format."""
    seeds = SEEDS[:2]
    cfg = config("scheduled", epochs=2)
    paths = [tmp_path / f"scheduled_seed{s}.pt" for s in seeds]
    with pytest.raises(KeyboardInterrupt):
        batched(seeds, data, cfg, checkpoints=paths, progress=interrupt_after(8 + 3))
    train, valid, vocab = data
    for seed, path in zip(seeds, paths, strict=True):
        model = fresh(seed + 100, vocab)  # a different start: the checkpoint must replace it
        hist = TR.train_model(model, train, valid, cfg, checkpoint=path, generator=generator(0))
        ref, ref_hist = alone(seed, data, cfg)
        assert hist.resumed_from_epoch == 1 and hist.epochs_done == 2
        assert hist.steps == ref_hist.steps
        assert max_difference(model, ref) < ATOL


def test_replicas_resume_from_checkpoints_of_one_at_a_time(data, tmp_path):
    seeds = SEEDS[:2]
    cfg = config("scheduled", epochs=2)
    paths = [tmp_path / f"scheduled_seed{s}.pt" for s in seeds]
    for seed, path in zip(seeds, paths, strict=True):
        with pytest.raises(KeyboardInterrupt):
            alone(seed, data, cfg, checkpoint=path, progress=interrupt_after(8 + 3))
    models, hists = batched(seeds, data, cfg, checkpoints=paths)
    for seed, model, hist in zip(seeds, models, hists, strict=True):
        assert hist.resumed_from_epoch == 1 and len(hist.steps) == 4
        assert max_difference(model, alone(seed, data, cfg)[0]) < ATOL


def test_checkpoints_of_different_epochs_are_refused(data, tmp_path):
    path = tmp_path / "teacher_seed3.pt"
    alone(3, data, config("teacher"), checkpoint=path)
    with pytest.raises(RP.ResumeMismatch, match="different epochs"):
        batched([3, 5], data, config("teacher", epochs=2), checkpoints=[path, tmp_path / "teacher_seed5.pt"])


def test_what_keeps_one_model_at_a_time():
    cpu = torch.device("cpu")
    assert RP.batching_blocker(cpu, "fp32", False) == ""
    assert "cuda" in RP.batching_blocker(torch.device("cuda"), "fp32", False)
    assert "bf16" in RP.batching_blocker(cpu, "bf16", False)
    assert "deterministic" in RP.batching_blocker(cpu, "fp32", True)


@pytest.mark.slow
def test_the_lab_trains_the_other_seeds_batched(run_lab, monkeypatch):
    """With batch_seeds on, Q2.4's seeds besides the run's own are trained batched, one call
    per trainer, and the run passes; by default (off) nothing is batched."""
    calls = []

    def recorded(models, *args, **kwargs):
        calls.append((kwargs["checkpoints"][0].name, len(models)))
        return RP.train_replicas(models, *args, **kwargs)

    monkeypatch.setattr(session, "train_replicas", recorded)
    result = run_lab(RnnLmLab(), distance_seeds=3, timing_repeats=1, batch_seeds=True)
    assert_checks_pass(result)
    assert calls == [("teacher_seed1.pt", 2), ("free_seed1.pt", 2), ("scheduled_seed1.pt", 2)]
    calls.clear()
    assert_checks_pass(run_lab(RnnLmLab(), distance_seeds=3, timing_repeats=1))
    assert calls == []
