"""The lab, exercise by exercise: choose the model, classify, attack, compare, answer.

Only orchestration and recording live here; the maths is in :mod:`.attacks`, the
measurements behind the claims in :mod:`.evidence` (tests in :mod:`.stats`), the
per-example records in :mod:`.records`, the model choice in :mod:`.model` (AlexNet in
:mod:`.alexnet`, the stand-in in :mod:`.shapes`), the images in :mod:`.images` and the
figures in :mod:`.figures`. The module is a little over 500 lines because each exercise lists
its tables, metrics and claims where it records them, in the order the report shows them.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from labrunner import exercise_function
from labrunner.stats import rate_text, rates_apart, sign_test, wilson

from . import alexnet, figures, shapes, text
from .attacks import (
    AttackResult,
    PixelClassifier,
    fgsm_attack,
    l1_adam_attack,
    l1_ista_attack,
    normalised_to_pixel,
    pgd_attack,
    predict,
    shuffled_success,
)
from .evidence import (
    SMALLEST_NORM_GAIN,
    SMALLEST_SPARSITY_GAIN,
    changed_values_test,
    fgsm_claims,
    fgsm_linearisation_all,
    least_pair_by_pair,
    norm_gain_text,
    penalty_claims,
    penalty_price,
    record,
)
from .figures import short
from .images import LabImage, default_sources, load_images, skimage_available
from .model import Model, choose_model, model_note, stand_in_settings
from .records import MethodRun

METHODS = {
    "fgsm": "Targeted FGSM",
    "pgd": "I-FGSM / PGD (L-inf)",
    "l1_adam": "Assignment: Adam on L1 + CE",
    "l1_ista": "EAD-style: ISTA on L1 + CE",
}
SAFE = re.compile(r"[^A-Za-z0-9_.-]+")

#: ``attack(net, image, targets) -> AttackResult``
Attack = Callable[[PixelClassifier, torch.Tensor, torch.Tensor], AttackResult]


@dataclass(frozen=True)
class PlannedAttack:
    """One image to attack, the class the model gives it, and its random target classes."""

    image: LabImage
    clean: int
    targets: torch.Tensor


def run_experiment(ctx) -> None:
    """The lab: the model first (and the note saying which), then the five exercises."""
    model = choose_model(ctx)
    ctx.note(text.MODEL_NOTE, **model_note(model), seed=ctx.seed)
    model.net.precision = ctx.config.precision
    net = model.net.to(ctx.device).eval()
    for p in net.parameters():
        p.requires_grad_(False)
    images, top_classes = implement_alexnet_and_classify(ctx, model, net)
    plan = plan_attacks(ctx, model, images, top_classes)
    adam = targeted_adversarial_examples(ctx, model, net, plan)
    runs, summaries = compare_with_standard_attacks(ctx, model, net, plan, adam)
    sparser = sparse_perturbations(ctx, model, net, plan, runs, summaries)
    smallest_visible_change(ctx, model, runs, summaries, sparser)


def fidelity(model: Model) -> dict[str, str]:
    """The ``ctx.exercise`` arguments saying whether the exercise ran on AlexNet or the stand-in."""
    if not model.is_stand_in:
        return {}
    return {
        "fidelity": "stand-in",
        # the reason in full is the lab's note, said once; each exercise points to it
        "reason": "the offline stand-in CNN on generated shapes, not AlexNet on photos (the lab's note says why)",
    }


def run_method(
    ctx, net, plan: list[PlannedAttack], key: str, attack: Attack, save: bool = False
) -> MethodRun:
    """Run ``attack(net, image, targets)`` on every planned image, all its targets in one
    batch; with ``save`` the adversarial images are written as PNG files of the run."""
    out = MethodRun(key, METHODS[key])
    for item in ctx.progress(plan, desc=METHODS[key]):
        x = item.image.pixels.to(ctx.device)
        result = attack(net, x, item.targets.to(ctx.device))
        paths = None
        if save:
            paths = [
                ctx.file(SAFE.sub("_", f"adversarial-{item.image.name}-to-{t}.png"))
                for t in item.targets.tolist()
            ]
        out.add(item.image.name, x, item.targets, result, net, paths)
    return out


def l1_attack(cfg, model: Model, method: Callable[..., AttackResult], alpha: float) -> Attack:
    """``method`` (Adam or ISTA on the L1 objective) with the assignment's ``alpha`` and
    learning rate, meant in the normalised space the network sees (see ``normalised_to_pixel``)."""
    std = model.pre.std
    return lambda m, x, t: method(m, x, t, alpha=alpha, lr=cfg.lr, max_iter=cfg.max_iter, std=std)


# --------------------------------------------------------------------------- exercise 1


def implement_alexnet_and_classify(ctx, model: Model, net) -> tuple[list[LabImage], torch.Tensor]:
    """Exercise 1: check the written-out AlexNet, classify every image; returns the images
    and their top-k class indices (also when a stub stopped the exercise: not decorated with
    ``exercise_function``, it goes on after its with block)."""
    cfg, cats, device = ctx.config, model.categories, ctx.device
    with ctx.exercise("1. AlexNet, written out, and top-5 classification", text.Q1, **fidelity(model)) as ex:
        # Classified first: the attacks need the images and their classes even when the
        # written-out AlexNet below is a stub (the student version runs on the stand-in).
        sources = list(cfg.images) or default_sources()
        images = load_images(sources, model.pre, ctx.cache_dir / "images")
        if model.is_stand_in:
            # The stand-in knows shapes, not photos: add one held-out image per class, and
            # attack only those (photos are classified to show what out-of-distribution means).
            # The held-out set and each class's image are drawn with the run's seed, so every
            # seed attacks other images and a seed sweep replicates the attacks.
            for name, pixels in shapes.attacked_shapes(stand_in_settings(cfg, ctx.seed)):
                images.append(LabImage(f"shape-{name}", "generated", pixels))
        batch = torch.stack([im.pixels for im in images]).to(device)
        probs = predict(net, batch).cpu()
        k = min(cfg.top_k, len(cats))
        top_p, top_i = probs.topk(k, dim=1)
        max_diff = alexnet.compare_with_torchvision(model.state_dict, seed=ctx.seed)
        with torch.device("meta"):  # shapes only: no memory, no initialisation
            n_params = alexnet.parameter_count(alexnet.AlexNet())
        ex.metric("alexnet_max_abs_diff_vs_torchvision", max_diff)
        ex.metric("alexnet_parameters", n_params)
        # The architecture is the assignment's whatever the weights: these parts are not stand-ins.
        ex.check_at_most("own_alexnet_equals_torchvision", max_diff, 1e-5, points=2, fidelity="assignment")
        ex.check_equal("alexnet_parameter_count", n_params, alexnet.ALEXNET_PARAMETERS, fidelity="assignment")
        ex.claim(
            "alexnet_bit_identical",
            max_diff == 0,
            fidelity="assignment",
            statement="the written-out AlexNet computes bit for bit what torchvision's computes",
            evidence=f"largest difference of the logits on a random batch: {max_diff:.2e}",
            baseline="float32 rounding: the same sums in another order differ by about 1e-7 of the logits",
        )
        if model.is_stand_in:
            settings = stand_in_settings(cfg, ctx.seed)
            n_test = settings.test_size
            correct = round(model.fallback_accuracy * n_test)
            chance = 1 / len(cats)
            ex.metric("fallback_test_accuracy", model.fallback_accuracy)
            ex.check_at_least("fallback_test_accuracy", model.fallback_accuracy, 0.95, points=2)
            ex.claim(
                "standin_beats_chance",
                wilson(correct, n_test)[0] > chance,
                statement="the stand-in CNN classifies held-out generated shapes far above chance",
                evidence=f"correct on {rate_text(correct, n_test)} held-out shapes",
                baseline=f"chance, 1/{len(cats)} = {100 * chance:.1f} %",
            )

        # One row per image: the k classes in order, each with its probability.
        rows = [
            [im.name]
            + [f"{short(cats[int(c)], 28)} ({100 * float(p):.1f} %)" for p, c in zip(ps, idx, strict=True)]
            for im, ps, idx in zip(images, top_p, top_i, strict=True)
        ]
        fig = figures.classification_figure(images, top_p, top_i, cats)
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
        # STUDENT ANSWER
        ex.answer(
            text.A1,
            max_diff=max_diff,
            n_params=n_params,
            photos=photos,
            accuracy=model.fallback_accuracy,
            classes=len(cats),
            setting={"model": model.kind, "skimage": skimage_available()},
            k=k,
        )

    return images, top_i


def plan_attacks(ctx, model: Model, images: list[LabImage], top_i: torch.Tensor) -> list[PlannedAttack]:
    """Choose the images to attack and their random targets (never the clean class), seeded by the run.
    The stand-in attacks only the generated shapes: it knows nothing about photos."""
    cfg, cats, rng = ctx.config, model.categories, ctx.rng
    pool = [i for i, im in enumerate(images) if not model.is_stand_in or im.source == "generated"]
    every = model.is_stand_in and cfg.fallback_all_pairs
    n_images = len(pool) if every else min(cfg.attack_images, len(pool))
    chosen = sorted(rng.choice(pool, size=n_images, replace=False).tolist())
    plan = []
    for i in chosen:
        clean = int(top_i[i, 0])
        others = [c for c in range(len(cats)) if c != clean]
        n_t = len(others) if every else min(cfg.targets_per_image, len(others))
        targets = torch.tensor(rng.choice(others, size=n_t, replace=False).tolist())
        plan.append(PlannedAttack(images[i], clean, targets))
    return plan


# --------------------------------------------------------------------------- exercise 2


@exercise_function
def targeted_adversarial_examples(ctx, model: Model, net, plan: list[PlannedAttack]) -> MethodRun:
    """Exercise 2: the assignment's method, verified after the 8-bit round trip and against
    the same perturbations shuffled over the image."""
    cfg, cats = ctx.config, model.categories
    title = "2. Targeted adversarial examples: Adam on an L1 penalty"
    with ctx.exercise(title, text.Q2, **fidelity(model)) as ex:
        # One untimed step first, so the first timed method does not pay for warming up the kernels.
        first = plan[0]
        l1_adam_attack(net, first.image.pixels.to(ctx.device), first.targets[:1].to(ctx.device), max_iter=1)
        adam = run_method(
            ctx, net, plan, "l1_adam", l1_attack(cfg, model, l1_adam_attack, cfg.alpha), save=True
        )
        stats = adam.summary()
        norms = adam.norms()
        clean_of = {item.image.name: item.clean for item in plan}
        rows = []
        for j, e in enumerate(adam.examples):
            rows.append(
                {
                    "image": e.image,
                    "clean class": short(cats[clean_of[e.image]]),
                    "target": short(cats[e.target]),
                    "success": e.success,
                    "iterations": e.iterations,
                    "p(target)": e.p_target,
                    "success after PNG": e.rt_success,
                    "p(target) after PNG": e.rt_p_target,
                    "L1 (0-255)": float(norms["l1"][j]),
                    "L-inf (0-255)": float(norms["linf"][j]),
                }
            )
        ex.table(rows, caption="Every (image, target) pair; the PNG columns classify the saved 8-bit file.")
        ex.figure(figures.grid_figure(adam, cats), "l1_adam_examples", caption=text.GRID_CAPTION)
        n_ok = sum(e.success for e in adam.examples)
        need = math.ceil(5 * adam.n / 6)
        record(ex, "l1_adam_success_rate", stats["success"])
        record(ex, "l1_adam_roundtrip_success_rate", stats["rt_success"])
        record(ex, "l1_adam_median_iterations", stats["iterations"])
        rt_err = max(float((e.adversarial - e.round_trip).abs().max()) for e in adam.examples)
        ex.metric("png_round_trip_max_change", rt_err * 255)
        ex.check_at_least("l1_adam_targets_reached", n_ok, need, points=2)
        reached_claim(ex, adam)
        n_rt = sum(e.rt_success for e in adam.examples)
        ex.claim(
            "png_undoes_some_successes",
            n_rt < n_ok,
            statement="saving as an 8-bit PNG undoes some of the successes",
            evidence=f"{n_ok} targets reached, {n_rt} still reached by the saved files",
            baseline="the same images before saving (an exact count)",
        )
        ex.check_at_most("png_round_trip_within_half_level", rt_err * 255, 0.5 + 1e-3)
        ex.check(
            "adversarials_are_valid_pixels",
            all(float(e.adversarial.min()) >= 0 and float(e.adversarial.max()) <= 1 for e in adam.examples),
        )
        # Baseline: the same perturbation values in a random arrangement (same L0, L1, L2, L-inf).
        gen = ctx.torch_generator(offset=2)
        device = ctx.device
        n_shuffled = sum(
            shuffled_success(net, e.original.to(device), e.adversarial.to(device), e.target, gen)
            for e in adam.examples
        )
        ex.metric("l1_adam_shuffled_success_rate", n_shuffled / adam.n)
        ex.claim(
            "adam_direction_matters",
            rates_apart(n_ok, adam.n, n_shuffled, adam.n),
            statement="the targets are reached by the direction of the perturbation, not by its size",
            evidence=(
                f"Adam's perturbations reached {rate_text(n_ok, adam.n)}; the same values shuffled "
                f"over the image reached {rate_text(n_shuffled, adam.n)}"
            ),
            baseline="the same perturbations with their values in random positions (equal norms), 95 % Wilson intervals",
        )
        alpha_px, lr_px, _ = normalised_to_pixel(cfg.alpha, cfg.lr, model.pre.std, torch.zeros(3, 1, 1))
        # STUDENT ANSWER
        ex.answer(
            text.A2,
            s=stats,
            n=adam.n,
            n_ok=n_ok,
            n_rt=n_rt,
            n_shuffled=n_shuffled,
            cfg=cfg,
            std=[float(v) for v in model.pre.std],
            alpha_px=[float(v) for v in alpha_px.flatten()],
            lr_px=[float(v) for v in lr_px.flatten()],
            lost=[
                {"image": e.image, "target": short(cats[e.target]), "p": e.p_target, "p_rt": e.rt_p_target}
                for e in adam.examples
                if e.success and not e.rt_success
            ],
        )

    return adam


# --------------------------------------------------------------------------- exercise 3


@exercise_function(values=2)
def compare_with_standard_attacks(
    ctx, model: Model, net, plan: list[PlannedAttack], adam: MethodRun
) -> tuple[dict[str, MethodRun], dict[str, dict[str, float]]]:
    """Exercise 3: FGSM, PGD and the ISTA variant on the same pairs; one table of all four,
    and what FGSM's step does against its linear approximation and random steps."""
    cfg, cats = ctx.config, model.categories
    with ctx.exercise("3. Baselines: FGSM and PGD against the L1 methods", text.Q3, **fidelity(model)) as ex:
        runs = {
            "fgsm": run_method(
                ctx, net, plan, "fgsm", lambda m, x, t: fgsm_attack(m, x, t, eps=cfg.fgsm_eps / 255)
            ),
            "pgd": run_method(
                ctx,
                net,
                plan,
                "pgd",
                lambda m, x, t: pgd_attack(
                    m, x, t, eps=cfg.pgd_eps / 255, step=cfg.pgd_step / 255, max_iter=cfg.max_iter
                ),
            ),
            "l1_adam": adam,
            "l1_ista": run_method(
                ctx, net, plan, "l1_ista", l1_attack(cfg, model, l1_ista_attack, cfg.alpha)
            ),
        }
        summaries = {key: r.summary() for key, r in runs.items()}
        rows = []
        names = {"success": "success_rate", "rt_success": "roundtrip_success_rate"}
        names.update(
            {stat: f"median_{stat}" for stat in ("iterations", "l0", "l0_8bit", "l1", "l2", "linf", "psnr")}
        )
        # A single timing is no comparison of speed: it goes to the measurements, marked as one reading.
        names["ms_per_example"] = "ms_per_example_one_reading"
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
                }
            )
            for stat, name in names.items():
                if key == "l1_adam" and stat in ("success", "rt_success", "iterations"):
                    continue  # recorded in exercise 2
                record(ex, f"{key}_{name}", stats[stat])
        ex.table(
            cells(rows),
            caption=text.TABLE_CAPTION.format(
                n=adam.n, fgsm=cfg.fgsm_eps, pgd=cfg.pgd_eps, step=cfg.pgd_step
            ),
        )
        ex.figure(figures.method_figure(runs, cats, 0), "methods_compared", caption=text.METHODS_CAPTION)
        fgsm_linf = max(float(v) for v in runs["fgsm"].norms()["linf"])
        pgd_linf = max(float(v) for v in runs["pgd"].norms()["linf"])
        ex.check_at_most("fgsm_within_eps", fgsm_linf, cfg.fgsm_eps + 1e-3)
        ex.check_at_most("pgd_within_eps", pgd_linf, cfg.pgd_eps + 1e-3)

        for key in ("fgsm", "pgd", "l1_ista"):
            reached_claim(ex, runs[key])
        ok = {key: [float(e.success) for e in r.examples] for key, r in runs.items()}
        pgd_vs_fgsm = sign_test(ok["pgd"], ok["fgsm"])
        ex.claim(
            "pgd_beats_fgsm",
            pgd_vs_fgsm.holds,
            statement="iterating the signed step (PGD) reaches more targets than one step (FGSM)",
            evidence=pgd_vs_fgsm.text("only PGD reached the target", "only FGSM"),
            baseline="the two alike: each pair where they differ a fair coin (exact sign test, one-sided 5 %)",
        )
        lin = fgsm_linearisation_all(ctx, net, plan)
        step = fgsm_claims(ex, lin, cfg.random_draws)
        # STUDENT ANSWER
        ex.answer(text.A3, m=summaries, labels=METHODS, cfg=cfg, n=adam.n, step=step, test=pgd_vs_fgsm)

    return runs, summaries


# --------------------------------------------------------------------------- exercise 4


@exercise_function
def sparse_perturbations(
    ctx,
    model: Model,
    net,
    plan: list[PlannedAttack],
    runs: dict[str, MethodRun],
    summaries: dict[str, dict[str, float]],
):
    """Exercise 4: Adam against ISTA on the L1 objective, at the assignment's alpha and larger ones;
    returns the alphas at which ISTA changes fewer values than Adam beyond chance, and not."""
    cfg = ctx.config
    title = "4. Sparsity: subgradient (Adam) against soft-thresholding (ISTA)"
    with ctx.exercise(title, text.Q4, **fidelity(model)) as ex:
        a, b = summaries["l1_adam"], summaries["l1_ista"]
        attacks = {"l1_adam": l1_adam_attack, "l1_ista": l1_ista_attack}
        sweep = []
        sweep_runs: dict[tuple[str, float], MethodRun] = {}
        alphas = list(dict.fromkeys((cfg.alpha, *cfg.sparsity_alphas)))
        for alpha in alphas:
            for key, attack in attacks.items():
                if alpha == cfg.alpha:
                    r = runs[key]
                else:
                    r = run_method(ctx, net, plan, key, l1_attack(cfg, model, attack, alpha))
                sweep_runs[key, alpha] = r
                sweep.append({"method": key, "alpha": alpha, "tiny": r.tiny_fraction(), **r.summary()})
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
            caption=(
                "α in the normalised space of the assignment. Medians over successful examples; "
                "0.5 level = half an 8-bit step, lost by rounding."
            ),
        )
        ex.figure(
            figures.sparsity_figure(sweep_runs, cfg.alpha, alphas[-1] if len(alphas) > 1 else cfg.alpha),
            "sparsity",
            caption=text.SPARSITY_CAPTION,
        )
        tiny = {row["method"]: row["tiny"] for row in sweep if row["alpha"] == cfg.alpha}
        for row in sweep:
            prefix = row["method"] if row["alpha"] == cfg.alpha else f"{row['method']}_alpha_{row['alpha']:g}"
            record(ex, f"{prefix}_changed_fraction", row["l0_pct"])
            record(ex, f"{prefix}_tiny_fraction", row["tiny"])
            if row["alpha"] != cfg.alpha:
                record(ex, f"{prefix}_success_rate", row["success"])
        pairs = []
        for i, alpha in enumerate(alphas):
            adam_row, ista_row = (
                next(r for r in sweep if r["alpha"] == alpha and r["method"] == k) for k in attacks
            )
            test, gap = changed_values_test(sweep_runs["l1_adam", alpha], sweep_runs["l1_ista", alpha])
            name = "ista_sparser" if i == 0 else f"ista_sparser_alpha_{i}"
            ex.claim(
                name,
                test.holds and gap >= SMALLEST_SPARSITY_GAIN,
                statement=f"at α = {alpha:g}, ISTA changes fewer values than Adam on the same pairs, by at least "
                f"{100 * SMALLEST_SPARSITY_GAIN:g} percentage point(s)",
                evidence=f"effect: ISTA leaves a median {100 * gap:.2f} points more of the values unchanged; "
                + test.text("ISTA changed fewer values", "Adam"),
                baseline="the two alike: each pair both reached a fair coin (exact sign test, one-sided 5 %); the "
                f"lab's smallest difference in the share of values changed: {100 * SMALLEST_SPARSITY_GAIN:g} point(s)",
            )
            pairs.append(
                {"alpha": alpha, "adam": adam_row, "ista": ista_row, "claim": name, "test": test, "gap": gap}
            )
        sparser = {
            "at": [p["alpha"] for p in pairs if ctx.claims[p["claim"]]],
            "not_at": [p["alpha"] for p in pairs if not ctx.claims[p["claim"]]],
        }
        each = "; ".join(f"α = {p['alpha']:g}: {'yes' if ctx.claims[p['claim']] else 'no'}" for p in pairs)
        for name, holds, which in (
            ("ista_sparser_at_every_alpha", not sparser["not_at"], "at every α tried"),
            ("ista_sparser_at_some_alpha", bool(sparser["at"]), "at some α tried"),
            (
                "ista_sparser_at_other_alpha",
                any(a != cfg.alpha for a in sparser["at"]),
                "at an α other than the assignment's",
            ),
        ):
            ex.claim(
                name,
                holds,
                statement=f"ISTA changes fewer values than Adam {which}",
                evidence=f"the claims per α (sign test each): {each}",
                baseline="the per-α claims above",
            )
        # The numbers quoted for the widest gap: the largest alpha at which ISTA is sparser
        # (the text shows them only when that claim holds; the largest alpha stands in
        # otherwise, so that the template renders whatever the claims are).
        sparser["widest"] = next(
            (p for p in reversed(pairs) if ctx.claims[p["claim"]]), pairs[-1] if pairs else None
        )
        larger = penalty_claims(ex, sweep_runs, alphas) if len(alphas) > 1 else None
        price = penalty_price(ex, sweep_runs, alphas) if len(alphas) > 1 else None
        # STUDENT ANSWER
        ex.answer(
            text.A4,
            a=a,
            b=b,
            tiny=tiny,
            pairs=pairs,
            sparser=sparser,
            larger=larger,
            price=price,
            smallest=SMALLEST_SPARSITY_GAIN,
            setting={"alpha_sweep": len(alphas) > 1},
        )

    return sparser


# --------------------------------------------------------------------------- exercise 5


def smallest_visible_change(
    ctx, model: Model, runs: dict[str, MethodRun], summaries: dict[str, dict[str, float]], sparser
) -> None:
    """Exercise 5: the answer, with the fair comparison on the pairs every iterative method reached."""
    with ctx.exercise("5. What the numbers show", text.Q5, **fidelity(model)) as ex:
        adam = runs["l1_adam"]
        # Each method's own successes favour the pairs that are easy for it; compare the
        # iterative methods on the pairs all of them reached.
        fair = ("pgd", "l1_adam", "l1_ista")
        common = torch.ones(adam.n, dtype=torch.bool)
        for key in fair:
            common &= runs[key].successes()
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
            record(ex, f"{key}_common_median_l2", c["l2"])
            record(ex, f"{key}_common_median_linf", c["linf"])
        ex.claim(
            "iterative_methods_share_pairs",
            n_common > 0,
            statement="PGD and both L1 methods reach some (image, target) pair in common",
            evidence=f"{n_common} of {adam.n} pairs",
            baseline="an exact count",
        )
        best = {}
        if n_common:
            ex.table(
                cells(rows),
                caption=f"Medians over the {n_common} pairs that PGD and both L1 methods reached.",
            )
            for norm in ("l2", "linf"):
                lowest, tests, effects = least_pair_by_pair(runs, fair, norm, common)
                best[norm] = lowest
                smallest = norm_gain_text(norm, SMALLEST_NORM_GAIN[norm])
                ex.claim(
                    f"least_{norm}_is_clear",
                    all(t.holds for t in tests.values())
                    and min(effects.values()) >= SMALLEST_NORM_GAIN[norm],
                    statement=f"{METHODS[lowest]} gives a smaller {norm} than each other method, pair by pair, "
                    f"by at least {smallest}",
                    evidence="effect: "
                    + ", ".join(
                        f"a median {norm_gain_text(norm, e)} below {METHODS[k]}" for k, e in effects.items()
                    )
                    + "; "
                    + "; ".join(t.text(f"{METHODS[k]} larger", METHODS[lowest]) for k, t in tests.items()),
                    baseline="methods alike: each common pair a fair coin (exact sign test per other method, "
                    f"one-sided 5 %); the lab's smallest difference in {norm}: {smallest}",
                )
        ex.claim(
            "least_l2_and_linf_same_method",
            bool(best)
            and ctx.claims.get("least_l2_is_clear", False)
            and ctx.claims.get("least_linf_is_clear", False)
            and best["l2"] == best["linf"],
            statement="one method gives both the smallest L2 and the smallest L-inf change, pair by pair",
            evidence=", ".join(f"least {k}: {METHODS[v]}" for k, v in best.items()) or "no pair in common",
            baseline="the two least-norm claims above",
        )
        # STUDENT ANSWER
        ex.answer(
            text.A5,
            m=summaries,
            c=on_common,
            n=adam.n,
            n_common=n_common,
            best_l2=best.get("l2"),
            best_linf=best.get("linf"),
            smallest_norm=SMALLEST_NORM_GAIN,
            sparser=sparser,
            labels=METHODS,
        )


def reached_claim(ex, run: MethodRun) -> None:
    """The exact count the answers branch on: whether ``run`` reached any target at all."""
    n_ok = int(run.successes().sum())
    ex.claim(
        f"reaches_target_{run.key}",
        n_ok > 0,
        statement=f"{run.label} reaches at least one of the {run.n} targets",
        evidence=f"{rate_text(n_ok, run.n)} reached",
        baseline="an exact count",
    )


def cells(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Table rows with undefined numbers (a median over no successes) shown as a dash and why."""
    return [
        {k: text.NO_SUCCESS if isinstance(v, float) and math.isnan(v) else v for k, v in row.items()}
        for row in rows
    ]
