"""The assignment's LSTM language model and its trainers.

Teacher forcing with truncated BPTT is the assignment's loop. Free-running training
(the model's own argmax is the next input) and scheduled sampling share one trick:
the inputs a free-running model would see are found by a cheap no-grad roll-out, step
by step; the segment is then run again through the fused LSTM on those inputs with
autograd on. That second pass is exactly the free-running computation (same inputs,
same weights, same hidden states), so the gradient flows through the hidden states
over the whole segment and, as in any free-running model, not through the argmax,
which is not differentiable. It costs one extra forward pass instead of a Python loop
of small differentiable steps.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from torch import nn

Mode = Literal["teacher", "free", "scheduled"]
State = tuple[torch.Tensor, torch.Tensor]


class LSTMLanguageModel(nn.Module):
    """Embedding(V, E) -> LSTM(E, H, 1 layer, batch_first) -> Linear(H, V)."""

    def __init__(self, vocab_size: int, embedding_dim: int = 128, hidden_size: int = 1024):
        super().__init__()
        self.embed = nn.Embedding(vocab_size, embedding_dim)
        self.lstm = nn.LSTM(embedding_dim, hidden_size, 1, batch_first=True)
        self.linear = nn.Linear(hidden_size, vocab_size)

    def forward(self, x: torch.Tensor, state: State) -> tuple[torch.Tensor, State]:
        """Logits (B, T, V) for token ids ``x`` (B, T), and the final (h, c)."""
        out, state = self.lstm(self.embed(x), state)
        return self.linear(out), state

    def init_state(self, batch_size: int) -> State:
        w = self.linear.weight
        zeros = torch.zeros(1, batch_size, self.lstm.hidden_size, device=w.device, dtype=w.dtype)
        return zeros, zeros.clone()


def batchify(ids: np.ndarray, batch_size: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """(batch_size, L): the token stream cut into ``batch_size`` contiguous rows, the tail dropped."""
    n = (len(ids) // batch_size) * batch_size
    return torch.as_tensor(ids[:n], dtype=torch.long, device=device).view(batch_size, -1)


def segment_starts(length: int, seq_len: int) -> range:
    """Start columns of the training segments (the assignment's ``range(0, L - seq, seq)``)."""
    return range(0, length - seq_len, seq_len)


def detach(state: State) -> State:
    """The truncation of truncated BPTT: keep the values, cut the graph."""
    return state[0].detach(), state[1].detach()


# --------------------------------------------------------------------------- free running


@torch.no_grad()
def rollout_inputs(
    model: LSTMLanguageModel,
    x: torch.Tensor,
    state: State,
    teacher_prob: float = 0.0,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """The inputs (B, T) a model sees when it feeds back its own argmax predictions.

    Step 0 gets the true token ``x[:, 0]``; at step t > 0 the input is the true token
    ``x[:, t]`` with probability ``teacher_prob`` (scheduled sampling) and otherwise the
    argmax of the model's prediction at step t - 1. Integer ids: no gradient can pass.
    """
    lstm = model.lstm
    weights = (lstm.weight_ih_l0, lstm.weight_hh_l0, lstm.bias_ih_l0, lstm.bias_hh_l0)
    emb, w_out, b_out = model.embed.weight, model.linear.weight.t(), model.linear.bias
    h, c = state[0][0], state[1][0]
    if teacher_prob > 0:
        use_truth = torch.rand(x.shape, generator=generator, device="cpu").to(x.device) < teacher_prob
    tok = x[:, 0]
    inputs = [tok]
    # The last step's output feeds nothing, so the roll-out stops one cell short.
    for t in range(1, x.shape[1]):
        h, c = torch.lstm_cell(emb[tok], (h, c), *weights)
        tok = torch.addmm(b_out, h, w_out).argmax(1)
        if teacher_prob > 0:
            tok = torch.where(use_truth[:, t], x[:, t], tok)
        inputs.append(tok)
    return torch.stack(inputs, 1)


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


# --------------------------------------------------------------------------- training


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
    evals_per_epoch: int = 1


@dataclass
class History:
    """What training measured; evaluation time is left out of ``seconds``."""

    steps: list[int] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    valid_ppl: list[float] = field(default_factory=list)
    train_loss: list[float] = field(default_factory=list)  # mean over the steps since the last eval
    epochs_done: int = 0
    train_seconds: float = 0.0
    train_tokens: int = 0
    resumed_from_epoch: int = 0

    @property
    def tokens_per_s(self) -> float:
        return self.train_tokens / self.train_seconds if self.train_seconds > 0 else float("nan")


@torch.no_grad()
def evaluate_ppl(model: LSTMLanguageModel, data: torch.Tensor, seq_len: int) -> float:
    """Teacher-forced perplexity exp(mean cross-entropy) over a batchified split."""
    model.eval()
    state = model.init_state(data.shape[0])
    total, count = 0.0, 0
    for i in range(0, data.shape[1] - 1, seq_len):
        x, y = data[:, i : i + seq_len], data[:, i + 1 : i + 1 + seq_len]
        x = x[:, : y.shape[1]]
        logits, state = model(x, state)
        total += nn.functional.cross_entropy(
            logits.reshape(-1, logits.shape[-1]), y.reshape(-1), reduction="sum"
        ).item()
        count += y.numel()
    model.train()
    return math.exp(total / count)


def train_model(
    model: LSTMLanguageModel,
    train: torch.Tensor,
    valid: torch.Tensor,
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
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    hist = History()
    window = cfg.seq_len * cfg.bptt_window
    starts = list(segment_starts(train.shape[1], window))
    if not starts:
        raise ValueError(
            f"the training split is too short: {train.shape[1]} tokens per row of the batch, "
            f"fewer than one segment of {window} + 1; use a smaller batch_size or seq_len"
        )
    total_steps = cfg.epochs * len(starts)
    k = inverse_sigmoid_k(total_steps)
    if checkpoint is not None and checkpoint.is_file():
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
    eval_at = set(np.linspace(0, len(starts), cfg.evals_per_epoch + 1).round().astype(int)[1:].tolist())
    loss_fn = nn.CrossEntropyLoss()
    model.train()
    for epoch in range(hist.epochs_done, cfg.epochs):
        state = model.init_state(train.shape[0])
        losses: list[torch.Tensor] = []
        tic = time.perf_counter()
        for j, i in enumerate(starts):
            x, y = train[:, i : i + window], train[:, i + 1 : i + 1 + window]
            step = epoch * len(starts) + j
            state = detach(state)
            if cfg.mode != "teacher":
                p_true = teacher_probability(step, k) if cfg.mode == "scheduled" else 0.0
                x = rollout_inputs(model, x, state, p_true, generator)
            logits, state = model(x, state)
            loss = loss_fn(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), cfg.clip)
            opt.step()
            losses.append(loss.detach())
            if j + 1 in eval_at:
                hist.train_seconds += time.perf_counter() - tic
                mean_loss = torch.stack(losses).mean().item()
                losses = []
                hist.steps.append(step + 1)
                hist.seconds.append(hist.train_seconds)
                hist.train_loss.append(mean_loss)
                hist.valid_ppl.append(evaluate_ppl(model, valid, cfg.seq_len))
                if progress:
                    progress(0, {"loss": round(mean_loss, 3), "valid_ppl": round(hist.valid_ppl[-1], 2)})
                tic = time.perf_counter()
            if progress:
                progress(1, {})
        hist.train_seconds += time.perf_counter() - tic
        hist.train_tokens += len(starts) * window * train.shape[0]
        hist.epochs_done = epoch + 1
        if log:
            log(
                f"{cfg.mode} epoch {epoch + 1}/{cfg.epochs}: train loss {hist.train_loss[-1]:.3f} "
                f"(ppl {math.exp(hist.train_loss[-1]):.2f}), valid ppl {hist.valid_ppl[-1]:.2f}"
            )
        if checkpoint is not None:
            save_checkpoint(checkpoint, model, opt, hist, generator)
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
    tmp = path.with_suffix(".tmp")
    torch.save(data, tmp)
    tmp.replace(path)


# --------------------------------------------------------------------------- Q2.1 measurements


def saved_tensor_bytes(fn: Callable[[], torch.Tensor]) -> int:
    """Bytes of the distinct tensors autograd saves for backward while ``fn()`` runs
    (parameters included); works on any device."""
    seen: dict[tuple, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        # One entry per distinct view (a tensor saved by several ops counts once). Views,
        # not storages: a slice of the token stream holds only its own tokens alive.
        try:
            key = (t.data_ptr(), tuple(t.shape), tuple(t.stride()), t.dtype)
        except RuntimeError:  # tensors without storage (e.g. sparse)
            key = (id(t),)
        seen[key] = t.numel() * t.element_size()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        fn()
    return int(sum(seen.values()))


def backward_memory(model: LSTMLanguageModel, x: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
    """Memory of one training step on (x, y): bytes saved by autograd, and on CUDA the
    peak allocation of forward plus backward."""
    state = model.init_state(x.shape[0])
    out: dict[str, float] = {}

    def forward() -> torch.Tensor:
        logits, _ = model(x, state)
        return nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))

    out["saved_bytes"] = saved_tensor_bytes(forward)
    if x.is_cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        forward().backward()
        model.zero_grad(set_to_none=True)
        out["cuda_peak_bytes"] = torch.cuda.max_memory_allocated() - base
    return out


# --------------------------------------------------------------------------- Q2.2 sampling


def next_token_probs(
    logits: torch.Tensor, method: str, temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0
) -> torch.Tensor:
    """The distribution (..., V) a decoding ``method`` draws from.

    ``multinomial``: softmax(logits); ``greedy``: all mass on the argmax;
    ``temperature``: softmax(logits / T); ``top_k``: the k most likely tokens,
    renormalised; ``top_p``: the smallest set of most likely tokens whose mass reaches p
    (nucleus sampling), renormalised.
    """
    if method == "greedy":
        probs = torch.zeros_like(logits)
        return probs.scatter_(-1, logits.argmax(-1, keepdim=True), 1.0)
    if method == "temperature":
        if temperature <= 0:
            raise ValueError(f"temperature must be positive, got {temperature}")
        logits = logits / temperature
    probs = torch.softmax(logits.double(), -1)
    if method == "top_k":
        if top_k < 1:
            raise ValueError(f"top_k must be at least 1, got {top_k}")
        kth = probs.topk(min(top_k, probs.shape[-1]), -1).values[..., -1:]
        probs = torch.where(probs >= kth, probs, 0.0)
    elif method == "top_p":
        if not 0 < top_p <= 1:
            raise ValueError(f"top_p must lie in (0, 1], got {top_p}")
        sorted_p, order = probs.sort(-1, descending=True)
        # keep a token when the mass before it is still below p (so the top token always stays)
        keep_sorted = (sorted_p.cumsum(-1) - sorted_p) < top_p
        keep = torch.zeros_like(keep_sorted).scatter(-1, order, keep_sorted)
        probs = torch.where(keep, probs, 0.0)
    elif method not in ("multinomial", "temperature"):
        raise ValueError(f"unknown sampling method {method!r}")
    return (probs / probs.sum(-1, keepdim=True)).to(logits.dtype)


@torch.no_grad()
def sample_ids(
    model: LSTMLanguageModel,
    start: int,
    n_tokens: int,
    method: str,
    generator: torch.Generator,
    **kw: float,
) -> tuple[list[int], float]:
    """``n_tokens`` ids generated after ``start``, and their mean log-probability (nats)
    under the model itself (untempered, untruncated)."""
    model.eval()
    state = model.init_state(1)
    x = torch.tensor([[start]], device=model.linear.weight.device)
    ids, logp = [], 0.0
    for _ in range(n_tokens):
        logits, state = model(x, state)
        logits = logits[0, -1]
        probs = next_token_probs(logits, method, **kw)
        nxt = int(torch.multinomial(probs.cpu().float(), 1, generator=generator))
        logp += float(torch.log_softmax(logits.double(), -1)[nxt])
        ids.append(nxt)
        x = torch.tensor([[nxt]], device=x.device)
    model.train()
    return ids, logp / max(n_tokens, 1)


def distinct_n(tokens: list, n: int) -> float:
    """distinct-n: distinct n-grams / all n-grams (1 means no n-gram repeats)."""
    grams = [tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)]
    return len(set(grams)) / len(grams) if grams else 0.0


def repetition_rate(tokens: list, n: int = 4) -> float:
    """Share of n-grams (n = 4) that already occurred earlier in the text: the loops of
    greedy decoding push it towards 1."""
    seen, repeats, total = set(), 0, 0
    for i in range(len(tokens) - n + 1):
        g = tuple(tokens[i : i + n])
        repeats += g in seen
        total += 1
        seen.add(g)
    return repeats / total if total else 0.0


# --------------------------------------------------------------------------- Q2.3 embeddings


class UnknownWordError(KeyError):
    """A word that is not in the model's vocabulary."""

    def __str__(self) -> str:
        return str(self.args[0])


@dataclass
class WordVectors:
    """The rows of an embedding matrix, looked up by word."""

    weight: np.ndarray  # (V, E)
    words: list[str]

    def __post_init__(self) -> None:
        self.index = {w: i for i, w in enumerate(self.words)}

    @classmethod
    def of(cls, model: LSTMLanguageModel, words: list[str]) -> WordVectors:
        return cls(model.embed.weight.detach().cpu().double().numpy(), list(words))

    def vector(self, word: str) -> np.ndarray:
        if word not in self.index:
            raise UnknownWordError(
                f"unknown word {word!r}: not in the model's vocabulary of {len(self.words)} words"
            )
        return self.weight[self.index[word]]

    def nearest(self, word: str, k: int = 5) -> list[tuple[str, float]]:
        """The ``k`` other words with the smallest cosine distance to ``word``."""
        v = self.vector(word)
        norms = np.linalg.norm(self.weight, axis=1) * np.linalg.norm(v)
        dist = 1.0 - self.weight @ v / np.maximum(norms, 1e-12)
        order = [i for i in np.argsort(dist, kind="stable") if i != self.index[word]][:k]
        return [(self.words[i], float(dist[i])) for i in order]


def cosine_distance(vectors: WordVectors, word_a: str, word_b: str) -> float:
    """1 - cos(e_a, e_b) for the embeddings of two words; unknown words raise UnknownWordError."""
    a, b = vectors.vector(word_a), vectors.vector(word_b)
    return float(1.0 - a @ b / max(np.linalg.norm(a) * np.linalg.norm(b), 1e-12))


def pca_2d(x: np.ndarray) -> np.ndarray:
    """The rows of ``x`` projected on their first two principal components."""
    centred = x - x.mean(0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    return centred @ vt[:2].T
