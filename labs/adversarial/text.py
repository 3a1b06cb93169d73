"""Questions, answers and captions of the lab: Jinja2 Markdown filled with measured values.

Every number comes from the run. Every conclusion branches on a claim recorded by the
experiment (``claims.<name>``, decided there against a baseline with its uncertainty, or an
exact count such as "some target was reached"); the other conditions read only the config
(``cfg``) and what the run was given (``setting``: which model, which images).
"""

MODEL_NOTE = """
{% if setting.model == "alexnet" %}
**Model: AlexNet**, written out in this lab, with {% if setting.official_weights %}torchvision's ImageNet weights{% else %}the
weights in{% endif %} `{{ weights_file }}` ({{ how }}, sha256 prefix checked); class names and preprocessing come
from torchvision's `AlexNet_Weights.IMAGENET1K_V1` metadata. The model and the photos are the assignment's
and the same under every seed; the seed draws the attacked images, their target classes and the random
baselines, so the measurements on the model alone (the classification of the photos) repeat across a seed
sweep rather than replicate, and the sweep marks them seed-independent.
{% else %}
**Model: not AlexNet, but an offline stand-in**: a small CNN this lab trained on generated shapes
({{ classes }} classes, test accuracy {{ accuracy | pct }}, {% if setting.cached %}loaded from the cache{% else %}trained in this run{% endif %}),
because {{ reason }}. Every exercise below runs on the stand-in, with the same attack code, and
generated shapes stand in for the photos: the numbers are the stand-in's, not AlexNet's on ImageNet.
The run's seed ({{ seed }}) decides the stand-in's training shapes, initial weights and batch order, its
held-out shapes and the shape of each class that is attacked, so each seed of a sweep trains and attacks
its own; a stand-in is stored once per seed and settings in the lab's cache, checked against its sha256
before it is reused.
To use the real AlexNet, run once with internet access (`weights: auto` downloads torchvision's
weights into the torch hub cache), or copy `{{ official_file }}` into the hub cache's `checkpoints`
folder (`$TORCH_HOME/hub/checkpoints`), or set `--set adversarial.weights=PATH`.
{% endif %}
"""

Q1 = r"""
Implement AlexNet (Krizhevsky et al., 2012) and classify the images with the pretrained ImageNet
weights: for each image, its top-5 classes and their probabilities.
"""

A1 = r"""
{% if setting.model == "alexnet" %}
The AlexNet of this lab (`alexnet.py`: five convolutions with ReLU and three max-pools in
`features`, an adaptive average pool to $6 \times 6$, and three linear layers with dropout in
`classifier`) has {{ n_params | fmt }} parameters, the number torchvision reports, and with the same
weights loaded into both, its logits and those of `torchvision.models.alexnet` on a random batch
{% if claims.alexnet_bit_identical %}are bit-for-bit identical{% else %}differ by at most {{ max_diff | sci }}{% endif %}.
{% else %}
The AlexNet of this lab (`alexnet.py`) has {{ n_params | fmt }} parameters and, with the same (randomly
initialised) weights loaded into both, its logits and those of `torchvision.models.alexnet`
{% if claims.alexnet_bit_identical %}are bit-for-bit identical{% else %}differ by at most {{ max_diff | sci }}{% endif %}. Without the ImageNet weights it cannot classify photos, so the classification
below is done by the stand-in CNN: {{ accuracy | pct }} correct on held-out generated shapes, against
a chance level of {{ (1 / classes) | pct }} for its {{ classes }} classes{% if claims.standin_beats_chance %}, so it
has learned the shapes{% else %}, not clearly above chance: its classifications below mean little{% endif %}.
{% endif %}

Each image is resized (shorter side), centre-cropped and converted to pixels in $[0, 1]$; the
normalisation $(x - \mu) / \sigma$ is the model's first layer, so the attacks below can work on
pixels. The probabilities are $\operatorname{softmax}(f(x))$.

{% for p in photos %}
- **{{ p.name }}**: {{ p.top }} ({{ p.p | pct }}).
{% endfor %}
{% if setting.model == "fallback" %}

The stand-in was trained on generated shapes only, so the class it gives a photo names a shape, not
what the photo shows. The attacks therefore use generated shapes it has not seen in training.
{% elif not setting.skimage %}

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
The assignment's loss is written for the image $u$ the network receives, the normalised
$u = (x - \mu) / \sigma$ with $\sigma_c$ per colour channel $c$. This lab optimises the pixels $x$
instead (so that clamping to $[0, 1]$ keeps every iterate a valid image), with the exactly
equivalent update. Since $u' - u = (x' - x) / \sigma_c$,

$$\alpha \|u' - u\|_1 = \sum_c \frac{\alpha}{\sigma_c} \sum_{i} |x'_{c,i} - x_{c,i}|,$$

so the weight in pixel space is $\alpha_c = \alpha / \sigma_c$; and as $\nabla_u = \sigma_c \nabla_x$,
Adam's step of size $\mathrm{lr}$ in $u$ is a step of $\mathrm{lr}\,\sigma_c$ in $x$ (its $\epsilon$
becomes $\epsilon / \sigma_c$). With the assignment's $\alpha = {{ cfg.alpha }}$ and learning rate
{{ cfg.lr }} and $\sigma = ({% for v in std %}{{ v | fmt }}{{ ", " if not loop.last }}{% endfor %})$, the pixel-space
weights are $\alpha_c = ({% for v in alpha_px %}{{ v | fmt }}{{ ", " if not loop.last }}{% endfor %})$ and the learning rates
$({% for v in lr_px %}{{ v | fmt }}{{ ", " if not loop.last }}{% endfor %})$. The targets of one image go through the model as one batch
(the summed loss keeps each copy's gradient its own), and each copy stops at the first iterate
classified as its target (at most {{ cfg.max_iter }} steps).

**{{ n_ok }} of {{ n }}** targets were reached{% if claims.reaches_target_l1_adam %} (median {{ s.iterations | fmt }} steps){% endif %}.
{% if claims.adam_direction_matters %}
The direction of the perturbation is what reaches them: the same perturbation values shuffled over
the image (the same norms, a random direction) reach {{ n_shuffled }} of {{ n }}.
{% else %}
The same perturbation values shuffled over the image reach {{ n_shuffled }} of {{ n }}: with {{ n }}
pairs the attack cannot be told apart from a random change of the same size.
{% endif %}
{% if claims.reaches_target_l1_adam %}
An adversarial image is only useful if it survives being saved: rounded to 8 bits, written as PNG
and classified again, **{{ n_rt }} of {{ n }}** still give the target.
{% if claims.png_undoes_some_successes %}
Rounding moves each value by up to half a level ($0.5/255$). The method stops at the first iterate
past the decision boundary, and for {{ lost | length }} of them that was close enough for rounding to
cross back (the table lists them: reached, but not after PNG).{% for e in lost[:1] %} The first, {{ e.image }} → {{ e.target }},
had $p(t) = {{ e.p | fmt }}$ before saving and {{ e.p_rt | fmt }} after.{% endfor %}

Continuing a few steps past the boundary, or demanding a margin, is the usual remedy (not tried here).
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
    "The first pairs (the table lists all). In each triplet, left: the image and the target. "
    "Middle: the adversarial image, titled with the class the model gives it and its probability. Right: the perturbation around grey, amplified by the factor shown."
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
    "FGSM eps = {fgsm}/255; PGD eps = {pgd}/255, step {step}/255. The time per example of each method is one "
    "reading on a shared machine, not a comparison of speed: it is listed only in the lab's measurements "
    "(`..._ms_per_example_one_reading`)."
)

METHODS_CAPTION = (
    "The first (image, target) pair under each method: the adversarial image with the model's class "
    "and confidence, and the perturbation amplified (each to its own peak)."
)

A3 = r"""
The four attacks on the same {{ n }} (image, target) pairs; the norms are medians over each method's
own successes, in grey levels of 255:

| method | success | after PNG | median $\ell_2$ | median $\ell_\infty$ | PSNR (dB) |
| --- | --- | --- | --- | --- | --- |
{% for key, s in m.items() %}
| {{ labels[key] }} | {{ s.success | pct }} | {{ s.rt_success | pct }} | {{ s.l2 | fmt(nan="— (no success)") }} | {{ s.linf | fmt(nan="— (no success)") }} | {{ s.psnr | fmt(nan="— (no success)") }} |
{% endfor %}

{% if not claims.reaches_target_fgsm and not claims.reaches_target_pgd %}
Neither FGSM nor PGD reaches a target inside the $\ell_\infty$ ball ($\varepsilon = {{ cfg.fgsm_eps }}/255$
and {{ cfg.pgd_eps }}/255): at this budget the chosen classes are out of their reach.
{% elif claims.pgd_beats_fgsm %}
One step is not enough for a *targeted* attack: FGSM reaches {{ m.fgsm.success | pct }} of the targets
with $\varepsilon = {{ cfg.fgsm_eps }}/255$, while iterating the same signed step inside the same kind
of ball (PGD, $\varepsilon = {{ cfg.pgd_eps }}/255$) reaches {{ m.pgd.success | pct }}
({{ test.wins }} pairs only PGD reached, {{ test.losses }} only FGSM).
{% else %}
FGSM reaches {{ m.fgsm.success | pct }} of the targets in one step and PGD {{ m.pgd.success | pct }}:
{{ test.wins }} pairs only PGD reached and {{ test.losses }} only FGSM, a difference that chance alone gives
too often (sign test $p = {{ test.p | fmt }}$) to rank the two on these {{ n }} pairs.
{% endif %}

**Why one step goes some way.** FGSM moves every value by $\varepsilon$ against the sign of the
loss gradient, the best step of that size if the model were linear. Measured on the target's
margin $z_t - \max_{j \ne t} z_j$ (the logit gap the attack has to close, a median of
{{ step.gap | fmt }} at the start):
{% if claims.fgsm_step_towards_target %}
the step raises it by a median {{ step.actual | fmt }} logits, far beyond what random sign steps of the
same size do ({{ step.random | fmt }} ± {{ step.random_sd | fmt }} over {{ step.draws }} draws; beyond
mean + 2 sd in {{ step.towards }} of {{ step.n }} pairs): the linearisation does point towards the target.
{% else %}
the step changes it by a median {{ step.actual | fmt }} logits, and random sign steps of the same size
by {{ step.random | fmt }} ± {{ step.random_sd | fmt }}: beyond their spread in only {{ step.towards }} of
{{ step.n }} pairs, so here the gradient's sign does no better than chance.
{% endif %}
{% if claims.fgsm_step_away_from_clean %}
It also pushes the image away from its clean class (that class's margin changes by a median
{{ step.clean_actual | fmt }}, against {{ step.clean_random | fmt }} ± {{ step.clean_random_sd | fmt }} for random steps).
{% else %}
It does not push the image away from its clean class more than a random step does (margin change
{{ step.clean_actual | fmt }} against {{ step.clean_random | fmt }} ± {{ step.clean_random_sd | fmt }}).
{% endif %}
{% if claims.linearisation_overestimates %}
But the model is not linear over a step of {{ cfg.fgsm_eps }}/255: the first-order prediction of the rise
(a median {{ step.predicted | fmt }}) is larger than the real rise in {{ step.over.wins }} of {{ step.n }} pairs.
The linearisation promises {{ step.reach_predicted }} of {{ step.n }} targets, the real step reaches
{{ step.reach_actual }}; PGD re-linearises after every small step instead.
{% else %}
The first-order prediction of the rise (a median {{ step.predicted | fmt }}) is not consistently larger than
the real rise ({{ step.over.wins }} of {{ step.n }} pairs larger), so these pairs do not show the model
bending away from its linearisation; the step falls short of the gap for the gap in {{ step.n - step.reach_actual }}
of {{ step.n }} pairs (the linearisation promises {{ step.reach_predicted }}, the real step reaches {{ step.reach_actual }}).
{% endif %}

{% for key in ["pgd", "l1_adam", "l1_ista"] %}
{% if claims["reaches_target_" ~ key] %}
- {{ labels[key] }} changes {{ (100 * m[key].l0_pct) | fmt }} % of the values, median $\ell_\infty$
  {{ m[key].linf | fmt }} and $\ell_2$ {{ m[key].l2 | fmt }}{% if key == "pgd" %} (its budget is $\ell_\infty \le {{ cfg.pgd_eps }}$){% endif %}.
{% endif %}
{% endfor %}

These are medians over different sets of pairs; exercise 5 compares the methods on the pairs they all
reached.

"""

Q4 = r"""
An $\ell_1$ penalty is meant to make the perturbation sparse. Adam only sees its subgradient
$\alpha \operatorname{sign}(x' - x)$; EAD (Chen et al., 2018) instead takes the proximal step
(ISTA), a soft-threshold $\operatorname{sign}(z) \max(|z| - \tau, 0)$ that sets small entries exactly
to zero. Add that variant and measure which perturbations are sparse.
"""

A4 = r"""
The ISTA variant keeps everything of the assignment's method (loss, $\alpha$, learning rate, Adam's
moment estimates as a diagonal preconditioner, the normalised space of exercise 2) except how the
$\ell_1$ term is treated: with $z = \delta - \mathrm{lr}\,\hat m / (\sqrt{\hat v} + \epsilon)$ the update is

$$\delta \leftarrow \operatorname{clip}\Big(\operatorname{sign}(z) \max\big(|z| - \tfrac{\mathrm{lr}\,\alpha}{\sqrt{\hat v} + \epsilon}, 0\big)\Big),$$

the exact proximal step of $\alpha\|\delta\|_1$ in Adam's metric (the clip to valid pixels is exact
too, because the box contains $\delta = 0$). Adam instead only sees the subgradient
$\alpha \operatorname{sign}(\delta)$: it normalises every coordinate, so each value moves by about the
learning rate per step whatever the size of its gradient, and a value that reaches zero steps across
it rather than stopping there.

{% if claims.reaches_target_l1_adam and claims.reaches_target_l1_ista %}
Measured on the successful examples (medians):

- **Adam (subgradient)**: {{ (100 * (1 - a.l0_pct)) | fmt }} % of the values are exactly unchanged,
  {{ tiny.l1_adam | pct }} changed by less than half a grey level, and after saving as PNG
  {{ (100 * a.l0_8bit_pct) | fmt }} % differ from the original; $\|\delta\|_1 = {{ a.l1 | fmt }}$.
- **ISTA (soft-threshold)**: {{ (100 * (1 - b.l0_pct)) | fmt }} % exactly unchanged, {{ tiny.l1_ista | pct }}
  below half a level, {{ (100 * b.l0_8bit_pct) | fmt }} % differ after PNG; $\|\delta\|_1 = {{ b.l1 | fmt }}$;
  success {{ b.success | pct }} (Adam {{ a.success | pct }}).

{% if claims.ista_sparser %}
Already at the assignment's $\alpha = {{ cfg.alpha }}$ soft-thresholding changes fewer values than Adam
in {{ pairs[0].test.wins }} of {{ pairs[0].test.n }} pairs both reached (sign test $p = {{ pairs[0].test.p | fmt }}$), by a median
{{ (100 * pairs[0].gap) | fmt }} percentage points of the values: ISTA changes {{ (100 * b.l0_pct) | fmt }} % of the values
against Adam's {{ (100 * a.l0_pct) | fmt }} %.
{% else %}
At the assignment's $\alpha = {{ cfg.alpha }}$ the soft-threshold does not make ISTA sparser by the
{{ (100 * smallest) | fmt }} percentage point(s) this lab calls a difference: it changes {{ (100 * b.l0_pct) | fmt }} % of
the values against Adam's {{ (100 * a.l0_pct) | fmt }} %, a median {{ (100 * pairs[0].gap) | fmt }} points fewer (fewer in
{{ pairs[0].test.wins }} of {{ pairs[0].test.n }} pairs both reached, sign test $p = {{ pairs[0].test.p | fmt }}$).
The threshold is $\mathrm{lr}\,\alpha / \sqrt{\hat v}$ while the gradient step is
$\mathrm{lr}\,\hat m / \sqrt{\hat v}$, so a value is zeroed only where the cross-entropy gradient stays
below $\alpha$ in size, and at this $\alpha$ few do.
{% endif %}
{% else %}
At the assignment's $\alpha = {{ cfg.alpha }}$ one of the two methods reached no target (Adam
{{ a.success | pct }}, ISTA {{ b.success | pct }}), so their perturbations cannot be compared there.
{% endif %}

{% if setting.alpha_sweep %}
Share of the values changed (and success) as the penalty grows, on the same images and targets
($\alpha$ in the normalised space):

{% for p in pairs %}
- $\alpha = {{ p.alpha }}$: Adam {{ (100 * p.adam.l0_pct) | fmt(nan="— (no success)") }} % ({{ p.adam.success | pct }}), ISTA {{ (100 * p.ista.l0_pct) | fmt(nan="— (no success)") }} % ({{ p.ista.success | pct }}){% if claims[p.claim] %}: ISTA sparser in {{ p.test.wins }} of {{ p.test.n }} pairs, by a median {{ (100 * p.gap) | fmt }} points{% endif %}.
{% endfor %}

{% if claims.ista_sparser_at_every_alpha %}
At every $\alpha$ tried ISTA changes fewer values than Adam, pair by pair beyond chance.
{% elif claims.ista_sparser_at_some_alpha %}
ISTA changes fewer values than Adam, pair by pair beyond chance, at $\alpha =$ {{ sparser.at | join(", ") }},
but not at {{ sparser.not_at | join(", ") }}.
{% else %}
No $\alpha$ tried made ISTA change fewer values than Adam beyond chance: the textbook claim does not show
at these settings.
{% endif %}
{% if claims.ista_fewer_changes_with_larger_alpha %}
A larger penalty removes values from ISTA's perturbation ({{ larger.fewer.wins }} of {{ larger.fewer.n }} pairs
reached by both methods change fewer values at $\alpha = {{ larger.alpha }}$ than at $\alpha = {{ cfg.alpha }}$,
a median drop of {{ (100 * larger.drop_ista) | fmt }} percentage points){% if claims.penalty_sparsifies_ista_more_than_adam %},
and far more than from Adam's ({{ (100 * larger.drop_adam) | fmt }} points; ISTA's drop larger in {{ larger.more.wins }}
of {{ larger.more.n }} pairs): the penalty shrinks Adam's values without setting them to zero{% else %}, but
not more than from Adam's ({{ (100 * larger.drop_adam) | fmt }} points){% endif %}.
{% else %}
At $\alpha = {{ larger.alpha }}$ ISTA does not change consistently fewer values than at $\alpha = {{ cfg.alpha }}$
({{ larger.fewer.wins }} of {{ larger.fewer.n }} pairs fewer).
{% endif %}
The price of the penalty: at $\alpha = {{ price.alpha }}$ ISTA reaches {{ price.success | pct }} of the targets
within {{ cfg.max_iter }} steps, against {{ b.success | pct }} at the assignment's $\alpha$
({{ price.test.wins }} pairs reached only at the assignment's $\alpha$, {{ price.test.losses }} only at $\alpha = {{ price.alpha }}$){% if claims.penalty_costs_ista_success %}:
the larger penalty costs successes, pair by pair beyond chance{% else %}: chance alone gives a split this
uneven too often (sign test $p = {{ price.test.p | fmt }}$), so these pairs establish no price{% endif %}.
{% endif %}
{% if claims.reaches_target_l1_adam %}
Saving as an 8-bit image is itself a hard threshold at half a level: every change below it is rounded
away, which leaves Adam's file different from the original in {{ (100 * a.l0_8bit_pct) | fmt }} % of the
values ({{ (100 * a.l0_pct) | fmt }} % before saving).
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

{% if claims.iterative_methods_share_pairs %}
**Size of the change.** Each method's own successes favour the pairs that are easy for it, so the fair
comparison is on the {{ n_common }} of {{ n }} pairs that PGD and both $\ell_1$ methods reached:

| method | values changed | $\ell_1$ | $\ell_2$ | $\ell_\infty$ | PSNR |
| --- | --- | --- | --- | --- | --- |
{% for key, s in c.items() %}
| {{ labels[key] }} | {{ (100 * s.l0_pct) | fmt }} % | {{ s.l1 | fmt }} | {{ s.l2 | fmt }} | {{ s.linf | fmt }} | {{ s.psnr | fmt }} dB |
{% endfor %}

This lab calls two norms different when the sign test agrees and the smaller is below the other by a median
of at least {{ (100 * smallest_norm.l2) | fmt }} % for $\ell_2$ and {{ smallest_norm.linf | fmt }} grey level for $\ell_\infty$
(PGD's $\ell_\infty$ grows in whole steps of one level, the smallest change an 8-bit image shows).
{% if claims.least_l2_is_clear %}
The smallest change in energy ($\ell_2$, which is what PSNR measures) comes from **{{ labels[best_l2] }}**,
pair by pair against each other method.
{% else %}
No method has the smallest $\ell_2$ pair by pair by that much beyond chance: on these {{ n_common }} pairs the
methods cannot be ranked by $\ell_2$ (the claims list the effects and tests of the closest, {{ labels[best_l2] }}).
{% endif %}
{% if claims.least_linf_is_clear %}
The smallest largest change of any single value ($\ell_\infty$) comes from **{{ labels[best_linf] }}**,
pair by pair against each other method.
{% else %}
No method has the smallest $\ell_\infty$ pair by pair by that much beyond chance: on these {{ n_common }} pairs
the methods cannot be ranked by $\ell_\infty$ (the claims list the effects and tests of the closest,
{{ labels[best_linf] }}).
{% endif %}
{% if claims.least_l2_and_linf_same_method %}
Both criteria agree, so {{ labels[best_l2] }} gives the least visible change here, on the pairs it reaches
at all ({{ m[best_l2].success | pct }} of them).
{% elif claims.least_l2_is_clear and claims.least_linf_is_clear %}
The two criteria disagree: PGD changes {{ (100 * c.pgd.l0_pct) | fmt }} % of the values, Adam
{{ (100 * c.l1_adam.l0_pct) | fmt }} % and ISTA {{ (100 * c.l1_ista.l0_pct) | fmt }} %. Which one is less visible
depends on the eye: faint noise everywhere is hard to see in a textured photo, a few stronger changes are
hard to see when they sit on edges.
{% else %}
Which method gives the least visible change is therefore not decided by these pairs.
{% endif %}
{% else %}
**Size of the change.** PGD and the $\ell_1$ methods have no pair they all reached, so their perturbation
sizes cannot be compared fairly at these settings (each method's own medians are in exercise 3).
{% endif %}

{% if claims.reaches_target_l1_adam and claims.reaches_target_l1_ista %}
**Sparsity.** At the assignment's $\alpha = {{ cfg.alpha }}$ Adam changes {{ (100 * m.l1_adam.l0_pct) | fmt }} %
of the values and ISTA {{ (100 * m.l1_ista.l0_pct) | fmt }} %{% if claims.ista_sparser %}: soft-thresholding changes
fewer values pair by pair, in the direction EAD claims{% else %}: at this penalty ISTA is not consistently sparser than Adam{% endif %}.
{% else %}
**Sparsity.** At the assignment's $\alpha$ the $\ell_1$ methods did not both succeed, so there is no
sparsity to compare there.
{% endif %}
{% if claims.ista_sparser_at_other_alpha %}
With $\alpha = {{ sparser.widest.alpha }}$ ISTA changes {{ (100 * sparser.widest.ista.l0_pct) | fmt }} % and Adam
{{ (100 * sparser.widest.adam.l0_pct) | fmt }} %: on the same loss, the difference comes from the proximal step{% if claims.penalty_sparsifies_ista_more_than_adam %},
and a larger penalty removes far more values from ISTA's perturbation than from Adam's{% else %};
a larger penalty does not remove clearly more values from ISTA's perturbation than from Adam's{% endif %}.
{% elif not claims.ista_sparser_at_some_alpha %}
No $\alpha$ tried in exercise 4 made ISTA change fewer values than Adam beyond chance.
{% endif %}

**Saving.** Written as 8-bit PNG and classified again, the files keep {{ m.l1_adam.rt_success | pct }} of the
assignment's targets (ISTA {{ m.l1_ista.rt_success | pct }}, PGD {{ m.pgd.rt_success | pct }}): a success should
always be verified on the saved file, as done here.
"""

NO_SUCCESS = "— (no success)"
