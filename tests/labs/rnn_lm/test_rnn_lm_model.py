"""The model's maths on tiny inputs: samplers, distances, the trainers and their gradients."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from labrunner.labs.rnn_lm import model as M
from labrunner.labs.rnn_lm import training as TR
from torch import nn

from labrunner.precision import autocast

V, E, H, B, T = 11, 6, 8, 3, 5


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture
def lm():
    torch.manual_seed(0)
    return M.LSTMLanguageModel(V, E, H)


def tokens(seed=0, length=T):
    return torch.randint(0, V, (B, length), generator=torch.Generator().manual_seed(seed))


# ---------------------------------------------------------------- samplers


def test_greedy_puts_all_mass_on_the_argmax():
    probs = M.next_token_probs(torch.tensor([0.1, 2.0, -1.0]), "greedy")
    assert probs.tolist() == [0.0, 1.0, 0.0]


def test_temperature_sharpens_and_flattens():
    logits = torch.tensor([1.0, 2.0, 3.0])
    base = M.next_token_probs(logits, "multinomial")
    assert torch.allclose(base, torch.softmax(logits, 0))
    assert M.next_token_probs(logits, "temperature", temperature=0.5)[2] > base[2]
    assert M.next_token_probs(logits, "temperature", temperature=2.0)[2] < base[2]


def test_top_k_keeps_k_tokens_renormalised():
    logits = torch.log(torch.tensor([0.1, 0.4, 0.2, 0.3]))
    probs = M.next_token_probs(logits, "top_k", top_k=2)
    assert torch.allclose(probs, torch.tensor([0.0, 4 / 7, 0.0, 3 / 7]))


def test_top_p_keeps_the_smallest_set_reaching_p():
    logits = torch.log(torch.tensor([0.1, 0.4, 0.2, 0.3]))
    # 0.4 + 0.3 = 0.7 < 0.75, so 0.2 is needed too
    assert torch.allclose(M.next_token_probs(logits, "top_p", top_p=0.75), torch.tensor([0.0, 4, 2, 3]) / 9)
    assert torch.allclose(M.next_token_probs(logits, "top_p", top_p=0.7), torch.tensor([0.0, 4, 0, 3]) / 7)
    # a tiny p keeps the most likely token only
    assert M.next_token_probs(logits, "top_p", top_p=1e-6).tolist() == [0.0, 1.0, 0.0, 0.0]


def test_sampler_settings_are_checked():
    with pytest.raises(ValueError, match="unknown sampling method"):
        M.next_token_probs(torch.zeros(3), "beam")
    with pytest.raises(ValueError, match="top_p"):
        M.next_token_probs(torch.zeros(3), "top_p", top_p=0.0)


def test_sample_ids_is_seeded_and_greedy_is_deterministic(lm):
    a = M.sample_ids(lm, 0, 12, "multinomial", torch.Generator().manual_seed(1), n_samples=3)
    b = M.sample_ids(lm, 0, 12, "multinomial", torch.Generator().manual_seed(1), n_samples=3)
    assert a == b and len(a.ids) == 3 and all(len(ids) == 12 for ids in a.ids)
    assert all(lp < 0 for lp in a.mean_logp())
    # the recorded log-probabilities are the model's own, token by token
    with torch.no_grad():
        x = torch.tensor([[0] + a.ids[1][:-1]])
        logits, _ = lm(x, lm.init_state(1))
        expected = torch.log_softmax(logits[0].double(), -1).gather(1, torch.tensor(a.ids[1])[:, None])[:, 0]
    assert torch.allclose(torch.tensor(a.model_logp[1], dtype=torch.double), expected, atol=1e-5)
    g1 = M.sample_ids(lm, 0, 12, "greedy", torch.Generator().manual_seed(1), n_samples=2)
    g2 = M.sample_ids(lm, 0, 12, "greedy", torch.Generator().manual_seed(2), n_samples=2)
    assert g1 == g2 and g1.ids[0] == g1.ids[1]


def test_text_statistics():
    assert M.distinct_n(list("abab"), 1) == 0.5
    assert M.distinct_n(list("abab"), 2) == pytest.approx(2 / 3)
    assert M.repetition_rate(list("abcabcabc"), 3) == pytest.approx(4 / 7)
    assert M.repetition_rate(list("abcdefg")) == 0.0


# ---------------------------------------------------------------- embeddings


def test_cosine_distance_and_neighbours():
    vectors = M.WordVectors(np.array([[1.0, 0.0], [0.0, 2.0], [-3.0, 0.0], [1.0, 1.0]]), ["a", "b", "c", "d"])
    assert M.cosine_distance(vectors, "a", "b") == pytest.approx(1.0)
    assert M.cosine_distance(vectors, "a", "c") == pytest.approx(2.0)
    assert M.cosine_distance(vectors, "a", "a") == pytest.approx(0.0)
    assert M.cosine_distance(vectors, "a", "d") == pytest.approx(1 - 2**-0.5)
    assert [w for w, _ in vectors.nearest("a", 2)] == ["d", "b"]


def test_cosine_distance_rejects_unknown_words():
    vectors = M.WordVectors(np.eye(2), ["army", "navy"])
    with pytest.raises(M.UnknownWordError, match="unknown word 'taxpayer'"):
        M.cosine_distance(vectors, "army", "taxpayer")


def test_pca_2d_finds_the_main_direction():
    x = np.outer(np.arange(-5, 6), [3.0, 4.0, 0.0]) + 0.01 * np.random.default_rng(0).normal(size=(11, 3))
    xy = M.pca_2d(x)
    assert xy.shape == (11, 2)
    assert np.var(xy[:, 0]) > 100 * np.var(xy[:, 1])


# ---------------------------------------------------------------- free running


def reference_free_running_loss(lm, x, y, state, teacher_mask=None):
    """Step by step with nn.LSTMCell sharing the LSTM's weights, feeding back the argmax."""
    cell = nn.LSTMCell(E, H)
    cell.weight_ih, cell.weight_hh = lm.lstm.weight_ih_l0, lm.lstm.weight_hh_l0
    cell.bias_ih, cell.bias_hh = lm.lstm.bias_ih_l0, lm.lstm.bias_hh_l0
    h, c = state[0][0], state[1][0]
    inp, losses = x[:, 0], []
    for t in range(x.shape[1]):
        h, c = cell(lm.embed(inp), (h, c))
        logits = lm.linear(h)
        losses.append(nn.functional.cross_entropy(logits, y[:, t]))
        inp = logits.argmax(1)
        if teacher_mask is not None and t + 1 < x.shape[1]:
            inp = torch.where(teacher_mask[:, t + 1], x[:, t + 1], inp)
    return torch.stack(losses).mean()


def test_rollout_feeds_back_the_argmax(lm):
    x, state = tokens(), lm.init_state(B)
    inputs = M.rollout_inputs(lm, x, state)
    assert inputs.dtype == torch.long and inputs.grad_fn is None
    assert torch.equal(inputs[:, 0], x[:, 0])
    logits, _ = lm(inputs, state)
    assert torch.equal(inputs[:, 1:], logits[:, :-1].argmax(-1))
    # teacher probability 1 gives back the true tokens (scheduled sampling's start)
    assert torch.equal(M.rollout_inputs(lm, x, state, 1.0, torch.Generator().manual_seed(0)), x)


def test_free_running_gradient_matches_the_step_by_step_model(lm):
    x, y = tokens(1), tokens(2)
    state = lm.init_state(B)
    logits, _ = lm(M.rollout_inputs(lm, x, state), state)
    nn.functional.cross_entropy(logits.reshape(-1, V), y.reshape(-1)).backward()
    fast = {n: p.grad.clone() for n, p in lm.named_parameters()}
    lm.zero_grad()
    reference_free_running_loss(lm, x, y, state).backward()
    for n, p in lm.named_parameters():
        assert torch.allclose(fast[n], p.grad, atol=1e-6), n


def test_free_running_gradient_flows_through_the_hidden_state(lm):
    x, y = tokens(3), tokens(4)
    h0 = torch.zeros(1, B, H, requires_grad=True)
    state = (h0, torch.zeros(1, B, H))
    logits, _ = lm(M.rollout_inputs(lm, x, state), state)
    # only the last step's loss: it reaches h0 through T - 1 recurrent steps
    nn.functional.cross_entropy(logits[:, -1], y[:, -1]).backward()
    assert h0.grad.abs().sum() > 0


def test_free_running_has_no_gradient_through_the_argmax(lm):
    x, y = tokens(5), tokens(6)
    state = lm.init_state(B)
    inputs = M.rollout_inputs(lm, x, state)
    logits, _ = lm(inputs, state)
    nn.functional.cross_entropy(logits.reshape(-1, V), y.reshape(-1)).backward()
    # the embedding is only reached at the rows that were fed in: no path from an argmax
    # back into the logits that chose it
    used = set(inputs.flatten().tolist())
    for row in range(V):
        assert (lm.embed.weight.grad[row].abs().sum() > 0) == (row in used)
    # and the decoder's gradient is that of the per-step losses alone
    lm.zero_grad()
    with torch.no_grad():
        hidden = lm.lstm(lm.embed(inputs), state)[0]
    logits2 = lm.linear(hidden)
    nn.functional.cross_entropy(logits2.reshape(-1, V), y.reshape(-1)).backward()
    decoder_only = lm.linear.weight.grad.clone()
    lm.zero_grad()
    reference_free_running_loss(lm, x, y, state).backward()
    assert torch.allclose(lm.linear.weight.grad, decoder_only, atol=1e-6)


def test_scheduled_sampling_schedule_decays_from_one_to_zero():
    k = TR.inverse_sigmoid_k(1000)
    assert TR.teacher_probability(0, k) > 0.9
    assert TR.teacher_probability(500, k) == pytest.approx(0.5, abs=0.02)
    assert TR.teacher_probability(1000, k) < 0.1


# ---------------------------------------------------------------- training


def stream(n=600, seed=0):
    # a learnable stream: mostly i -> i + 1 (mod V)
    rng = np.random.default_rng(seed)
    ids = np.cumsum(rng.random(n) < 0.9) % V
    return ids.astype(np.int64)


@pytest.mark.parametrize("mode", ["teacher", "free", "scheduled"])
def test_each_mode_trains(mode):
    torch.manual_seed(0)
    lm = M.LSTMLanguageModel(V, E, 16)
    train, valid = M.batchify(stream(), 4), M.batchify(stream(200, 1), 4)
    before = TR.evaluate_ppl(lm, valid, 10)
    hist = TR.train_model(
        lm, train, valid, TR.TrainConfig(epochs=2, batch_size=4, seq_len=10, lr=0.01, mode=mode)
    )
    assert hist.epochs_done == 2 and len(hist.valid_ppl) == 2 and hist.train_tokens > 0
    assert hist.valid_ppl[-1] < before


def test_memory_for_backward_grows_with_the_window(lm):
    # without a detach between two segments, backward keeps both segments' activations
    x = tokens(7, 81)
    one = M.backward_memory(lm, x[:, :40], x[:, 1:41])["saved_bytes"]
    two = M.backward_memory(lm, x[:, :80], x[:, 1:81])["saved_bytes"]
    assert two > 1.5 * one


def test_saved_tensor_bytes_counts_a_known_graph():
    w = torch.ones(1000, requires_grad=True)
    x = torch.ones(1000)
    # d(w * x)/dw needs x (4000 bytes); w is not saved since x needs no gradient
    assert M.saved_tensor_bytes(lambda: (w * x).sum()) == 4000
    x.requires_grad_()
    assert M.saved_tensor_bytes(lambda: (w * x).sum()) == 8000


def test_interrupted_training_resumes_from_the_checkpoint(tmp_path):
    train, valid = M.batchify(stream(), 4), M.batchify(stream(200, 1), 4)
    cfg = dict(batch_size=4, seq_len=10, lr=0.01)

    def fresh():
        torch.manual_seed(0)
        return M.LSTMLanguageModel(V, E, 16)

    straight = fresh()
    TR.train_model(straight, train, valid, TR.TrainConfig(epochs=2, **cfg))
    ckpt = tmp_path / "ckpt.pt"
    first = fresh()
    TR.train_model(
        first, train, valid, TR.TrainConfig(epochs=1, **cfg), checkpoint=ckpt
    )  # "interrupted" after epoch 1
    logs = []
    resumed = fresh()
    hist = TR.train_model(
        resumed, train, valid, TR.TrainConfig(epochs=2, **cfg), checkpoint=ckpt, log=logs.append
    )
    assert hist.resumed_from_epoch == 1 and hist.epochs_done == 2
    assert any("resumed" in line for line in logs)
    for a, b in zip(straight.parameters(), resumed.parameters(), strict=True):
        assert torch.allclose(a, b, atol=1e-6)


def test_the_loop_reads_nothing_back_per_step(monkeypatch):
    # a host read (.item(), float(), .tolist()) in the loop makes a GPU wait for the CPU:
    # allowed once per evaluation, never per step. (Adam's step counters live on the CPU
    # whatever the device, so reads inside torch.optim do not count.)
    import sys

    torch.manual_seed(0)
    lm = M.LSTMLanguageModel(V, E, 16)
    train, valid = M.batchify(stream(), 4), M.batchify(stream(200, 1), 4)
    reads = []
    for name in ("item", "tolist", "__float__"):
        original = getattr(torch.Tensor, name)

        def counted(self, *a, _original=original, _name=name, **kw):
            caller = sys._getframe(1).f_code.co_filename
            if caller.endswith(("rnn_lm/training.py", "rnn_lm/model.py")):
                reads.append(_name)
            return _original(self, *a, **kw)

        monkeypatch.setattr(torch.Tensor, name, counted)
    cfg = TR.TrainConfig(epochs=2, batch_size=4, seq_len=10, lr=0.01, evals_per_epoch=1)
    hist = TR.train_model(lm, train, valid, cfg)
    steps = hist.steps[-1]
    assert steps == 2 * 14 and len(hist.valid_ppl) == 2
    assert len(reads) <= 2 * len(hist.valid_ppl), reads  # the training loss and the rows, per evaluation


def test_bf16_autocast_runs_on_the_cpu_and_trains():
    if not TR.cpu_runs_bf16_lstm():
        with pytest.raises(ValueError, match="oneDNN has no bf16 LSTM for this processor"):
            TR.check_lstm_precision("bf16", torch.device("cpu"))
        return
    TR.check_lstm_precision("bf16", torch.device("cpu"))
    torch.manual_seed(0)
    lm = M.LSTMLanguageModel(V, E, 16)
    with autocast("bf16", torch.device("cpu")):
        logits, _ = lm(tokens(), lm.init_state(B))
    assert logits.dtype == torch.bfloat16
    train, valid = M.batchify(stream(), 4), M.batchify(stream(200, 1), 4)
    before = TR.evaluate_ppl(lm, valid, 10)
    cfg = TR.TrainConfig(epochs=2, batch_size=4, seq_len=10, lr=0.01, precision="bf16")
    hist = TR.train_model(lm, train, valid, cfg)
    assert hist.valid_ppl[-1] < before
    assert all(p.dtype == torch.float32 for p in lm.parameters())  # the weights stay fp32


def test_fp16_on_the_cpu_is_a_clear_error():
    with pytest.raises(ValueError, match="fp16 needs a CUDA device"):
        TR.check_lstm_precision("fp16", torch.device("cpu"))
    with pytest.raises(ValueError, match="precision must be one of"):
        TR.check_lstm_precision("fp8", torch.device("cpu"))


def test_a_window_over_the_whole_row_is_one_update_per_epoch():
    torch.manual_seed(0)
    lm = M.LSTMLanguageModel(V, E, 16)
    train = M.batchify(stream(), 4)  # 150 tokens per row
    full_k = (train.shape[1] - 1) // 10
    hist = TR.train_model(
        lm, train, None, TR.TrainConfig(epochs=2, batch_size=4, seq_len=10, bptt_window=full_k)
    )
    assert hist.train_tokens == 2 * full_k * 10 * 4 and not hist.valid_ppl
    assert len(M.segment_starts(train.shape[1], full_k * 10)) == 1


def test_validation_rows_give_the_perplexity():
    torch.manual_seed(0)
    lm = M.LSTMLanguageModel(V, E, 16)
    valid = M.batchify(stream(200, 1), 4)
    rows = TR.row_nll(lm, valid, 7)
    assert rows.shape == (4,)
    # the same mean cross-entropy as one pass over the whole rows at once
    with torch.no_grad():
        logits, _ = lm(valid[:, :-1], lm.init_state(4))
        full = nn.functional.cross_entropy(logits.reshape(-1, V), valid[:, 1:].reshape(-1))
    assert TR.evaluate_ppl(lm, valid, 7) == pytest.approx(float(full.exp()), rel=1e-5)
