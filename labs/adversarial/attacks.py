"""Targeted adversarial attacks in pixel space, and the measures of a perturbation.

Every attack takes a classifier of images in [0, 1] (normalisation inside, see
:class:`PixelClassifier`), one image ``(3, H, W)`` and a batch of target classes ``(T,)``,
and attacks all targets at once: the T copies of the image go through the model as one
batch. Each copy stops at the first iterate the model assigns to its target class.
"""

from __future__ import annotations

import io
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from labrunner.precision import autocast, check_precision


class PixelClassifier(nn.Module):
    """``model`` applied to images with pixel values in [0, 1]: ``model((x - mean) / std)``.

    Putting the normalisation inside the model lets an attack optimise the image itself,
    so "valid image" is simply the box [0, 1].
    """

    def __init__(
        self, model: nn.Module, mean: Sequence[float], std: Sequence[float], precision: str = "fp32"
    ) -> None:
        super().__init__()
        check_precision(precision)
        self.model = model
        self.precision = precision
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        u = (x - self.mean) / self.std
        if self.precision == "fp32":
            return self.model(u)
        # The forward pass under autocast; logits, loss and the image's gradient stay fp32.
        with autocast(self.precision, x.device):
            logits = self.model(u)
        return logits.float()


@torch.no_grad()
def predict(model: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """Class probabilities ``(N, C)`` for images ``(N, 3, H, W)`` in [0, 1]."""
    return model(images).softmax(dim=1)


@dataclass
class AttackResult:
    """What an attack returns for one image and T targets.

    ``adversarial``: ``(T, 3, H, W)`` in [0, 1], the first successful iterate (the last one
    when the attack failed); ``success``: ``(T,)`` bool, the model predicts the target;
    ``iterations``: ``(T,)`` gradient steps taken until success (``max_iter`` on failure);
    ``seconds``: wall time of the whole batch.
    """

    adversarial: torch.Tensor
    success: torch.Tensor
    iterations: torch.Tensor
    seconds: float


# An update receives (x, grad of the summed cross-entropy at x, the rows of the batch
# these are, the step number t >= 1) and returns the next x for those rows.
Update = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, int], torch.Tensor]


def _attack_loop(
    model: nn.Module, image: torch.Tensor, targets: torch.Tensor, max_iter: int, update: Update
) -> AttackResult:
    """Iterate ``update`` on T copies of ``image`` until each is classified as its target.

    One forward pass per iteration serves both the success test and the gradient; copies
    that have succeeded leave the batch, so late iterations cost less.
    """
    start = time.perf_counter()
    targets = targets.to(image.device)
    n = targets.numel()
    x = image.unsqueeze(0).repeat(n, 1, 1, 1)
    done = torch.zeros(n, dtype=torch.bool, device=image.device)
    iterations = torch.full((n,), max_iter, dtype=torch.long)
    # BEGIN SOLUTION the targeted attack loop
    for t in range(max_iter + 1):
        rows = (~done).nonzero().squeeze(1)
        if rows.numel() == 0:
            break
        xr = x[rows].requires_grad_(True)
        logits = model(xr)
        hit = logits.argmax(dim=1) == targets[rows]
        done[rows[hit]] = True
        iterations[rows[hit].cpu()] = t
        if t == max_iter or bool(hit.all()):
            break
        # Summed, not averaged: each copy's gradient is then independent of the batch size.
        loss = F.cross_entropy(logits, targets[rows], reduction="sum")
        (grad,) = torch.autograd.grad(loss, xr)
        keep = ~hit
        x[rows[keep]] = update(xr.detach()[keep], grad[keep], rows[keep], t + 1)
    # END SOLUTION
    return AttackResult(x.detach(), done.cpu(), iterations, time.perf_counter() - start)


class _AdamMoments:
    """Adam's moment estimates, kept per pixel for every row of the batch (``eps`` may be a
    per-channel tensor, see :func:`normalised_to_pixel`)."""

    def __init__(
        self,
        like: torch.Tensor,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float | torch.Tensor = 1e-8,
    ):
        self.m = torch.zeros_like(like)
        self.v = torch.zeros_like(like)
        self.betas, self.eps = betas, eps

    def step(self, grad: torch.Tensor, rows: torch.Tensor, t: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Update the moments of ``rows`` with ``grad``; return the bias-corrected mean
        ``m_hat`` and the denominator ``sqrt(v_hat) + eps``, exactly as torch.optim.Adam."""
        b1, b2 = self.betas
        self.m[rows] = b1 * self.m[rows] + (1 - b1) * grad
        self.v[rows] = b2 * self.v[rows] + (1 - b2) * grad * grad
        m_hat = self.m[rows] / (1 - b1**t)
        denom = (self.v[rows] / (1 - b2**t)).sqrt() + self.eps
        return m_hat, denom


ADAM_EPS = 1e-8


def normalised_to_pixel(
    alpha: float, lr: float, std: Sequence[float] | torch.Tensor | None, like: torch.Tensor
) -> tuple[torch.Tensor | float, torch.Tensor | float, torch.Tensor | float]:
    """The pixel-space ``(alpha, lr, eps)`` of Adam on ``alpha * ||u' - u||_1 + CE`` over the
    *normalised* image ``u = (x - mean) / std``, the tensor the assignment optimises.

    With ``u = (x - mean) / std`` per channel c, ``||u' - u||_1 = sum |x' - x| / std_c`` and
    ``grad_u = std_c * grad_x``. Adam's step is invariant to that scale except for its
    ``eps``: the step in ``u`` of size ``lr * m / (sqrt(v) + eps)`` is, in pixels,
    ``lr * std_c * m_x / (sqrt(v_x) + eps / std_c)``. So the same iterates come from pixel-space
    Adam with ``alpha_c = alpha / std_c``, ``lr_c = lr * std_c`` and ``eps_c = eps / std_c``.
    Without ``std`` the values are used in pixel space as they are.
    """
    if std is None:
        return alpha, lr, ADAM_EPS
    sigma = torch.as_tensor(std, dtype=like.dtype, device=like.device).view(-1, 1, 1)
    return alpha / sigma, lr * sigma, ADAM_EPS / sigma


def l1_adam_attack(
    model: nn.Module,
    image: torch.Tensor,
    targets: torch.Tensor,
    *,
    alpha: float = 0.001,
    lr: float = 0.01,
    max_iter: int = 100,
    std: Sequence[float] | None = None,
) -> AttackResult:
    """The assignment's method: Adam on the image with loss
    ``alpha * ||x' - x||_1 + CE(f(x'), target)``, clamped to [0, 1] after every step.

    The L1 term enters through its subgradient ``alpha * sign(x' - x)`` (what autograd
    gives for ``abs``), so the update equals ``torch.optim.Adam`` on that loss. With ``std``
    (the model's normalisation), ``alpha`` and ``lr`` are meant in the normalised space, as in
    the assignment, and the exactly equivalent pixel-space update runs
    (:func:`normalised_to_pixel`).
    """
    n = targets.numel()
    alpha_px, lr_px, eps_px = normalised_to_pixel(alpha, lr, std, image)
    adam = _AdamMoments(image.unsqueeze(0).expand(n, -1, -1, -1), eps=eps_px)

    def update(x: torch.Tensor, grad: torch.Tensor, rows: torch.Tensor, t: int) -> torch.Tensor:
        # BEGIN SOLUTION Adam's step on the L1-penalised loss
        grad = grad + alpha_px * torch.sign(x - image)
        m_hat, denom = adam.step(grad, rows, t)
        return (x - lr_px * m_hat / denom).clamp_(0.0, 1.0)
        # END SOLUTION

    return _attack_loop(model, image, targets, max_iter, update)


def soft_threshold(z: torch.Tensor, threshold: torch.Tensor | float) -> torch.Tensor:
    """The proximal operator of ``threshold * ||.||_1``: ``sign(z) * max(|z| - threshold, 0)``.

    Every entry with ``|z| <= threshold`` becomes exactly zero, which is where sparsity comes from.
    """
    return torch.sign(z) * (z.abs() - threshold).clamp_min(0.0)


def l1_ista_attack(
    model: nn.Module,
    image: torch.Tensor,
    targets: torch.Tensor,
    *,
    alpha: float = 0.001,
    lr: float = 0.01,
    max_iter: int = 100,
    std: Sequence[float] | None = None,
) -> AttackResult:
    """The assignment's objective solved the EAD way (Chen et al., 2018): a proximal
    gradient (ISTA) step, with the cross-entropy handled by its gradient and the L1 term by
    its proximal operator, the soft-threshold.

    To compare like with like, the gradient step uses the same Adam preconditioner as
    :func:`l1_adam_attack`: with ``D = diag(sqrt(v_hat) + eps) / lr`` the step is
    ``delta <- prox_{alpha ||.||_1}^D(delta - D^{-1} m_hat)``, i.e. a soft-threshold at
    ``lr * alpha / (sqrt(v_hat) + eps)`` per pixel, followed by the box [0, 1] (the prox of
    L1 plus a box that contains 0 is the clip of the soft-threshold). ``std`` as in
    :func:`l1_adam_attack`: the soft-threshold scales with the image, so the mapping of
    :func:`normalised_to_pixel` makes this exactly ISTA in the normalised space too.
    """
    n = targets.numel()
    alpha_px, lr_px, eps_px = normalised_to_pixel(alpha, lr, std, image)
    adam = _AdamMoments(image.unsqueeze(0).expand(n, -1, -1, -1), eps=eps_px)

    def update(x: torch.Tensor, grad: torch.Tensor, rows: torch.Tensor, t: int) -> torch.Tensor:
        m_hat, denom = adam.step(grad, rows, t)
        delta = soft_threshold((x - image) - lr_px * m_hat / denom, lr_px * alpha_px / denom)
        return (image + delta).clamp_(0.0, 1.0)

    return _attack_loop(model, image, targets, max_iter, update)


def fgsm_attack(model: nn.Module, image: torch.Tensor, targets: torch.Tensor, *, eps: float) -> AttackResult:
    """Targeted FGSM: one step ``x - eps * sign(grad CE(f(x), target))``, clamped to [0, 1].
    ``eps`` is in pixel units of [0, 1] (8/255 for "8")."""

    def update(x: torch.Tensor, grad: torch.Tensor, rows: torch.Tensor, t: int) -> torch.Tensor:
        return (x - eps * grad.sign()).clamp_(0.0, 1.0)

    return _attack_loop(model, image, targets, 1, update)


def pgd_attack(
    model: nn.Module,
    image: torch.Tensor,
    targets: torch.Tensor,
    *,
    eps: float,
    step: float,
    max_iter: int = 100,
) -> AttackResult:
    """Targeted iterative FGSM / PGD in the L-inf ball (Kurakin et al., 2017; Madry et al.,
    2018, without the random start): signed gradient steps of ``step`` towards the target,
    projected onto ``|x' - x| <= eps`` and [0, 1]."""
    low, high = (image - eps).clamp(0.0, 1.0), (image + eps).clamp(0.0, 1.0)

    def update(x: torch.Tensor, grad: torch.Tensor, rows: torch.Tensor, t: int) -> torch.Tensor:
        return torch.minimum(torch.maximum(x - step * grad.sign(), low), high)

    return _attack_loop(model, image, targets, max_iter, update)


# --------------------------------------------------------------------------- why FGSM works


def margin(logits: torch.Tensor, classes: torch.Tensor) -> torch.Tensor:
    """``z_c - max_{j != c} z_j`` per row: positive exactly when the model predicts class ``c``."""
    own = logits.gather(1, classes.view(-1, 1)).squeeze(1)
    others = logits.scatter(1, classes.view(-1, 1), float("-inf"))
    return own - others.amax(dim=1)


@dataclass
class Linearisation:
    """The FGSM step against its first-order prediction and against random sign steps of the
    same size, per target (all ``(T,)`` tensors; margins in logits).

    ``margin``: the target's margin before the step (negative: not yet the target);
    ``predicted``: the first-order change of the margin, ``grad margin . delta``;
    ``actual``: its real change; ``random_mean`` / ``random_sd``: the real change under
    random sign steps ``eps * s`` (clamped to [0, 1] like FGSM's); ``clean_actual``,
    ``clean_random_mean``, ``clean_random_sd``: the same for the margin of the clean class.
    """

    margin: torch.Tensor
    predicted: torch.Tensor
    actual: torch.Tensor
    random_mean: torch.Tensor
    random_sd: torch.Tensor
    clean_actual: torch.Tensor
    clean_random_mean: torch.Tensor
    clean_random_sd: torch.Tensor


def fgsm_linearisation(
    model: nn.Module,
    image: torch.Tensor,
    targets: torch.Tensor,
    clean: int,
    *,
    eps: float,
    draws: int,
    generator: torch.Generator,
) -> Linearisation:
    """Measure what the targeted FGSM step does to the target's and the clean class's
    margins, what the linear approximation of the model predicts, and what ``draws`` random
    sign steps of the same L-inf size do (the baseline, with its spread)."""
    n = targets.numel()
    x = image.unsqueeze(0).repeat(n, 1, 1, 1).requires_grad_(True)
    logits = model(x)
    loss = F.cross_entropy(logits, targets, reduction="sum")
    (g_loss,) = torch.autograd.grad(loss, x, retain_graph=True)
    m0 = margin(logits, targets)
    # The margin's gradient with the runner-up class held fixed: its linearisation at x.
    (g_margin,) = torch.autograd.grad(m0.sum(), x)
    with torch.no_grad():
        x = x.detach()
        cls = torch.full_like(targets, clean)
        c0 = margin(logits.detach(), cls)
        delta = (x - eps * g_loss.sign()).clamp(0.0, 1.0) - x
        predicted = (g_margin * delta).flatten(1).sum(dim=1)
        stepped = model(x + delta)
        actual = margin(stepped, targets) - m0.detach()
        clean_actual = margin(stepped, cls) - c0
        signs = torch.randint(0, 2, (draws, *x.shape), generator=generator).to(x.device) * 2.0 - 1.0
        noisy = (x.unsqueeze(0) + eps * signs).clamp(0.0, 1.0).flatten(0, 1)
        out = model(noisy)
        rnd = (margin(out, targets.repeat(draws)) - m0.detach().repeat(draws)).view(draws, n)
        rnd_c = (margin(out, cls.repeat(draws)) - c0.repeat(draws)).view(draws, n)
    sd = (lambda v: v.std(dim=0)) if draws > 1 else (lambda v: torch.zeros_like(v[0]))
    return Linearisation(
        margin=m0.detach().cpu(),
        predicted=predicted.cpu(),
        actual=actual.cpu(),
        random_mean=rnd.mean(dim=0).cpu(),
        random_sd=sd(rnd).cpu(),
        clean_actual=clean_actual.cpu(),
        clean_random_mean=rnd_c.mean(dim=0).cpu(),
        clean_random_sd=sd(rnd_c).cpu(),
    )


@torch.no_grad()
def shuffled_success(
    model: nn.Module,
    original: torch.Tensor,
    adversarial: torch.Tensor,
    target: int,
    generator: torch.Generator,
) -> bool:
    """Whether the perturbation ``adversarial - original`` still reaches ``target`` with its
    values shuffled over the image: the same norms, a random direction."""
    delta = (adversarial - original).flatten()
    order = torch.randperm(delta.numel(), generator=generator).to(delta.device)
    x = (original + delta[order].view_as(original)).clamp(0.0, 1.0)
    return int(model(x.unsqueeze(0)).argmax(dim=1)) == target


# --------------------------------------------------------------------------- measures


def perturbation_norms(original: torch.Tensor, adversarial: torch.Tensor) -> dict[str, torch.Tensor]:
    """L0, L1, L2 and L-inf of ``adversarial - original`` per image, in 0-255 pixel units.

    ``original`` is ``(3, H, W)`` or ``(N, 3, H, W)``; ``adversarial`` is ``(N, 3, H, W)``;
    values in [0, 1]. L0 counts the colour values that differ at all (exact zeros only).
    """
    delta = ((adversarial - original) * 255.0).flatten(1).double()
    return {
        "l0": (delta != 0).sum(dim=1).double(),
        "l1": delta.abs().sum(dim=1),
        "l2": delta.pow(2).sum(dim=1).sqrt(),
        "linf": delta.abs().amax(dim=1),
    }


def psnr(original: torch.Tensor, adversarial: torch.Tensor) -> torch.Tensor:
    """Peak signal-to-noise ratio in dB per image, ``10 log10(1 / MSE)`` for pixels in [0, 1]
    (infinite when nothing changed)."""
    mse = (adversarial - original).double().pow(2).flatten(1).mean(dim=1)
    return 10.0 * torch.log10(1.0 / mse)


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """Images ``(N, 3, H, W)`` in [0, 1] as ``(N, H, W, 3)`` uint8, rounded to the nearest level
    (``ToPILImage`` would truncate, biasing every value down by half a level)."""
    return (images.detach().clamp(0, 1) * 255.0).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()


def png_bytes(image: torch.Tensor) -> bytes:
    """One image ``(3, H, W)`` in [0, 1] encoded as an 8-bit RGB PNG."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(to_uint8(image.unsqueeze(0))[0], mode="RGB").save(buf, format="PNG")
    return buf.getvalue()


def read_png(data: bytes | Path) -> torch.Tensor:
    """A PNG (bytes or a path) as a ``(3, H, W)`` float tensor in [0, 1]."""
    from PIL import Image

    source = io.BytesIO(data) if isinstance(data, bytes) else data
    with Image.open(source) as img:
        array = np.asarray(img.convert("RGB"), dtype=np.float32) / 255.0
    return torch.from_numpy(array).permute(2, 0, 1).contiguous()


def png_round_trip(images: torch.Tensor, paths: Sequence[Path] | None = None) -> torch.Tensor:
    """Save each image ``(N, 3, H, W)`` as an 8-bit PNG and load it again; return the
    reloaded batch. With ``paths`` the PNGs are written there (and read back from disk)."""
    out = []
    for i, image in enumerate(images):
        data = png_bytes(image)
        if paths is not None:
            Path(paths[i]).write_bytes(data)
            out.append(read_png(Path(paths[i])))
        else:
            out.append(read_png(data))
    return torch.stack(out).to(images.device)


def median(values: torch.Tensor | Sequence[float]) -> float:
    """The median as a float (the mean of the two middle values for an even count; NaN if empty)."""
    values = torch.as_tensor(values, dtype=torch.float64).flatten()
    if values.numel() == 0:
        return math.nan
    return float(np.median(values.cpu().numpy()))
