"""Training speed of the rnn_lm lab against a plain PyTorch loop, side by side.

    python benchmarks/bench_rnn_lm.py                  # the quick profile's model (E 32, H 128)
    python benchmarks/bench_rnn_lm.py --hidden 1024 --embedding 128 --tokens 20000   # the assignment's

Prints tokens/s of (a) the plain loop in the assignment's code shape, (b) the lab's
teacher-forced trainer (target ratio b/a >= 0.95), (c) the lab's free-running trainer
and (d) a naive free-running loop (nn.LSTMCell step by step with autograd), with the cost
per token of (c) and (d) relative to teacher forcing (target for (c): <= 1.5).
Each variant runs ``--repeats`` times in alternation; the best run counts.
"""

from __future__ import annotations

import argparse
import time

import torch
from labrunner.labs.rnn_lm import corpus as C
from labrunner.labs.rnn_lm import model as M
from torch import nn


def plain_loop(model: M.LSTMLanguageModel, ids: torch.Tensor, seq: int, lr: float = 0.002) -> float:
    """The assignment's training loop, one epoch; returns tokens/s."""
    criterion = nn.CrossEntropyLoss()
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    b = ids.shape[0]
    states = (torch.zeros(1, b, model.lstm.hidden_size), torch.zeros(1, b, model.lstm.hidden_size))
    tokens, tic = 0, time.perf_counter()
    for i in range(0, ids.size(1) - seq, seq):
        inputs, targets = ids[:, i : i + seq], ids[:, (i + 1) : (i + 1) + seq]
        states = [s.detach() for s in states]
        outputs, states = model(inputs, states)
        loss = criterion(outputs.reshape(-1, outputs.shape[-1]), targets.reshape(-1))
        model.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 0.5)
        optimizer.step()
        tokens += inputs.numel()
    return tokens / (time.perf_counter() - tic)


def naive_free_running(model: M.LSTMLanguageModel, ids: torch.Tensor, seq: int, lr: float = 0.002) -> float:
    """Free running as usually written: an LSTMCell step by step, argmax fed back, autograd on."""
    cell = nn.LSTMCell(model.embed.embedding_dim, model.lstm.hidden_size)
    cell.weight_ih, cell.weight_hh = model.lstm.weight_ih_l0, model.lstm.weight_hh_l0
    cell.bias_ih, cell.bias_hh = model.lstm.bias_ih_l0, model.lstm.bias_hh_l0
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    b = ids.shape[0]
    h, c = torch.zeros(b, model.lstm.hidden_size), torch.zeros(b, model.lstm.hidden_size)
    tokens, tic = 0, time.perf_counter()
    for i in range(0, ids.size(1) - seq, seq):
        h, c = h.detach(), c.detach()
        inp, losses = ids[:, i], []
        for t in range(seq):
            h, c = cell(model.embed(inp), (h, c))
            logits = model.linear(h)
            losses.append(nn.functional.cross_entropy(logits, ids[:, i + 1 + t]))
            inp = logits.argmax(1)
        loss = torch.stack(losses).mean()
        optimizer.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 0.5)
        optimizer.step()
        tokens += b * seq
    return tokens / (time.perf_counter() - tic)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--embedding", type=int, default=32)
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--vocab", type=int, default=200)
    parser.add_argument("--tokens", type=int, default=40000)
    parser.add_argument("--batch", type=int, default=20)
    parser.add_argument("--seq", type=int, default=30)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    corpus = C.synthetic_corpus(0, args.tokens, args.vocab)
    ids = M.batchify(corpus.train, args.batch)
    valid = M.batchify(corpus.valid, args.batch)
    vocab = len(corpus.dictionary)

    def fresh() -> M.LSTMLanguageModel:
        torch.manual_seed(0)
        return M.LSTMLanguageModel(vocab, args.embedding, args.hidden)

    def lab(mode: str) -> float:
        cfg = M.TrainConfig(epochs=1, batch_size=args.batch, seq_len=args.seq, mode=mode)
        return M.train_model(fresh(), ids, valid, cfg).tokens_per_s

    runs = {
        "plain loop (assignment)": lambda: plain_loop(fresh(), ids, args.seq),
        "lab trainer, teacher forcing": lambda: lab("teacher"),
        "lab trainer, free running": lambda: lab("free"),
        "naive free running (LSTMCell)": lambda: naive_free_running(fresh(), ids, args.seq),
    }
    best = dict.fromkeys(runs, 0.0)
    for _ in range(args.repeats):
        for name, fn in runs.items():
            best[name] = max(best[name], fn())
    print(
        f"model E={args.embedding} H={args.hidden} V={vocab}, batch {args.batch} x seq {args.seq}, "
        f"{ids.numel()} tokens, {torch.get_num_threads()} threads, best of {args.repeats}"
    )
    for name, tps in best.items():
        print(f"  {name:32s} {tps:10.0f} tokens/s")
    tf = best["lab trainer, teacher forcing"]
    print(
        f"lab / plain loop (teacher forcing):          {tf / best['plain loop (assignment)']:.3f}  (target >= 0.95)"
    )
    print(
        f"free running cost per token, lab:            {tf / best['lab trainer, free running']:.2f}x (target <= 1.5)"
    )
    print(f"free running cost per token, naive loop:     {tf / best['naive free running (LSTMCell)']:.2f}x")


if __name__ == "__main__":
    main()
