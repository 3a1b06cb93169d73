"""Questions and answer templates of the lab (Jinja2 Markdown; every number comes from
the run, and each conclusion is conditioned on the measured values)."""

RECURRENCES = r"""
$$n_{\mathrm{out}} = \left\lfloor \frac{n_{\mathrm{in}} + 2p - k}{s} \right\rfloor + 1, \qquad
j_{\mathrm{out}} = j_{\mathrm{in}}\, s, \qquad
r_{\mathrm{out}} = r_{\mathrm{in}} + (k - 1)\, j_{\mathrm{in}}, \qquad
\mathrm{start}_{\mathrm{out}} = \mathrm{start}_{\mathrm{in}} + \left(\frac{k - 1}{2} - p\right) j_{\mathrm{in}}$$
"""

Q1 = """
Find the receptive field, with respect to the input, at the centre position of each layer of
the network: input $227 \\times 227$, convolution $11 \\times 11$ with stride 4 and no padding,
max-pooling $3 \\times 3$ with stride 2, convolution $5 \\times 5$ with stride 1 and padding 2.
"""

A1 = (
    """
Every layer is a sliding window with kernel $k$, stride $s$ and padding $p$, the same along
both axes, so one axis suffices. Follow four numbers through the network: the size $n$ of the
feature map, the jump $j$ (distance in input pixels between two neighbouring units), the
receptive field $r$ of one unit and $\\mathrm{start}$, the input coordinate of the centre of
the first unit's field:
"""
    + RECURRENCES
    + """
The input has $n = {{ n_in }}$, $j = 1$, $r = 1$ and $\\mathrm{start} = 1$ (1-based pixels).

* **conv1** ($k = 11, s = 4, p = 0$): $n = \\lfloor ({{ n_in }} - 11)/4 \\rfloor + 1 = {{ conv1.n }}$,
  $j = 1 \\cdot 4 = {{ conv1.j }}$, $r = 1 + 10 \\cdot 1 = {{ conv1.r }}$,
  $\\mathrm{start} = 1 + 5 \\cdot 1 = {{ conv1.start | fmt }}$.
* **pool1** ($k = 3, s = 2, p = 0$): $n = \\lfloor ({{ conv1.n }} - 3)/2 \\rfloor + 1 = {{ pool1.n }}$,
  $j = {{ conv1.j }} \\cdot 2 = {{ pool1.j }}$, $r = {{ conv1.r }} + 2 \\cdot {{ conv1.j }} = {{ pool1.r }}$,
  $\\mathrm{start} = {{ conv1.start | fmt }} + 1 \\cdot {{ conv1.j }} = {{ pool1.start | fmt }}$.
* **conv2** ($k = 5, s = 1, p = 2$): $n = \\lfloor ({{ pool1.n }} + 4 - 5)/1 \\rfloor + 1 = {{ conv2.n }}$,
  $j = {{ conv2.j }}$, $r = {{ pool1.r }} + 4 \\cdot {{ pool1.j }} = {{ conv2.r }}$,
  $\\mathrm{start} = {{ pool1.start | fmt }} + (2 - 2) \\cdot {{ pool1.j }} = {{ conv2.start | fmt }}$.

The centre unit of a map of odd size $n$ is unit $c = (n + 1)/2$; its field is centred on
$\\mathrm{start} + (c - 1)\\, j$ and spans $r$ pixels:

| layer | centre unit $c$ | centre of its field | box |
| --- | --- | --- | --- |
| conv1 | {{ conv1.centre }} | ${{ conv1.start | fmt }} + {{ conv1.centre - 1 }} \\cdot {{ conv1.j }} = {{ (conv1.start + (conv1.centre - 1) * conv1.j) | fmt }}$ | {{ conv1.lo }}..{{ conv1.hi }} ({{ conv1.r }} x {{ conv1.r }}) |
| pool1 | {{ pool1.centre }} | ${{ pool1.start | fmt }} + {{ pool1.centre - 1 }} \\cdot {{ pool1.j }} = {{ (pool1.start + (pool1.centre - 1) * pool1.j) | fmt }}$ | {{ pool1.lo }}..{{ pool1.hi }} ({{ pool1.r }} x {{ pool1.r }}) |
| conv2 | {{ conv2.centre }} | ${{ conv2.start | fmt }} + {{ conv2.centre - 1 }} \\cdot {{ conv2.j }} = {{ (conv2.start + (conv2.centre - 1) * conv2.j) | fmt }}$ | {{ conv2.lo }}..{{ conv2.hi }} ({{ conv2.r }} x {{ conv2.r }}) |

{% if matches %}
These are the worked answer's values: $11 \\times 11$ (pixels 109..119), $19 \\times 19$
(105..123) and $51 \\times 51$ (89..139), in both directions.
{% else %}
These differ from the worked answer ({% for label, v in expected.items() %}{{ label }}: $r = {{ v[2] }}$,
{{ v[3][0] }}..{{ v[3][1] }}{% if not loop.last %}; {% endif %}{% endfor %}): see the failed checks.
{% endif %}

Because every layer is symmetric and the input size is odd, every layer's centre unit looks at
the same centre pixel, {{ ((n_in + 1) / 2) | fmt }}, and the boxes are nested. The padding of
conv2 does not change $\\mathrm{start}$ ($p = (k-1)/2$), and none of these boxes reaches the
border, so no part of them falls in the padding.
"""
)

Q2 = """
The same table for torchvision's AlexNet (its first convolution has padding 2), for every
layer up to the last pooling layer.
"""

A2 = """
torchvision's AlexNet takes a ${{ size }} \\times {{ size }}$ image and pads conv1 by 2, which
turns the assignment's 227-pixel arithmetic into the same map sizes from 224 pixels. The
receptive field grows by $(k-1)\\,j_{\\mathrm{in}}$ at each layer:

{% for row in rows %}
* **{{ row.name }}** ({{ row.op }}): $n = {{ row.n }}$, $j = {{ row.j }}$, $r = {{ row.r }}$, start {{ row.start | fmt }}.
{% endfor %}

After the second pooling the jump is 16, so each $3 \\times 3$ layer (conv3, conv4, conv5 and
the last pooling) adds $2 \\cdot 16 = 32$ pixels. The last pooling layer, `{{ final_name }}`,
has a receptive field of **{{ final.r }} pixels**{% if final.r == 195 %}, the known value for
AlexNet{% else %}, not the expected 195{% endif %}.
{% if final.n % 2 == 0 %}
Its map is ${{ final.n }} \\times {{ final.n }}$: with an even size there is no single centre,
so the table uses unit {{ final.centre }} (the left/upper of the two middle units), whose field
spans {{ final.lo }}..{{ final.hi }} in padded coordinates; the part outside 1..{{ size }}
lies in the zero padding.
{% endif %}
A field of {{ final.r }} pixels on a {{ size }}-pixel image means that the last feature map
can, in principle, see {{ (final.r / size) | pct }} of the image width from every unit.
"""

Q3 = """
Verify the computed fields empirically: back-propagate from the centre unit of every layer to
the input and compare the region of non-zero gradient with the computed box. Explain why a
naive measurement is wrong and how to measure the theoretical field. Then measure the
*effective* receptive field (Luo et al., 2016) with the model's own weights.
"""

A3 = """
**The computed boxes are exact.** For each layer, the centre unit's output was
back-propagated to the input and the bounding box of the non-zero gradient compared with the
computed box, restricted to the image (the calculator tracks, for every unit, the first and
last pixel it actually reads, which at the border can stop short of the image edge where
floor division dropped rows or the field has holes):
{% if not bad_a and not bad_x %}
all {{ n_a }} layers of the assignment's network and all {{ n_x }} layers of AlexNet agree
to the pixel.
{% else %}
mismatches in {{ (bad_a + bad_x) | join(", ") }}.
{% endif %}

**Why a naive measurement is wrong.** The gradient of a unit with respect to the input is
non-zero exactly where the input *changes the unit for this input and these weights*, which
is a subset of the receptive field:

* *Max-pooling* sends the gradient of each window only to the input that won. From the
  centre unit of pool1 (channel 0) the gradient of the network as built reaches
  {{ pool_naive["non-zero pixels"] }} pixels,
  {%- if pool_naive["non-zero pixels"] < pool_area %} not the {{ pool_area }} of the $19 \\times 19$ field
  {%- if pool_naive["non-zero pixels"] == 121 %}: exactly one conv1 unit's $11 \\times 11$ field{% endif %}
  {%- else %} the whole field{% endif %}.
* *ReLU* passes no gradient where it is inactive: measured after its ReLU, the centre unit
  of {{ dead | pct }} of conv2's channels has a zero gradient *everywhere*, an empty field.
* Positive and negative weights can cancel, which makes isolated zeros possible.

The table of the four variants quantifies each step: average pooling fills in the pooling
windows, identity activations remove the ReLU holes, and the probe is exact by construction.

**How the lab measures the theoretical field.** The traced model is rebuilt with the same
geometry and a gradient that cannot vanish (the *probe*): every convolution becomes a mean
with constant positive weights, every pooling (max, average, adaptive) an average over the
same window, activations, normalisation and dropout become identities, and the computation is
done in float64 so that the tiny gradients at the edge of a deep network's field do not
underflow. Every path from an input pixel to the unit then carries a product of positive
numbers, so the gradient is non-zero exactly on the union of all paths: the theoretical field.
{% if probe_ok %}The probe reproduces the computed box for every layer.{% endif %}


**The effective receptive field.** Luo et al. (2016) average the gradient magnitude of the
centre unit over random inputs, with the network's own weights: here {{ weights_how }},
{{ samples }} standard-normal inputs. The size is measured by the standard deviation
$\\sigma$ of a Gaussian fitted to the row and column profiles; $4\\sigma$ (the $\\pm 2\\sigma$
width, 95 % of a Gaussian's mass per axis) is compared with the theoretical $r$:

{% for s in stats %}
* {{ s.label }} `{{ s.layer }}` (theoretical $r = {{ s.r }}$): $\\sigma = {{ s.std | fmt }}$ pixels,
  $4\\sigma / r = {{ s.ratio | fmt }}$; 95 % of the gradient mass lies in a centred square of
  {{ s.width95 }} pixels; the Gaussian fits the profiles with $R^2 = {{ s.r2 | fmt }}$.
{% endfor %}

{% if deepest.ratio <= 0.5 %}
The effective field is much smaller than the theoretical one: for {{ deepest.label }} the
$\\pm 2\\sigma$ width is {{ deepest.ratio | pct }} of $r$. Pixels near the centre of the box
reach the unit through many paths, pixels near its border through few, so the border hardly
matters.
{% else %}
The effective field of {{ deepest.label }} is not much smaller than its theoretical field
($4\\sigma / r = {{ deepest.ratio | fmt }}$).
{% endif %}

{% if stats[0].ratio > deepest.ratio %}
The shallow AlexNet, whose few layers have large kernels and strides, uses a larger share of
its field ({{ stats[0].ratio | pct }}) than the deeper ResNet-18: the field $r$ grows linearly
with depth, the effective field only like its square root.
{% endif %}

{% if (stats | map(attribute="r2") | min) >= 0.9 %}
The profiles are close to Gaussian ($R^2 \\geq {{ (stats | map(attribute="r2") | min) | fmt }}$),
as Luo et al. derive from the central limit theorem over the many paths through the network.
{% else %}
The profiles are only roughly Gaussian ($R^2$ down to {{ (stats | map(attribute="r2") | min) | fmt }}){% if samples < 8 %},
with only {{ samples }} random inputs averaged{% endif %}.
{% endif %}

All of the gradient mass lies inside the theoretical box
({{ (stats | map(attribute="inside") | min) | pct }}), as it must.
"""

ERF_CAPTION = (
    "Effective receptive field of AlexNet's centre unit (mean gradient magnitude over random "
    "inputs) against the theoretical box (cyan)."
)

Q4 = """
Draw the receptive-field boxes of each layer on a real image.
"""

FIG_CAPTION = (
    "The centre unit's receptive field of each layer on Grace Hopper's photo (matplotlib's "
    "sample image): left the assignment's network at 227 x 227, right torchvision's AlexNet."
)

A4 = """
The boxes are nested and centred on the same pixel in the assignment's network
({% for f in a_table %}{{ f.name }}: {{ f.r }} px{% if not loop.last %}, {% endif %}{% endfor %}).
Already at the second convolution a unit sees a patch the size of a facial feature; AlexNet's
last pooling layer sees {{ x_final.r }} pixels, {% if x_final.r > size %}more than the whole
{{ size }}-pixel image (the rest is padding){% else %}almost the whole {{ size }}-pixel image{% endif %},
although, as the effective field above shows, most of what it responds to is much closer to
its centre.
"""

Q5 = """
Compute the final receptive field of several torchvision models (at least VGG-16 and
ResNet-18/50) and verify it empirically.
"""

A5 = """
Each model is traced with `torch.fx`, so branches and skip connections are followed, and the
field of a residual addition or a concatenation is the union of its inputs' fields.

{% for m in results %}
* **{{ m.name }}**: $r = {{ m.r }}$ pixels, jump {{ m.j }}{% if m.r > 224 %}: larger than the
  224-pixel image it classifies{% endif %}. Verified at input {{ m.size }}{% if m.clipped %},
  where the box is still larger than the image{% else %}, where the centre unit's whole box
  lies inside the image, so the check tests both of its edges{% endif %}; {{ m.layers }} layer{{ "s" if m.layers != 1 else "" }} checked.
{% endfor %}

{% if not mismatches %}
In every case the bounding box of the probe's non-zero gradient equals the computed box.
{% else %}
Mismatches: {{ mismatches | join(", ") }}.
{% endif %}
{% set widest = results | sort(attribute="r") | last %}
{% set narrowest = results | sort(attribute="r") | first %}
{% if widest.r != narrowest.r %}
The fields range from {{ narrowest.r }} pixels ({{ narrowest.name }}) to {{ widest.r }} pixels
({{ widest.name }}){% else %}The field is {{ widest.r }} pixels{% endif %}{% if widest.r > 224 %}, more than the 224-pixel image: the theoretical
field of a deep network outgrows its input, while its effective field (exercise 3) stays a
fraction of it, growing only like the square root of the depth (Luo et al., 2016){% endif %}.
{% if survey %}

Of the {{ survey.total }} torchvision classification models, the calculator follows the whole
spatial part of {{ survey.computed }}; for the other {{ survey.total - survey.computed }} the
table lists where it stopped rather than guess (attention, windows that reshape the spatial
grid, adaptive pooling with uneven windows), and the field given is the last one it knows. Squeeze-and-excitation blocks
(MobileNetV3, EfficientNet, RegNetY) pool globally and multiply back, so after the first of
them every unit depends on the whole padded input.
{% endif %}
"""
