"""Collapse diagnostics for self-supervised embeddings.

Two failure modes of joint-embedding methods are measured here:

* **Complete collapse** -- every input is mapped to the same vector.  SimSiam
  (Chen & He, "Exploring Simple Siamese Representation Learning", CVPR 2021,
  Sec. 4.1 / Fig. 2) monitors the per-channel standard deviation of the
  L2-normalised output: for a healthy embedding whose unit vectors are spread
  isotropically over the sphere each coordinate has variance ``1/d``, so the
  mean per-channel std is about ``1/sqrt(d)``; under complete collapse it is 0.
  See :func:`embedding_std`.

* **Dimensional collapse** -- embeddings span only a low-dimensional subspace.
  Jing et al. ("Understanding Dimensional Collapse in Contrastive
  Self-supervised Learning", ICLR 2022, Sec. 3) plot the singular values of
  the embedding covariance matrix, sorted and on a log scale; collapsed
  directions show up as (numerically) zero singular values.  See
  :func:`singular_spectrum`.  The spectrum is summarised by the effective rank
  of Roy & Vetterli ("The effective rank: a measure of effective
  dimensionality", EUSIPCO 2007): ``exp(H(p))`` with ``p_i = s_i / sum_j s_j``
  and ``H`` the Shannon entropy.  See :func:`effective_rank`.

All functions are pure ``jax.numpy`` code, wrapped in ``jax.jit`` (so eager
calls compile once per shape; inside another ``jit`` they are inlined): they
can be called inside ``jit``,
on the local batch of a data-parallel training step, or -- with ``axis_name``
set inside ``shard_map``/``pmap`` -- on the global batch spread over the named
device axis (batch statistics are reduced with ``lax.psum``; the result is
then identical on every replica and equal to the single-device value on the
concatenated batch).
"""

from __future__ import annotations

import functools
from typing import Hashable

import jax
import jax.numpy as jnp
from jax import lax

__all__ = ["embedding_std", "singular_spectrum", "effective_rank",
           "collapse_metrics", "collapse_warning"]

# Norm floor for L2 normalisation (same convention as torch.nn.functional.normalize):
# an all-zero row stays all-zero instead of becoming NaN.
_NORM_EPS = 1e-12


def _check_2d(z: jax.Array, name: str) -> jax.Array:
  z = jnp.asarray(z)
  if z.ndim != 2:
    raise ValueError(
        f"{name} expects embeddings of shape (batch, dim); got shape {z.shape}.")
  if not jnp.issubdtype(z.dtype, jnp.floating):
    z = z.astype(jnp.float32)
  return z


def _l2_normalize(z: jax.Array) -> jax.Array:
  # The norm of z / s, s = the row's largest |entry| (no gradient: the result
  # does not depend on it): ||z||^2 of a row above ~1.8e19 overflows float32
  # and normalised the row to 0, which read as collapse.
  # s is clipped to [2^-126, 2^126]: XLA:CPU divides by multiplying with
  # the reciprocal, which flushes to 0 above 2^126.
  s = lax.stop_gradient(jnp.max(jnp.abs(z), axis=-1, keepdims=True))
  s = jnp.where(s > 0, jnp.clip(s, 2.0 ** -126, 2.0 ** 126), jnp.ones_like(s))
  zs = z / s
  norm = jnp.linalg.norm(zs, axis=-1, keepdims=True)
  return zs / jnp.maximum(norm, _NORM_EPS / s)


def _batch_sum(x: jax.Array, axis_name: Hashable | None) -> jax.Array:
  """Sum over the leading (batch) axis, and over devices when named."""
  s = jnp.sum(x, axis=0)
  return s if axis_name is None else lax.psum(s, axis_name)


def _batch_count(z: jax.Array, axis_name: Hashable | None) -> jax.Array:
  n = jnp.asarray(z.shape[0], jnp.float32)
  return n if axis_name is None else lax.psum(n, axis_name)


def _shift(z: jax.Array, axis_name: Hashable | None) -> jax.Array:
  """Subtracts one sample (the first row of replica 0) from every row.

  Variance and covariance are shift-invariant; shifting by a data point first
  (the "shifted data" algorithm) makes identical rows exactly zero, so a
  completely collapsed batch gives exactly zero statistics instead of
  float rounding noise, and it improves accuracy when the mean is large
  compared to the spread.
  """
  ref = z[0]
  if axis_name is not None:
    ref = lax.all_gather(ref, axis_name)[0]
  return z - ref


@functools.partial(jax.jit, static_argnames=("axis_name",))
def embedding_std(z: jax.Array, *, axis_name: Hashable | None = None) -> jax.Array:
  """Mean per-dimension std of the L2-normalised embeddings (SimSiam, Sec. 4.1).

  ``u = z / ||z||`` row-wise, then ``mean_j std_i(u_ij)``, where ``std`` is
  the population standard deviation over the batch (``ddof=0``; SimSiam's
  PyTorch code uses the unbiased estimate, larger by ``sqrt(n / (n - 1))``,
  which is immaterial at the usual batch sizes).

  For embeddings whose directions are uniform on the unit sphere of
  ``R^d`` (e.g. isotropic Gaussian ``z``) this is about ``1/sqrt(d)``; for
  completely collapsed (constant) embeddings it is 0.

  Args:
    z: embeddings, shape ``(batch, dim)``.
    axis_name: optional named device axis; if given, statistics are taken over
      the global batch (all replicas along that axis).

  Returns:
    A float32 scalar.
  """
  z = _check_2d(z, "embedding_std")
  u = _shift(_l2_normalize(z.astype(jnp.float32)), axis_name)
  n = _batch_count(u, axis_name)
  mean = _batch_sum(u, axis_name) / n
  var = _batch_sum(jnp.square(u - mean), axis_name) / n
  return jnp.mean(jnp.sqrt(var))


def _covariance(z: jax.Array, normalize: bool,
                axis_name: Hashable | None) -> jax.Array:
  z = z.astype(jnp.float32)
  if normalize:
    z = _l2_normalize(z)
  z = _shift(z, axis_name)
  n = _batch_count(z, axis_name)
  zc = z - _batch_sum(z, axis_name) / n
  gram = zc.T @ zc
  if axis_name is not None:
    gram = lax.psum(gram, axis_name)
  return gram / n


@functools.partial(jax.jit, static_argnames=("normalize", "axis_name"))
def singular_spectrum(z: jax.Array, *, normalize: bool = False,
                      axis_name: Hashable | None = None) -> jax.Array:
  """Singular values of the embedding covariance, descending (Jing et al. 2022).

  ``C = (1/n) sum_i (z_i - zbar)(z_i - zbar)^T`` is the ``(dim, dim)``
  (population) covariance over the batch; its singular values -- equal to its
  eigenvalues, as ``C`` is symmetric positive semi-definite -- are returned in
  descending order.  A spectrum that drops to (numerical) zero after ``r``
  values means the embeddings live in an ``r``-dimensional affine subspace.
  Jing et al. plot ``log`` of this spectrum; take the log yourself if needed.

  At most ``min(dim, n - 1)`` values can be non-zero, so use a batch larger than
  ``dim`` to see the full spectrum.

  Args:
    z: embeddings, shape ``(batch, dim)``.
    normalize: L2-normalise each embedding first (spectrum of the directions
      on the unit sphere).  Jing et al. use the raw embeddings (default).
    axis_name: optional named device axis for the global-batch covariance.

  Returns:
    float32 array of shape ``(dim,)``, non-negative, sorted descending.
  """
  z = _check_2d(z, "singular_spectrum")
  cov = _covariance(z, normalize, axis_name)
  return jnp.linalg.svd(cov, compute_uv=False)


@functools.partial(jax.jit, static_argnames=("normalize", "axis_name"))
def effective_rank(z: jax.Array, *, normalize: bool = False,
                   axis_name: Hashable | None = None) -> jax.Array:
  """Effective rank (Roy & Vetterli 2007) of the embedding covariance.

  With ``s`` the singular values of the covariance (:func:`singular_spectrum`)
  and ``p = s / sum(s)``, the effective rank is ``exp(-sum_i p_i log p_i)``
  (``0 log 0 = 0``).  It lies in ``[1, dim]``: ``dim`` when all directions
  carry equal variance, ``r`` when the variance is spread evenly over an
  ``r``-dimensional subspace and nothing outside it.  For an all-zero
  covariance (constant embeddings, complete collapse) the quantity is
  undefined in the paper; this function returns 0 there.

  Note that this is the effective rank of the covariance, whose singular
  values are the squared singular values of the centred embedding matrix, so
  it weighs dominant directions more than the effective rank of the centred
  embedding matrix itself would.

  Args:
    z: embeddings, shape ``(batch, dim)``.
    normalize: L2-normalise each embedding first.
    axis_name: optional named device axis for the global-batch covariance.

  Returns:
    A float32 scalar.
  """
  s = singular_spectrum(z, normalize=normalize, axis_name=axis_name)
  total = jnp.sum(s)
  p = s / jnp.where(total > 0, total, 1.0)
  entropy = jnp.sum(jax.scipy.special.entr(p))
  return jnp.where(total > 0, jnp.exp(entropy), 0.0)


# Thresholds of ``collapse_warning``: a normalised std under a tenth of the
# healthy 1/sqrt(d), or variance spread over fewer than two directions.
COMPLETE_COLLAPSE_STD_RATIO = 0.1
DIMENSIONAL_COLLAPSE_RANK = 2.0


def collapse_metrics(z: jax.Array, *,
                     axis_name: Hashable | None = None) -> dict[str, jax.Array]:
  """The collapse diagnostics every method logs, over the (global) batch.

  Returns ``embedding_std`` (:func:`embedding_std`), ``embedding_std_ratio``
  (that std times ``sqrt(d)``: about 1 when healthy, 0 under complete
  collapse) and ``effective_rank`` (:func:`effective_rank`, in [1, d]; 0 for
  constant embeddings). The rank costs an SVD of the ``(d, d)`` covariance.
  """
  z = lax.stop_gradient(_check_2d(z, "collapse_metrics"))
  std = embedding_std(z, axis_name=axis_name)
  return {
      "embedding_std": std,
      "embedding_std_ratio": std * jnp.sqrt(jnp.float32(z.shape[-1])),
      "effective_rank": effective_rank(z, axis_name=axis_name),
  }


def collapse_warning(metrics) -> str | None:
  """A sentence naming the collapse that ``metrics`` show, or None if healthy.

  ``metrics`` holds host values of :func:`collapse_metrics` (a training
  step's logged metrics).
  """
  ratio = float(metrics["embedding_std_ratio"])
  rank = float(metrics["effective_rank"])
  problems = []
  if ratio < COMPLETE_COLLAPSE_STD_RATIO:
    problems.append(
        f"complete collapse: the std of the L2-normalised embeddings is "
        f"{ratio:.3f} x 1/sqrt(d) (healthy is about 1, collapsed 0)")
  if rank < DIMENSIONAL_COLLAPSE_RANK:
    problems.append(
        f"dimensional collapse: the effective rank of the embedding "
        f"covariance is {rank:.2f} (under {DIMENSIONAL_COLLAPSE_RANK:g}: the "
        "variance lies along about one direction)")
  if not problems:
    return None
  return ("representation collapse: " + "; ".join(problems) +
          ". Every input is being mapped to (nearly) the same embedding.")
