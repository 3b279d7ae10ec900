"""Non-contrastive joint-embedding losses: BYOL, SimSiam, Barlow Twins, VICReg.

Pure functions of embeddings returning ``(scalar loss, aux dict)``; the aux
values carry no gradient.

Two families live here:

* **Predictive, per-sample** (:func:`byol`, :func:`simsiam`): each sample's
  loss depends on that sample only, with a stop-gradient on the target branch
  inside the loss. The returned loss is the mean over the (local) batch; with
  data parallelism the global loss is ``lax.pmean(loss, axis_name)`` and the
  gradient recipes of :mod:`ssl_jax.losses.contrastive` apply unchanged.
  ``axis_name`` only affects the collapse diagnostic in ``aux`` (the embedding
  std is a batch statistic, so it is taken over the global batch).
  Symmetrising over the two views (BYOL's ``L + L~``, SimSiam's
  ``D(p1, z2)/2 + D(p2, z1)/2``) is left to the method.

* **Batch-statistic** (:func:`barlow_twins`, :func:`vicreg`): the loss is a
  function of per-dimension means, variances and (cross-)covariances over the
  batch. With ``axis_name`` (inside ``jax.shard_map`` or ``jax.pmap``) every
  such sum is ``lax.psum``-reduced over the named axis before it is used, so
  each replica computes the SAME scalar: the single-device loss on the
  concatenated global batch.

Data parallelism for the batch-statistic losses
-----------------------------------------------
The returned loss is already global and identical on every replica;
``lax.pmean(loss, axis_name)`` leaves it unchanged, so training code can treat
these losses like the contrastive ones:

* ``jax.shard_map`` with the default ``check_vma=True``: differentiate the
  loss (or its ``pmean``, the same thing) inside the function passed to
  ``jax.grad``. Gradients w.r.t. the local embeddings are the global-batch
  gradients for that shard, and gradients of replicated parameters come back
  already reduced: use them as they are.
* ``jax.pmap`` or ``shard_map(check_vma=False)``: the transpose of ``psum``
  is a ``psum`` there, so the gradient of the local loss is R times the
  global gradient on every replica (R = axis size); ``lax.pmean(grads,
  axis_name)`` of replicated-parameter gradients then gives exactly the
  global gradient (the same recipe as for the contrastive losses).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from jax import lax

from ssl_jax.eval.collapse import embedding_std
from ssl_jax.losses.contrastive import (AxisName, _compute_dtype,
                                        _l2_normalize, _safe_scale)

__all__ = ["byol", "simsiam", "barlow_twins", "vicreg"]


def _pair(name: str, a: Any, b: Any, min_batch: int = 1
          ) -> tuple[jax.Array, jax.Array, Any]:
  a, b = jnp.asarray(a), jnp.asarray(b)
  if a.ndim != 2 or a.shape != b.shape:
    raise ValueError(
        f"{name} expects two embeddings of the same shape (batch, dim); got "
        f"{a.shape} and {b.shape}")
  if a.shape[0] < min_batch or a.shape[1] < 1:
    raise ValueError(
        f"{name} needs a batch of at least {min_batch} and dim >= 1; got "
        f"shape {a.shape}")
  dtype = _compute_dtype(a, b)
  return a.astype(dtype), b.astype(dtype), dtype


def _cosine(p: jax.Array, z: jax.Array) -> jax.Array:
  return jnp.sum(_l2_normalize(p) * _l2_normalize(z), axis=-1)


def _psum(x: jax.Array, axis_name: AxisName | None) -> jax.Array:
  return x if axis_name is None else lax.psum(x, axis_name)


def _global_batch(local: int, axis_name: AxisName | None) -> int:
  """Global batch size (a Python int: equal local batches on every replica)."""
  return local if axis_name is None else local * lax.axis_size(axis_name)


def _centre(z: jax.Array, n: int, axis_name: AxisName | None) -> jax.Array:
  """Subtracts the global-batch mean of each dimension."""
  return z - _psum(jnp.sum(z, axis=0), axis_name) / n


def _gram(a: jax.Array, b: jax.Array, axis_name: AxisName | None) -> jax.Array:
  """``sum_batch a^T b`` over the global batch, ``(D, D)``."""
  return _psum(jnp.matmul(a.T, b, precision=lax.Precision.HIGHEST), axis_name)


def _off_diagonal_sq_sum(c: jax.Array) -> jax.Array:
  off = jnp.where(jnp.eye(c.shape[0], dtype=bool), 0.0, c)
  return jnp.sum(off * off)


# ----------------------------------------------------------------------------
# Predictive losses with a stop-gradient target.
# ----------------------------------------------------------------------------
def byol(
    online_prediction: jax.Array,
    target_projection: jax.Array,
    axis_name: AxisName | None = None,
) -> tuple[jax.Array, dict[str, jax.Array]]:
  r"""BYOL's normalised regression loss, target branch stop-gradient'ed.

  Grill et al. 2020, "Bootstrap Your Own Latent: A New Approach to
  Self-Supervised Learning", eq. 2: with the online network's prediction
  :math:`q_\theta(z_\theta)` and the target network's projection
  :math:`z'_\xi` of the other view,

  .. math::
     \mathcal{L}_{\theta,\xi} = \big\lVert \bar q_\theta(z_\theta)
        - \bar z'_\xi \big\rVert_2^2
     = 2 - 2\,\frac{\langle q_\theta(z_\theta), z'_\xi \rangle}
                   {\lVert q_\theta(z_\theta)\rVert_2 \, \lVert z'_\xi\rVert_2},

  averaged over the batch, where :math:`\bar x = x / \lVert x \rVert_2`. No
  gradient flows into ``target_projection`` (``sg`` inside: BYOL updates the
  target only by the EMA of the online weights). The paper's symmetrised loss
  :math:`\mathcal{L} + \tilde{\mathcal{L}}` (views swapped) is two calls.
  Identical directions give 0, opposite directions 4. A zero vector has
  cosine 0 with everything here (loss 2), with finite gradients.

  Args:
    online_prediction: ``(B, D)`` predictions :math:`q_\theta(z_\theta)`.
    target_projection: ``(B, D)`` target projections :math:`z'_\xi`, row i
      from the other view of the same image. Any float dtype; computed in
      float32 (float64 if an input is float64).
    axis_name: only for ``aux["target_std"]`` (global-batch std). The loss is
      the mean over the local batch either way; ``lax.pmean`` it for the
      global loss.

  Returns:
    ``(loss, aux)``: the scalar mean loss and ``cos_sim`` (mean cosine
    similarity, local batch) and ``target_std`` (mean per-dimension std of the
    L2-normalised targets, :func:`ssl_jax.eval.collapse.embedding_std`; about
    ``1/sqrt(D)`` when healthy, 0 under complete collapse).
  """
  p, z, _ = _pair("byol", online_prediction, target_projection)
  z = lax.stop_gradient(z)
  cos = _cosine(p, z)
  loss = jnp.mean(2.0 - 2.0 * cos)
  aux = {
      "cos_sim": jnp.mean(lax.stop_gradient(cos)),
      "target_std": embedding_std(z, axis_name=axis_name),
  }
  return loss, aux


def simsiam(
    p: jax.Array,
    z: jax.Array,
    axis_name: AxisName | None = None,
    *,
    stop_gradient: bool = True,
) -> tuple[jax.Array, dict[str, jax.Array]]:
  r"""SimSiam's negative cosine similarity with a stop-gradient on ``z``.

  Chen & He 2021, "Exploring Simple Siamese Representation Learning",
  eq. 1 and the stop-gradient form of eq. 3:

  .. math::
     \mathcal{D}(p, \mathrm{sg}(z)) = -\frac{p}{\lVert p\rVert_2}
                              \cdot \frac{z}{\lVert z\rVert_2},

  averaged over the batch (range [-1, 1]; -1 is perfect agreement). The
  symmetrised loss :math:`\tfrac12 \mathcal{D}(p_1, \mathrm{sg}(z_2)) +
  \tfrac12 \mathcal{D}(p_2, \mathrm{sg}(z_1))` is two calls. Without the
  stop-gradient SimSiam collapses (paper Sec. 4.1, Fig. 2), which is what
  ``aux["z_std"]`` monitors.

  Args:
    p: ``(B, D)`` predictor outputs.
    z: ``(B, D)`` projector outputs of the other view. Computed in float32
      (float64 if an input is float64).
    axis_name: only for ``aux["z_std"]`` (global-batch std). The loss is the
      mean over the local batch either way; ``lax.pmean`` it for the global
      loss.
    stop_gradient: ``True`` (the method): no gradient flows into ``z``.
      ``False``: the "w/o stop-grad" ablation of Sec. 4.1 (Fig. 2), the
      same value with gradients into ``z`` too, under which training
      collapses; it lets that ablation use this very loss. A Python bool
      (static under ``jit``: close over it).

  Returns:
    ``(loss, aux)``: the scalar mean loss, ``cos_sim`` (mean cosine, local
    batch) and ``z_std``: the mean per-dimension std of the L2-normalised
    ``z`` (:func:`ssl_jax.eval.collapse.embedding_std`), about ``1/sqrt(D)``
    when healthy and 0 under complete collapse.
  """
  p, z, _ = _pair("simsiam", p, z)
  if stop_gradient:
    z = lax.stop_gradient(z)
  cos = _cosine(p, z)
  loss = -jnp.mean(cos)
  aux = {
      "cos_sim": jnp.mean(lax.stop_gradient(cos)),
      "z_std": embedding_std(lax.stop_gradient(z), axis_name=axis_name),
  }
  return loss, aux


# ----------------------------------------------------------------------------
# Batch-statistic (redundancy-reduction / variance-regularised) losses.
# ----------------------------------------------------------------------------
def barlow_twins(
    z1: jax.Array,
    z2: jax.Array,
    lambda_offdiag: float | jax.Array = 5e-3,
    axis_name: AxisName | None = None,
    eps: float = 1e-5,
) -> tuple[jax.Array, dict[str, jax.Array]]:
  r"""Barlow Twins' redundancy-reduction loss on the cross-correlation matrix.

  Zbontar, Jing, Misra, LeCun, Deny 2021, "Barlow Twins: Self-Supervised
  Learning via Redundancy Reduction", eq. 1-2 and Algorithm 1. Each
  dimension of each view is standardised over the batch,
  :math:`\hat z_{b,i} = (z_{b,i} - \mu_i) / \sqrt{\sigma_i^2 + \epsilon}`,
  and with the N x D standardised views :math:`\hat z^A, \hat z^B`

  .. math::
     \mathcal{C}_{ij} = \frac{1}{N} \sum_b \hat z^A_{b,i} \hat z^B_{b,j},
     \qquad
     \mathcal{L}_{BT} = \sum_i (1 - \mathcal{C}_{ii})^2
        + \lambda \sum_i \sum_{j \ne i} \mathcal{C}_{ij}^2 .

  :math:`\mu, \sigma^2` are the batch mean and *population* (1/N) variance:
  Algorithm 1 writes ``z.std(0)``, which is PyTorch's unbiased std, but with
  that and the 1/N in C the diagonal of C is (N-1)/N, not 1; the authors'
  code standardises with ``BatchNorm1d(affine=False)`` (1/N variance,
  ``eps=1e-5`` inside the square root), which is what this follows. Pass
  ``eps=0`` for the literal pseudo-code with 1/N variance.

  Args:
    z1: ``(B, D)`` projections of the first view.
    z2: ``(B, D)`` projections of the second view (row i: same image). Any
      float dtype; computed in float32 (float64 if an input is float64).
    lambda_offdiag: :math:`\lambda`, weight of the redundancy-reduction term
      (paper: 5e-3 for D = 8192).
    axis_name: ``None``: statistics over the B given rows. A device axis name
      (inside ``shard_map``/``pmap``, equal local batch sizes): means,
      variances and C are ``psum``-reduced over the axis, so N is the global
      batch and every replica returns the same global loss. See the module
      docstring for the gradient recipes.
    eps: added to the variance before the square root (keeps a constant
      dimension finite).

  Returns:
    ``(loss, aux)``: the scalar loss and (global-batch) ``on_diag``
    (:math:`\sum_i (1 - C_{ii})^2`), ``off_diag`` (:math:`\sum_{i\ne j}
    C_{ij}^2`, unweighted), ``mean_diag_corr`` (mean of :math:`C_{ii}`) and
    ``mean_abs_offdiag_corr`` (mean of :math:`|C_{ij}|`, i != j; 0 if D = 1).

  Raises:
    ValueError / TypeError: on mis-shaped, empty or non-floating inputs.
  """
  z1, z2, dtype = _pair("barlow_twins", z1, z2)
  b, d = z1.shape
  n = _global_batch(b, axis_name)

  def standardise(z):
    zc = _centre(z, n, axis_name)
    # zc / sqrt(var + eps) computed on zc / s, s = the dimension's largest
    # |zc| over the global batch (no gradient: the value does not depend on
    # it), so that the variance of |z| above ~1e19 cannot overflow to inf
    # (which standardised such a dimension to 0).
    s = lax.stop_gradient(jnp.max(jnp.abs(zc), axis=0))
    if axis_name is not None:
      s = lax.pmax(s, axis_name)
    s = _safe_scale(s)
    zs = zc / s
    var = _psum(jnp.sum(zs * zs, axis=0), axis_name) / n
    # eps / s / s, not eps / s^2: 0, not 0/0, for eps = 0 when s^2 underflows.
    return zs * lax.rsqrt(var + jnp.asarray(eps, dtype) / s / s)

  c = _gram(standardise(z1), standardise(z2), axis_name) / n       # (D, D)
  diag = jnp.diagonal(c)
  on_diag = jnp.sum(jnp.square(1.0 - diag))
  off_diag = _off_diagonal_sq_sum(c)
  loss = on_diag + jnp.asarray(lambda_offdiag, dtype) * off_diag

  c_ng = lax.stop_gradient(c)
  off_abs = jnp.sum(jnp.abs(c_ng)) - jnp.sum(jnp.abs(jnp.diagonal(c_ng)))
  aux = {
      "on_diag": lax.stop_gradient(on_diag),
      "off_diag": lax.stop_gradient(off_diag),
      "mean_diag_corr": jnp.mean(lax.stop_gradient(diag)),
      "mean_abs_offdiag_corr": off_abs / max(d * (d - 1), 1),
  }
  return loss, aux


def vicreg(
    z1: jax.Array,
    z2: jax.Array,
    sim_coeff: float | jax.Array = 25.0,
    std_coeff: float | jax.Array = 25.0,
    cov_coeff: float | jax.Array = 1.0,
    axis_name: AxisName | None = None,
    gamma: float = 1.0,
    eps: float = 1e-4,
) -> tuple[jax.Array, dict[str, jax.Array]]:
  r"""VICReg: variance-invariance-covariance regularisation.

  Bardes, Ponce, LeCun 2022, "VICReg: Variance-Invariance-Covariance
  Regularization for Self-Supervised Learning", eq. 1-6 and Algorithm 1.
  For N x D embeddings Z, Z' of two views:

  .. math::
     s(Z, Z') = \frac{1}{N D} \sum_b \lVert z_b - z'_b \rVert_2^2, \qquad
     v(Z) = \frac{1}{D} \sum_j \max\big(0, \gamma
            - \sqrt{\mathrm{Var}(z^j) + \epsilon}\big),

  .. math::
     C(Z) = \frac{1}{N-1} \sum_b (z_b - \bar z)(z_b - \bar z)^\top, \qquad
     c(Z) = \frac{1}{D} \sum_{i \ne j} C(Z)_{ij}^2,

  .. math::
     \ell = \lambda\, s(Z, Z') + \mu\, [v(Z) + v(Z')] + \nu\, [c(Z) + c(Z')],

  with the unbiased (1/(N-1)) variance and covariance of the paper, and
  :math:`\lambda, \mu, \nu` = ``sim_coeff, std_coeff, cov_coeff`` (paper:
  25, 25, 1). ``s`` is the mean squared error over all N*D entries (Algorithm
  1's ``F.mse_loss``). This follows the paper's eq. 6 / Algorithm 1; the
  authors' released code averages the two variance terms (``/2``), i.e. its
  ``std_coeff`` is effectively halved.

  Args:
    z1: ``(B, D)`` expander outputs of the first view.
    z2: ``(B, D)`` of the second view (row i: same image). Any float dtype;
      computed in float32 (float64 if an input is float64).
    sim_coeff, std_coeff, cov_coeff: :math:`\lambda, \mu, \nu`.
    axis_name: ``None``: statistics over the B given rows (B >= 2). A device
      axis name (inside ``shard_map``/``pmap``, equal local batch sizes):
      every batch sum is ``psum``-reduced over the axis, so N is the global
      batch and every replica returns the same global loss. See the module
      docstring for the gradient recipes.
    gamma: target standard deviation :math:`\gamma` (paper: 1).
    eps: :math:`\epsilon` inside the square root (paper: 1e-4).

  Returns:
    ``(loss, aux)``: the scalar loss and the unweighted global-batch terms
    ``invariance`` (s), ``variance`` (v(Z) + v(Z')), ``covariance``
    (c(Z) + c(Z')), and ``std`` (mean over both views and all dimensions of
    the per-dimension std, without eps: near 0 under collapse).

  Raises:
    ValueError / TypeError: on mis-shaped or non-floating inputs, or a
      global batch smaller than 2.
  """
  z1, z2, dtype = _pair("vicreg", z1, z2)
  b, d = z1.shape
  n = _global_batch(b, axis_name)
  if n < 2:
    raise ValueError(
        f"vicreg needs a global batch of at least 2 (unbiased variance); got "
        f"{n}")

  diff = z1 - z2
  invariance = _psum(jnp.sum(diff * diff), axis_name) / (n * d)

  def var_cov_terms(z):
    zc = _centre(z, n, axis_name)
    cov = _gram(zc, zc, axis_name) / (n - 1)                       # (D, D)
    var = jnp.diagonal(cov)
    std = jnp.sqrt(var + jnp.asarray(eps, dtype))
    v = jnp.mean(jax.nn.relu(jnp.asarray(gamma, dtype) - std))
    c = _off_diagonal_sq_sum(cov) / d
    return v, c, jnp.mean(jnp.sqrt(lax.stop_gradient(var)))

  v1, c1, s1 = var_cov_terms(z1)
  v2, c2, s2 = var_cov_terms(z2)
  variance = v1 + v2
  covariance = c1 + c2
  loss = (jnp.asarray(sim_coeff, dtype) * invariance
          + jnp.asarray(std_coeff, dtype) * variance
          + jnp.asarray(cov_coeff, dtype) * covariance)
  aux = {
      "invariance": lax.stop_gradient(invariance),
      "variance": lax.stop_gradient(variance),
      "covariance": lax.stop_gradient(covariance),
      "std": 0.5 * (s1 + s2),
  }
  return loss, aux
