"""Questions, answers and captions of the lab: Jinja2 Markdown filled with measured values.

Every number comes from the run; where the conclusion depends on the data, the template
branches on it.
"""

MODEL_NOTE = """
{% if kind == "alexnet" %}
**Model: AlexNet**, written out in this lab, with {% if official %}torchvision's ImageNet weights{% else %}the
weights in{% endif %} `{{ path }}` ({{ how }}, sha256 prefix checked); class names and preprocessing come
from torchvision's `AlexNet_Weights.IMAGENET1K_V1` metadata.
{% else %}
**Model: not AlexNet, but an offline stand-in**: a small CNN this lab trained on generated shapes
({{ classes }} classes, test accuracy {{ accuracy | pct }}, {{ "loaded from the cache" if cached else "trained in this run" }}),
because {{ reason }}.
To use the real AlexNet, run once with internet access (`weights: auto` downloads torchvision's
weights into the torch hub cache), or copy `{{ official_file }}` into `{{ hub }}`, or set
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
`classifier`) has {{ n_params | fmt }} parameters, the number torchvision reports, and with the same
weights loaded into both, its logits and those of `torchvision.models.alexnet` on a random batch
{% if max_diff == 0 %}are bit-for-bit identical{% else %}differ by at most {{ max_diff | sci }}{% endif %}:
the same function, not just the same shapes.
{% else %}
The AlexNet of this lab (`alexnet.py`) has {{ n_params | fmt }} parameters and, with the same (randomly
initialised) weights loaded into both, its logits and those of `torchvision.models.alexnet`
{% if max_diff == 0 %}are bit-for-bit identical{% else %}differ by at most {{ max_diff | sci }}{% endif %}. Without the ImageNet weights it cannot classify photos, so the classification
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

**{{ n_ok }} of {{ n }}** targets were reached{% if n_ok %} (median {{ s.iterations | fmt }} steps){% endif %}.
{% if n_ok %}
An adversarial image is only useful if it survives being saved: rounded to 8 bits, written as PNG
and classified again, **{{ n_rt }} of {{ n }}** still give the target.
{% if lost %}
The {{ lost | length }} that did not had stopped right at the decision boundary (the method stops at
the first success), where moving each value by up to half a level ($0.5/255$) by rounding is enough
to cross back. Continuing a few steps past the boundary, or demanding a margin, would fix that.
{% else %}
Rounding moves each value by at most half a level ($0.5/255$), and here it never undid a success,
although the method stops at the first iterate past the decision boundary.
{% endif %}
The median successful perturbation changes the image by $\|\delta\|_1 = {{ s.l1 | fmt }}$ and
$\|\delta\|_\infty = {{ s.linf | fmt }}$ grey levels (of 255), a PSNR of {{ s.psnr | fmt }} dB.
{% else %}
No target was reached within {{ cfg.max_iter }} steps, so there is no adversarial example to verify
after saving: at these settings the method needs more steps or a larger learning rate.
{% endif %}
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
{% macro v(x) %}{% if x == x %}{{ x | fmt }}{% else %}—{% endif %}{% endmacro %}
The four attacks on the same {{ n }} (image, target) pairs; the norms are medians over each method's
own successes, in grey levels of 255:

| method | success | after PNG | median $\ell_2$ | median $\ell_\infty$ | PSNR (dB) |
| --- | --- | --- | --- | --- | --- |
{% for key, s in m.items() %}
| {{ labels[key] }} | {{ s.success | pct }} | {{ s.rt_success | pct }} | {{ v(s.l2) }} | {{ v(s.linf) }} | {{ v(s.psnr) }} |
{% endfor %}

{% if m.fgsm.success == 0 and m.pgd.success == 0 %}
Neither FGSM nor PGD reaches a target inside the $\ell_\infty$ ball ($\varepsilon = {{ cfg.fgsm_eps }}/255$
and {{ cfg.pgd_eps }}/255): at this budget the chosen classes are out of reach.
{% elif m.fgsm.success < m.pgd.success %}
One step is not enough for a *targeted* attack: FGSM reaches {{ m.fgsm.success | pct }} of the targets
with $\varepsilon = {{ cfg.fgsm_eps }}/255$, while iterating the same signed step inside the same kind
of ball (PGD, $\varepsilon = {{ cfg.pgd_eps }}/255$) reaches {{ m.pgd.success | pct }}: the linear
approximation behind FGSM points away from the true class, but rarely far enough towards a chosen one.
{% else %}
FGSM reaches {{ m.fgsm.success | pct }} of the targets in one step, no fewer than PGD
({{ m.pgd.success | pct }}): on this model a single linearisation already points to the targets.
{% endif %}
{% for key in ["pgd", "l1_adam", "l1_ista"] %}
{% if m[key].success > 0 %}
- {{ labels[key] }} changes {{ (100 * m[key].l0_pct) | fmt }} % of the values, median $\ell_\infty$
  {{ m[key].linf | fmt }} and $\ell_2$ {{ m[key].l2 | fmt }}{% if key == "pgd" %} (its budget is $\ell_\infty \le {{ cfg.pgd_eps }}$){% endif %}.
{% endif %}
{% endfor %}

These are medians over different sets of pairs; exercise 5 compares the methods on the pairs they all
reached. Time per example: {% for key, s in m.items() %}{{ labels[key] }} {{ s.ms_per_example | fmt }} ms{{ ", " if not loop.last else "." }}{% endfor %}

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

{% if a.success > 0 and b.success > 0 %}
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
Here Adam leaves most values exactly unchanged: a value whose gradient is exactly zero is never moved
by Adam, and the run stopped after few steps.
{% endif %}
{% if b.l0_pct < 0.5 * a.l0_pct %}
Soft-thresholding does what the penalty promises: at $\alpha = {{ cfg.alpha }}$ the ISTA perturbation
changes {{ (100 * b.l0_pct) | fmt }} % of the values against Adam's {{ (100 * a.l0_pct) | fmt }} %.
{% else %}
At $\alpha = {{ cfg.alpha }}$ the soft-threshold zeroes out little: ISTA changes
{{ (100 * b.l0_pct) | fmt }} % of the values against Adam's {{ (100 * a.l0_pct) | fmt }} %. The threshold
is $\mathrm{lr}\,\alpha / \sqrt{\hat v}$ while the gradient step is $\mathrm{lr}\,\hat m / \sqrt{\hat v}$,
so a value is zeroed only where the cross-entropy gradient stays below $\alpha$ in size.
{% endif %}
{% else %}
At the assignment's $\alpha = {{ cfg.alpha }}$ one of the two methods reached no target (Adam
{{ a.success | pct }}, ISTA {{ b.success | pct }}), so their perturbations cannot be compared there.
{% endif %}

Share of the values changed (and success) as the penalty grows, on the same images and targets:

{% for p in pairs %}
- $\alpha = {{ p.alpha }}$: Adam {% if p.adam.success > 0 %}{{ (100 * p.adam.l0_pct) | fmt }} %{% else %}no success{% endif %} ({{ p.adam.success | pct }}), ISTA {% if p.ista.success > 0 %}{{ (100 * p.ista.l0_pct) | fmt }} %{% else %}no success{% endif %} ({{ p.ista.success | pct }}).
{% endfor %}

{% if sparser %}
Soft-thresholding makes the difference the theory predicts once the penalty is large enough: at
$\alpha = {{ sparser.alpha }}$ ISTA changes {{ (100 * sparser.ista.l0_pct) | fmt }} % of the values
against Adam's {{ (100 * sparser.adam.l0_pct) | fmt }} % on the same loss{% if sparse_ista %}, and from
$\alpha = {{ sparse_ista.alpha }}$ fewer than half of the values change, a sparse perturbation in the
literal sense{% endif %}.
{% if not sparse_adam %}
Adam never gets there at any $\alpha$ tried with a success: a larger penalty shrinks its values but does
not set them to zero.
{% endif %}
{% elif sparse_ista %}
ISTA's perturbation is sparse from $\alpha = {{ sparse_ista.alpha }}$ ({{ (100 * sparse_ista.l0_pct) | fmt }} %
changed), but not markedly sparser than Adam's at the same $\alpha$.
{% else %}
No $\alpha$ tried made ISTA markedly sparser than Adam: the textbook claim does not show at these settings.
{% endif %}
{% if costly %}
The price of the penalty is measured too: at $\alpha = {{ costly.alpha }}$ ISTA reaches only
{{ costly.ista.success | pct }} of the targets within {{ cfg.max_iter }} steps (Adam {{ costly.adam.success | pct }}).
{% endif %}
{% if a.l0_8bit_pct < 0.5 * a.l0_pct %}
Saving as an 8-bit image is itself a hard threshold at half a level: it removes Adam's many tiny
changes, leaving {{ (100 * a.l0_8bit_pct) | fmt }} % of the values changed in the file.
{% endif %}
"""

SPARSITY_CAPTION = (
    "Histograms of |δ| over all examples for the assignment's α and the largest α tried (log-log; exact "
    "zeros drawn at 1e-4, dashed line at half an 8-bit level), and the pixels changed in any channel "
    "in the first example at the largest α."
)

Q5 = r"""
Which method gives the smallest visible change for a successful targeted attack, and when are the
perturbations sparse? Answer from the measurements.
"""

A5 = r"""
**Success.** The assignment's method reached {{ m.l1_adam.success | pct }} of the targets and its
ISTA variant {{ m.l1_ista.success | pct }}; PGD with $\varepsilon = {{ cfg.pgd_eps }}/255$ reached
{{ m.pgd.success | pct }} and one-step FGSM {{ m.fgsm.success | pct }}. The $\ell_1$ methods have no
budget on the size of the change, only a price, so they keep going until they succeed; the
$\ell_\infty$ attacks stop at the edge of their ball.

{% if n_common %}
**Size of the change.** Each method's own successes favour the pairs that are easy for it, so the fair
comparison is on the {{ n_common }} of {{ n }} pairs that PGD and both $\ell_1$ methods reached:

| method | values changed | $\ell_1$ | $\ell_2$ | $\ell_\infty$ | PSNR |
| --- | --- | --- | --- | --- | --- |
{% for key, s in c.items() %}
| {{ labels[key] }} | {{ (100 * s.l0_pct) | fmt }} % | {{ s.l1 | fmt }} | {{ s.l2 | fmt }} | {{ s.linf | fmt }} | {{ s.psnr | fmt }} dB |
{% endfor %}

The smallest change in energy ($\ell_2$, which is what PSNR measures) comes from
**{{ labels[best_l2] }}**, the smallest largest change of any single value ($\ell_\infty$) from
**{{ labels[best_linf] }}**.
{% if best_l2 != best_linf %}
The two criteria disagree: the $\ell_\infty$ attack spreads a faint change over
{{ (100 * c.pgd.l0_pct) | fmt }} % of the values, the $\ell_1$ methods put more change on
{% if c.l1_adam.l0_pct < c.pgd.l0_pct %}fewer{% else %}as many{% endif %} values. Which one is less
visible depends on the eye: faint noise everywhere is hard to see in a textured photo, a few stronger
changes are hard to see when they sit on edges.
{% else %}
Both criteria agree, so that method gives the least visible change here{% if m[best_l2].success < 1 %},
on the pairs it reaches at all ({{ m[best_l2].success | pct }} of them){% endif %}.
{% endif %}
{% else %}
**Size of the change.** PGD and the $\ell_1$ methods have no pair they all reached, so their perturbation
sizes cannot be compared fairly at these settings (each method's own medians are in exercise 3).
{% endif %}

{% if m.l1_adam.success > 0 and m.l1_ista.success > 0 %}
**Sparsity.** At the assignment's $\alpha = {{ cfg.alpha }}$ Adam changes {{ (100 * m.l1_adam.l0_pct) | fmt }} %
of the values and ISTA {{ (100 * m.l1_ista.l0_pct) | fmt }} %{% if m.l1_ista.l0_pct < 0.5 * m.l1_adam.l0_pct %}:
only soft-thresholding is sparse, as EAD claims{% else %}: neither is sparse at this penalty{% endif %}.
{% else %}
**Sparsity.** At the assignment's $\alpha$ the $\ell_1$ methods did not both succeed, so there is no
sparsity to compare there.
{% endif %}
{% if sparser %}
With $\alpha = {{ sparser.alpha }}$ ISTA changes {{ (100 * sparser.ista.l0_pct) | fmt }} % and Adam still
{{ (100 * sparser.adam.l0_pct) | fmt }} %: the sparsity comes from the proximal step, not from the
penalty alone.
{% else %}
No $\alpha$ tried in exercise 4 made ISTA markedly sparser than Adam.
{% endif %}

**Saving.** Written as 8-bit PNG and classified again, the files keep {{ m.l1_adam.rt_success | pct }} of the assignment's successes
(ISTA {{ m.l1_ista.rt_success | pct }}, PGD {{ m.pgd.rt_success | pct }}): a success should always be
verified on the saved file, as done here.
{% if model == "fallback" %}

*These numbers are for the stand-in CNN on generated shapes (see the note at the top), not for AlexNet
on ImageNet photos; the conclusions about the methods carry over only qualitatively.*
{% endif %}
"""
