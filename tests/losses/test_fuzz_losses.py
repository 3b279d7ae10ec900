"""Property-based fuzzing (hypothesis) of the loss kernels in ssl_jax.losses.

Random shapes and values, with the extremes drawn on purpose: all-zero and
completely collapsed (identical) embeddings, rows of 1e-30 and of 1e30 (up
to 1e38, near the float32 maximum), single-dimension embeddings, batch 2,
and arrays whose entries hypothesis picks one by one. The properties are
the ones the docstrings promise:

* finite loss, aux and gradients for finite inputs (for the losses on raw,
  unnormalised scores only where the true value is representable in
  float32, see ``RAW_SCALES``);
* the analytic range of each loss (InfoNCE in ``[0, log K + 2 / tau]``,
  BYOL in ``[0, 4]``, SimSiam in ``[-1, 1]``, Barlow Twins'
  ``|C_ij| <= 1``, ...);
* invariance to permuting the batch consistently in every input;
* invariance to positive rescaling where a loss L2-normalises (per row:
  contrastive losses, BYOL, SimSiam) or standardises (per dimension: Barlow
  Twins; per patch: MAE's normalised targets);
* the identities between losses that the docstrings state (the blockwise
  NT-Xent is NT-Xent; SupCon with two views per label is NT-Xent; SimSiam
  is BYOL / 2 - 1; uniform logits cost log C).

Shapes come from a few fixed tuples and every loss is a jitted function
reused across tests, so XLA compiles each (loss, shape) once. Hypothesis is
derandomised with no example database: CI runs the same examples every
time.
"""
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from ssl_jax import losses
from ssl_jax.losses import pretext as pretext_losses

FUZZ = settings(max_examples=15, deadline=None, derandomize=True,
                database=None, print_blob=True,
                suppress_health_check=[HealthCheck.too_slow,
                                       HealthCheck.data_too_large])

TAU = 0.1
# (batch, dim): batch 2, an odd batch, and dimension 1.
PAIR_SHAPES = ((2, 1), (3, 4), (8, 16))
# Magnitudes of whole rows; 0 is the zero vector.
SCALES = (0.0, 1e-30, 1e-3, 1.0, 1e3, 1e30)
# Losses on raw dot products (DIM, CPC, VICReg, L2 reconstruction,
# pointing) have true values of order |x|^2 or |x|^4: at 1e30 they are not
# representable in float32, so finiteness is required up to these scales.
RAW_SCALES = (0.0, 1e-30, 1e-3, 1.0, 1e3, 1e6)
# Positive rescalings that must not change a normalising loss. Base rows
# have entries of at most 2, so 1e38 stays finite.
ROW_SCALES = (1e-9, 1e-3, 1.0, 1e3, 1e19, 1e30, 1e38)
F32_MAX_ENTRY = float(np.float32(1e30))


# ---------------------------------------------------------------------------
# Strategies.
# ---------------------------------------------------------------------------
@st.composite
def arrays(draw, shape, scales=SCALES):
  """A float32 array of ``shape`` whose leading axis indexes rows.

  One of: a Gaussian at one scale; a Gaussian with every row at its own
  scale (zero, tiny and huge rows side by side); one row repeated (complete
  collapse, all zeros at scale 0); entries chosen one by one by hypothesis
  (which likes 0, the bounds, tiny values and repeats).
  """
  kind = draw(st.sampled_from(("gaussian", "row_scales", "collapsed",
                               "entries")))
  if kind == "entries":
    bound = float(np.float32(max(scales)))
    return draw(hnp.arrays(np.float32, shape,
                           elements=st.floats(-bound, bound, width=32)))
  x = np.random.default_rng(draw(st.integers(0, 2**32 - 1))).standard_normal(
      shape)
  if kind == "gaussian":
    return (x * draw(st.sampled_from(scales))).astype(np.float32)
  if kind == "row_scales":
    rows = draw(st.lists(st.sampled_from(scales), min_size=shape[0],
                         max_size=shape[0]))
    rows = np.asarray(rows).reshape((-1,) + (1,) * (len(shape) - 1))
    return (x * rows).astype(np.float32)
  row = x[:1] * draw(st.sampled_from(scales))
  return np.broadcast_to(row, shape).astype(np.float32)


@st.composite
def pairs(draw, scales=SCALES, shapes=PAIR_SHAPES):
  """``(a, b, perm)``: two ``(B, D)`` views and a permutation of the batch."""
  b, d = draw(st.sampled_from(shapes))
  return (draw(arrays((b, d), scales)), draw(arrays((b, d), scales)),
          np.asarray(draw(st.permutations(range(b))), np.int32))


def unitish_rows(seed, b, d):
  """Two ``(B, D)`` views of Gaussian directions with norms in [0.5, 2]."""
  rng = np.random.default_rng(seed)
  out = []
  for _ in range(2):
    x = rng.standard_normal((b, d))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    out.append((x * rng.uniform(0.5, 2.0, (b, 1))).astype(np.float32))
  return tuple(out)


@st.composite
def row_scaled(draw, shapes=PAIR_SHAPES):
  """``(a, b, ra, rb)``: unit-ish views and a positive scale per row."""
  b, d = draw(st.sampled_from(shapes))
  a, c = unitish_rows(draw(st.integers(0, 2**32 - 1)), b, d)
  scales = st.lists(st.sampled_from(ROW_SCALES), min_size=b, max_size=b)
  return (a, c, np.asarray(draw(scales), np.float32)[:, None],
          np.asarray(draw(scales), np.float32)[:, None])


# The inputs that failed before the fixes of this test module's issue: rows
# of norm above ~1.8e19 squared to inf and were "normalised" to zero.
_A, _B = unitish_rows(0, 3, 4)
HUGE_ROWS = (_A, _B, np.full((3, 1), 1e30, np.float32),
             np.full((3, 1), 1e30, np.float32))


# ---------------------------------------------------------------------------
# Helpers.
# ---------------------------------------------------------------------------
def value_and_grad(fn, argnums=(0, 1)):
  """Jitted ``((loss, aux), grads)`` of ``fn(*args) -> (loss, aux)``."""
  return jax.jit(jax.value_and_grad(fn, argnums=argnums, has_aux=True))


def assert_finite(tree, what):
  for path, leaf in jax.tree_util.tree_leaves_with_path(tree):
    leaf = np.asarray(leaf)
    assert np.all(np.isfinite(leaf)), (
        f"{what}{jax.tree_util.keystr(path)} not finite: {leaf}")


def assert_close(x, y, rtol=1e-5, atol=1e-5, what=""):
  np.testing.assert_allclose(np.asarray(x, np.float64),
                             np.asarray(y, np.float64), rtol=rtol, atol=atol,
                             err_msg=what)


def max_score(x, y):
  """A bound on any dot product of a row of ``x`` with a row of ``y``."""
  x = np.abs(np.asarray(x, np.float64))
  y = np.abs(np.asarray(y, np.float64))
  return float(x.max() * y.max() * x.shape[-1])


def assert_aux_close(aux1, aux2, atol=1e-5):
  for key in aux1:
    assert_close(aux1[key], aux2[key], rtol=1e-5, atol=atol, what=key)


# ---------------------------------------------------------------------------
# Contrastive losses.
# ---------------------------------------------------------------------------
def _supcon_pairs(a, b):
  """SupCon over both views with one label per image (= NT-Xent)."""
  labels = jnp.arange(a.shape[0], dtype=jnp.int32)
  return losses.supervised_contrastive(
      jnp.concatenate([a, b]), jnp.concatenate([labels, labels]), TAU)


def _moco(a, b):
  # Queue rows are permuted and rescaled along with the batch; MoCo is
  # invariant to the order of the queue.
  return losses.moco(a, b, jnp.concatenate([b, a]), TAU)


CONTRASTIVE = {
    # name: (fn(a, b) -> (loss, aux), number of keys of each anchor's softmax
    #        for a batch b, number of InfoNCE terms summed)
    "nt_xent": (lambda a, b: losses.nt_xent(a, b, TAU),
                lambda b: 2 * b - 1, 1),
    "nt_xent_blockwise": (
        lambda a, b: losses.nt_xent_blockwise(a, b, TAU, block_size=3),
        lambda b: 2 * b - 1, 1),
    "symmetric_info_nce": (lambda a, b: losses.symmetric_info_nce(a, b, TAU),
                           lambda b: b, 1),
    "cmc_full_graph": (lambda a, b: losses.cmc_full_graph([a, b, a], TAU),
                       lambda b: b, 3),
    "supervised_contrastive": (_supcon_pairs, lambda b: 2 * b - 1, 1),
    "moco": (_moco, lambda b: 2 * b + 1, 1),
}
CONTRASTIVE_VG = {name: value_and_grad(fn)
                  for name, (fn, _, _) in CONTRASTIVE.items()}


@pytest.mark.parametrize("name", sorted(CONTRASTIVE))
@FUZZ
@given(case=pairs())
def test_contrastive_finite_in_range_and_permutation_invariant(name, case):
  """Finite loss, aux and gradients for any finite embeddings (zero, 1e-30,
  1e30 rows included); loss in [0, terms * (log K + 2 / tau)] (cosines in
  [-1, 1], the positive among the K keys); accuracy in [0, 1] and cosines
  in [-1, 1]; the same loss and aux after permuting the batch of both views
  with one permutation."""
  a, b, perm = case
  vg = CONTRASTIVE_VG[name]
  _, num_keys, terms = CONTRASTIVE[name]
  (loss, aux), grads = vg(a, b)
  assert_finite((loss, aux, grads), name)
  upper = terms * (math.log(num_keys(a.shape[0])) + 2.0 / TAU)
  assert -1e-5 <= float(loss) <= upper + 1e-4
  assert 0.0 <= float(aux["contrastive_acc"]) <= 1.0
  for key in ("pos_sim", "neg_sim"):
    assert -1.0 - 1e-5 <= float(aux[key]) <= 1.0 + 1e-5, key
  (loss_p, aux_p), _ = vg(a[perm], b[perm])
  assert_close(loss_p, loss, what=f"{name} after permuting the batch")
  assert_aux_close(aux_p, aux)


@pytest.mark.parametrize("name", sorted(CONTRASTIVE))
@FUZZ
@given(case=row_scaled())
@example(case=HUGE_ROWS)
def test_contrastive_invariant_to_positive_row_scaling(name, case):
  """The losses compare L2-normalised embeddings: scaling each row by its
  own factor in [1e-9, 1e38] changes nothing (before the fix, rows above
  ~1.8e19 overflowed the squared norm and were normalised to zero)."""
  a, b, ra, rb = case
  vg = CONTRASTIVE_VG[name]
  (loss, aux), _ = vg(a, b)
  (loss_s, aux_s), grads = vg(a * ra, b * rb)
  assert_finite((loss_s, aux_s, grads), name)
  assert_close(loss_s, loss, rtol=1e-4, atol=1e-4, what=name)
  for key in ("pos_sim", "neg_sim"):
    assert_close(aux_s[key], aux[key], rtol=1e-4, atol=1e-5, what=key)


@FUZZ
@given(case=pairs())
def test_nt_xent_identities(case):
  """Documented identities on any input: the blockwise NT-Xent equals
  NT-Xent; SupCon with the two views of each image sharing a label equals
  NT-Xent; swapping the two views leaves NT-Xent and the symmetric InfoNCE
  unchanged."""
  a, b, _ = case
  (loss, aux), _ = CONTRASTIVE_VG["nt_xent"](a, b)
  for other in ("nt_xent_blockwise", "supervised_contrastive"):
    (loss_o, aux_o), _ = CONTRASTIVE_VG[other](a, b)
    assert_close(loss_o, loss, rtol=1e-5, atol=1e-5, what=other)
    for key in ("pos_sim", "neg_sim"):
      assert_close(aux_o[key], aux[key], atol=1e-5, what=f"{other} {key}")
  for name in ("nt_xent", "symmetric_info_nce"):
    (l_ab, _), _ = CONTRASTIVE_VG[name](a, b)
    (l_ba, _), _ = CONTRASTIVE_VG[name](b, a)
    assert_close(l_ab, l_ba, what=f"{name} with the views swapped")


_supcon_vg = value_and_grad(
    lambda z, labels: losses.supervised_contrastive(z, labels, TAU),
    argnums=0)


@FUZZ
@given(b_d=st.sampled_from(((2, 1), (6, 4))), data=st.data())
def test_supervised_contrastive_labels(b_d, data):
  """SupCon with arbitrary labels (all equal, all distinct, anything in
  between): finite loss, aux and gradients, loss >= 0, the same loss after
  permuting rows and labels together and after renaming the labels."""
  z = data.draw(arrays(b_d))
  labels = np.asarray(data.draw(st.lists(
      st.integers(0, 3), min_size=b_d[0], max_size=b_d[0])), np.int32)
  perm = np.asarray(data.draw(st.permutations(range(b_d[0]))))
  (loss, aux), grad = _supcon_vg(z, labels)
  assert_finite((loss, aux, grad), "supervised_contrastive")
  assert float(loss) >= -1e-5
  assert 0.0 <= float(aux["frac_with_positives"]) <= 1.0
  (loss_p, aux_p), _ = _supcon_vg(z[perm], labels[perm])
  assert_close(loss_p, loss)
  assert_aux_close(aux_p, aux)
  (loss_r, _), _ = _supcon_vg(z, (7 - 2 * labels).astype(np.int32))
  assert_close(loss_r, loss)


# ---------------------------------------------------------------------------
# Non-contrastive losses.
# ---------------------------------------------------------------------------
_byol_vg = value_and_grad(losses.byol, argnums=0)
_simsiam_vg = value_and_grad(losses.simsiam, argnums=0)


@FUZZ
@given(case=pairs())
def test_byol_simsiam_finite_in_range_and_permutation_invariant(case):
  """BYOL = 2 - 2 cos in [0, 4] and SimSiam = -cos in [-1, 1], related by
  SimSiam = BYOL / 2 - 1; finite loss, aux and gradients for any finite
  input; the collapse diagnostic (std of normalised coordinates) in
  [0, 1]; all unchanged by permuting the batch."""
  p, z, perm = case
  (byol, byol_aux), g_byol = _byol_vg(p, z)
  (sim, sim_aux), g_sim = _simsiam_vg(p, z)
  assert_finite((byol, byol_aux, g_byol, sim, sim_aux, g_sim), "byol/simsiam")
  assert -1e-6 <= float(byol) <= 4.0 + 1e-5
  assert -1.0 - 1e-6 <= float(sim) <= 1.0 + 1e-6
  assert_close(sim, float(byol) / 2.0 - 1.0, atol=1e-6)
  assert -1e-6 <= float(byol_aux["target_std"]) <= 1.0 + 1e-6
  assert -1e-6 <= float(sim_aux["z_std"]) <= 1.0 + 1e-6
  (byol_p, aux_p), _ = _byol_vg(p[perm], z[perm])
  assert_close(byol_p, byol)
  assert_aux_close(aux_p, byol_aux)


@FUZZ
@given(case=row_scaled())
@example(case=HUGE_ROWS)
def test_byol_simsiam_invariant_to_positive_row_scaling(case):
  """Cosine losses and their collapse diagnostics do not see the norm of a
  row: per-row factors in [1e-9, 1e38] change neither (before the fix rows
  above ~1.8e19 had cosine 0, i.e. BYOL loss 2 and std 0)."""
  p, z, rp, rz = case
  (byol, aux), _ = _byol_vg(p, z)
  (byol_s, aux_s), grad = _byol_vg(p * rp, z * rz)
  assert_finite((byol_s, aux_s, grad), "byol")
  assert_close(byol_s, byol, rtol=1e-5, atol=1e-5)
  assert_aux_close(aux_s, aux, atol=1e-5)
  (_, sim_aux), _ = _simsiam_vg(p, z)
  (_, sim_aux_s), _ = _simsiam_vg(p * rp, z * rz)
  assert_aux_close(sim_aux_s, sim_aux, atol=1e-5)


def test_byol_zero_vectors():
  """Documented: a zero vector has cosine 0 with everything (loss 2), with
  finite gradients."""
  zeros = np.zeros((2, 3), np.float32)
  (loss, _), grad = _byol_vg(zeros, np.ones((2, 3), np.float32))
  assert float(loss) == 2.0
  assert_finite(grad, "byol grad")


_barlow_vg = value_and_grad(losses.barlow_twins)


@FUZZ
@given(case=pairs())
def test_barlow_twins_finite_in_range_symmetric_permutation_invariant(case):
  """Finite loss, aux and gradients for any finite input (constant, zero
  and 1e30 dimensions included); the cross-correlation of standardised
  dimensions has |C_ij| <= 1, so the loss is in [0, 4 D + lambda D (D - 1)];
  unchanged by permuting the batch and by swapping the views (C -> C^T)."""
  a, b, perm = case
  d = a.shape[1]
  (loss, aux), grads = _barlow_vg(a, b)
  assert_finite((loss, aux, grads), "barlow_twins")
  assert -1e-6 <= float(loss) <= 4 * d + 5e-3 * d * (d - 1) + 1e-4
  assert -1.0 - 1e-5 <= float(aux["mean_diag_corr"]) <= 1.0 + 1e-5
  assert -1e-6 <= float(aux["mean_abs_offdiag_corr"]) <= 1.0 + 1e-5
  (loss_p, aux_p), _ = _barlow_vg(a[perm], b[perm])
  assert_close(loss_p, loss, rtol=1e-4, atol=1e-4)
  assert_aux_close(aux_p, aux, atol=1e-4)
  (loss_t, _), _ = _barlow_vg(b, a)
  assert_close(loss_t, loss, rtol=1e-4, atol=1e-4)


def _standardised_views(seed, b, d):
  rng = np.random.default_rng(seed)
  x = rng.standard_normal((2, b, d))
  x -= x.mean(axis=1, keepdims=True)
  x /= np.maximum(x.std(axis=1, keepdims=True), 1e-3)
  return x.astype(np.float32)


@st.composite
def affine_maps(draw):
  """``(views, scale, shift)``: two standardised ``(B, D)`` views stacked,
  and per-dimension factors in [1, 1e37] with shifts of up to one factor."""
  b, d = draw(st.sampled_from(PAIR_SHAPES))
  views = _standardised_views(draw(st.integers(0, 2**32 - 1)), b, d)
  factors = draw(st.lists(st.sampled_from((1.0, 1e3, 1e19, 1e30, 1e37)),
                          min_size=2 * d, max_size=2 * d))
  signs = draw(st.lists(st.sampled_from((-1.0, 0.0, 1.0)), min_size=2 * d,
                        max_size=2 * d))
  scale = np.asarray(factors, np.float32).reshape(2, 1, d)
  return views, scale, scale * np.asarray(signs, np.float32).reshape(2, 1, d)


@FUZZ
@given(case=affine_maps())
@example(case=(_standardised_views(0, 3, 4),
               np.full((2, 1, 4), 1e30, np.float32),
               np.zeros((2, 1, 4), np.float32)))
def test_barlow_twins_invariant_to_per_dimension_affine_maps(case):
  """Barlow Twins standardises every dimension over the batch: scaling a
  dimension by a factor in [1, 1e37] and shifting it by up to that factor
  changes nothing while the variance dwarfs eps (before the fix the
  variance of dimensions above ~1e19 overflowed to inf and they
  standardised to 0: the explicit example, every dimension times 1e30)."""
  views, scale, shift = case
  (loss, aux), _ = _barlow_vg(views[0], views[1])
  mapped = views * scale + shift
  (loss_s, aux_s), grads = _barlow_vg(mapped[0], mapped[1])
  assert_finite((loss_s, aux_s, grads), "barlow_twins")
  assert_close(loss_s, loss, rtol=1e-3, atol=1e-3)
  assert_close(aux_s["mean_diag_corr"], aux["mean_diag_corr"], atol=1e-4)


_vicreg_vg = value_and_grad(losses.vicreg)


@FUZZ
@given(case=pairs(scales=RAW_SCALES), shift=st.sampled_from((0.0, 1.0, -3.0)))
def test_vicreg_finite_nonnegative_and_invariances(case, shift):
  """VICReg is quadratic (covariance term quartic) in the embeddings, so
  finiteness is checked up to |z| ~ 1e6 (RAW_SCALES). Loss and terms >= 0;
  unchanged by permuting the batch, by swapping the views and by adding one
  vector to every embedding of both views (centred statistics, differences
  of views); the invariance term is exactly 0 for identical views."""
  a, b, perm = case
  (loss, aux), grads = _vicreg_vg(a, b)
  assert_finite((loss, aux, grads), "vicreg")
  assert float(loss) >= 0.0
  for key in ("invariance", "variance", "covariance", "std"):
    assert float(aux[key]) >= 0.0, key
  (loss_p, _), _ = _vicreg_vg(a[perm], b[perm])
  assert_close(loss_p, loss, rtol=1e-4, atol=1e-4)
  (loss_t, _), _ = _vicreg_vg(b, a)
  assert_close(loss_t, loss, rtol=1e-5, atol=1e-5)
  moderate = np.all(np.abs(np.concatenate([a, b])) <= 1e3)
  if shift and moderate:
    (loss_s, _), _ = _vicreg_vg(a + shift, b + shift)
    assert_close(loss_s, loss, rtol=1e-3, atol=1e-3)
  (_, aux_same), _ = _vicreg_vg(a, a)
  assert float(aux_same["invariance"]) == 0.0


# ---------------------------------------------------------------------------
# Mutual-information losses (raw dot-product critics).
# ---------------------------------------------------------------------------
DIM_VG = {est: value_and_grad(
    lambda l, g, est=est: losses.dim_local_global(l, g, est))
          for est in ("jsd", "infonce", "dv")}
# (batch, local positions, dim), as (B, M, M, D) or (B, N, D).
DIM_SHAPES = (((2, 2, 2, 1), (2, 1)), ((3, 3, 4), (3, 4)))


@pytest.mark.parametrize("estimator", ["jsd", "infonce", "dv"])
@FUZZ
@given(shapes=st.sampled_from(DIM_SHAPES), data=st.data())
def test_dim_local_global_finite_bounded_permutation_invariant(
    estimator, shapes, data):
  """Deep InfoMax: finite loss, aux and gradients up to |x| ~ 1e6 (raw
  scores l . g); the JSD loss (softplus terms) and the InfoNCE loss (a
  cross-entropy) are >= 0, and the InfoNCE MI estimate is at most
  log(1 + (B - 1) N); permuting the images (local and global features
  together) changes nothing."""
  local_shape, global_shape = shapes
  loc = data.draw(arrays(local_shape, RAW_SCALES))
  glob = data.draw(arrays(global_shape, RAW_SCALES))
  perm = np.asarray(data.draw(st.permutations(range(global_shape[0]))))
  vg = DIM_VG[estimator]
  (loss, aux), grads = vg(loc, glob)
  assert_finite((loss, aux, grads), estimator)
  if estimator in ("jsd", "infonce"):
    assert float(loss) >= -1e-5 * max(1.0, abs(float(aux["pos_score"])))
  if estimator == "infonce":
    b = global_shape[0]
    n = int(np.prod(local_shape[1:-1]))
    assert float(aux["mi_estimate"]) <= math.log(1 + (b - 1) * n) + 1e-5
  (loss_p, _), _ = vg(loc[perm], glob[perm])
  # Summation order changes: rounding relative to the largest score (DV's
  # mean score - log-mean-exp cancels).
  assert_close(loss_p, loss, rtol=1e-5, atol=1e-5 * (1 + max_score(loc, glob)))


_cpc_vg = value_and_grad(lambda p, t: losses.cpc(p, t))
CPC_SHAPES = ((2, 2, 1, 1), (3, 4, 2, 4))  # (B, T, K, D)


@st.composite
def cpc_cases(draw):
  """``(predictions, targets, perm)`` up to RAW_SCALES, D = 1 included."""
  b, t, k, d = draw(st.sampled_from(CPC_SHAPES))
  return (draw(arrays((b, t, k, d), RAW_SCALES)),
          draw(arrays((b, t, d), RAW_SCALES)),
          np.asarray(draw(st.permutations(range(b))), np.int32))


# Found by this test: with D = 1 XLA made the scores a multiply, fused into
# both the max and (as an FMA) the subtraction of the log-sum-exp: NaN.
_CPC_D1 = np.asarray([125730.22, -132104.86, 640422.6, 104900.12],
                     np.float32)


@FUZZ
@given(case=cpc_cases())
@example(case=(_CPC_D1.reshape(2, 2, 1, 1), _CPC_D1.reshape(2, 2, 1),
               np.asarray([0, 1], np.int32)))
def test_cpc_finite_bounded_permutation_invariant(case):
  """CPC: finite loss, aux and gradients up to |x| ~ 1e6 (scores up to
  ~1e12, D = 1 included); the loss is a cross-entropy (>= 0), so the MI
  bound is at most log(#candidates); accuracy in [0, 1]; permuting the
  sequences changes nothing."""
  preds, targets, perm = case
  b, t = targets.shape[:2]
  (loss, aux), grads = _cpc_vg(preds, targets)
  assert_finite((loss, aux, grads), "cpc")
  assert float(loss) >= -1e-5 * max(1.0, abs(float(aux["pos_score"])))
  assert float(aux["mi_lower_bound"]) <= math.log(b * t) + 1e-5
  assert 0.0 <= float(aux["contrastive_acc"]) <= 1.0
  (loss_p, _), _ = _cpc_vg(preds[perm], targets[perm])
  assert_close(loss_p, loss, rtol=1e-5,
               atol=1e-5 * (1 + max_score(preds, targets)))


# ---------------------------------------------------------------------------
# Pretext losses.
# ---------------------------------------------------------------------------
_classification_vg = value_and_grad(
    lambda logits, labels, smoothing: losses.classification(
        logits, labels, smoothing), argnums=0)


@FUZZ
@given(b_c=st.sampled_from(((2, 1), (3, 4), (8, 9))), data=st.data(),
       smoothing=st.sampled_from((0.0, 0.1, 1.0)))
def test_classification_finite_and_uniform_logits(b_c, data, smoothing):
  """Softmax cross-entropy: finite loss and gradients for logits up to
  +-1e30, loss >= 0 (a cross-entropy against a distribution); logits that
  are constant along the class axis (any constant, 1e30 included) cost
  exactly log C, as documented; adding a constant to a row of logits
  changes nothing."""
  b, c = b_c
  logits = data.draw(arrays((b, c)))
  labels = np.asarray(data.draw(st.lists(st.integers(0, c - 1), min_size=b,
                                         max_size=b)), np.int32)
  smoothing = np.float32(smoothing)
  (loss, aux), grad = _classification_vg(logits, labels, smoothing)
  assert_finite((loss, aux, grad), "classification")
  assert float(loss) >= -1e-6 * max(1.0, float(np.max(np.abs(logits))))
  constant = np.broadcast_to(logits[:, :1], logits.shape)
  (loss_u, _), _ = _classification_vg(constant, labels, smoothing)
  assert_close(loss_u, math.log(c), rtol=1e-6, atol=1e-6)
  if np.all(np.abs(logits) <= 1e3):
    (loss_s, _), _ = _classification_vg(logits + 7.0, labels, smoothing)
    assert_close(loss_s, loss, rtol=1e-5, atol=1e-4)


_binary = jax.jit(losses.binary_correspondence)


@FUZZ
@given(logits=arrays((3, 4)), targets=st.one_of(
    hnp.arrays(np.float32, (3, 4), elements=st.sampled_from((0.0, 1.0))),
    hnp.arrays(np.float32, (3, 4), elements=st.floats(0.0, 1.0, width=32))))
def test_binary_correspondence_stable_for_any_logit(logits, targets):
  """softplus(s) - t s, evaluated stably: finite and >= 0 for logits up to
  +-1e30 and targets in [0, 1], and equal to a float64 reference."""
  loss, aux = _binary(logits, targets)
  assert_finite((loss, aux), "binary_correspondence")
  s = logits.astype(np.float64)
  reference = np.mean(np.logaddexp(0.0, s) - targets * s)
  scale = max(1.0, float(np.max(np.abs(s))))
  assert float(loss) >= -1e-6 * scale
  # s - t s cancels for t near 1: float32 rounding of t s is ~1e-7 |s|.
  assert_close(loss, reference, rtol=1e-5, atol=1e-6 * scale)


_mae_vg = value_and_grad(pretext_losses.mae_reconstruction, argnums=0)
MAE_SHAPES = ((2, 1, 2), (2, 4, 12))  # (B, L, P)


@FUZZ
@given(shape=st.sampled_from(MAE_SHAPES), data=st.data())
def test_mae_reconstruction_finite_and_visible_patches_ignored(shape, data):
  """MAE with per-patch normalised targets: finite loss, aux and gradients
  for any finite target (constant patches, 1e30 patches: the variance has
  an eps) and predictions up to 1e6; loss >= 0; 0 when nothing is masked;
  visible patches do not contribute at all (changing their predictions
  leaves the loss unchanged)."""
  pred = data.draw(arrays(shape, RAW_SCALES))
  target = data.draw(arrays(shape))
  mask = np.asarray(data.draw(hnp.arrays(
      np.float32, shape[:2], elements=st.sampled_from((0.0, 1.0)))))
  (loss, aux), grad = _mae_vg(pred, target, mask)
  assert_finite((loss, aux, grad), "mae_reconstruction")
  assert float(loss) >= 0.0
  if not mask.any():
    assert float(loss) == 0.0
  other = np.where(mask[..., None] > 0, pred, pred[::-1] + 1.0)
  (loss_v, _), _ = _mae_vg(other.astype(np.float32), target, mask)
  assert_close(loss_v, loss, rtol=1e-6, atol=0.0)


@FUZZ
@given(shape=st.sampled_from(MAE_SHAPES), seed=st.integers(0, 2**32 - 1),
       factor=st.sampled_from((1.0, 1e3, 1e19, 1e30)))
@example(shape=(2, 4, 12), seed=0, factor=1e20)
def test_mae_normalised_target_invariant_to_scale(shape, seed, factor):
  """With norm_pix_loss each target patch is standardised: scaling the
  targets by any factor >= 1 (patch variance >> the 1e-6 eps) leaves the
  loss unchanged (before the fix the variance of values above ~1e19
  overflowed and every patch normalised to 0)."""
  rng = np.random.default_rng(seed)
  target = rng.standard_normal(shape)
  target -= target.mean(axis=-1, keepdims=True)
  target /= np.maximum(target.std(axis=-1, ddof=1, keepdims=True), 1e-3)
  pred = rng.standard_normal(shape).astype(np.float32)
  mask = np.ones(shape[:2], np.float32)
  (loss, _), _ = _mae_vg(pred, target.astype(np.float32), mask)
  (loss_s, _), grad = _mae_vg(pred, (target * factor).astype(np.float32),
                              mask)
  assert_finite((loss_s, grad), "mae_reconstruction")
  assert_close(loss_s, loss, rtol=1e-4, atol=1e-5)


_reconstruction = jax.jit(pretext_losses.reconstruction,
                          static_argnames="kind")


@FUZZ
@given(shape=st.sampled_from(((2, 3, 3, 1), (2, 4, 4, 3))), data=st.data())
def test_reconstruction_finite_masked_and_l1_below_rms(shape, data):
  """L1/L2 pixel losses: finite up to |x| ~ 1e6 (L2 is quadratic), >= 0,
  0 for an empty mask; only masked elements count; L1 <= sqrt(L2) (Jensen,
  with non-negative weights)."""
  pred = data.draw(arrays(shape, RAW_SCALES))
  target = data.draw(arrays(shape, RAW_SCALES))
  mask = np.asarray(data.draw(hnp.arrays(
      np.float32, shape[:3], elements=st.sampled_from((0.0, 0.5, 1.0)))))
  loss, aux = _reconstruction(pred, target, mask, kind="l2")
  assert_finite((loss, aux), "reconstruction")
  assert float(aux["l1"]) >= 0.0 and float(aux["l2"]) >= 0.0
  # Squares of differences below ~1e-19 underflow float32 (to 0 in L2).
  assert float(aux["l1"]) <= math.sqrt(float(aux["l2"])) * (1 + 1e-5) + 1e-18
  if not mask.any():
    assert float(loss) == 0.0
  other = np.where(mask[..., None] > 0, pred, -pred + 5.0).astype(np.float32)
  loss_o, _ = _reconstruction(other, target, mask, kind="l2")
  assert_close(loss_o, loss, rtol=1e-6, atol=0.0)


AB_BINS = pretext_losses.ab_bins(grid=40.0)  # 5 x 5 = 25 bins
_colorization = jax.jit(lambda logits, ab, w: losses.colorization(
    logits, ab, AB_BINS, w))
_colorization_unweighted = jax.jit(lambda logits, ab: losses.colorization(
    logits, ab, AB_BINS))


@FUZZ
@given(data=st.data(), batch=st.sampled_from((1, 2)))
def test_colorization_finite_and_uniform_logits(data, batch):
  """Class-rebalanced cross-entropy: finite and >= 0 for logits up to
  +-1e30 and ab values anywhere in (and a little beyond) the Lab gamut;
  uniform logits without weights cost log Q, as documented."""
  q = AB_BINS.shape[0]
  logits = data.draw(arrays((batch, 2, 2, q)))
  ab = data.draw(hnp.arrays(np.float32, (batch, 2, 2, 2),
                            elements=st.floats(-130.0, 130.0, width=32)))
  weights = data.draw(hnp.arrays(np.float32, (q,), elements=st.floats(
      float(np.float32(1e-3)), 1e3, width=32)))
  loss, aux = _colorization(logits, ab, weights)
  assert_finite((loss, aux), "colorization")
  assert float(loss) >= -1e-6 * max(1.0, float(np.max(np.abs(logits))))
  uniform = np.zeros_like(logits) + logits[..., :1]
  loss_u, _ = _colorization_unweighted(uniform, ab)
  assert_close(loss_u, math.log(q), rtol=1e-6, atol=1e-6)


_pointing = jax.jit(losses.colour_by_pointing)


def _simplex(shape):
  return hnp.arrays(np.float32, shape, elements=st.floats(
      0.0, 1.0, width=32)).map(
          lambda x: (x + 1e-3) / np.sum(x + 1e-3, -1, keepdims=True))


@st.composite
def pointing_cases(draw):
  """Embeddings ``(2, 4, E)`` and ``(2, 5, E)`` (E = 1 included) up to
  RAW_SCALES, and reference / target colour distributions over 6 bins."""
  e = draw(st.sampled_from((1, 3)))
  return (draw(arrays((2, 4, e), RAW_SCALES)),
          draw(arrays((2, 5, e), RAW_SCALES)),
          draw(_simplex((2, 5, 6))), draw(_simplex((2, 4, 6))))


_RNG = np.random.default_rng(3)


@FUZZ
@given(case=pointing_cases())
@example(case=((_RNG.standard_normal((2, 4, 1)) * 1e6).astype(np.float32),
               (_RNG.standard_normal((2, 5, 1)) * 1e6).astype(np.float32),
               np.full((2, 5, 6), 1 / 6, np.float32),
               np.full((2, 4, 6), 1 / 6, np.float32)))
def test_colour_by_pointing_finite_and_bounded(case):
  """Copying colours by attention: finite for embeddings up to |x| ~ 1e6
  (similarities up to ~1e12; before the fix E = 1 gave NaN, the explicit
  example) and any colour distributions; every attention row sums to 1;
  the cross-entropy against copied distributions (plus 1e-8) is in
  [0, -log(1e-8)]."""
  target_emb, reference_emb, reference_colours, target_colours = case
  loss, aux = _pointing(target_emb, reference_emb, reference_colours,
                        target_colours)
  assert_finite((loss, aux), "colour_by_pointing")
  assert -1e-6 <= float(loss) <= -math.log(1e-8) + 1e-4
  attention = _attention(target_emb, reference_emb)
  assert_finite(attention, "pointing_attention")
  assert_close(np.sum(attention, -1), 1.0, atol=1e-5)


_attention = jax.jit(pretext_losses.pointing_attention)
