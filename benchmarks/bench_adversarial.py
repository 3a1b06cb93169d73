"""Time per targeted example of the assignment's attack (Adam on alpha*||d||_1 + CE),
with the targets of one image batched through the model against one target at a time.

    python benchmarks/bench_adversarial.py [--model alexnet|shapes|both] [--targets 3]
                                           [--iters 20] [--repeat 5] [--threads 0] [--device cpu]

Both modes run exactly ``--iters`` Adam steps per example (a learning rate too small to
succeed, so early stopping never shortens one mode more than the other) on the same image and
targets; the weights are random because speed does not depend on them. Prints the median
wall time per example and the speed-up of batching.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch


def build(model: str, device: torch.device):
    from labrunner.labs.adversarial.alexnet import AlexNet
    from labrunner.labs.adversarial.attacks import PixelClassifier
    from labrunner.labs.adversarial.shapes import MEAN, STD, ShapesCNN

    torch.manual_seed(0)
    if model == "alexnet":
        net, size, classes = (
            PixelClassifier(AlexNet(), (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
            224,
            1000,
        )
    else:
        net, size, classes = PixelClassifier(ShapesCNN(), MEAN, STD), 32, 6
    net = net.to(device).eval()
    for p in net.parameters():
        p.requires_grad_(False)
    return net, torch.rand(3, size, size, device=device), classes


def time_per_example(net, image, targets, iters: int, repeat: int) -> tuple[float, float]:
    """Median seconds per example (one target at a time, batched). The two modes alternate,
    so a load change on a shared machine hits both alike."""
    from labrunner.labs.adversarial.attacks import l1_adam_attack

    def once(batched: bool) -> float:
        if image.is_cuda:
            torch.cuda.synchronize()
        start = time.perf_counter()
        # The lab's call: alpha and lr in the normalised space, mapped to pixels per channel.
        std = net.std.flatten().tolist()
        if batched:
            l1_adam_attack(net, image, targets, lr=1e-12, max_iter=iters, std=std)
        else:
            for t in targets:
                l1_adam_attack(net, image, t.view(1), lr=1e-12, max_iter=iters, std=std)
        if image.is_cuda:
            torch.cuda.synchronize()
        return (time.perf_counter() - start) / len(targets)

    once(False), once(True)  # warm-up
    single, batched = [], []
    for _ in range(repeat):
        single.append(once(False))
        batched.append(once(True))
    return statistics.median(single), statistics.median(batched)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", choices=["alexnet", "shapes", "both"], default="both")
    parser.add_argument("--targets", type=int, default=3)
    parser.add_argument("--iters", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    models = ["shapes", "alexnet"] if args.model == "both" else [args.model]
    print(
        f"device {device}, {torch.get_num_threads()} threads, {args.targets} targets, {args.iters} steps each"
    )
    print(f"{'model':<9} {'one at a time ms/ex':>20} {'batched ms/ex':>14} {'speed-up':>9}")
    for model in models:
        net, image, classes = build(model, device)
        gen = torch.Generator().manual_seed(1)
        targets = torch.randperm(classes, generator=gen)[: args.targets].to(device)
        single, batched = time_per_example(net, image, targets, args.iters, args.repeat)
        print(f"{model:<9} {1000 * single:20.1f} {1000 * batched:14.1f} {single / batched:8.2f}x")


if __name__ == "__main__":
    main()
