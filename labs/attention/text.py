"""Questions, answers and captions of the lab: Jinja2 Markdown filled with measured values.

Every number comes from the run; every conclusion branches on a recorded claim
(``{% if claims.<name> %}``), decided in :mod:`.equivariance`, :mod:`.readout` and
:mod:`.ffn_exercise` against the rounding bound of the same cases or, for timings, against the spread over interleaved rounds, so the text never
claims what the run did not measure.
"""

NOTE = r"""
Exercises 1 and 2 run on the CPU in float64 (and float32), on {{ n_shapes }} shapes
$(T, D_\mathrm{in}, D_k, D_v)$ = {{ shapes }}, {{ draws }} random $(X, W_q, W_k, W_v)$ per shape and
{{ permutations }} random permutations per draw other than the identity ({{ n_cases }} cases per
implementation{% if setting.has_single_token %}, of which {{ n_nontrivial }} permute something: a sequence of
one token has no permutation but the identity{% endif %}), with $\alpha = {{ alpha }}$. Exercise 3 runs on `{{ device }}`.
"""

Q1 = r"""
The self-attention of $X \in \mathbb{R}^{T \times D_\mathrm{in}}$ (one token per row) is
$$S(X) = \operatorname{softmax}\left(\frac{1}{\alpha} X W_q W_k^\top X^\top\right) X W_v,$$
with the softmax taken over each row. Show that $P S(X) = S(PX)$ for any $T \times T$ permutation
matrix $P$.
"""

A1 = r"""
Permuting the tokens permutes the scores on both axes, the row-wise softmax follows along, and
the permutation cancels against the values: a lemma, then the theorem.

**Notation.** A permutation $\pi$ of $\{1, \ldots, T\}$ gives the matrix $P$ with $P_{ij} = 1$ if
$j = \pi(i)$ and $0$ otherwise, so $(PX)_{i,:} = X_{\pi(i),:}$: $P$ reorders the tokens. For a
square $A$, $(P A P^\top)_{ij} = A_{\pi(i)\pi(j)}$, and $P^\top P = I$ because $P$ is orthogonal.
Write $A = \frac{1}{\alpha} X W_q W_k^\top X^\top$ (the $T \times T$ scores) and $V = X W_v$.

**Lemma.** For every $A \in \mathbb{R}^{T \times T}$,
$\operatorname{softmax}(P A P^\top) = P \operatorname{softmax}(A) P^\top$ (row-wise softmax).

*Proof.* Entry $(i, j)$ of the left-hand side is
$$\operatorname{softmax}(P A P^\top)_{ij} = \frac{e^{A_{\pi(i)\pi(j)}}}{\sum_{k=1}^{T} e^{A_{\pi(i)\pi(k)}}} = \frac{e^{A_{\pi(i)\pi(j)}}}{\sum_{m=1}^{T} e^{A_{\pi(i)m}}} = \operatorname{softmax}(A)_{\pi(i)\pi(j)} = \left(P \operatorname{softmax}(A) P^\top\right)_{ij}.$$
The middle step substitutes $m = \pi(k)$: as $k$ runs over all tokens so does $\pi(k)$, and a sum
does not depend on the order of its terms. So a row-wise softmax commutes with permuting the rows
(each row is normalised on its own) and with permuting the columns (the normaliser is a sum over the
whole row). $\square$

**Theorem.** $S(PX) = P S(X)$.

*Proof.* Replacing $X$ by $PX$ replaces the scores by
$\frac{1}{\alpha} (PX) W_q W_k^\top (PX)^\top = P A P^\top$ and the values by $P V$. With the lemma,
$$S(PX) = \operatorname{softmax}(P A P^\top) \, P V = P \operatorname{softmax}(A) \underbrace{P^\top P}_{=I} V = P \operatorname{softmax}(A) V = P S(X). \quad \square$$
Nothing in $S$ refers to a position: $W_q, W_k, W_v$ act on each token's features, and the two
matrix products over the token axis (the softmax's sum and the weighted average $\operatorname{softmax}(A) V$)
are sums, which do not care about order. Self-attention treats its input as a *set* of tokens.

**Numerical verification.** Over {{ n_cases }} random cases, {{ n_nontrivial }} of which permute
something{% if setting.has_single_token %} (the {{ n_trivial }} cases with a single token, $T = 1$, have only
the identity permutation: they test nothing and show an error of exactly 0 in the table below){% endif %},
the largest entry of $|P S(X) - S(PX)|$ is **{{ err64 | sci }}** in float64 and **{{ err32 | sci }}** in
float32. $P S(X)$ and $S(PX)$ add the same numbers in a different order (the softmax denominator
and the product with $V$), and floating-point addition is not associative, so the question is
whether these differences are larger than rounding can make them. The baseline is the worst-case
rounding error of the two evaluations, bounded entry by entry from the unit roundoff, the lengths
of the sums (up to {{ max_t }} tokens) and the magnitudes of the terms (a first-order error
analysis, as in Higham's *Accuracy and Stability of Numerical Algorithms*).
{% if claims.equivariant_f64 and claims.equivariant_f32 %}
Every difference is within its bound: at most {{ ratio64 | fmt }} of it in float64 and
{{ ratio32 | fmt }} in float32. These are rounding errors, not a failure of the identity; in units of
the last place of 1 (float64: $2^{-52} \approx 2.2 \times 10^{-16}$; float32: $2^{-23} \approx 1.2 \times 10^{-7}$)
they are {{ ulps64 }} and {{ ulps32 }} units, for outputs of order one.
{% else %}
**Not every difference is within its bound** (largest ratio to the bound: {{ ratio64 | fmt }} in
float64, {{ ratio32 | fmt }} in float32){% if not claims.equivariant_f64 %}: in float64 rounding cannot
explain the difference, so this implementation is **not** equivariant, whatever the proof says
about the formula{% else %}: float64 agrees with the proof, float32 does not, which points at
numerical trouble in the float32 path{% endif %}. See the failing checks below.
{% endif %}
The lemma is checked on its own too: $\max |\operatorname{softmax}(P A P^\top) - P \operatorname{softmax}(A) P^\top| = {{ err_lemma | sci }}$,
{% if claims.softmax_lemma_holds %}within its rounding bound.{% else %}**above** its rounding bound: the
softmax under test does not commute with permutations.{% endif +%}

The figure shows the attention matrix of a sequence of {{ fig_t }} tokens and of the same tokens in
the order $\pi = ({{ fig_perm }})$. The tick labels of the second panel name the *original* token in
each row and column: {% if claims.figure_maps_match %}reading the same pair of labels in both panels gives the same weight, i.e. the
matrix is permuted on both axes, $\operatorname{softmax}(P A P^\top) = P \operatorname{softmax}(A) P^\top$
(largest difference {{ fig_err | sci }}, within rounding){% else %}here the two panels do **not** match
beyond rounding (largest difference {{ fig_err | sci }}): the implementation is not equivariant{% endif %}.

**Positional encodings break it, as they should.** A Transformer adds a position table
$E \in \mathbb{R}^{T \times D_\mathrm{in}}$ (row $p$ encodes position $p$) to the tokens before the first attention
layer. Permuting the tokens moves the tokens but not the table:
$$S(PX + E) = S\left(P (X + P^\top E)\right) = P S(X + P^\top E) \neq P S(X + E) \quad \text{unless } P^\top E = E,$$
and $P^\top E = E$ for every $P$ only when all rows of $E$ are equal, i.e. when $E$ carries no
information about position. Measured over the same cases, $\max |P S(X + E) - S(PX + E)|$ is
**{{ pe_sin | fmt }}** with the sinusoidal encoding of Vaswani et al. and **{{ pe_learned | fmt }}** with a
learned table (at its $\mathcal{N}(0, 1)$ initialisation), against {{ err64 | sci }} without.
{% if claims.sinusoidal_encoding_breaks_equivariance and claims.learned_encoding_breaks_equivariance %}
Both are far outside the rounding bound: with a position table, self-attention is no longer
equivariant. That is the purpose of the encoding: the same word at another position must be able
to produce a different output, which an equivariant map cannot do.
{% else %}
{% if claims.sinusoidal_encoding_breaks_equivariance %}The sinusoidal encoding breaks equivariance{% else %}The sinusoidal encoding stayed within the rounding bound{% endif %} and {% if claims.learned_encoding_breaks_equivariance %}the learned one breaks it{% else %}the learned one stayed within it{% endif %}:
an encoding within the bound carries no usable position information on these cases, against the
derivation above.
{% endif %}
The encoding does travel with the token if it is added *before* permuting, since then the
identity above applies to $X + E$.

**Does the check catch mistakes?** The check takes the implementation as an argument, so it was run
on deliberately wrong or position-aware ones (table below): a `K.reshape(D_k, T)` written for
`K.T` (it keeps the memory order, so it mixes tokens with features), a causal mask, and the two
positional encodings. None of them is a function of the *set* of tokens, and
{% if claims.check_rejects_every_wrong_variant %}all {{ wrong }} fail the check, with errors of
{{ wrong_min | fmt }} or more, far outside their rounding bounds.{% else %}only {{ caught }} of the
{{ wrong }} fail the check ({{ missed }} slipped through).{% endif +%}

{% if claims.columns_softmax_equivariant %}
One mistake it cannot see: a softmax over the *columns* instead of the rows is **still
equivariant** (error {{ columns_err | sci }}, within its rounding bound), because column normalisation
commutes with $P \cdot P^\top$ just like row normalisation (the lemma's proof works with rows and
columns swapped). Passing the equivariance check shows that an implementation treats the tokens as
a set, not that it computes the right function of the set.
{% else %}
Against expectation, the column-softmax variant failed the equivariance check here (error
{{ columns_err | sci }}, outside its rounding bound); the proof says it should not, so this points at
numerical trouble.
{% endif %}
{% if claims.row_sums_catch_columns_softmax and claims.rows_sum_to_one %}
That bug is caught by a second check, that each row of the attention matrix sums to one: the
column variant's rows are off by up to {{ columns_rows | fmt }}, far outside the rounding bound,
against {{ row_err | sci }} (within it) for the correct implementation.
{% else %}
The second check, that each row of the attention matrix sums to one, {% if claims.rows_sum_to_one %}holds
for the correct implementation but does not reject the column variant here (off by up to
{{ columns_rows | fmt }}){% else %}fails for the implementation under test itself (off by up to
{{ row_err | sci }}, outside the rounding bound){% endif %}.
{% endif %}
"""

CAPTION_ATTENTION = (
    "Attention matrices softmax(A) of {{ t }} random tokens. Top: X, then PX (ticks name the original "
    "tokens), then |softmax(PAP^T) - P softmax(A) P^T|. Bottom: the same with a sinusoidal positional "
    "encoding added after permuting (X + E vs PX + E), where the maps no longer match."
)

Q2 = r"""
Using $S(X)$ and a linear operation, construct a function $G(X)$ that is permutation *invariant*:
$G(PX) = G(X)$ for every permutation matrix $P$. Prove it.
"""

A2 = r"""
Sum (or average) the token outputs: the equivariance of Exercise 1 turns into invariance
because summing over tokens forgets their order.

**Construction.** Let $\mathbf{1} \in \mathbb{R}^{T}$ be the vector of ones and
$$G(X) = \mathbf{1}^\top S(X) \in \mathbb{R}^{1 \times D_v}, \qquad G(X)_j = \sum_{i=1}^{T} S(X)_{ij},$$
the sum of the token outputs (the mean variant uses $w = \tfrac{1}{T}\mathbf{1}$).

*Proof.* A permutation matrix has exactly one 1 in each column, so $P^\top \mathbf{1} = \mathbf{1}$, i.e.
$\mathbf{1}^\top P = \mathbf{1}^\top$. With Exercise 1,
$$G(PX) = \mathbf{1}^\top S(PX) = \mathbf{1}^\top P S(X) = \mathbf{1}^\top S(X) = G(X). \quad \square$$
The same holds for $w = c \mathbf{1}$ (in particular the mean, $c = 1/T$), and only for those: if
$w^\top P = w^\top$ for every $P$, swapping any two positions shows $w_i = w_j$. So "a linear
operation on the token axis that is invariant" means summing (or averaging) over tokens, possibly
followed by any linear map on the $D_v$ features (which is harmless: it acts after the pooling).

**Which axis.** $S(X)$ is $T \times D_v$ with one token per row, so the sum must run down each
*column*: the assignment's column sums are $\mathbf{1}^\top S$, one number per feature, over all
tokens. That is the axis $P$ acts on. Summing the other way, the row sums $S \mathbf{1}$, gives
one number per token; they move with the tokens, $S(PX)\mathbf{1} = P\,S(X)\mathbf{1}$, an
equivariant vector, not an invariant one.

**Numerical verification** (same {{ n_cases }} cases as Exercise 1, float64):

- sum over tokens, $\mathbf{1}^\top S$: $\max |G(PX) - G(X)|$ = **{{ sum64 | sci }}** (float32: {{ sum32 | sci }});
- mean over tokens: **{{ mean64 | sci }}** (float32: {{ mean32 | sci }});
- row sums $S\mathbf{1}$: as an invariant, **{{ rows_inv | fmt }}**; as an equivariant,
  $\max |S(PX)\mathbf{1} - P S(X) \mathbf{1}|$ = {{ rows_eq | sci }};
- flatten + linear, $W \operatorname{vec}(S)$ with a random $W$: **{{ flat | fmt }}**.

Each is compared with the rounding bound of the two evaluations, as in Exercise 1.
{% if claims.sum_pool_invariant and claims.mean_pool_invariant and claims.flatten_linear_not_invariant %}
The pooled readouts are invariant up to rounding (at most {{ sum_ratio | fmt }} of the bound for the
sum, which over up to {{ max_t }} tokens collects a little more rounding than the mean, as its
values are larger); the flattened readout is not ({{ flat_ratio | fmt }} times its bound):
$\operatorname{vec}(PS) = (P \otimes I_{D_v}) \operatorname{vec}(S)$, so $W \operatorname{vec}(PS) = W \operatorname{vec}(S)$
for all $P$ requires $W (P \otimes I_{D_v}) = W$, i.e. the same weight block for every position, which
is again "sum over tokens, then a linear map". A flatten + linear head also fixes $T$, while the
pooled $G$ works for any sequence length.
{% else %}
The measurements do not match the proof: the sum over tokens is {% if not claims.sum_pool_invariant %}**not** {% endif %}invariant
within rounding, the mean {% if not claims.mean_pool_invariant %}**not** {% endif %}invariant, and flatten + linear
{% if claims.flatten_linear_not_invariant %}not invariant{% else %}**within** the rounding bound{% endif %}. See the checks below.
{% endif %}
{% if claims.row_sums_equivariant and claims.row_sums_not_invariant %}
The row sums behave as the argument on the axes says: equivariant within rounding, not invariant.
{% else %}
The row sums do not behave as the argument on the axes says (equivariant within rounding:
{% if claims.row_sums_equivariant %}yes{% else %}no{% endif %}; invariant: {% if claims.row_sums_not_invariant %}no{% else %}yes{% endif %}).
{% endif %}
The sum grows with $T$ while the mean does not, so the mean is the usual choice when sequence
lengths vary. $G$ is a relative of Deep Sets' $\rho\left(\sum_i \phi(x_i)\right)$: there each summand
sees one element, here each summand $S(X)_{i,:}$ already depends on the whole set through
attention, which is what makes attention followed by pooling more expressive than pooling alone.
"""

CAPTION_READOUTS = (
    "Largest |G(PX) - G(X)| over all cases, as a multiple of its rounding bound (float64, log "
    "scale), for each readout of S(X). Left of the dashed line (1) the difference can be rounding; "
    "right of it, it cannot."
)

Q3 = r"""
Implement the position-wise feed-forward network of the Transformer,
$\operatorname{FFN}(x) = \max(0, x W_1 + b_1) W_2 + b_2$, applied to each position $x$ (a row of the
$T \times D$ input) with $d_\mathrm{ff}$ hidden units (default $4D$), three ways sharing one set of
weights: with `nn.Linear`, with `nn.Conv1d(kernel_size=1)`, and as a pure function over positions with
`torch.func` (`functional_call`, `vmap`; show `torch.func.functionalize`). Check that they agree and
compare their speed.
"""

A3 = r"""
The FFN's ReLU is the Transformer layer's element-wise non-linearity; the other non-linear
operations are attention's softmax and layer normalisation (which divides each token's features
by their standard deviation). Like layer normalisation, the FFN acts on each token separately:
all the mixing between tokens happens in attention. **Why three ways are one
function.** On an input of shape $(B, T, D)$:

- `nn.Linear(D, d_ff)` computes $y = x W^\top + b$ on the *last* axis, for every $(b, t)$ at once,
  i.e. independently per position: two of them with a ReLU between are the FFN, with
  $W_1 = $ `fc1.weight`$^\top$ (shape $D \times d_\mathrm{ff}$). In the lab this is
  `LinearFFN`; it has $2 D d_\mathrm{ff} + d_\mathrm{ff} + D$ = {{ n_params | fmt }} parameters at
  $D = {{ d_model }}$, $d_\mathrm{ff} = {{ d_ff }}$.
- `nn.Conv1d(D, d_ff, kernel_size=1)` on $(B, D, T)$ computes
  $y_{b,:,t} = \sum_{k=0}^{0} W_{:,:,k}\, x_{b,:,t+k} + b$: a kernel of width one sees one position, so it
  is the same affine map with weight $W_{:,:,0}$. `ConvFFN` transposes to channels-first and back,
  and its weights are *views* of the Linear weights (`unsqueeze(-1)`, the same storage:
  {% if claims.ffn_forms_share_weights %}checked{% else %}**not** the case in this run{% endif %}).
- `torch.func.functional_call(ffn, params, (x,))` turns the module into a pure function of its
  parameters; written for one position $x \in \mathbb{R}^D$ and mapped with
  `vmap(vmap(f, in_dims=(None, 0)), in_dims=(None, 0))`, it is position-wise *by construction*:
  `in_dims=None` shares the parameters, `0` maps over time and then batch.

**They agree.** Largest difference from the formula $\max(0, x W_1 + b_1) W_2 + b_2$ (float32) over
{{ n_shapes }} shapes $(B, T, D)$ = {{ ffn_shapes }}: Linear {{ err_linear | sci }},
Conv1d {{ err_conv | sci }}, vmap {{ err_vmap | sci }}
{% if claims.ffn_forms_agree %}(all within the rounding bound of the two evaluations, at most {{ max_ratio | fmt }}
of it: a non-zero difference comes from a different kernel summing the same products in another
order{% if claims.vmap_bit_identical %}; the `vmap` form is bit-identical to the formula, a sign that
its batching rules turned the per-position products into the very matrix multiplication the
formula makes{% endif %}){% else %}(**not** all within the rounding bound, up to {{ max_ratio | fmt }} times it:
a form computes a different function; see the failing checks){% endif %}. The table below gives each shape.

**`functionalize`.** Memory-saving code often writes the FFN in place (`h.add_(b1); h.relu_()`).
Recording the aten operations that reach the kernels (a `TorchDispatchMode`), that version runs {{ n_inplace }} in-place op(s)
({{ inplace_names }}); {% if claims.functionalize_removes_mutation %}`torch.func.functionalize` of the same function runs none: each
mutation is replaced by its out-of-place twin ({{ inplace_names | replace("_.", ".") }}){% else %}`torch.func.functionalize` of the same function still runs {{ n_inplace_func }}
({{ func_names }}){% endif %}, and the output {% if claims.functionalize_keeps_output %}is unchanged up to rounding{% else %}**changes** beyond rounding{% endif %} (largest difference {{ err_func | sci }}). Removing mutation is what lets transforms such as `vmap`, `grad`
and compilers reason about a function as pure maths{% if claims.functionalize_removes_mutation and claims.functionalize_keeps_output %}; here it shows the FFN *is* a pure function of
$(x, W_1, b_1, W_2, b_2)${% endif %}.

**Speed** (forward only, inference mode, $(B, T, D) = {{ timing_shape }}$, $d_\mathrm{ff} = {{ timing_dff }}$,
on `{{ device }}`, {{ repeats }} runs per form in {{ rounds }} rounds, the forms alternating call by call in
rotating order so that load on the machine hits all alike). {% if setting.rounds_can_decide %}A form counts as slower (or faster)
than `nn.Linear` only when it is so in at least {{ needed }} of the {{ rounds }} rounds: a form no different from
`nn.Linear` gets there with probability {{ chance | fmt(2) }} (sign test, either side), and one stalled round does not
decide.{% else %}{{ rounds }} rounds are too few for the sign test to call any form slower or faster.{% endif %} The
ratios hold for this machine and shape only.
{% if claims.ffn_linear_fastest %}
`nn.Linear` is the fastest: it flattens $(B, T)$ into one axis and makes one matrix
multiplication (`addmm`) per layer, the best case for the BLAS library.
{% else %}
`nn.Linear` is not measurably faster than every other form here: at this size some forms
differ from it by less than the spread between rounds.
{% endif %}
{% for form in ratios %}
- `{{ form.name }}`: {{ form.ratio | fmt }}× the time of `nn.Linear` (median of the per-round ratios; 95 % interval {{ form.interval }})
{%- if claims["ffn_" ~ form.key ~ "_slower"] %}, slower in {{ needed }} or more of the rounds: {{ form.slower }}
{%- elif claims["ffn_" ~ form.key ~ "_faster"] %}, faster in {{ needed }} or more of the rounds; nothing in this form does less work
than `nn.Linear`, so the backend must have picked a better kernel for it at this size.
{%- else %}, not distinguishable from `nn.Linear` (slower in some rounds, faster in others):
{{ form.same }}
{%- endif %}

{% endfor %}
"""

CAPTION_FFN_ERRORS = (
    "Largest |form(x) - formula(x)| per shape (float32); the checks compare each with the rounding "
    "bound of the two evaluations."
)
CAPTION_TIMING = (
    "Forward time of the three forms (and the functionalized one), side by side in one run: the "
    "median over all runs, and the range of the per-round ratio."
)
