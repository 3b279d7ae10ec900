"""Contrastive (InfoNCE-family) losses: InfoNCE and SimCLR's NT-Xent.

Pure functions of embeddings. Every loss takes ``axis_name=None``; with a
named device axis (inside ``jax.shard_map`` or ``jax.pmap``) the keys -- and so
the negatives -- are gathered from every replica, and the loss equals the
single-device loss on the global batch (see "Data parallelism" below).

Data parallelism
----------------
With ``axis_name``, each replica holds a local slice of the batch. Keys are
gathered with ``lax.all_gather(..., axis_name, tiled=True)`` (gradients flow
back through it to the replica that produced each key), and each replica
scores its LOCAL queries against the GLOBAL keys; the index of a query's
positive (and of the key it must not be compared with, e.g. itself) is found
by offsetting its local index by ``lax.axis_index(axis_name) * K_local``.

The returned loss is the mean over the replica's local queries. With equal
local batch sizes the global loss is the mean over replicas,
``L = lax.pmean(loss, axis_name)``, and a training step needs the gradient
of *that*. Each replica's loss depends on every replica's keys, so the
gradient reaching a replica's embeddings has contributions from all replicas'
losses (carried back by the transpose of ``all_gather``); how to normalise
depends on the mapping API:

* ``jax.shard_map`` with its default ``check_vma=True``: put
  ``lax.pmean(loss, axis_name)`` (or, equivalently for the gradient,
  ``loss / lax.axis_size(axis_name)``) inside the function passed to
  ``jax.grad``. The gradients of replicated parameters (``in_specs`` ``P()``)
  then come back already reduced over the axis and are exactly the
  global-batch gradients; no further reduction is needed. Do NOT use the
  pmap recipe below here: under ``check_vma=True`` the gradient of the LOCAL
  loss w.r.t. replicated params is already summed over replicas, so it (and
  its ``pmean``) is R times the global gradient. Equivalently, ``jax.grad``
  of the whole ``shard_map`` from outside it, with the pmean'd loss as an
  ``out_specs=P()`` output.
* ``jax.pmap``, or ``shard_map(check_vma=False)``: differentiate the local
  ``loss``; then ``lax.pmean(grads, axis_name)`` gives the global-batch
  gradient of replicated parameters.

Auxiliary metrics are likewise means over local queries; ``lax.pmean`` them
for global values.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any

import jax
import jax.numpy as jnp
from jax import lax

__all__ = ["info_nce", "nt_xent"]

# Floor for the squared norm in L2 normalisation: keeps an all-zero embedding
# (and its gradient) finite instead of producing 0/0.
_NORM_EPS_SQ = 1e-24

AxisName = Hashable | tuple[Hashable, ...]


def _l2_normalize(x: jax.Array) -> jax.Array:
  sq = jnp.sum(x * x, axis=-1, keepdims=True)
  return x * lax.rsqrt(jnp.maximum(sq, _NORM_EPS_SQ))


def _compute_dtype(*xs: jax.Array) -> Any:
  """float32, or float64 when an input already is (x64 mode)."""
  for x in xs:
    if not jnp.issubdtype(x.dtype, jnp.floating):
      raise TypeError(
          f"embeddings must be floating point, got dtype {x.dtype}")
  return jnp.result_type(jnp.float32, *(x.dtype for x in xs))


def _check_temperature(temperature: Any) -> None:
  if isinstance(temperature, (int, float)) and not temperature > 0:
    raise ValueError(f"temperature must be > 0, got {temperature}")


def info_nce(
    queries: jax.Array,
    keys: jax.Array,
    positive_index: jax.Array,
    temperature: float | jax.Array = 0.1,
    axis_name: AxisName | None = None,
    exclude_index: jax.Array | None = None,
) -> tuple[jax.Array, dict[str, jax.Array]]:
  r"""InfoNCE over cosine similarities, with optional cross-replica keys.

  For query :math:`q_i` with positive key :math:`k_{p(i)}` (van den Oord et
  al. 2018, "Representation Learning with Contrastive Predictive Coding",
  eq. 4; the cosine/temperature form of Chen et al. 2020, SimCLR, eq. 1):

  .. math::
     \ell_i = -\log \frac{\exp(\mathrm{sim}(q_i, k_{p(i)})/\tau)}
                         {\sum_{j \in \mathcal{K}_i} \exp(\mathrm{sim}(q_i, k_j)/\tau)},
     \qquad \mathrm{sim}(u, v) = \frac{u^\top v}{\lVert u\rVert \lVert v\rVert},

  where :math:`\mathcal{K}_i` is every key except ``exclude_index[i]`` (if
  given), and the loss is :math:`\frac{1}{M}\sum_i \ell_i` over the M
  (local) queries. Embeddings are L2-normalised here; everything is computed
  in float32 (float64 if an input is float64), whatever the input dtype.

  Args:
    queries: ``(M, D)`` local queries.
    keys: ``(K, D)`` local keys. With ``axis_name`` they are all-gathered into
      ``(R*K, D)`` global keys, replica r's block at rows ``[r*K, (r+1)*K)``.
    positive_index: ``(M,)`` integer index of each query's positive in the
      LOCAL ``keys`` (offset to the global index internally).
    temperature: :math:`\tau > 0`.
    axis_name: ``None`` for the single-device loss, or the name(s) of the
      mapped device axis to gather keys over. See the module docstring for
      how a training step must combine the loss and its gradients.
    exclude_index: optional ``(M,)`` integer index, in the LOCAL ``keys``, of
      one key to leave out of each query's softmax (its own copy when queries
      and keys are the same set, as in NT-Xent). Must differ from
      ``positive_index``.

  Returns:
    ``(loss, aux)``: the scalar mean loss over local queries and a dict of
    scalar metrics (no gradient), each a mean over local queries:
    ``contrastive_acc`` (fraction of queries whose positive logit is strictly
    larger than every negative's), ``pos_sim`` (mean cosine with the
    positive), ``neg_sim`` (mean cosine with the negatives).

  Raises:
    ValueError / TypeError: on mis-shaped or non-floating inputs, or a
      non-positive Python temperature.
  """
  queries, keys = jnp.asarray(queries), jnp.asarray(keys)
  positive_index = jnp.asarray(positive_index)
  if exclude_index is not None:
    exclude_index = jnp.asarray(exclude_index)
  if queries.ndim != 2 or keys.ndim != 2:
    raise ValueError(
        "queries and keys must be 2-D (num, dim); got shapes "
        f"{queries.shape} and {keys.shape}")
  if queries.shape[1] != keys.shape[1]:
    raise ValueError(
        f"queries and keys must have the same feature dim; got shapes "
        f"{queries.shape} and {keys.shape}")
  m, k_local = queries.shape[0], keys.shape[0]
  for name, idx in (("positive_index", positive_index),
                    ("exclude_index", exclude_index)):
    if idx is None:
      continue
    if jnp.shape(idx) != (m,) or not jnp.issubdtype(
        jnp.result_type(idx), jnp.integer):
      raise ValueError(
          f"{name} must be an integer array of shape ({m},) (one per query); "
          f"got shape {jnp.shape(idx)} and dtype {jnp.result_type(idx)}")
  _check_temperature(temperature)
  dtype = _compute_dtype(queries, keys)

  q = _l2_normalize(queries.astype(dtype))
  k = _l2_normalize(keys.astype(dtype))
  pos = positive_index
  excl = exclude_index
  if axis_name is not None:
    k = lax.all_gather(k, axis_name, tiled=True)
    offset = lax.axis_index(axis_name) * k_local
    pos = pos + offset
    excl = None if excl is None else excl + offset

  num_keys = k.shape[0]
  cols = jnp.arange(num_keys)
  is_pos = cols[None, :] == pos[:, None]                       # (M, N)
  valid = jnp.ones((m, num_keys), bool) if excl is None else (
      cols[None, :] != excl[:, None])
  is_neg = valid & ~is_pos

  sim = jnp.matmul(q, k.T, precision=lax.Precision.HIGHEST)   # (M, N)
  logits = sim / jnp.asarray(temperature, dtype)
  pos_logit = jnp.sum(jnp.where(is_pos, logits, 0.0), axis=1)
  lse = jax.nn.logsumexp(logits, axis=1, where=valid)
  loss = jnp.mean(lse - pos_logit)

  sim_ng = lax.stop_gradient(sim)
  logits_ng = lax.stop_gradient(logits)
  num_neg = jnp.maximum(jnp.sum(is_neg, axis=1), 1)
  max_neg = jnp.max(jnp.where(is_neg, logits_ng, -jnp.inf), axis=1)
  aux = {
      "contrastive_acc": jnp.mean(
          (lax.stop_gradient(pos_logit) > max_neg).astype(dtype)),
      "pos_sim": jnp.mean(jnp.sum(jnp.where(is_pos, sim_ng, 0.0), axis=1)),
      "neg_sim": jnp.mean(
          jnp.sum(jnp.where(is_neg, sim_ng, 0.0), axis=1) / num_neg),
  }
  return loss, aux


def nt_xent(
    z1: jax.Array,
    z2: jax.Array,
    temperature: float | jax.Array = 0.1,
    axis_name: AxisName | None = None,
) -> tuple[jax.Array, dict[str, jax.Array]]:
  r"""SimCLR's normalised-temperature cross-entropy (NT-Xent).

  Chen, Kornblith, Norouzi, Hinton 2020, "A Simple Framework for Contrastive
  Learning of Visual Representations", eq. 1 and Algorithm 1. The 2N
  projections :math:`z_1..z_{2N}` of N images under two views form 2N
  anchors; for the positive pair (i, j)

  .. math::
     \ell(i, j) = -\log \frac{\exp(\mathrm{sim}(z_i, z_j)/\tau)}
                        {\sum_{k=1}^{2N} \mathbb{1}_{[k \ne i]}
                         \exp(\mathrm{sim}(z_i, z_k)/\tau)},
     \qquad
     \mathcal{L} = \frac{1}{2N} \sum_{k=1}^{N}
                   \big[\ell(2k{-}1, 2k) + \ell(2k, 2k{-}1)\big],

  with cosine similarity sim. Each anchor has one positive and 2N-2
  negatives (every other projection of the batch; self-similarity excluded).

  Args:
    z1: ``(B, D)`` projections of the first view.
    z2: ``(B, D)`` projections of the second view; row i of ``z1`` and ``z2``
      come from the same image. Any float dtype; the loss is computed in
      float32 (float64 if an input is float64).
    temperature: :math:`\tau > 0` (SimCLR: 0.1 for large batches with LARS,
      0.5 for its CIFAR-10 runs).
    axis_name: ``None``: the loss on the B given pairs. A device axis name
      (inside ``shard_map``/``pmap``): z1, z2 are this replica's local
      ``B = N / R`` pairs; keys are gathered from all R replicas so every
      anchor sees all 2N-2 negatives of the global batch, and the returned
      loss is the mean over the 2B LOCAL anchors. The global loss is
      ``lax.pmean(loss, axis_name)``, equal to the single-device loss on the
      concatenated batch. To train under ``shard_map`` (default
      ``check_vma=True``), differentiate that pmean'd loss: the gradients of
      replicated params are then final (the gradient of the local loss would
      be R times too large). Under ``pmap`` or ``check_vma=False``,
      differentiate the local loss and ``pmean`` the gradients. Details in
      the module docstring.

  Returns:
    ``(loss, aux)``: scalar float32 loss and a dict of scalar metrics over
    the local anchors (``lax.pmean`` for global values): ``contrastive_acc``
    (fraction of anchors whose positive has a strictly higher logit than
    every negative), ``pos_sim`` and ``neg_sim`` (mean cosine similarity of
    positives / negatives).

  Raises:
    ValueError: if z1, z2 are not 2-D arrays of the same shape with B >= 1,
      or a Python ``temperature`` is not positive.
    TypeError: for non-floating inputs.
  """
  z1 = jnp.asarray(z1)
  z2 = jnp.asarray(z2)
  if z1.ndim != 2 or z1.shape != z2.shape:
    raise ValueError(
        "nt_xent expects z1 and z2 of the same shape (batch, dim); got "
        f"{z1.shape} and {z2.shape}")
  b = z1.shape[0]
  if b < 1:
    raise ValueError(f"nt_xent needs a non-empty batch; got shape {z1.shape}")
  # Anchors and keys are the same 2B local vectors [z1; z2]: anchor j's
  # positive is its other view, (j + B) mod 2B, and j itself is excluded.
  z = jnp.concatenate([z1, z2], axis=0)
  j = jnp.arange(2 * b)
  return info_nce(z, z, positive_index=(j + b) % (2 * b),
                  temperature=temperature, axis_name=axis_name,
                  exclude_index=j)
