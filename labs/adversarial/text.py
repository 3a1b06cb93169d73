"""Questions, answers and captions of the lab: Jinja2 Markdown filled with measured values.

Every number comes from the run; where the conclusion depends on the data, the template
branches on it.
"""

MODEL_NOTE = """
{% if kind == "alexnet" %}
**Model: AlexNet with the ImageNet weights** ({{ how }}: `{{ path }}`), written out in this lab;
class names and preprocessing come from torchvision's `AlexNet_Weights.IMAGENET1K_V1` metadata.
{% else %}
**Model: not AlexNet, but an offline stand-in**: a small CNN this lab trained on generated shapes
({{ classes }} classes, test accuracy {{ accuracy | pct }}, {{ "loaded from the cache" if cached else "trained in this run" }}),
because {{ reason }}.
To use the real AlexNet, run once with internet access (`weights: auto` downloads torchvision's
weights into the torch hub cache), or copy `{{ official }}` into `{{ hub }}`, or set
`--set adversarial.weights=PATH`. Every exercise below runs on the stand-in with the same attack code.
{% endif %}
"""

Q1 = r"""
Implement AlexNet (Krizhevsky et al., 2012) and classify the images with the pretrained ImageNet
weights: for each image, its top-5 classes and their probabilities.
"""

A1 = r"""
{% if kind == "alexnet" %}
The AlexNet of this lab (`alexnet.py`: five convolutions with ReLU and three max-pools in
`features`, an adaptive average pool to $6 \times 6$, and three linear layers with dropout in
`classifier`) has {{ n_params }} parameters, the number torchvision reports, and with the ImageNet
weights loaded into both its logits differ from `torchvision.models.alexnet` by at most
{{ max_diff | sci }} on a random batch: the same function, not just the same shapes.
{% else %}
The AlexNet of this lab (`alexnet.py`) has {{ n_params }} parameters and, with the same (randomly
initialised) weights loaded into both, its logits differ from `torchvision.models.alexnet` by at most
{{ max_diff | sci }}. Without the ImageNet weights it cannot classify photos, so the classification
below is done by the stand-in CNN ({{ accuracy | pct }} on held-out generated shapes).
{% endif %}

Each image is resized (shorter side), centre-cropped and converted to pixels in $[0, 1]$; the
normalisation $(x - \mu) / \sigma$ is the model's first layer, so the attacks below can work on
pixels. The probabilities are $\operatorname{softmax}(f(x))$.

{% for p in photos %}
- **{{ p.name }}**: {{ p.top }} ({{ p.p | pct }}).
{% endfor %}
{% if kind == "fallback" %}

The photos are far from anything the stand-in saw in training; whatever shape it names for them,
the probability measures nothing about the photo. That is why the attacks use the generated shapes,
which it classifies as intended.
{% elif not skimage %}

Only Grace Hopper is in the default set: install `labrunner[images]` (scikit-image) for four more photos.
{% endif %}
"""

Q2 = r"""
Create targeted adversarial examples for two randomly selected images and three random target
classes each, by minimising with Adam

$$\mathcal{L}(x') = \alpha \|x' - x\|_1 + \mathrm{CE}(f(x'), t)$$

over the image $x'$ and stopping as soon as the model predicts the target $t$.
"""

A2 = r"""
The image is optimised in pixel space: $x'$ starts at $x$, Adam (learning rate {{ cfg.lr }}) takes a
step on $\mathcal{L}$ with $\alpha = {{ cfg.alpha }}$, and $x'$ is clamped to $[0, 1]$, so every
iterate is a valid image. The three targets of one image go through the model as one batch
(the summed loss keeps each copy's gradient its own), and each copy stops at the first iterate
classified as its target (at most {{ cfg.max_iter }} steps).

**{{ n_ok }} of {{ n }}** targets were reached (median {{ s.iterations | fmt }} steps). An adversarial
image is only useful if it survives being saved: rounded to 8 bits, written as PNG and classified
again, **{{ n_rt }} of {{ n }}** still give the target.
{% if lost %}
The {{ lost | length }} that did not had stopped right at the decision boundary (the method stops at
the first success), where moving each value by up to half a level ($0.5/255$) by rounding is enough
to cross back. Continuing a few steps past the boundary, or demanding a margin, would fix that.
{% elif n_rt == n_ok %}
Rounding moves each value by at most half a level ($0.5/255$), and here it never undid a success,
although the method stops at the first iterate past the decision boundary.
{% endif %}
The median perturbation changes the image by $\|\delta\|_1 = {{ s.l1 | fmt }}$ and
$\|\delta\|_\infty = {{ s.linf | fmt }}$ grey levels (of 255), a PSNR of {{ s.psnr | fmt }} dB.
"""

GRID_CAPTION = (
    "Left: the image and the target. Middle: the adversarial image, titled with the class the model "
    "gives it and its probability. Right: the perturbation around grey, amplified by the factor shown."
)

Q3 = r"""
Compare with standard targeted attacks on the same images and targets: FGSM (one signed gradient
step of size $\varepsilon$), iterative FGSM / PGD in the $\ell_\infty$ ball of radius $\varepsilon$,
and the assignment's $\ell_1$ method (plus its ISTA variant of exercise 4): success rate before and
after the 8-bit round trip, iterations, the size of the perturbation, time per example.
"""

TABLE_CAPTION = (
    "{n} (image, target) pairs per method. Success over all pairs; medians over the successful ones. "
    "Norms of the perturbation in 0-255 grey levels; L0 as % of all colour values (exact zeros excluded). "
    "FGSM eps = {fgsm}/255; PGD eps = {pgd}/255, step {step}/255."
)

METHODS_CAPTION = (
    "The first (image, target) pair under each method: the adversarial image with the model's class "
    "and confidence, and the perturbation amplified (each to its own peak)."
)

A3 = r"""
| method | success | after PNG | median $\ell_2$ | median $\ell_\infty$ | PSNR |
| --- | --- | --- | --- | --- | --- |
{% for key, s in m.items() %}
| {{ labels[key] }} | {{ s.success | pct }} | {{ s.rt_success | pct }} | {{ s.l2 | fmt }} | {{ s.linf | fmt }} | {{ s.psnr | fmt }} dB |
{% endfor %}

{% if m.fgsm.success < m.pgd.success %}
One step is not enough for a *targeted* attack: FGSM reaches {{ m.fgsm.success | pct }} of the targets
with $\varepsilon = {{ cfg.fgsm_eps }}/255$, while iterating the same signed step inside the same kind
of ball (PGD, $\varepsilon = {{ cfg.pgd_eps }}/255$) reaches {{ m.pgd.success | pct }}: the linear
approximation behind FGSM points towards *some* wrong class, but rarely far enough towards a chosen one.
{% else %}
FGSM reaches {{ m.fgsm.success | pct }} of the targets in one step, no fewer than PGD
({{ m.pgd.success | pct }}): on this model a single linearisation already points to the targets.
{% endif %}
The $\ell_\infty$ attacks spread a perturbation of nearly the full budget over almost every value
(median $\ell_0$ {{ (100 * m.pgd.l0_pct) | fmt }} % for PGD), whereas the $\ell_1$ methods put their change
where the gradient is large: their median $\ell_\infty$ is {{ m.l1_adam.linf | fmt }} (Adam) and
{{ m.l1_ista.linf | fmt }} (ISTA) grey levels, their $\ell_2$ {{ m.l1_adam.l2 | fmt }} and
{{ m.l1_ista.l2 | fmt }} against {{ m.pgd.l2 | fmt }} for PGD.
Time per example: {% for key, s in m.items() %}{{ labels[key] }} {{ s.ms_per_example | fmt }} ms{{ ", " if not loop.last else "." }}{% endfor %}
"""

Q4 = r"""
An $\ell_1$ penalty is meant to make the perturbation sparse. Adam only sees its subgradient
$\alpha \operatorname{sign}(x' - x)$; EAD (Chen et al., 2018) instead takes the proximal step
(ISTA), a soft-threshold $\operatorname{sign}(z) \max(|z| - \tau, 0)$ that sets small entries exactly
to zero. Add that variant and measure which perturbations are sparse.
"""

A4 = r"""
The ISTA variant keeps everything of the assignment's method (loss, $\alpha$, learning rate, Adam's
moment estimates as a diagonal preconditioner) except how the $\ell_1$ term is treated: with
$z = \delta - \mathrm{lr}\,\hat m / (\sqrt{\hat v} + \epsilon)$ the update is

$$\delta \leftarrow \operatorname{clip}\Big(\operatorname{sign}(z) \max\big(|z| - \tfrac{\mathrm{lr}\,\alpha}{\sqrt{\hat v} + \epsilon}, 0\big)\Big),$$

the exact proximal step of $\alpha\|\delta\|_1$ in Adam's metric (the clip to valid pixels is exact
too, because the box contains $\delta = 0$).

Measured on the successful examples (medians):

- **Adam (subgradient)**: {{ (100 * (1 - a.l0_pct)) | fmt }} % of the values are exactly unchanged,
  {{ tiny.l1_adam | pct }} changed by less than half a grey level, and after saving as PNG
  {{ (100 * a.l0_8bit_pct) | fmt }} % differ from the original; $\|\delta\|_1 = {{ a.l1 | fmt }}$.
- **ISTA (soft-threshold)**: {{ (100 * (1 - b.l0_pct)) | fmt }} % exactly unchanged, {{ tiny.l1_ista | pct }}
  below half a level, {{ (100 * b.l0_8bit_pct) | fmt }} % differ after PNG; $\|\delta\|_1 = {{ b.l1 | fmt }}$;
  success {{ b.success | pct }} (Adam {{ a.success | pct }}).

{% if a.l0_pct > 0.5 %}
Adam's subgradient steps do not produce zeros: Adam normalises every coordinate, so each value moves
by about the learning rate per step whatever the size of its gradient, and a value that reaches zero
steps across it rather than stopping there.
{% else %}
Even Adam leaves most values exactly unchanged here, because the run stops after few steps and
Adam's first steps only touch values whose gradient is not negligible.
{% endif %}
{% if b.l0_pct < 0.5 * a.l0_pct %}
Soft-thresholding does what the penalty promises: at $\alpha = {{ cfg.alpha }}$ the ISTA perturbation
changes {{ (100 * b.l0_pct) | fmt }} % of the values against Adam's {{ (100 * a.l0_pct) | fmt }} %.
{% else %}
At $\alpha = {{ cfg.alpha }}$ the soft-threshold zeroes out little: ISTA changes
{{ (100 * b.l0_pct) | fmt }} % of the values against Adam's {{ (100 * a.l0_pct) | fmt }} %. The threshold
is $\mathrm{lr}\,\alpha / \sqrt{\hat v}$ while the gradient step is $\mathrm{lr}\,\hat m / \sqrt{\hat v}$,
so a value is zeroed only where the cross-entropy gradient is smaller than $\alpha$; with this model
and penalty, almost nowhere.
{% endif %}

Raising the penalty (same images and targets):
{% for row in sweep %}{% if row.alpha != cfg.alpha %}

- $\alpha = {{ row.alpha }}$, {{ labels[row.method] }}: success {{ row.success | pct }}{% if row.success > 0 %}, {{ (100 * row.l0_pct) | fmt }} % of the values changed, $\|\delta\|_1 = {{ row.l1 | fmt }}${% endif %}.
{% endif %}{% endfor %}


{% if first.l1_ista and not first.l1_adam %}
Sparsity appears only with soft-thresholding: from $\alpha = {{ first.l1_ista.alpha }}$ ISTA changes fewer
than half of the values ({{ (100 * first.l1_ista.l0_pct) | fmt }} %, success {{ first.l1_ista.success | pct }}),
while Adam on the same loss never does at any $\alpha$ tried: its subgradient makes small entries
oscillate around zero instead of settling on it.
{% elif first.l1_ista and first.l1_adam %}
Both become sparse with a larger penalty: ISTA from $\alpha = {{ first.l1_ista.alpha }}$
({{ (100 * first.l1_ista.l0_pct) | fmt }} % changed), Adam from $\alpha = {{ first.l1_adam.alpha }}$
({{ (100 * first.l1_adam.l0_pct) | fmt }} % changed).
{% elif first.l1_adam %}
Against the textbook expectation, only Adam became sparse (from $\alpha = {{ first.l1_adam.alpha }}$);
ISTA did not at any $\alpha$ tried with a success.
{% else %}
Neither method produced a sparse successful perturbation at any $\alpha$ tried: the textbook claim does
not show at these settings.
{% endif %}
{% if a.l0_8bit_pct < 0.5 * a.l0_pct %}
Saving as an 8-bit image is itself a hard threshold at half a level: it removes Adam's many tiny
changes, leaving {{ (100 * a.l0_8bit_pct) | fmt }} % of the values changed in the file.
{% endif %}
"""

SPARSITY_CAPTION = (
    "Left: histogram of |δ| over all examples (log-log; exact zeros drawn at 1e-4, dashed line at half "
    "an 8-bit level). Middle and right: pixels changed in any channel for the first example."
)

Q5 = r"""
Which method gives the smallest visible change for a successful targeted attack, and when are the
perturbations sparse? Answer from the measurements.
"""

A5 = r"""
{% if ranked %}
By the median $\ell_2$ norm of successful perturbations (the quantity PSNR measures), the ranking is
{% for key in ranked %}{{ labels[key] }} ({{ m[key].l2 | fmt }}, PSNR {{ m[key].psnr | fmt }} dB, success {{ m[key].success | pct }}){{ " < " if not loop.last else "." }}{% endfor %}

The smallest visible change comes from **{{ labels[ranked[0]] }}**{% if m[ranked[0]].success < 1 %},
though it reaches only {{ m[ranked[0]].success | pct }} of the targets{% endif %}.
{% if m.pgd.success > 0 %}
PGD's change is bounded per value ($\ell_\infty \le {{ cfg.pgd_eps }}/255$) and so looks like faint
noise everywhere; the $\ell_1$ methods change fewer values by more (median $\ell_\infty$ {{ m.l1_adam.linf | fmt }}
grey levels for Adam), which concentrates the change in a few places where it is easier to spot
when amplified{% if m.l1_adam.l2 < m.pgd.l2 %}, but costs less energy overall (a smaller $\ell_2$){% else %}; here it
does not even save energy: its $\ell_2$ is larger than PGD's{% endif %}.
{% endif %}
{% else %}
No method reached any target at these settings, so there is nothing to rank.
{% endif %}

Sparsity is a property of the optimiser, not of the penalty alone: with the subgradient (Adam),
{{ (100 * m.l1_adam.l0_pct) | fmt }} % of the values change; with the proximal step (ISTA),
{{ (100 * m.l1_ista.l0_pct) | fmt }} %.
{% if m.l1_ista.l0_pct < 0.5 * m.l1_adam.l0_pct %}
At the assignment's $\alpha$, only soft-thresholding yields truly sparse perturbations, as EAD claims.
{% else %}
At the assignment's $\alpha = {{ cfg.alpha }}$ neither is sparse in the strict sense (exercise 4 shows
what a larger penalty does).
{% endif %}
Saving the image as 8-bit PNG keeps {{ m.l1_adam.rt_success | pct }} of the assignment's successes
(ISTA {{ m.l1_ista.rt_success | pct }}, PGD {{ m.pgd.rt_success | pct }}): a success should always be
verified on the saved file, as done here.
{% if model == "fallback" %}

*These numbers are for the stand-in CNN on generated shapes (see the note at the top), not for AlexNet
on ImageNet photos; the conclusions about the methods carry over only qualitatively.*
{% endif %}
"""
