"""The assignment's LSTM language model and the maths each question uses: the
free-running roll-out, memory held for backward, samplers, text statistics and embeddings.

Free-running training (the model's own argmax is the next input) and scheduled sampling
share one trick: the inputs a free-running model would see are found by a cheap no-grad
roll-out, step by step; the segment is then run again through the fused LSTM on those
inputs with autograd on. That second pass is exactly the free-running computation (same
inputs, same weights, same hidden states), so the gradient flows through the hidden states
over the whole segment and, as in any free-running model, not through the argmax, which is
not differentiable. It costs one extra forward pass instead of a Python loop of small
differentiable steps. The training loop itself is in :mod:`.training`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

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
    # BEGIN SOLUTION the truncation of truncated BPTT
    return state[0].detach(), state[1].detach()
    # END SOLUTION


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
    # the state may come from an autocast forward pass (bf16/fp16): the roll-out runs in the weights' dtype
    h, c = state[0][0].to(emb.dtype), state[1][0].to(emb.dtype)
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


def backward_memory(
    model: LSTMLanguageModel,
    x: torch.Tensor,
    y: torch.Tensor,
    amp: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext,
) -> dict[str, float]:
    """Memory of one training step on (x, y): bytes saved by autograd, and on CUDA the
    peak allocation of forward plus backward above what was allocated before (the peak
    statistics are reset first, so each call measures its own step). ``amp`` gives the
    autocast context of the forward pass."""
    state = model.init_state(x.shape[0])
    out: dict[str, float] = {}

    def forward() -> torch.Tensor:
        with amp():
            logits, _ = model(x, state)
            return nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), y.reshape(-1))

    out["saved_bytes"] = saved_tensor_bytes(forward)
    if x.is_cuda:
        torch.cuda.synchronize(x.device)
        torch.cuda.reset_peak_memory_stats(x.device)
        base = torch.cuda.memory_allocated(x.device)
        forward().backward()
        torch.cuda.synchronize(x.device)
        out["cuda_peak_bytes"] = torch.cuda.max_memory_allocated(x.device) - base
        model.zero_grad(set_to_none=True)
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
    # BEGIN SOLUTION the samplers: greedy, temperature, top-k, top-p
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
    # END SOLUTION


@dataclass
class Samples:
    """Token ids drawn by a decoding method, one list per sequence, and the log-probability
    (nats) of each drawn token under the model itself (untempered, untruncated)."""

    ids: list[list[int]]
    model_logp: list[list[float]]

    def mean_logp(self) -> list[float]:
        """Mean model log-probability per token of each sequence."""
        return [sum(lp) / max(len(lp), 1) for lp in self.model_logp]


@torch.no_grad()
def sample_ids(
    model: LSTMLanguageModel,
    start: int,
    n_tokens: int,
    method: str,
    generator: torch.Generator,
    n_samples: int = 1,
    **kw: float,
) -> Samples:
    """``n_samples`` independent sequences of ``n_tokens`` ids generated after ``start``
    (drawn side by side as one batch), with each token's log-probability under the model."""
    was_training = model.training
    model.eval()
    device = model.linear.weight.device
    state = model.init_state(n_samples)
    x = torch.full((n_samples, 1), start, dtype=torch.long, device=device)
    ids, logps = [], []
    for _ in range(n_tokens):
        logits, state = model(x, state)
        logits = logits[:, -1]
        probs = next_token_probs(logits, method, **kw)
        nxt = torch.multinomial(probs.cpu().float(), 1, generator=generator).to(device)
        logps.append(torch.log_softmax(logits.double(), -1).gather(1, nxt)[:, 0])
        ids.append(nxt[:, 0])
        x = nxt
    model.train(was_training)
    return Samples(torch.stack(ids, 1).tolist(), torch.stack(logps, 1).tolist())


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
