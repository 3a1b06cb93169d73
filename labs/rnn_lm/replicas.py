"""Several seeds of one trainer trained as one batched model.

Q2.3 to Q2.5 train every trainer under several seeds, one small model after another.
:class:`Replicas` stacks the parameters of R models along a leading replica dimension and
runs the LSTM over all of them at once with batched matrix products (``torch.bmm``), one
time step at a time, with the recurrence's backward pass written out
(:class:`StackedRecurrence`). Nothing is shared
between replicas: each has its own initialisation, its own Adam moments (Adam is
elementwise, so one optimiser over stacked parameters is R optimisers), its own gradient
clipping (the norm is taken per replica) and its own sampling generator, and all see the
same training rows in the same order. A replica's parameters therefore follow those of its
seed trained alone by :func:`.training.train_model`, up to float rounding (the tests pin
this), and its checkpoint is written in the same format, so either trainer resumes the
other's.

Whether it is faster depends on the machine: it trades one fused ``nn.LSTM`` call per model
(oneDNN's LSTM kernel on the CPU) for batched products and unfused elementwise steps. On the
2-core AVX-512 machine this was written on, with one thread, it was slower
(``benchmarks/bench_rnn_lm.py replicas``), so the lab's ``batch_seeds`` setting that selects
it is off by default.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from torch import nn

from .model import LSTMLanguageModel, State, detach
from .training import (
    History,
    TrainConfig,
    append_point,
    end_epoch,
    evaluation_steps,
    inverse_sigmoid_k,
    teacher_probability,
    training_windows,
)

#: The parameters of :class:`.model.LSTMLanguageModel`, in the order of ``parameters()``
#: (the order the optimiser's state is saved in).
PARAMETERS = (
    "embed.weight",
    "lstm.weight_ih_l0",
    "lstm.weight_hh_l0",
    "lstm.bias_ih_l0",
    "lstm.bias_hh_l0",
    "linear.weight",
    "linear.bias",
)


class ResumeMismatch(ValueError):
    """The replicas' checkpoints stopped after different epochs."""


def batching_blocker(device: torch.device, precision: str, deterministic: bool) -> str:
    """Why the replicas of a trainer must be trained one at a time ('' when they can be
    batched): the batched LSTM is written for fp32 on the CPU; a GPU runs each model through
    cuDNN's fused LSTM, autocast is left to ``nn.LSTM``, and ``--deterministic`` keeps the
    reference path."""
    if device.type != "cpu":
        return f"the device is {device.type}"
    if precision != "fp32":
        return f"the precision is {precision}"
    if deterministic:
        return "--deterministic keeps one model at a time"
    return ""


class Replicas:
    """R language models of one size as stacked parameters (leading dimension R)."""

    def __init__(self, models: Sequence[LSTMLanguageModel]):
        if not models:
            raise ValueError("no models to stack")
        self.count = len(models)
        self.hidden = models[0].lstm.hidden_size
        self.params = [
            torch.stack([m.get_parameter(name).detach() for m in models]).requires_grad_()
            for name in PARAMETERS
        ]

    def write_back(self, models: Sequence[LSTMLanguageModel]) -> None:
        """Copy each replica's parameters into its model."""
        with torch.no_grad():
            for name, p in zip(PARAMETERS, self.params, strict=True):
                for r, m in enumerate(models):
                    m.get_parameter(name).copy_(p[r])

    def init_state(self, batch_size: int) -> State:
        emb = self.params[0]
        zeros = torch.zeros(self.count, batch_size, self.hidden, device=emb.device, dtype=emb.dtype)
        return zeros, zeros.clone()

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Embeddings (R, B, T, E) of token ids (B, T), the same for every replica, or
        (R, B, T), one set per replica."""
        emb = self.params[0]
        if x.dim() == 2:
            return emb[:, x]
        vocab = emb.shape[1]
        offsets = torch.arange(self.count, device=x.device).view(-1, *([1] * (x.dim() - 1))) * vocab
        return nn.functional.embedding(x + offsets, emb.reshape(-1, emb.shape[-1]))

    def __call__(self, x: torch.Tensor, state: State) -> tuple[torch.Tensor, State]:
        """Logits (R, B, T, V) for token ids ``x`` ((B, T) or (R, B, T)) and the final
        (h, c), each (R, B, H)."""
        _, w_ih, w_hh, b_ih, b_hh, w_out, b_out = self.params
        e = self.embed(x)
        r, b, t, _ = e.shape
        # the input's share of the gates for every time step at once, then the recurrence
        xg = torch.baddbmm((b_ih + b_hh).unsqueeze(1), e.reshape(r, b * t, -1), w_ih.transpose(1, 2))
        out, h, c = StackedRecurrence.apply(xg.view(r, b, t, -1), state[0], state[1], w_hh)
        logits = torch.baddbmm(b_out.unsqueeze(1), out.reshape(r, b * t, -1), w_out.transpose(1, 2))
        return logits.view(r, b, t, -1), (h, c)

    @torch.no_grad()
    def rollout_inputs(
        self,
        x: torch.Tensor,
        state: State,
        teacher_prob: float,
        generators: Sequence[torch.Generator | None],
    ) -> torch.Tensor:
        """Each replica's free-running inputs (R, B, T), as :func:`.model.rollout_inputs`
        finds them for one model (each replica draws its scheduled-sampling coins from its
        own generator)."""
        _, w_ih, w_hh, b_ih, b_hh, w_out, b_out = self.params
        bias = (b_ih + b_hh).unsqueeze(1)
        w_ih_t, w_hh_t, w_out_t = (w.transpose(1, 2).contiguous() for w in (w_ih, w_hh, w_out))
        b_out = b_out.unsqueeze(1)
        h, c = state
        if teacher_prob > 0:
            coins = [torch.rand(x.shape, generator=g, device="cpu") for g in generators]
            use_truth = torch.stack(coins).to(x.device) < teacher_prob
        tok = x[:, 0].expand(self.count, -1)
        inputs = [tok]
        for t in range(1, x.shape[1]):
            gates = torch.baddbmm(bias, self.embed(tok.unsqueeze(-1)).squeeze(2), w_ih_t)
            h, c, _ = lstm_cell(torch.baddbmm(gates, h, w_hh_t), c)
            tok = torch.baddbmm(b_out, h, w_out_t).argmax(-1)
            if teacher_prob > 0:
                tok = torch.where(use_truth[:, :, t], x[:, t], tok)
            inputs.append(tok)
        return torch.stack(inputs, -1)

    @torch.no_grad()
    def row_nll(self, data: torch.Tensor, seq_len: int) -> torch.Tensor:
        """Per replica, the teacher-forced mean cross-entropy of each row (R, B), as
        :func:`.training.row_nll` measures it for one model."""
        state = self.init_state(data.shape[0])
        total = torch.zeros(self.count, data.shape[0], device=data.device)
        for i in range(0, data.shape[1] - 1, seq_len):
            y = data[:, i + 1 : i + 1 + seq_len]
            logits, state = self(data[:, i : i + y.shape[1]], state)
            total += nll(logits, y).sum(-1)
        return total / (data.shape[1] - 1)


def lstm_cell(gates: torch.Tensor, c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """nn.LSTM's cell on pre-activation gates (input, forget, cell, output): the new (h, c)
    and the activated gates (the cell gate through tanh, the others through the sigmoid).
    Outside autograd: the activations are written in place."""
    act = torch.sigmoid(gates)
    i, f, g, o = act.chunk(4, -1)
    torch.tanh(gates.chunk(4, -1)[2], out=g)
    c = torch.addcmul(f * c, i, g)
    return o * torch.tanh(c), c, act


class StackedRecurrence(torch.autograd.Function):
    """The LSTM recurrence of every replica at once, with the backward pass written out.

    Given the input's share of the gates ``xg`` (R, B, T, 4H), the initial (h, c) and the
    recurrent weights (R, 4H, H): the hidden states (R, B, T, H) and the final (h, c). The
    backward pass runs the recurrence backwards one step at a time, but the gradient of the
    recurrent weights is one batched product over all steps (as fused LSTM kernels do),
    instead of one small product per step under autograd.
    """

    @staticmethod
    def forward(ctx, xg, h, c, w_hh):  # noqa: ANN001, ANN205 (autograd's signature)
        r, b, steps, hidden = *xg.shape[:3], w_hh.shape[-1]
        w_hh_t = w_hh.transpose(1, 2).contiguous()  # a contiguous operand: the products run faster
        new = xg.new_empty
        hs, cs = new(r, b, steps + 1, hidden), new(r, b, steps, hidden)
        # what the backward pass multiplies by, written step by step while it is in cache:
        # d gates / d c for the input, forget and cell gates, d gates / d h for the output gate,
        # d c / d h, and the forget gate (d c_{t-1} / d c_t)
        through_c, through_h = new(r, b, steps, 3, hidden), new(r, b, steps, hidden)
        h_to_c, forget = new(r, b, steps, hidden), new(r, b, steps, hidden)
        hs[:, :, 0] = h
        for t, xg_t in enumerate(xg.unbind(2)):
            h_new, c_new, act = lstm_cell(torch.baddbmm(xg_t, h, w_hh_t), c)
            i, f, g, o = act.chunk(4, -1)
            tc = torch.tanh(c_new)
            d = through_c[:, :, t]
            torch.mul(g, i * (1 - i), out=d[:, :, 0])
            torch.mul(c, f * (1 - f), out=d[:, :, 1])
            torch.mul(i, 1 - g * g, out=d[:, :, 2])
            torch.mul(tc * o, 1 - o, out=through_h[:, :, t])
            torch.mul(o, 1 - tc * tc, out=h_to_c[:, :, t])
            forget[:, :, t] = f
            hs[:, :, t + 1], cs[:, :, t] = h_new, c_new
            h, c = h_new, c_new
        ctx.save_for_backward(w_hh, hs[:, :, :-1], forget, through_c, through_h, h_to_c)
        return hs[:, :, 1:], h, c

    @staticmethod
    def backward(ctx, d_out, d_h, d_c):  # noqa: ANN001, ANN205
        w_hh, h_prev, f, through_c, through_h, h_to_c = ctx.saved_tensors
        r, b, steps, hidden = d_out.shape
        dh = torch.zeros_like(h_prev[:, :, 0]) if d_h is None else d_h.clone()
        dc = torch.zeros_like(dh) if d_c is None else d_c.clone()
        dg = torch.empty(r, b, steps, 4 * hidden, dtype=dh.dtype, device=dh.device)
        for t in range(steps - 1, -1, -1):
            dh += d_out[:, :, t]
            dc.addcmul_(dh, h_to_c[:, :, t])
            dg_t = dg[:, :, t]
            torch.mul(through_c[:, :, t], dc.unsqueeze(2), out=dg_t[..., : 3 * hidden].view(r, b, 3, hidden))
            torch.mul(through_h[:, :, t], dh, out=dg_t[..., 3 * hidden :])
            dc = dc * f[:, :, t]
            dh = torch.bmm(dg_t, w_hh)
        d_w = torch.bmm(dg.view(r, -1, 4 * hidden).transpose(1, 2), h_prev.reshape(r, -1, hidden))
        return dg, dh, dc, d_w


def nll(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Cross-entropy (R, B, T) of each replica's logits (R, B, T, V) against targets (B, T)."""
    r, v = logits.shape[0], logits.shape[-1]
    targets = y.expand(r, *y.shape).reshape(-1)
    return nn.functional.cross_entropy(logits.reshape(-1, v), targets, reduction="none").view(r, *y.shape)


def clip_per_replica(params: Sequence[torch.Tensor], max_norm: float) -> torch.Tensor:
    """``nn.utils.clip_grad_norm_`` applied to each replica on its own: the gradient norm
    over all of a replica's parameters, and its gradients scaled down to ``max_norm``.
    Returns the norms (R,)."""
    grads = [p.grad for p in params]
    norms = torch.stack([torch.linalg.vector_norm(g.reshape(g.shape[0], -1), dim=1) for g in grads])
    total = torch.linalg.vector_norm(norms, dim=0)
    coef = (max_norm / (total + 1e-6)).clamp(max=1.0)
    for g in grads:
        g.mul_(coef.view(-1, *([1] * (g.dim() - 1))))
    return total


def train_replicas(
    models: Sequence[LSTMLanguageModel],
    train: torch.Tensor,
    valid: torch.Tensor | None,
    cfg: TrainConfig,
    *,
    checkpoints: Sequence[Path] | None = None,
    generators: Sequence[torch.Generator | None] | None = None,
    progress: Callable[[int, dict], None] | None = None,
    log: Callable[[str], None] | None = None,
) -> list[History]:
    """Train ``models`` in place as one batched model; return each one's :class:`History`.

    The same loop as :func:`.training.train_model` (fp32 on the CPU), each model with its own
    optimiser state, clipping, generator and checkpoint. A replica's training time is its
    share of the batch's (the batch's time over the number of replicas). Raises
    :class:`ResumeMismatch` when the checkpoints stopped after different epochs (train those
    one at a time).
    """
    n = len(models)
    checkpoints = list(checkpoints) if checkpoints is not None else [None] * n
    generators = list(generators) if generators is not None else [None] * n
    window = cfg.seq_len * cfg.bptt_window
    starts = training_windows(train.shape[1], window)
    hists, opt_states = resume_replicas(checkpoints, models, generators, log)
    rep = Replicas(models)
    opt = torch.optim.Adam(rep.params, lr=cfg.lr)
    if opt_states:
        opt.load_state_dict(stack_optimizer_states(opt_states))
    k = inverse_sigmoid_k(cfg.epochs * len(starts))
    eval_at = evaluation_steps(len(starts), cfg.evals_per_epoch if valid is not None else 0)
    for epoch in range(hists[0].epochs_done, cfg.epochs):
        state = rep.init_state(train.shape[0])
        loss_sum, n_losses = torch.zeros(n), 0
        tic = time.perf_counter()
        for j, i in enumerate(starts):
            step = epoch * len(starts) + j
            state = detach(state)
            x, y = train[:, i : i + window], train[:, i + 1 : i + 1 + window]
            if cfg.mode != "teacher":
                p_true = teacher_probability(step, k) if cfg.mode == "scheduled" else 0.0
                x = rep.rollout_inputs(x, state, p_true, generators)
            # BEGIN SOLUTION the LSTM training step batched over replicas (rnn_lm.batch_seeds=true)
            logits, state = rep(x, state)
            # each replica's mean loss; their sum's gradient is each replica's own gradient
            loss = nll(logits, y).flatten(1).mean(1)
            opt.zero_grad(set_to_none=True)
            loss.sum().backward()
            clip_per_replica(rep.params, cfg.clip)
            opt.step()
            # END SOLUTION
            loss_sum += loss.detach()
            n_losses += 1
            if progress:
                progress(1, {})
            if j + 1 in eval_at:
                share = (time.perf_counter() - tic) / n
                rows = rep.row_nll(valid, cfg.seq_len).tolist()
                for h, r, mean_loss in zip(hists, rows, (loss_sum / n_losses).tolist(), strict=True):
                    h.train_seconds += share
                    append_point(h, step + 1, mean_loss, r)
                loss_sum, n_losses = torch.zeros(n), 0
                if progress:
                    progress(0, {"valid_ppl": round(min(h.valid_ppl[-1] for h in hists), 2)})
                tic = time.perf_counter()
        share = (time.perf_counter() - tic) / n
        for h in hists:
            h.train_seconds += share
            end_epoch(h, epoch, len(starts) * window * train.shape[0])
        if log and hists[0].valid_ppl:
            ppls = ", ".join(f"{h.valid_ppl[-1]:.2f}" for h in hists)
            log(f"{cfg.mode} epoch {epoch + 1}/{cfg.epochs}, {n} replicas: valid ppl {ppls}")
        rep.write_back(models)
        for r, path in enumerate(checkpoints):
            if path is not None:
                save_replica_checkpoint(path, models[r], opt, r, hists[r], generators[r])
    rep.write_back(models)
    return hists


# --------------------------------------------------------------------------- checkpoints


def replica_optimizer_state(opt: torch.optim.Optimizer, r: int) -> dict:
    """The state dict of replica ``r``'s own Adam (the format ``train_model`` saves)."""
    full = opt.state_dict()
    state = {
        i: {key: (v if key == "step" else v[r]).clone() for key, v in s.items()}
        for i, s in full["state"].items()
    }
    return {"state": state, "param_groups": full["param_groups"]}


def stack_optimizer_states(states: Sequence[dict]) -> dict:
    """One Adam state dict over stacked parameters from the replicas' own."""
    first = states[0]
    stacked = {
        i: {
            key: (v if key == "step" else torch.stack([s["state"][i][key] for s in states]))
            for key, v in first["state"][i].items()
        }
        for i in first["state"]
    }
    return {"state": stacked, "param_groups": first["param_groups"]}


def save_replica_checkpoint(
    path: Path,
    model: nn.Module,
    opt: torch.optim.Optimizer,
    r: int,
    hist: History,
    generator: torch.Generator | None,
) -> None:
    """Replica ``r``'s checkpoint, as :func:`.training.save_checkpoint` writes it (atomically)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fields = {k: v for k, v in vars(hist).items() if k != "resumed_from_epoch"}
    data = {"model": model.state_dict(), "optimizer": replica_optimizer_state(opt, r), "history": fields}
    if generator is not None:
        data["generator"] = generator.get_state()
    tmp = path.with_name(f".{path.name}.{id(data):x}.tmp")
    torch.save(data, tmp)
    tmp.replace(path)


def resume_replicas(
    checkpoints: Sequence[Path | None],
    models: Sequence[nn.Module],
    generators: Sequence[torch.Generator | None],
    log: Callable[[str], None] | None,
) -> tuple[list[History], list[dict]]:
    """Fresh histories, or those saved in the checkpoints with models and generators
    restored, and the replicas' optimiser states (empty when nothing was saved)."""
    saved = [torch.load(p, weights_only=True) if p is not None and p.is_file() else None for p in checkpoints]
    done = {s["history"]["epochs_done"] if s else 0 for s in saved}
    if len(done) > 1:
        raise ResumeMismatch(f"the replicas' checkpoints stopped after different epochs ({sorted(done)})")
    hists = [History() for _ in models]
    if done == {0}:
        return hists, []
    for s, m, h, g, p in zip(saved, models, hists, generators, checkpoints, strict=True):
        m.load_state_dict(s["model"])
        for key, value in s["history"].items():
            setattr(h, key, value)
        if g is not None and "generator" in s:
            g.set_state(s["generator"])
        h.resumed_from_epoch = h.epochs_done
        if log:
            log(f"resumed from {p.name} after epoch {h.epochs_done}")
    return hists, [s["optimizer"] for s in saved]
