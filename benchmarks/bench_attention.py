"""The position-wise FFN forms of the attention lab side by side, over several sizes, plus a
plain Python loop over positions (what `vmap` saves), and the cost of one equivariance case.

    python benchmarks/bench_attention.py [--threads 1] [--repeat 30] [--device cpu]

Prints, for each (B, T, D) with d_ff = 4 D, the median forward time of each form, its ratio
to nn.Linear and the verdict the lab would record (forms alternating call by call in rotating
order, one round per call, inference mode; "slower"/"faster" only when the sign test over the
rounds decides, e.g. 21 of 30). Then, for the equivariance sweeps of
Exercise 1, the median and 99th-percentile time of one self-attention call on tiny float64
matrices with 1 thread and with all threads: on a loaded machine, small OpenMP regions stall.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from labrunner.labs.attention import attention as att
from labrunner.labs.attention import ffn

from labrunner.stats import time_ratio

SIZES = ((1, 32, 64), (16, 32, 64), (16, 128, 256), (8, 256, 512))


def loop_over_positions(linear: ffn.LinearFFN):
    """The FFN applied token by token in Python: the form `vmap` replaces."""
    params = ffn.ffn_params(linear)

    def run(x: torch.Tensor) -> torch.Tensor:
        out = torch.empty_like(x)
        for b in range(x.shape[0]):
            for t in range(x.shape[1]):
                out[b, t] = ffn.ffn_position(linear, params, x[b, t])
        return out

    return run


def bench_ffn(repeat: int, device: str) -> None:
    print(
        f"FFN forward, median of {repeat} runs per form, ratio to nn.Linear (threads: {torch.get_num_threads()})"
    )
    header = f"{'(B, T, D)':<16} {'form':<24} {'median ms':>10} {'ratio':>7} {'rounds':>12} {'verdict':>8}"
    print(header)
    print("-" * len(header))
    for b, t, d in SIZES:
        torch.manual_seed(0)
        linear = ffn.LinearFFN(d).to(device)
        w = ffn.linear_weights(linear)
        functional = ffn.functionalized_ffn()
        forms = {
            "nn.Linear": linear,
            "nn.Conv1d(k=1)": ffn.ConvFFN(linear),
            "torch.func vmap": ffn.make_vmap_ffn(linear),
            "functionalize(in-place)": lambda v, w=w, f=functional: f(v, *w),
        }
        if b * t <= 512:
            forms["Python loop over tokens"] = loop_over_positions(linear)
        x = torch.randn(b, t, d, device=device)
        reps = repeat if b * t <= 512 else max(5, repeat // 3)
        times = ffn.time_forms(forms, x, repeats=reps)
        base = times["nn.Linear"]
        for name, tm in times.items():
            r = time_ratio(tm, base)
            spread = f"{r.low:.2f}-{r.high:.2f}" if r.low is not None else "-"
            verdict = (
                "-" if name == "nn.Linear" else "slower" if r.slower else "faster" if r.faster else "same"
            )
            print(
                f"{str((b, t, d)):<16} {name:<24} {1e3 * tm.median:>10.3f} "
                f"{tm.median / base.median:>7.2f} {spread:>12} {verdict:>8}"
            )
    print()


def bench_softmax_threads(calls: int) -> None:
    case = next(att.random_cases(((16, 32, 16, 24),), 1, 1, torch.float64, 0))
    print(f"one self-attention call, T=16 float64, {calls} calls")
    print(f"{'threads':>8} {'median us':>10} {'p99 us':>10} {'total ms':>9}")
    for threads in sorted({torch.get_num_threads(), 1}, reverse=True):
        torch.set_num_threads(threads)
        times = []
        for _ in range(calls):
            start = time.perf_counter()
            att.self_attention(case.x, case.w_q, case.w_k, case.w_v)
            times.append(time.perf_counter() - start)
        times.sort()
        p99 = times[int(0.99 * len(times))]
        print(
            f"{threads:>8} {1e6 * statistics.median(times):>10.1f} {1e6 * p99:>10.1f} {1e3 * sum(times):>9.1f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--threads", type=int, default=0, help="torch threads for the FFN table (0: leave as is)"
    )
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--calls", type=int, default=1000, help="self-attention calls per thread setting")
    args = parser.parse_args()
    default_threads = torch.get_num_threads()
    if args.threads:
        torch.set_num_threads(args.threads)
    bench_ffn(args.repeat, args.device)
    torch.set_num_threads(default_threads)
    bench_softmax_threads(args.calls)


if __name__ == "__main__":
    main()
