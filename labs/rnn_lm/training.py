"""Training and evaluation of the language model: the assignment's loop, and the
free-running and scheduled-sampling variants of Q2.4.

The loop in :func:`train_model` reads like nanoGPT's: detach, inputs, forward, loss,
backward, clip, step. Resuming, the evaluation schedule and the free-running inputs live
in helpers. Nothing in the loop reads a number back to the host: losses are summed on the
device and read once per evaluation, so a GPU is never made to wait for the CPU.
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from torch import nn

from labrunner.precision import Precision, autocast, check_precision, grad_scaler

from .model import LSTMLanguageModel, State, detach, rollout_inputs, segment_starts

Mode = Literal["teacher", "free", "scheduled"]


@dataclass
class TrainConfig:
    epochs: int = 5
    batch_size: int = 20
    seq_len: int = 30
    lr: float = 0.002
    clip: float = 0.5
    #: 1: truncated BPTT (detach after every segment); K > 1: backpropagate through K segments.
    bptt_window: int = 1
    mode: Mode = "teacher"
    #: Validation measurements per epoch; 0: none (for timing runs).
    evals_per_epoch: int = 1
    #: fp32, or autocast of the forward pass to bf16 / fp16 (fp16 with a gradient scaler, CUDA only).
    precision: Precision = "fp32"


@dataclass
class History:
    """What training measured; evaluation time is left out of ``seconds``."""

    steps: list[int] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    valid_ppl: list[float] = field(default_factory=list)
    #: Mean validation cross-entropy (nats) of each row of the batchified split, per evaluation:
    #: the blocks that paired comparisons between evaluations and models are made on.
    valid_row_nll: list[list[float]] = field(default_factory=list)
    train_loss: list[float] = field(default_factory=list)  # mean over the steps since the last eval
    epochs_done: int = 0
    train_seconds: float = 0.0
    train_tokens: int = 0
    resumed_from_epoch: int = 0

    @property
    def tokens_per_s(self) -> float:
        return self.train_tokens / self.train_seconds if self.train_seconds > 0 else float("nan")


# --------------------------------------------------------------------------- precision


def check_lstm_precision(precision: str, device: torch.device) -> None:
    """Raise ValueError for a precision the device cannot run: labrunner's check (fp16 needs
    CUDA), and bf16 on the CPU needs a oneDNN build with a bf16 LSTM for this processor."""
    check_precision(precision, device)
    if precision == "bf16" and device.type == "cpu" and not cpu_runs_bf16_lstm():
        raise ValueError(
            "precision bf16 on this CPU: PyTorch's oneDNN has no bf16 LSTM for this processor "
            "(it needs AVX-512 BF16 or AMX): use fp32 here, or bf16 on a GPU"
        )


@functools.cache
def cpu_runs_bf16_lstm() -> bool:
    """Whether an LSTM's forward pass runs under bf16 autocast on this CPU. oneDNN picks its
    kernels by processor, and on some (AVX2 only) it has none for a bf16 LSTM: the forward
    pass raises instead of running, so one tiny forward pass tells."""
    lstm = nn.LSTM(2, 2, batch_first=True)
    try:
        with torch.autocast(device_type="cpu", dtype=torch.bfloat16):
            lstm(torch.zeros(1, 1, 2))
    except RuntimeError:
        return False
    return True


def synchronize(device: torch.device) -> None:
    """Wait for the device's queued work, so a host clock reads its real duration."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# --------------------------------------------------------------------------- evaluation


@torch.no_grad()
def row_nll(
    model: LSTMLanguageModel, data: torch.Tensor, seq_len: int, precision: str = "fp32"
) -> torch.Tensor:
    """Teacher-forced mean cross-entropy (nats) of each row of a batchified split (B, L),
    over the targets ``data[:, 1:]``; the state is carried across segments. One tensor on the
    device: nothing is read back per segment."""
    was_training = model.training
    model.eval()
    state = model.init_state(data.shape[0])
    total = torch.zeros(data.shape[0], device=data.device)
    for i in range(0, data.shape[1] - 1, seq_len):
        y = data[:, i + 1 : i + 1 + seq_len]
        x = data[:, i : i + y.shape[1]]
        with autocast(precision, data.device):
            logits, state = model(x, state)
        nll = nn.functional.cross_entropy(logits.float().transpose(1, 2), y, reduction="none")
        total += nll.sum(1)
    model.train(was_training)
    return total / (data.shape[1] - 1)


def evaluate_ppl(
    model: LSTMLanguageModel, data: torch.Tensor, seq_len: int, precision: str = "fp32"
) -> float:
    """Teacher-forced perplexity exp(mean cross-entropy) over a batchified split."""
    return math.exp(float(row_nll(model, data, seq_len, precision).mean()))


def evaluation_steps(n_steps: int, evals_per_epoch: int) -> set[int]:
    """The steps of an epoch (1-based) after which validation is measured, evenly spread."""
    if evals_per_epoch <= 0:
        return set()
    return set(np.linspace(0, n_steps, evals_per_epoch + 1).round().astype(int)[1:].tolist())


# --------------------------------------------------------------------------- free running


def inverse_sigmoid_k(total_steps: int) -> float:
    """The k of Bengio et al.'s decay eps_i = k / (k + exp(i / k)) that reaches 0.5 halfway."""
    lo, hi = 1.0001, max(total_steps, 3.0)
    for _ in range(60):  # k ln k = total / 2 by bisection
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if mid * math.log(mid) < total_steps / 2 else (lo, mid)
    return lo


def teacher_probability(step: int, k: float) -> float:
    """Scheduled sampling (inverse sigmoid decay): the chance to feed the true token at ``step``."""
    return k / (k + math.exp(min(step / k, 700.0)))


def training_inputs(
    model: LSTMLanguageModel,
    x: torch.Tensor,
    state: State,
    mode: str,
    step: int,
    k: float,
    generator: torch.Generator | None,
) -> torch.Tensor:
    """The inputs of a training step: the true tokens (teacher forcing), the model's own
    argmax predictions (free running), or a mix whose true share decays (scheduled sampling)."""
    if mode == "teacher":
        return x
    p_true = teacher_probability(step, k) if mode == "scheduled" else 0.0
    return rollout_inputs(model, x, state, p_true, generator)


# --------------------------------------------------------------------------- the loop


def train_model(
    model: LSTMLanguageModel,
    train: torch.Tensor,
    valid: torch.Tensor | None,
    cfg: TrainConfig,
    *,
    checkpoint: Path | None = None,
    progress: Callable[[int, dict], None] | None = None,
    log: Callable[[str], None] | None = None,
    generator: torch.Generator | None = None,
) -> History:
    """Train ``model`` in place on batchified ``train`` (B, L); return its :class:`History`.

    Adam, gradient-norm clipping, the hidden state carried across segments and cut
    every ``bptt_window`` segments. Validation perplexity is measured ``evals_per_epoch``
    times per epoch. With ``checkpoint``, model, optimizer and history are saved after
    every epoch and a rerun continues after the last saved epoch.
    """
    device = train.device
    window = cfg.seq_len * cfg.bptt_window
    starts = training_windows(train.shape[1], window)
    # the fused kernel on CUDA: one launch for all parameters
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, fused=device.type == "cuda")
    scaler = grad_scaler(cfg.precision, device)
    hist = resume(checkpoint, model, opt, generator, log)
    k = inverse_sigmoid_k(cfg.epochs * len(starts))
    eval_at = evaluation_steps(len(starts), cfg.evals_per_epoch if valid is not None else 0)
    loss_fn = nn.CrossEntropyLoss()
    model.train()
    for epoch in range(hist.epochs_done, cfg.epochs):
        state = model.init_state(train.shape[0])
        loss_sum, n_losses = torch.zeros((), device=device), 0
        synchronize(device)
        tic = time.perf_counter()
        for j, i in enumerate(starts):
            step = epoch * len(starts) + j
            # truncated BPTT: keep the state's value, cut its graph
            state = detach(state)
            # inputs and targets of the window (free running replaces the inputs by its own predictions)
            x, y = train[:, i : i + window], train[:, i + 1 : i + 1 + window]
            x = training_inputs(model, x, state, cfg.mode, step, k, generator)
            # BEGIN SOLUTION the LSTM training step: forward, loss, backward, clipping, update
            # forward and loss (autocast to bf16/fp16 when asked)
            with autocast(cfg.precision, device):
                logits, state = model(x, state)
                loss = loss_fn(logits.reshape(-1, logits.shape[-1]).float(), y.reshape(-1))
            # backward, clip, step (the scaler is a pass-through unless fp16)
            opt.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.unscale_(opt)
            nn.utils.clip_grad_norm_(model.parameters(), cfg.clip)
            scaler.step(opt)
            scaler.update()
            # END SOLUTION
            # bookkeeping stays on the device: read once per evaluation
            loss_sum += loss.detach()
            n_losses += 1
            if progress:
                progress(1, {})
            if j + 1 in eval_at:
                synchronize(device)
                hist.train_seconds += time.perf_counter() - tic
                record_evaluation(hist, model, valid, cfg, step + 1, float(loss_sum) / n_losses)
                loss_sum, n_losses = torch.zeros((), device=device), 0
                if progress:
                    progress(
                        0, {"loss": round(hist.train_loss[-1], 3), "valid_ppl": round(hist.valid_ppl[-1], 2)}
                    )
                tic = time.perf_counter()
        synchronize(device)
        hist.train_seconds += time.perf_counter() - tic
        end_epoch(hist, epoch, len(starts) * window * train.shape[0])
        if log and hist.valid_ppl:
            log(epoch_line(hist, cfg))
        if checkpoint is not None:
            save_checkpoint(checkpoint, model, opt, hist, generator)
    return hist


def training_windows(length: int, window: int) -> list[int]:
    """The start of each training window of ``window`` tokens in a row of ``length``; a
    ValueError naming the settings when the row holds none."""
    starts = list(segment_starts(length, window))
    if not starts:
        raise ValueError(
            f"the training split is too short: {length} tokens per row of the batch, "
            f"fewer than one segment of {window} + 1; use a smaller batch_size or seq_len"
        )
    return starts


def end_epoch(hist: History, epoch: int, tokens: int) -> None:
    """Count the epoch's training tokens and the epoch itself (its time is counted by the loop)."""
    hist.train_tokens += tokens
    hist.epochs_done = epoch + 1


def epoch_line(hist: History, cfg: TrainConfig) -> str:
    """The log line of the epoch just ended: its training loss and validation perplexity."""
    return (
        f"{cfg.mode} epoch {hist.epochs_done}/{cfg.epochs}: train loss {hist.train_loss[-1]:.3f} "
        f"(ppl {math.exp(hist.train_loss[-1]):.2f}), valid ppl {hist.valid_ppl[-1]:.2f}"
    )


def record_evaluation(
    hist: History,
    model: LSTMLanguageModel,
    valid: torch.Tensor,
    cfg: TrainConfig,
    step: int,
    train_loss: float,
) -> None:
    """Append one point of the learning curve: step, training time, training loss, and the
    validation perplexity with its per-row cross-entropies."""
    append_point(hist, step, train_loss, row_nll(model, valid, cfg.seq_len, cfg.precision).tolist())


def append_point(hist: History, step: int, train_loss: float, rows: list[float]) -> None:
    """Append one point of the learning curve from the validation rows' cross-entropies."""
    hist.steps.append(step)
    hist.seconds.append(hist.train_seconds)
    hist.train_loss.append(train_loss)
    hist.valid_row_nll.append(rows)
    hist.valid_ppl.append(math.exp(sum(rows) / len(rows)))


# --------------------------------------------------------------------------- checkpoints


def resume(
    checkpoint: Path | None,
    model: nn.Module,
    opt: torch.optim.Optimizer,
    generator: torch.Generator | None,
    log: Callable[[str], None] | None,
) -> History:
    """A fresh :class:`History`, or the one saved in ``checkpoint`` with model, optimizer
    and generator restored to where that run stopped."""
    hist = History()
    if checkpoint is None or not checkpoint.is_file():
        return hist
    saved = torch.load(checkpoint, weights_only=True)
    model.load_state_dict(saved["model"])
    opt.load_state_dict(saved["optimizer"])
    for key, value in saved["history"].items():
        setattr(hist, key, value)
    if generator is not None and "generator" in saved:
        generator.set_state(saved["generator"])
    hist.resumed_from_epoch = hist.epochs_done
    if log and hist.epochs_done:
        log(f"resumed from {checkpoint.name} after epoch {hist.epochs_done}")
    return hist


def save_checkpoint(
    path: Path, model: nn.Module, opt: torch.optim.Optimizer, hist: History, generator: torch.Generator | None
) -> None:
    """Write the checkpoint atomically (a crash mid-write leaves the previous one)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fields = {k: v for k, v in vars(hist).items() if k != "resumed_from_epoch"}
    data = {"model": model.state_dict(), "optimizer": opt.state_dict(), "history": fields}
    if generator is not None:
        data["generator"] = generator.get_state()
    tmp = path.with_name(f".{path.name}.{id(data):x}.tmp")
    torch.save(data, tmp)
    tmp.replace(path)
