"""Questions and answer templates of the lab (Jinja2 Markdown; every number comes from
the run, and every conclusion branches on a claim the lab recorded, ``claims.<name>``)."""

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

{% if claims.matches_worked_answer %}
These are the worked answer's values: $11 \\times 11$ (pixels 109..119), $19 \\times 19$
(105..123) and $51 \\times 51$ (89..139), in both directions.
{% else %}
These differ from the worked answer ({% for label, v in expected.items() %}{{ label }}: $r = {{ v[2] }}$,
{{ v[3][0] }}..{{ v[3][1] }}{% if not loop.last %}; {% endif %}{% endfor %}): see the failed checks.
{% endif %}

{% if claims.assignment_boxes_concentric %}
Every layer is symmetric about its centre unit, so the centre units of all layers look at the
same centre pixel, {{ centre_pixel | fmt }}, and their boxes are nested.
{% else %}
The centre units' boxes are not all centred on the same pixel: the layers are not symmetric
about their centre units at this input size.
{% endif %}
The padding of conv2 does not move $\\mathrm{start}$ ($p = (k-1)/2$).
{% if claims.assignment_boxes_inside_image %}
None of these boxes reaches the border of the {{ n_in }}-pixel image, so no part of them falls
in the padding.
{% else %}
Part of the largest box falls in the padding, outside pixels 1..{{ n_in }}.
{% endif %}
"""
)

Q2 = """
The same table for torchvision's AlexNet (its first convolution has padding 2), for every
layer up to the last pooling layer.
"""

A2 = """
Here torchvision's AlexNet takes a ${{ size }} \\times {{ size }}$ image and pads conv1 by 2{% if claims.alexnet_maps_match_assignment %},
which gives its first layers the map sizes of the assignment's 227-pixel network{% else %};
its map sizes differ from those of the assignment's 227-pixel network{% endif %}. The
receptive field grows by $(k-1)\\,j_{\\mathrm{in}}$ at each layer:

{% for row in rows %}
* **{{ row.name }}** ({{ row.op }}): $n = {{ row.n }}$, $j = {{ row.j }}$, $r = {{ row.r }}$, start {{ row.start | fmt }}.
{% endfor %}

After the second pooling the jump is 16, so each $3 \\times 3$ layer (conv3, conv4, conv5 and
the last pooling) adds $2 \\cdot 16 = 32$ pixels. The last pooling layer, `{{ final_name }}`,
has a receptive field of **{{ final.r }} pixels**{% if claims.alexnet_rf_matches_published %},
the published value for AlexNet (Araujo et al., 2019){% else %}, not the published
{{ published }}: see the failed check{% endif %}.
{% if setting.even_map %}
Its map is ${{ final.n }} \\times {{ final.n }}$: with an even size there is no single centre,
so the table uses unit {{ final.centre }} (the left/upper of the two middle units).
{% endif %}

What a unit of this layer sees of the {{ size }}-pixel image depends on where it sits:

* **The centre unit** (unit {{ final.centre }}) has the box {{ final.lo }}..{{ final.hi }}
  ({{ final.r }} pixels) along each axis.
  {% if claims.alexnet_centre_box_clipped %}Part of it is zero padding: the unit reads pixels
  {{ centre_box }}, {{ centre_px }} of the {{ size }} pixels of each axis
  ({{ (centre_px / size) | pct }} of the width).{% else %}All of it lies inside the image:
  {{ centre_px }} of the {{ size }} pixels of each axis ({{ (centre_px / size) | pct }} of the
  width).{% endif +%}
* **A unit at the border**, the corner unit (1, 1) of the map, reads pixels {{ border_box }}:
  {{ border_px }} pixels of each axis ({{ (border_px / size) | pct }} of the width){% if claims.alexnet_border_box_clipped %},
  because the rest of its box lies in the padding{% endif %}{% if claims.alexnet_border_sees_less %};
  it sees less of the image than the centre unit{% else %}; it sees as much of the image as the
  centre unit{% endif %}.
* {% if claims.alexnet_some_units_wholly_inside %}{{ units_inside }} of the {{ units }} units ({{ (units_inside / units) | pct }})
  have their whole box inside the image; the others' boxes reach into the padding.{% else %}None of the
  {{ units }} units has its whole box inside the image: every unit's box reaches into the padding.{% endif +%}

The {{ final.r }} pixels are the size of every unit's box, padding included{% if claims.alexnet_border_sees_less %};
how much of the image a unit actually sees falls from the centre of the map to its border{% endif %}.
"""

Q3 = """
Verify the computed fields empirically: back-propagate from the centre unit of every layer to
the input and compare the region of non-zero gradient with the computed box. Explain why a
naive measurement is wrong and how to measure the theoretical field. Then measure the
*effective* receptive field (Luo et al., 2016) with the model's own weights.
"""

A3 = """
{% if claims.computed_boxes_match_gradient %}**The computed boxes are exact.**{% else %}**The
computed boxes disagree with the gradient in places.**{% endif %} For each layer, the centre
unit's output was back-propagated to the input and the bounding box of the non-zero gradient
compared with the computed box, restricted to the image (the calculator tracks, for every unit,
the first and last pixel it actually reads, which at the border can stop short of the image
edge where floor division dropped rows or the field has holes):
{% if claims.computed_boxes_match_gradient %}
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
  {{ pool_naive["non-zero pixels"] }} pixels{% if claims.naive_pool1_misses_field %}, not the
  {{ pool_area }} of its field{% if claims.naive_pool1_one_conv1_field %}: exactly one conv1
  unit's $11 \\times 11$ field, the one that won the centre window{% endif %}{% else %}, the
  whole field of {{ pool_area }} pixels (for this input no window lost its gradient){% endif %}.
* *ReLU* passes no gradient where it is inactive: {% if claims.relu_silences_conv2_units %}measured after its ReLU, the
  centre unit of {{ dead | pct }} of conv2's channels has a zero gradient *everywhere*, an empty
  field.{% else %}for this input no conv2 channel's centre unit is inactive, but any other input
  can switch some off.{% endif +%}
* Positive and negative weights can cancel, which makes isolated zeros possible.

The table of the four variants shows each step, for one random input.
{% if claims.avg_pool_alone_leaves_holes %}Average pooling alone does not fill the pooling
window for every input: the ReLU after conv1 still blocks the units it switched off (over
{{ coverage | length }} random inputs the gradient of pool1's centre unit reached
{{ coverage | min }} to {{ coverage | max }} of the {{ pool_area }} pixels, fewer than all in
{{ holes }} of them).{% else %}Average pooling alone fills the pooling window: over
{{ coverage | length }} random inputs the gradient of pool1's centre unit reached all
{{ pool_area }} pixels every time.{% endif +%}
{% if claims.avg_pool_identity_exact %}With identity activations too, every layer's gradient
covers its whole box{% else %}Even with identity activations some layer's gradient misses part
of its box (weights that cancel){% endif %}; the probe is exact by construction.

**How the lab measures the theoretical field.** The traced model is rebuilt with the same
geometry and a gradient that cannot vanish (the *probe*): every convolution becomes a mean
with constant positive weights, every pooling (max, average, adaptive) an average over the
same window, activations, normalisation and dropout become identities, and the computation is
done in float64 so that the tiny gradients at the edge of a deep network's field do not
underflow. Every path from an input pixel to the unit then carries a product of positive
numbers, so the gradient is non-zero exactly on the union of all paths: the theoretical field.
{% if claims.probe_exact %}The probe reproduces the computed box of every layer, with every
pixel of it non-zero.{% else %}Here the probe does not reproduce every computed box: see the
table.{% endif +%}

**The effective receptive field.** Luo et al. (2016) average the gradient magnitude of the
centre unit over random inputs, with the network's own weights.
{% if not setting.all_trained %}*This part runs on a stand-in:* without network access there are no
trained ImageNet weights for {% for s in stats if not setting.trained[s.network] %}{{ s.label }}{% if not loop.last %} and {% endif %}{% endfor %},
so their effective fields are those of randomly initialised networks (torchvision's default initialisation), not of the trained networks the assignment
means; Luo et al. find that training changes the effective field.{% endif +%}
Each network is measured on an input large enough to hold the whole theoretical box of its
centre unit, so the image never cuts the heat map. Each interval below is where another
seed's measurement falls with 95 % probability: another seed draws other initialisations, so
the spread between the initialisations (delete-one jackknife, Student's $t$, which widens the
interval when they are few) is the spread from seed to seed. With trained weights the inputs
are the only randomness, and the spread is over them ({{ resamples }} bootstrap resamples).

{% for s in stats %}
* {{ s.label }} `{{ s.layer }}` (theoretical $r = {{ s.r }}$, input {{ s.input_px }} pixels,
  {% if setting.trained[s.network] %}ImageNet weights, {{ s.inputs }} inputs{% else %}{{ s.inits }} random
  initialisations $\\times$ {{ s.inputs }} inputs{% endif %}): 95 % of the mean gradient lies in a
  centred square of **{{ s.width | fmt }} pixels** ({{ s.width_lo | fmt }} to {{ s.width_hi | fmt }}),
  {{ s.share | pct }} of $r$; a Gaussian fitted to the row and column profiles has
  $\\sigma = {{ s.std | fmt }}$ pixels ({{ s.std_lo | fmt }} to {{ s.std_hi | fmt }}), so
  $4\\sigma / r = {{ s.ratio | fmt }}$.
  {% if claims["erf_smaller_than_box_" ~ s.network] %}The effective field of {{ s.label }} is
  smaller than its theoretical field: a field that used its whole box evenly would put 95 % of
  its mass in {{ s.uniform_width | fmt }} pixels, above the whole interval.{% else %}The
  measurement cannot tell the effective field of {{ s.label }} from a field that uses its whole
  box evenly (95 % of the mass in {{ s.uniform_width | fmt }} pixels, inside the interval or
  below it).{% endif +%}
  {% if claims["erf_gaussian_" ~ s.network] %}The profiles of {{ s.label }} are closer to a
  Gaussian ($R^2 = {{ s.r2 | fmt }}$) than to the flat profile of an even field
  ($R^2 = {{ s.r2_flat | fmt }}$).{% else %}The profiles of {{ s.label }} are not measurably
  closer to a Gaussian ($R^2 = {{ s.r2 | fmt }}$) than to the flat profile of an even field
  ($R^2 = {{ s.r2_flat | fmt }}$).{% endif +%}
{% endfor %}

{% if claims.erf_smaller_than_box_alexnet and claims.erf_smaller_than_box_resnet18 %}
In both networks the gradient thins out towards the border of the box: Luo et al. (2016)
explain it by the number of paths, many from pixels near the centre of the box, few from
pixels near its border.
{% endif %}
{% if claims.erf_share_alexnet_larger %}
The shallow AlexNet, whose few layers have large kernels and strides, uses a larger share of
its field than the deeper ResNet-18: its 95 % square is {{ stats[0].share | pct }} of its $r$
against {{ stats[1].share | pct }}, {{ (100 * diff.value) | fmt }} points more (95 % interval
{{ (100 * diff.lo) | fmt }} to {{ (100 * diff.hi) | fmt }}). This agrees with Luo et al. (2016),
for whom $r$ grows linearly with depth and the effective field only like its square root,
although the two networks differ in more than depth (kernels, strides, residual connections).
{% elif claims.erf_share_resnet18_larger %}
ResNet-18 uses a larger share of its field than AlexNet: its 95 % square is
{{ stats[1].share | pct }} of its $r$ against {{ stats[0].share | pct }},
{{ (-100 * diff.value) | fmt }} points more (95 % interval {{ (-100 * diff.hi) | fmt }} to
{{ (-100 * diff.lo) | fmt }}), unlike what the square-root growth of Luo et al. (2016) leads
one to expect of the deeper network.
{% else %}
The shares of their fields that AlexNet and ResNet-18 use ({{ stats[0].share | pct }} and
{{ stats[1].share | pct }} of $r$) cannot be told apart by this measurement: their difference,
{{ (100 * diff.value) | fmt }} points, has a 95 % interval from {{ (100 * diff.lo) | fmt }} to
{{ (100 * diff.hi) | fmt }} that contains zero.
{% endif %}

{% if claims.erf_mass_inside_box %}All of the gradient mass lies inside the theoretical box, as
it must.{% else %}Some gradient mass lies outside the theoretical box, which the geometry
forbids: a bug.{% endif %}
"""

ERF_CAPTION = (
    "Effective receptive fields: top, the mean gradient magnitude of the centre unit over "
    "random inputs, with the theoretical box (cyan) and the square holding 95 % of the mass "
    "(white, dashed); bottom, the profile over the rows with its Gaussian fit."
)

ERF_TABLE_CAPTION = (
    "Effective receptive fields, each on an input that holds its whole theoretical box; "
    "in brackets the 95 % intervals in which another seed's measurement falls (Student's t over the "
    "initialisations; over the inputs for trained weights). The uniform box is the 95 % square of a field "
    "that used its whole box evenly."
)

Q4 = """
Draw the receptive-field boxes of each layer on a real image.
"""

FIG_CAPTION = (
    "The centre unit's receptive field of each layer on Grace Hopper's photo (matplotlib's "
    "sample image): left the assignment's network at 227 x 227, right torchvision's AlexNet, "
    "with the box of the last layer's corner unit (red, dashed), part of which lies in the padding."
)

A4 = """
{% if claims.assignment_boxes_concentric %}The boxes are nested and centred on the same pixel
in the assignment's network{% else %}The boxes of the assignment's network{% endif +%}
({% for f in a_table %}{{ f.name }}: {{ f.r }} px{% if not loop.last %}, {% endif %}{% endfor %}).
AlexNet's last pooling layer has a box of {{ x_final.r }} pixels{% if claims.alexnet_rf_exceeds_image %},
wider than the whole {{ size }}-pixel image{% endif %}{% if claims.alexnet_centre_box_clipped %};
its centre unit reads {{ centre_px }} of the image's {{ size }} pixels per axis, the rest of
its box being padding{% else %}; its centre unit's box lies inside the image{% endif %}.
{% if claims.erf_smaller_than_box_alexnet %}What it responds to is concentrated nearer the
centre: its effective field (exercise 3) holds 95 % of the gradient in {{ erf.width | fmt }} pixels.
{% endif %}
"""

Q5 = """
Compute the final receptive field of several torchvision models (at least VGG-16 and
ResNet-18/50) and verify it empirically.
"""

A5 = """
Each model is traced with `torch.fx`, so branches and skip connections are followed, and the
field of a residual addition or a concatenation is the union of its inputs' fields.

{% for m in results %}
* **{{ m.name }}**: $r = {{ m.r }}$ pixels, jump {{ m.j }}{% if claims["rf_exceeds_image_" ~ m.name] %}:
  larger than the 224-pixel image it classifies{% endif %}. Verified at input {{ m.size }}{% if claims["whole_box_verified_" ~ m.name] %},
  where the centre unit's whole box lies inside the image, so the check tests both of its
  edges{% else %}, where the box is still larger than the image{% endif %};
  checked: {{ m.layers_checked }}.
{% endfor %}

{% if claims.computed_equals_gradient_all_models %}
In every case the bounding box of the probe's non-zero gradient equals the computed box.
{% else %}
Mismatches: {{ mismatches | join(", ") }}.
{% endif %}
{% if cfg.models | length == 1 %}The field is {{ widest.r }} pixels{% else %}The fields range from
{{ narrowest.r }} pixels ({{ narrowest.name }}) to {{ widest.r }} pixels ({{ widest.name }}){% endif %}{% if claims["rf_exceeds_image_" ~ widest.name] %},
more than the 224-pixel image: the theoretical field of a deep network outgrows its input{% if claims.erf_smaller_than_box_resnet18 %},
while the effective field that exercise 3 measures for ResNet-18 is smaller than its $r${% endif %}{% endif %}.
{% if cfg.all_models %}

Of the {{ survey.total }} torchvision classification models, the calculator follows the whole
spatial part of {{ survey.computed }}{% if not claims.calculator_follows_every_model %}; for the other
{{ survey.total - survey.computed }} the table lists where it stopped rather than guess
(attention, windows that reshape the spatial grid, adaptive pooling with uneven windows), and
the field given is the last one it knows{% endif %}. Squeeze-and-excitation blocks
(MobileNetV3, EfficientNet, RegNetY) pool globally and multiply back, so after the first of
them every unit depends on the whole padded input.
{% endif %}
"""
