"""The lab, exercise by exercise: choose the model, classify, attack, compare, answer.

Only orchestration and recording live here; the maths is in :mod:`.attacks`,
the model in :mod:`.alexnet` and :mod:`.shapes`, the images in :mod:`.images`.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import torch  # noqa: E402

from . import alexnet, shapes, text  # noqa: E402
from .attacks import (  # noqa: E402
    AttackResult,
    PixelClassifier,
    fgsm_attack,
    l1_adam_attack,
    l1_ista_attack,
    median,
    perturbation_norms,
    pgd_attack,
    png_round_trip,
    predict,
    psnr,
)
from .images import LabImage, Preprocess, default_sources, load_images, skimage_available  # noqa: E402

METHODS = {
    "fgsm": "Targeted FGSM",
    "pgd": "I-FGSM / PGD (L-inf)",
    "l1_adam": "Assignment: Adam on L1 + CE",
    "l1_ista": "EAD-style: ISTA on L1 + CE",
}
SAFE = re.compile(r"[^A-Za-z0-9_.-]+")


@dataclass
class Model:
    """The classifier the lab attacks, and what the report says about it."""

    net: PixelClassifier
    kind: str  # "alexnet" or "fallback"
    categories: list[str]
    pre: Preprocess
    state_dict: dict[str, torch.Tensor] | None = None
    weights_how: str = ""
    weights_path: str = ""
    fallback_accuracy: float | None = None
    fallback_cached: bool = False
    fallback_reason: str = ""


@dataclass
class MethodRun:
    """One method on every (image, target) pair, flattened in the same order."""

    key: str
    label: str
    images: list[str] = field(default_factory=list)
    originals: list[torch.Tensor] = field(default_factory=list)
    targets: list[int] = field(default_factory=list)
    adversarial: list[torch.Tensor] = field(default_factory=list)
    round_trip: list[torch.Tensor] = field(default_factory=list)
    success: list[bool] = field(default_factory=list)
    rt_success: list[bool] = field(default_factory=list)
    p_target: list[float] = field(default_factory=list)
    rt_p_target: list[float] = field(default_factory=list)
    pred: list[int] = field(default_factory=list)
    rt_pred: list[int] = field(default_factory=list)
    conf: list[float] = field(default_factory=list)
    iterations: list[int] = field(default_factory=list)
    seconds: float = 0.0

    def add(
        self,
        name: str,
        original: torch.Tensor,
        targets: torch.Tensor,
        result: AttackResult,
        model,
        paths=None,
    ):
        rt = png_round_trip(result.adversarial, paths)
        probs, rt_probs = predict(model, result.adversarial), predict(model, rt)
        for j, t in enumerate(targets.tolist()):
            self.images.append(name)
            self.originals.append(original.cpu())
            self.targets.append(t)
            self.adversarial.append(result.adversarial[j].cpu())
            self.round_trip.append(rt[j].cpu())
            self.success.append(bool(result.success[j]))
            self.rt_success.append(int(rt_probs[j].argmax()) == t)
            self.p_target.append(float(probs[j, t]))
            self.rt_p_target.append(float(rt_probs[j, t]))
            self.pred.append(int(probs[j].argmax()))
            self.rt_pred.append(int(rt_probs[j].argmax()))
            self.conf.append(float(probs[j].max()))
            self.iterations.append(int(result.iterations[j]))
        self.seconds += result.seconds

    @property
    def n(self) -> int:
        return len(self.targets)

    def norms(self) -> dict[str, torch.Tensor]:
        """Per-example norms of the float perturbation, 0-255 units, plus the 8-bit L0 and PSNR."""
        orig, adv, rt = (
            torch.stack(self.originals),
            torch.stack(self.adversarial),
            torch.stack(self.round_trip),
        )
        out = perturbation_norms(orig, adv)
        out["l0_8bit"] = perturbation_norms(orig, rt)["l0"]
        out["psnr"] = psnr(orig, adv)
        out["size"] = torch.full((self.n,), float(orig[0].numel()), dtype=torch.float64)
        return out

    def summary(self, among: torch.Tensor | None = None) -> dict[str, float]:
        """Success rates over all examples; medians over the successful ones (NaN if none),
        or over the examples in the boolean mask ``among`` (which must be successes)."""
        norms = self.norms()
        ok = torch.tensor(self.success, dtype=torch.bool)
        if among is not None:
            ok = ok & among
        size = float(norms["size"][0]) if self.n else 1.0
        return {
            "success": float(np.mean(self.success)) if self.n else math.nan,
            "rt_success": float(np.mean(self.rt_success)) if self.n else math.nan,
            "iterations": median(torch.tensor(self.iterations)[ok]),
            "l0": median(norms["l0"][ok]),
            "l0_pct": median(norms["l0"][ok]) / size,
            "l0_8bit": median(norms["l0_8bit"][ok]),
            "l0_8bit_pct": median(norms["l0_8bit"][ok]) / size,
            "l1": median(norms["l1"][ok]),
            "l2": median(norms["l2"][ok]),
            "linf": median(norms["linf"][ok]),
            "psnr": median(norms["psnr"][ok]),
            "ms_per_example": 1000.0 * self.seconds / max(self.n, 1),
        }


# --------------------------------------------------------------------------- the model


def fallback_model(ctx, reason: str) -> Model:
    cfg = ctx.config
    settings = shapes.TrainSettings(train_size=cfg.fallback_train_size, epochs=cfg.fallback_epochs)
    with ctx.progress(total=settings.epochs, desc="training the stand-in CNN") as bar:
        net, cached = shapes.load_or_train(
            settings, ctx.cache_dir / "models", progress=lambda epoch, loss: bar.update(1, loss=loss)
        )
    images, labels = shapes.held_out_set(settings)
    acc = shapes.accuracy(net, shapes.normalise(shapes.as_tensor(images)), torch.from_numpy(labels))
    ctx.log(f"stand-in CNN: test accuracy {acc:.3f} ({'cached' if cached else 'trained now'})")
    pre = Preprocess(resize=settings.image_size, crop=settings.image_size, mean=shapes.MEAN, std=shapes.STD)
    return Model(
        PixelClassifier(net, shapes.MEAN, shapes.STD),
        "fallback",
        list(shapes.CLASSES),
        pre,
        fallback_accuracy=acc,
        fallback_cached=cached,
        fallback_reason=reason,
    )


def choose_model(ctx) -> Model:
    """AlexNet with ImageNet weights when they can be had; else the stand-in, with the reason."""
    from torchvision.models import AlexNet_Weights

    cfg = ctx.config
    source = alexnet.find_weights(cfg.weights, cfg.download)
    if source.path is None:
        return fallback_model(ctx, source.how)
    # In the hub cache, any file that is what its name says will do (official one first).
    candidates = alexnet.hub_weights_candidates() if source.how == "hub cache" else [source.path]
    problems = []
    for path in candidates:
        try:
            state = alexnet.load_alexnet_weights(path)
            break
        except alexnet.WeightsError as exc:
            if cfg.weights != "auto":
                raise  # a path the user gave must work; silently using the stand-in would hide it
            problems.append(str(exc))
    else:
        return fallback_model(ctx, f"the weights in the hub cache are unusable: {'; '.join(problems)}")
    meta = AlexNet_Weights.IMAGENET1K_V1
    net = alexnet.AlexNet()
    net.load_state_dict(state)
    pre = Preprocess.from_torchvision(meta.transforms())
    return Model(
        PixelClassifier(net, pre.mean, pre.std),
        "alexnet",
        list(meta.meta["categories"]),
        pre,
        state_dict=state,
        weights_how=source.how,
        weights_path=str(path),
    )


def first_note(model: Model) -> dict[str, Any]:
    return {
        "kind": model.kind,
        "how": model.weights_how,
        "path": model.weights_path,
        "official": model.weights_path.endswith(alexnet.OFFICIAL_FILE),
        "reason": model.fallback_reason,
        "hub": str(alexnet.hub_checkpoints()),
        "official_file": alexnet.OFFICIAL_FILE,
        "accuracy": model.fallback_accuracy,
        "cached": model.fallback_cached,
        "classes": len(model.categories),
    }


# --------------------------------------------------------------------------- figures


def show(ax, image: torch.Tensor, title: str) -> None:
    ax.imshow(image.permute(1, 2, 0).clamp(0, 1).cpu().numpy(), interpolation="nearest")
    ax.set_title(title, fontsize=8)
    ax.axis("off")


def amplified(delta: torch.Tensor) -> tuple[torch.Tensor, float]:
    """``delta`` mapped to [0, 1] around grey, scaled so its largest entry reaches the edge."""
    peak = float(delta.abs().max())
    gain = 0.5 / peak if peak > 0 else 1.0
    return (0.5 + gain * delta).clamp(0, 1), gain


def short(name: str, width: int = 22) -> str:
    name = name.split(",")[0]
    return name if len(name) <= width else name[: width - 1] + "…"


# --------------------------------------------------------------------------- the exercises


@dataclass
class Session:
    """What every exercise needs: the context, the frozen model, and the attack plan
    (each chosen image with its clean class and its target classes)."""

    ctx: Any
    model: Model
    net: PixelClassifier
    plan: list[tuple[LabImage, int, torch.Tensor]] = field(default_factory=list)

    def run_method(self, key: str, attack, save: bool = False) -> MethodRun:
        """Run ``attack(net, image, targets)`` on every planned image, all its targets in one
        batch; with ``save`` the adversarial images are written as PNG files of the run."""
        ctx, device = self.ctx, self.ctx.device
        out = MethodRun(key, METHODS[key])
        for im, _, targets in ctx.progress(self.plan, desc=METHODS[key]):
            x = im.pixels.to(device)
            result = attack(self.net, x, targets.to(device))
            paths = None
            if save:
                paths = [
                    ctx.file(SAFE.sub("_", f"adversarial-{im.name}-to-{t}.png")) for t in targets.tolist()
                ]
            out.add(im.name, x, targets, result, self.net, paths)
        return out


def run_experiment(ctx) -> None:
    """The lab: the model first (and the note saying which), then the five exercises."""
    model = choose_model(ctx)
    ctx.note(text.MODEL_NOTE, **first_note(model))
    net = model.net.to(ctx.device).eval()
    for p in net.parameters():
        p.requires_grad_(False)
    s = Session(ctx, model, net)
    images, top_classes = classification(s)
    s.plan = plan_attacks(s, images, top_classes)
    # One untimed step first, so the first timed method does not pay for warming up the kernels.
    im, _, targets = s.plan[0]
    l1_adam_attack(net, im.pixels.to(ctx.device), targets[:1].to(ctx.device), max_iter=1)
    adam = assignment_attack(s)
    runs, summaries = baselines(s, adam)
    sparser = sparsity(s, runs, summaries)
    conclusions(s, runs, summaries, sparser)


def classification(s: Session) -> tuple[list[LabImage], torch.Tensor]:
    """Exercise 1: check the written-out AlexNet, classify every image; returns the images
    and their top-k class indices."""
    import matplotlib.pyplot as plt

    ctx, cfg, net, cats, device = s.ctx, s.ctx.config, s.net, s.model.categories, s.ctx.device
    model = s.model
    with ctx.exercise("1. AlexNet, written out, and top-5 classification", text.Q1) as ex:
        max_diff = alexnet.compare_with_torchvision(model.state_dict, seed=ctx.seed)
        with torch.device("meta"):  # shapes only: no memory, no initialisation
            n_params = alexnet.parameter_count(alexnet.AlexNet())
        ex.metric("alexnet_max_abs_diff_vs_torchvision", max_diff)
        ex.metric("alexnet_parameters", n_params)
        ex.check_at_most("own_alexnet_equals_torchvision", max_diff, 1e-5, points=2)
        ex.check_equal("alexnet_parameter_count", n_params, alexnet.ALEXNET_PARAMETERS)
        if model.kind == "fallback":
            ex.metric("fallback_test_accuracy", model.fallback_accuracy)
            ex.check_at_least("fallback_test_accuracy", model.fallback_accuracy, 0.95, points=2)

        sources = list(cfg.images) or default_sources()
        images = load_images(sources, model.pre, ctx.cache_dir / "images")
        if model.kind == "fallback":
            # The stand-in knows shapes, not photos: add one held-out image per class, and
            # attack only those (photos are classified to show what out-of-distribution means).
            settings = shapes.TrainSettings(train_size=cfg.fallback_train_size, epochs=cfg.fallback_epochs)
            arr, labels = shapes.held_out_set(settings)
            for k, name in enumerate(shapes.CLASSES):
                i = int(np.flatnonzero(labels == k)[0])
                images.append(LabImage(f"shape-{name}", "generated", shapes.as_tensor(arr[i : i + 1])[0]))
        batch = torch.stack([im.pixels for im in images]).to(device)
        probs = predict(net, batch).cpu()
        k = min(cfg.top_k, len(cats))
        top_p, top_i = probs.topk(k, dim=1)
        # One row per image: the k classes in order, each with its probability.
        rows = [
            [im.name]
            + [f"{short(cats[int(c)], 28)} ({100 * float(p):.1f} %)" for p, c in zip(ps, idx, strict=True)]
            for im, ps, idx in zip(images, top_p, top_i, strict=True)
        ]
        cols = min(len(images), 5 if model.kind == "alexnet" else 6)
        nrows = math.ceil(len(images) / cols)
        fig, axes = plt.subplots(nrows, cols, figsize=(2.6 * cols, 2.7 * nrows), squeeze=False)
        for ax in axes.flat:
            ax.axis("off")
        for ax, im, ps, idx in zip(axes.flat, images, top_p, top_i, strict=False):
            show(ax, im.pixels, f"{im.name}\n{short(cats[int(idx[0])])} ({ps[0]:.0%})")
        ex.figure(
            fig, "classification", caption="Each image as the model sees it, titled with its top class."
        )
        ex.table(
            rows,
            columns=["image", *[f"top-{r + 1}" for r in range(k)]],
            caption=f"Top-{k} classes per image with their probabilities.",
        )
        photos = [
            {"name": im.name, "top": cats[int(i[0])], "p": float(p[0])}
            for im, p, i in zip(images, top_p, top_i, strict=True)
            if im.source != "generated"
        ]
        ex.metric("top1_probability_first_image", float(top_p[0, 0]))
        ex.answer(
            text.A1,
            kind=model.kind,
            max_diff=max_diff,
            n_params=n_params,
            photos=photos,
            accuracy=model.fallback_accuracy,
            skimage=skimage_available(),
            k=k,
        )

    return images, top_i


def plan_attacks(
    s: Session, images: list[LabImage], top_i: torch.Tensor
) -> list[tuple[LabImage, int, torch.Tensor]]:
    """Choose the images to attack and their random targets (never the clean class), seeded by the run.
    The stand-in attacks only the generated shapes: it knows nothing about photos."""
    ctx, cfg, cats, model = s.ctx, s.ctx.config, s.model.categories, s.model
    rng = ctx.rng
    pool = [i for i, im in enumerate(images) if model.kind == "alexnet" or im.source == "generated"]
    chosen = sorted(rng.choice(pool, size=min(cfg.attack_images, len(pool)), replace=False).tolist())
    plan: list[tuple[LabImage, int, torch.Tensor]] = []
    for i in chosen:
        clean = int(top_i[i, 0])
        others = [c for c in range(len(cats)) if c != clean]
        n_t = min(cfg.targets_per_image, len(others))
        plan.append((images[i], clean, torch.tensor(rng.choice(others, size=n_t, replace=False).tolist())))
    return plan


def assignment_attack(s: Session) -> MethodRun:
    """Exercise 2: the assignment's method, verified after the 8-bit round trip."""
    ctx, cfg, cats = s.ctx, s.ctx.config, s.model.categories
    model, plan = s.model, s.plan
    with ctx.exercise("2. Targeted adversarial examples: Adam on an L1 penalty", text.Q2) as ex:
        adam = s.run_method(
            "l1_adam",
            lambda m, x, t: l1_adam_attack(m, x, t, alpha=cfg.alpha, lr=cfg.lr, max_iter=cfg.max_iter),
            save=True,
        )
        stats = adam.summary()
        norms = adam.norms()
        clean_of = {im.name: clean for im, clean, _ in plan}
        rows = []
        for j in range(adam.n):
            rows.append(
                {
                    "image": adam.images[j],
                    "clean class": short(cats[clean_of[adam.images[j]]]),
                    "target": short(cats[adam.targets[j]]),
                    "success": adam.success[j],
                    "iterations": adam.iterations[j],
                    "p(target)": adam.p_target[j],
                    "success after PNG": adam.rt_success[j],
                    "p(target) after PNG": adam.rt_p_target[j],
                    "L1 (0-255)": float(norms["l1"][j]),
                    "L-inf (0-255)": float(norms["linf"][j]),
                }
            )
        ex.table(rows, caption="Every (image, target) pair; the PNG columns classify the saved 8-bit file.")
        ex.figure(grid_figure(adam, cats), "l1_adam_examples", caption=text.GRID_CAPTION)
        n_ok = sum(adam.success)
        need = math.ceil(5 * adam.n / 6)
        ex.metric("l1_adam_success_rate", stats["success"])
        ex.metric("l1_adam_roundtrip_success_rate", stats["rt_success"])
        ex.metric("l1_adam_median_iterations", stats["iterations"])
        rt_err = max(
            float((a - r).abs().max()) for a, r in zip(adam.adversarial, adam.round_trip, strict=True)
        )
        ex.metric("png_round_trip_max_change", rt_err * 255)
        ex.check_at_least("l1_adam_targets_reached", n_ok, need, points=2)
        ex.check_at_most("png_round_trip_within_half_level", rt_err * 255, 0.5 + 1e-3)
        ex.check(
            "adversarials_are_valid_pixels",
            all(float(a.min()) >= 0 and float(a.max()) <= 1 for a in adam.adversarial),
        )
        ex.answer(
            text.A2,
            s=stats,
            n=adam.n,
            n_ok=n_ok,
            n_rt=sum(adam.rt_success),
            cfg=cfg,
            model=model.kind,
            lost=[j for j in range(adam.n) if adam.success[j] and not adam.rt_success[j]],
        )

    return adam


def baselines(s: Session, adam: MethodRun) -> tuple[dict[str, MethodRun], dict[str, dict[str, float]]]:
    """Exercise 3: FGSM, PGD and the ISTA variant on the same pairs; one table of all four."""
    ctx, cfg, cats = s.ctx, s.ctx.config, s.model.categories
    with ctx.exercise("3. Baselines: FGSM and PGD against the L1 methods", text.Q3) as ex:
        runs = {
            "fgsm": s.run_method("fgsm", lambda m, x, t: fgsm_attack(m, x, t, eps=cfg.fgsm_eps / 255)),
            "pgd": s.run_method(
                "pgd",
                lambda m, x, t: pgd_attack(
                    m, x, t, eps=cfg.pgd_eps / 255, step=cfg.pgd_step / 255, max_iter=cfg.max_iter
                ),
            ),
            "l1_adam": adam,
            "l1_ista": s.run_method(
                "l1_ista",
                lambda m, x, t: l1_ista_attack(m, x, t, alpha=cfg.alpha, lr=cfg.lr, max_iter=cfg.max_iter),
            ),
        }
        summaries = {key: r.summary() for key, r in runs.items()}
        rows = []
        for key, r in runs.items():
            stats = summaries[key]
            rows.append(
                {
                    "method": r.label,
                    "success": stats["success"],
                    "success after PNG": stats["rt_success"],
                    "median iterations": stats["iterations"],
                    "L0 (% of values)": 100 * stats["l0_pct"],
                    "L0 after PNG (%)": 100 * stats["l0_8bit_pct"],
                    "L1": stats["l1"],
                    "L2": stats["l2"],
                    "L-inf": stats["linf"],
                    "PSNR (dB)": stats["psnr"],
                    "ms / example": stats["ms_per_example"],
                }
            )
            names = {"success": "success_rate", "rt_success": "roundtrip_success_rate"}
            names.update(
                {
                    stat: f"median_{stat}"
                    for stat in ("iterations", "l0", "l0_8bit", "l1", "l2", "linf", "psnr")
                }
            )
            names["ms_per_example"] = "ms_per_example"
            for stat, name in names.items():
                if key == "l1_adam" and stat in ("success", "rt_success", "iterations"):
                    continue  # recorded in exercise 2
                ex.metric(f"{key}_{name}", stats[stat])
        ex.table(
            cells(rows),
            caption=text.TABLE_CAPTION.format(
                n=adam.n, fgsm=cfg.fgsm_eps, pgd=cfg.pgd_eps, step=cfg.pgd_step
            ),
        )
        ex.figure(method_figure(runs, cats, 0), "methods_compared", caption=text.METHODS_CAPTION)
        fgsm_linf = max(float(v) for v in runs["fgsm"].norms()["linf"])
        pgd_linf = max(float(v) for v in runs["pgd"].norms()["linf"])
        ex.check_at_most("fgsm_within_eps", fgsm_linf, cfg.fgsm_eps + 1e-3)
        ex.check_at_most("pgd_within_eps", pgd_linf, cfg.pgd_eps + 1e-3)
        ex.answer(text.A3, m=summaries, labels=METHODS, cfg=cfg, n=adam.n)

    return runs, summaries


def sparsity(s: Session, runs: dict[str, MethodRun], summaries: dict[str, dict[str, float]]):
    """Exercise 4: Adam against ISTA on the L1 objective, at the assignment's alpha and larger ones;
    returns the first alpha's results where ISTA is markedly sparser (or None)."""
    ctx, cfg = s.ctx, s.ctx.config
    with ctx.exercise("4. Sparsity: subgradient (Adam) against soft-thresholding (ISTA)", text.Q4) as ex:
        a, b = summaries["l1_adam"], summaries["l1_ista"]
        attacks = {"l1_adam": l1_adam_attack, "l1_ista": l1_ista_attack}
        sweep = []
        sweep_runs: dict[tuple[str, float], MethodRun] = {}
        for alpha in dict.fromkeys((cfg.alpha, *cfg.sparsity_alphas)):
            for key, attack in attacks.items():
                if alpha == cfg.alpha:
                    r = runs[key]
                else:
                    r = s.run_method(
                        key,
                        lambda m, x, t, f=attack, a=alpha: f(
                            m, x, t, alpha=a, lr=cfg.lr, max_iter=cfg.max_iter
                        ),
                    )
                sweep_runs[key, alpha] = r
                sweep.append({"method": key, "alpha": alpha, "tiny": tiny_fraction(r), **r.summary()})
        ex.table(
            cells(
                [
                    {
                        "method": METHODS[row["method"]],
                        "alpha": row["alpha"],
                        "success": row["success"],
                        "success after PNG": row["rt_success"],
                        "changed values (%)": 100 * row["l0_pct"],
                        "changed after PNG (%)": 100 * row["l0_8bit_pct"],
                        "0 < |δ| < 0.5 level (%)": 100 * row["tiny"],
                        "median L1": row["l1"],
                        "median L2": row["l2"],
                        "median iterations": row["iterations"],
                    }
                    for row in sweep
                ]
            ),
            caption="Medians over successful examples; 0.5 level = half an 8-bit step, lost by rounding.",
        )
        ex.figure(
            sparsity_figure(sweep_runs, cfg.alpha, max(a for _, a in sweep_runs)),
            "sparsity",
            caption=text.SPARSITY_CAPTION,
        )
        tiny = {row["method"]: row["tiny"] for row in sweep if row["alpha"] == cfg.alpha}
        for row in sweep:
            prefix = row["method"] if row["alpha"] == cfg.alpha else f"{row['method']}_alpha_{row['alpha']:g}"
            ex.metric(f"{prefix}_changed_fraction", row["l0_pct"])
            ex.metric(f"{prefix}_tiny_fraction", row["tiny"])
            if row["alpha"] != cfg.alpha:
                ex.metric(f"{prefix}_success_rate", row["success"])
        pairs = []
        for alpha in dict.fromkeys(row["alpha"] for row in sweep):
            adam_row, ista_row = (
                next(r for r in sweep if r["alpha"] == alpha and r["method"] == k) for k in attacks
            )
            both = adam_row["success"] > 0 and ista_row["success"] > 0
            sparser = both and ista_row["l0_pct"] <= 0.75 * adam_row["l0_pct"]
            pairs.append({"alpha": alpha, "adam": adam_row, "ista": ista_row, "sparser": sparser})
        sparser = next((p for p in pairs if p["sparser"]), None)
        sparse_ista = next(
            (r for r in sweep if r["method"] == "l1_ista" and r["success"] > 0 and r["l0_pct"] < 0.5), None
        )
        sparse_adam = next(
            (r for r in sweep if r["method"] == "l1_adam" and r["success"] > 0 and r["l0_pct"] < 0.5), None
        )
        costly = next((p for p in pairs if p["ista"]["success"] < b["success"]), None)
        ex.answer(
            text.A4,
            a=a,
            b=b,
            tiny=tiny,
            cfg=cfg,
            pairs=pairs,
            sparser=sparser,
            sparse_ista=sparse_ista,
            sparse_adam=sparse_adam,
            costly=costly,
        )

    return sparser


def conclusions(
    s: Session, runs: dict[str, MethodRun], summaries: dict[str, dict[str, float]], sparser
) -> None:
    """Exercise 5: the answer, with the fair comparison on the pairs every iterative method reached."""
    ctx, cfg = s.ctx, s.ctx.config
    adam, model = runs["l1_adam"], s.model
    with ctx.exercise("5. What the numbers show", text.Q5) as ex:
        # Each method's own successes favour the pairs that are easy for it; compare the
        # iterative methods on the pairs all of them reached.
        fair = ("pgd", "l1_adam", "l1_ista")
        common = torch.ones(adam.n, dtype=torch.bool)
        for key in fair:
            common &= torch.tensor(runs[key].success, dtype=torch.bool)
        n_common = int(common.sum())
        on_common = {key: runs[key].summary(common) for key in fair}
        ex.metric("pairs_reached_by_all_iterative_methods", n_common)
        rows = []
        for key in fair:
            c = on_common[key]
            rows.append(
                {
                    "method": METHODS[key],
                    "changed values (%)": 100 * c["l0_pct"],
                    "L1": c["l1"],
                    "L2": c["l2"],
                    "L-inf": c["linf"],
                    "PSNR (dB)": c["psnr"],
                }
            )
            ex.metric(f"{key}_common_median_l2", c["l2"])
            ex.metric(f"{key}_common_median_linf", c["linf"])
        if n_common:
            ex.table(
                cells(rows),
                caption=f"Medians over the {n_common} pairs that PGD and both L1 methods reached.",
            )
        best_l2 = min(fair, key=lambda k: on_common[k]["l2"]) if n_common else None
        best_linf = min(fair, key=lambda k: on_common[k]["linf"]) if n_common else None
        ex.answer(
            text.A5,
            m=summaries,
            c=on_common,
            n=adam.n,
            n_common=n_common,
            best_l2=best_l2,
            best_linf=best_linf,
            sparser=sparser,
            labels=METHODS,
            model=model.kind,
            cfg=cfg,
        )


def cells(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Table rows with undefined numbers (a median over no successes) shown as a dash."""
    return [{k: "—" if isinstance(v, float) and math.isnan(v) else v for k, v in row.items()} for row in rows]


def tiny_fraction(run: MethodRun) -> float:
    """Median over successful examples of the fraction of perturbation entries that are
    nonzero but below half an 8-bit level (they vanish when the image is saved)."""
    vals = []
    for orig, adv, ok in zip(run.originals, run.adversarial, run.success, strict=True):
        if ok:
            d = (adv - orig).abs() * 255
            vals.append(float(((d > 0) & (d < 0.5)).double().mean()))
    return median(vals)


def grid_figure(run: MethodRun, cats: list[str]):
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(run.n, 3, figsize=(7.5, 2.6 * run.n), squeeze=False)
    for j in range(run.n):
        draw_example(axes[j], run, cats, j, f"{run.images[j]}\ntarget: {short(cats[run.targets[j]])}")
    fig.subplots_adjust(wspace=0.05, hspace=0.35)
    return fig


def draw_example(row, run: MethodRun, cats: list[str], j: int, title: str) -> None:
    """One row of a figure: the original (titled ``title``), the adversarial image titled
    with its prediction, and the perturbation amplified."""
    show(row[0], run.originals[j], title)
    mark = "" if run.success[j] else " (failed)"
    show(row[1], run.adversarial[j], f"{short(cats[run.pred[j]])} ({run.conf[j]:.0%}){mark}")
    delta, gain = amplified(run.adversarial[j] - run.originals[j])
    show(row[2], delta, f"perturbation x{gain:.0f}")


def method_figure(runs: dict[str, MethodRun], cats: list[str], j: int):
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(runs), 3, figsize=(7.5, 2.6 * len(runs)), squeeze=False)
    for r, run in enumerate(runs.values()):
        draw_example(axes[r], run, cats, j, f"{run.label}\n{run.images[j]} → {short(cats[run.targets[j]])}")
    fig.subplots_adjust(wspace=0.05, hspace=0.35)
    return fig


def sparsity_figure(runs: dict[tuple[str, float], MethodRun], alpha: float, alpha_max: float):
    """Histograms of |delta| for both L1 methods at ``alpha`` and ``alpha_max``, and the pixels
    each changes in the first example at ``alpha_max``."""
    import matplotlib.pyplot as plt

    alphas = [alpha] if alpha_max == alpha else [alpha, alpha_max]
    fig, axes = plt.subplots(1, len(alphas) + 2, figsize=(3.7 * (len(alphas) + 2), 3.4))
    bins = np.concatenate([[0.0], np.logspace(-4, np.log10(255), 50)])
    for ax, a in zip(axes, alphas, strict=False):
        for key, colour in (("l1_adam", "tab:blue"), ("l1_ista", "tab:orange")):
            run = runs[key, a]
            d = torch.cat(
                [((x - o).abs() * 255).flatten() for x, o in zip(run.adversarial, run.originals, strict=True)]
            )
            zeros = float((d == 0).double().mean())
            name = "Adam" if key == "l1_adam" else "ISTA"
            ax.hist(
                d.clamp_min(1e-4).numpy(),
                bins=bins,
                histtype="step",
                color=colour,
                label=f"{name} ({zeros:.0%} exact zeros)",
            )
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.axvline(0.5, color="grey", ls="--", lw=0.8)
        ax.set_xlabel("|δ| in 0-255 units (zeros at 1e-4)")
        ax.set_title(f"α = {a:g}", fontsize=9)
        ax.legend(fontsize=7)
    axes[0].set_ylabel("count")
    for ax, key in zip(axes[len(alphas) :], ("l1_adam", "l1_ista"), strict=True):
        run = runs[key, alpha_max]
        changed = ((run.adversarial[0] - run.originals[0]) != 0).any(dim=0).float()
        ax.imshow(changed.numpy(), cmap="gray_r", vmin=0, vmax=1, interpolation="nearest")
        name = "Adam" if key == "l1_adam" else "ISTA"
        mark = "" if run.success[0] else ", failed"
        ax.set_title(
            f"{name}, α = {alpha_max:g}: changed pixels (black)\n{run.images[0]}, {changed.mean():.0%}{mark}",
            fontsize=8,
        )
        ax.axis("off")
    return fig
