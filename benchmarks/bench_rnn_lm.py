"""The rnn_lm lab's trainer against a plain PyTorch loop, and its claims over seeds.

    python benchmarks/bench_rnn_lm.py speed                  # the quick profile's model (E 32, H 128), CPU
    python benchmarks/bench_rnn_lm.py speed --embedding 128 --hidden 1024 --tokens 200000 \\
        --device cuda --precision fp32,bf16                  # the assignment's size on a GPU
    python benchmarks/bench_rnn_lm.py replicas --threads 1      # Q2.4's seeds: one at a time or batched
    python benchmarks/bench_rnn_lm.py claims RUN_DIR [RUN_DIR ...]   # e.g. one run folder per seed

``speed`` times, in alternation and ``--repeats`` times each after a warm-up round:
(a) the plain loop in the assignment's code shape (fp32), (b) the lab's teacher-forced
trainer in each ``--precision``, (c) the lab's free-running trainer and (d) a naive
free-running loop (nn.LSTMCell step by step with autograd). It prints tokens/s as median
and interquartile range, the ratios to the plain loop, and the validation perplexity each
teacher-forced variant reached after the same steps (equal within noise is the goal).

``replicas`` trains the seeds Q2.3 to Q2.5 train besides the run's own (7 in the quick
profile) under each ``--modes`` trainer, on the quick profile's corpus and model, once one
model at a time (``train_model``, the fused ``nn.LSTM``) and once as one batched model
(``train_replicas``), in alternation (the order swapping each round) ``--repeats`` times.
It prints the wall and CPU seconds of each (median, min-max), the median of the per-round
ratios, and the largest difference between a replica's parameters and its seed trained alone.

``claims`` reads the rnn_lm result of each run folder and prints every claim whose outcome
differs between them (the answers must not flip with the seed), then a count per claim.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch
from labrunner.labs.rnn_lm import corpus as C
from labrunner.labs.rnn_lm import model as M
from labrunner.labs.rnn_lm import training as T
from torch import nn


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def plain_loop(
    model: M.LSTMLanguageModel, ids: torch.Tensor, seq: int, lr: float = 0.002
) -> tuple[float, int]:
    """The assignment's training loop, one epoch; returns (seconds, tokens)."""
    criterion = nn.CrossEntropyLoss()
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    b, hidden, device = ids.shape[0], model.lstm.hidden_size, ids.device
    states = (torch.zeros(1, b, hidden, device=device), torch.zeros(1, b, hidden, device=device))
    tokens = 0
    sync(device)
    tic = time.perf_counter()
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
    sync(device)
    return time.perf_counter() - tic, tokens


def naive_free_running(
    model: M.LSTMLanguageModel, ids: torch.Tensor, seq: int, lr: float = 0.002
) -> tuple[float, int]:
    """Free running as usually written: an LSTMCell step by step, argmax fed back, autograd on."""
    device = ids.device
    cell = nn.LSTMCell(model.embed.embedding_dim, model.lstm.hidden_size).to(device)
    cell.weight_ih, cell.weight_hh = model.lstm.weight_ih_l0, model.lstm.weight_hh_l0
    cell.bias_ih, cell.bias_hh = model.lstm.bias_ih_l0, model.lstm.bias_hh_l0
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    b, hidden = ids.shape[0], model.lstm.hidden_size
    h, c = torch.zeros(b, hidden, device=device), torch.zeros(b, hidden, device=device)
    tokens = 0
    sync(device)
    tic = time.perf_counter()
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
    sync(device)
    return time.perf_counter() - tic, tokens


def speed(args: argparse.Namespace) -> None:
    from labrunner.stats import interleaved

    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    corpus = C.synthetic_corpus(0, args.tokens, args.vocab)
    ids = M.batchify(corpus.train, args.batch, device)
    valid = M.batchify(corpus.valid, args.batch, device)
    vocab = len(corpus.dictionary)
    models: dict[str, M.LSTMLanguageModel] = {}

    def fresh(name: str) -> M.LSTMLanguageModel:
        torch.manual_seed(0)
        models[name] = M.LSTMLanguageModel(vocab, args.embedding, args.hidden).to(device)
        return models[name]

    def lab(name: str, mode: str, precision: str):
        def run() -> tuple[float, int]:
            cfg = T.TrainConfig(
                epochs=1,
                batch_size=args.batch,
                seq_len=args.seq,
                mode=mode,
                evals_per_epoch=0,
                precision=precision,
            )
            hist = T.train_model(fresh(name), ids, None, cfg)
            return hist.train_seconds, hist.train_tokens

        return run

    runs = {"plain loop (assignment), fp32": lambda: plain_loop(fresh("plain"), ids, args.seq)}
    scored = {"plain loop (assignment), fp32": "plain"}  # teacher-forced variants: same steps, same data
    for precision in args.precision.split(","):
        label = f"lab trainer, teacher forcing, {precision}"
        runs[label] = lab(f"lab {precision}", "teacher", precision)
        scored[label] = f"lab {precision}"
    runs["lab trainer, free running, fp32"] = lab("free", "free", "fp32")
    if not args.skip_naive:
        runs["naive free running (LSTMCell), fp32"] = lambda: naive_free_running(
            fresh("naive"), ids, args.seq
        )
    timing = interleaved(
        {k: (lambda run=run: (lambda s, n: s / n)(*run())) for k, run in runs.items()}, rounds=args.repeats
    )
    name = (
        torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else f"CPU, {torch.get_num_threads()} threads"
    )
    print(
        f"model E={args.embedding} H={args.hidden} V={vocab}, batch {args.batch} x seq {args.seq}, "
        f"{ids.numel()} tokens per epoch, {name}; {args.repeats} interleaved repeats after a warm-up"
    )
    plain = timing["plain loop (assignment), fp32"]
    for label, t in timing.items():
        lo, hi = t.quartiles
        line = f"  {label:40s} {1 / t.median:10.0f} tokens/s (IQR {1 / hi:.0f}-{1 / lo:.0f})"
        line += f"   x{plain.median / t.median:.2f} of the plain loop"
        if label in scored:
            line += (
                f", valid ppl after one epoch {T.evaluate_ppl(models[scored[label]], valid, args.seq):.2f}"
            )
        print(line)


def replicas(args: argparse.Namespace) -> None:
    from labrunner.labs.rnn_lm import replicas as RP

    if args.threads:
        torch.set_num_threads(args.threads)
    corpus = C.synthetic_corpus(0, args.tokens, args.vocab)
    train = M.batchify(corpus.train, args.batch)
    valid = M.batchify(corpus.valid, args.batch)
    vocab = len(corpus.dictionary)
    seeds = list(range(1, 1 + args.seeds))

    def fresh() -> list[M.LSTMLanguageModel]:
        out = []
        for s in seeds:
            torch.manual_seed(s)
            out.append(M.LSTMLanguageModel(vocab, args.embedding, args.hidden))
        return out

    def generators() -> list[torch.Generator]:
        return [torch.Generator().manual_seed(s + 7919) for s in seeds]

    print(
        f"model E={args.embedding} H={args.hidden} V={vocab}, batch {args.batch} x seq {args.seq}, "
        f"{args.epochs} epoch(s) of {train.numel()} tokens, {args.evals} evaluations per epoch; "
        f"{len(seeds)} seeds; CPU, {torch.get_num_threads()} thread(s); {args.repeats} alternating rounds"
    )
    for mode in args.modes.split(","):
        # warm-up (kernel selection, allocator growth): a few steps of each
        short = T.TrainConfig(batch_size=args.batch, seq_len=args.seq, mode=mode, evals_per_epoch=1)
        part = train[:, : 3 * args.seq + 1]
        T.train_model(fresh()[0], part, valid, short, generator=generators()[0])
        RP.train_replicas(fresh(), part, valid, short, generators=generators())
        cfg = T.TrainConfig(
            epochs=args.epochs, batch_size=args.batch, seq_len=args.seq, mode=mode, evals_per_epoch=args.evals
        )
        trained: dict[str, list[M.LSTMLanguageModel]] = {}

        def one_at_a_time(cfg: T.TrainConfig = cfg, trained: dict = trained) -> None:
            models = fresh()
            for m, g in zip(models, generators(), strict=True):
                T.train_model(m, train, valid, cfg, generator=g)
            trained["one at a time"] = models

        def batched(cfg: T.TrainConfig = cfg, trained: dict = trained) -> None:
            models = fresh()
            RP.train_replicas(models, train, valid, cfg, generators=generators())
            trained["batched"] = models

        variants = {"one at a time": one_at_a_time, "batched": batched}
        wall: dict[str, list[float]] = {k: [] for k in variants}
        cpu: dict[str, list[float]] = {k: [] for k in variants}
        for i in range(args.repeats):
            for name in list(variants)[:: 1 if i % 2 == 0 else -1]:
                w, c = time.perf_counter(), time.process_time()
                variants[name]()
                wall[name].append(time.perf_counter() - w)
                cpu[name].append(time.process_time() - c)
        diff = max(
            (a - b).abs().max().item()
            for ma, mb in zip(trained["one at a time"], trained["batched"], strict=True)
            for a, b in zip(ma.parameters(), mb.parameters(), strict=True)
        )
        print(f"{mode}: largest parameter difference, replica against its seed alone: {diff:.2g}")
        for clock, readings in (("wall", wall), ("CPU", cpu)):
            for name, xs in readings.items():
                print(
                    f"  {clock:4s} {name:14s} {statistics.median(xs):7.2f} s "
                    f"(min-max {min(xs):.2f}-{max(xs):.2f} over {len(xs)})"
                )
            ratios = [a / b for a, b in zip(readings["one at a time"], readings["batched"], strict=True)]
            print(
                f"  {clock:4s} one at a time / batched, per round: median {statistics.median(ratios):.2f} "
                f"(min-max {min(ratios):.2f}-{max(ratios):.2f})"
            )


def claims(args: argparse.Namespace) -> int:
    outcomes: dict[str, dict[str, bool]] = {}
    for run in args.runs:
        path = Path(run) / "rnn_lm" / "result.json"
        if not path.is_file():
            print(f"{run}: no rnn_lm/result.json", file=sys.stderr)
            return 2
        data = json.loads(path.read_text(encoding="utf-8"))
        label = f"seed {data.get('seed')}" if data.get("seed") is not None else str(run)
        for ex in data.get("exercises", []):
            for claim in ex.get("claims", []):
                outcomes.setdefault(claim["name"], {})[label] = claim["holds"]
    labels = {label for o in outcomes.values() for label in o}
    missing = {n: sorted(labels - set(o)) for n, o in outcomes.items() if set(o) != labels}
    flips = {n: o for n, o in outcomes.items() if len(set(o.values())) > 1}
    print(f"{len(outcomes)} claims over {len(args.runs)} runs; {len(flips)} differ between runs")
    for name, o in flips.items():
        held = [k for k, v in o.items() if v]
        print(f"  {name}: holds in {len(held)} of {len(o)} ({', '.join(held) or 'none'})")
    for name, absent in missing.items():
        print(f"  {name}: not recorded in {', '.join(absent)}")
    steady = {n: statistics.mode(o.values()) for n, o in outcomes.items() if n not in flips}
    print("the same in every run: " + ", ".join(f"{n}={'yes' if v else 'no'}" for n, v in steady.items()))
    return 1 if flips else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sp = sub.add_parser("speed", help="the lab's trainer against a plain loop")
    sp.add_argument("--embedding", type=int, default=32)
    sp.add_argument("--hidden", type=int, default=128)
    sp.add_argument("--vocab", type=int, default=200)
    sp.add_argument("--tokens", type=int, default=40000)
    sp.add_argument("--batch", type=int, default=20)
    sp.add_argument("--seq", type=int, default=30)
    sp.add_argument("--repeats", type=int, default=5)
    sp.add_argument("--device", default="cpu")
    sp.add_argument(
        "--precision", default="fp32,bf16", help="comma-separated precisions of the lab's trainer"
    )
    sp.add_argument("--skip-naive", action="store_true", help="leave out the slow step-by-step loop")
    sp.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    rp = sub.add_parser("replicas", help="Q2.4's seeds trained one at a time against batched")
    rp.add_argument("--embedding", type=int, default=32)
    rp.add_argument("--hidden", type=int, default=128)
    rp.add_argument("--vocab", type=int, default=200)
    rp.add_argument("--tokens", type=int, default=40000)
    rp.add_argument("--batch", type=int, default=20)
    rp.add_argument("--seq", type=int, default=30)
    rp.add_argument("--epochs", type=int, default=3)
    rp.add_argument("--evals", type=int, default=2, help="validation measurements per epoch")
    rp.add_argument("--seeds", type=int, default=7, help="replicas per trainer")
    rp.add_argument("--modes", default="teacher,free,scheduled")
    rp.add_argument("--repeats", type=int, default=3)
    rp.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    cp = sub.add_parser("claims", help="claims whose outcome differs between runs")
    cp.add_argument("runs", nargs="+", help="run folders (each holding rnn_lm/result.json)")
    args = parser.parse_args()
    if args.command == "speed":
        speed(args)
        return 0
    if args.command == "replicas":
        replicas(args)
        return 0
    return claims(args)


if __name__ == "__main__":
    sys.exit(main())
