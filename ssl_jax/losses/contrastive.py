"""Contrastive (InfoNCE-family) losses.

InfoNCE, SimCLR's NT-Xent, MoCo (with its replicated queue), the symmetric
two-view loss of CLIP / CMC, CMC's full graph over many views, and SupCon.

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

__all__ = [
    "cmc_full_graph",
    "info_nce",
    "moco",
    "moco_enqueue",
    "nt_xent",
    "supervised_contrastive",
    "symmetric_info_nce",
]

# Floor for the squared norm in L2 normalisation: keeps an all-zero embedding
# (and its gradient) finite instead of producing 0/0.
_NORM_EPS_SQ = 1e-24

AxisName = Hashable | tuple[Hashable, ...]


def _l2_normalize(x: jax.Array) -> jax.Array:
  """``x / max(||x||, 1e-12)`` along the last axis, for any finite ``x``.

  The rows are first divided by their largest ``|entry|`` (a constant for
  the gradient: the result does not depend on it), so the sum of squares
  cannot overflow: without it a row with a norm above ~1.8e19 squared to
  inf in float32 and was "normalised" to zero.
  """
  scale = _safe_scale(jnp.max(jnp.abs(x), axis=-1, keepdims=True))
  xs = x / scale
  sq = jnp.sum(xs * xs, axis=-1, keepdims=True)
  # ||x|| >= 1e-12 in the scaled units (the bound is inf, i.e. the floor
  # applies, where scale^2 underflows: rows of norm below ~1e-19).
  above = sq >= _NORM_EPS_SQ / (scale * scale)
  return jnp.where(above, xs * lax.rsqrt(jnp.where(above, sq, 1.0)),
                   x * lax.rsqrt(jnp.asarray(_NORM_EPS_SQ, x.dtype)))


def _safe_scale(m: jax.Array) -> jax.Array:
  """A divisor for rescaling by ``m >= 0``: ``m`` clipped to ``[2^-126,
  2^126]`` (XLA:CPU divides by multiplying with the reciprocal, and the
  reciprocal of a float32 above 2^126 flushes to 0), 1 where ``m == 0``; no
  gradient."""
  m = lax.stop_gradient(m)
  return jnp.where(m > 0, jnp.clip(m, 2.0 ** -126, 2.0 ** 126),
                   jnp.ones_like(m))


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


def _check_pair(name: str, a: jax.Array, b: jax.Array) -> int:
  """Checks two (B, D) view embeddings of the same shape; returns B."""
  if a.ndim != 2 or a.shape != b.shape:
    raise ValueError(
        f"{name} expects two views of the same shape (batch, dim); got "
        f"{a.shape} and {b.shape}")
  if a.shape[0] < 1:
    raise ValueError(f"{name} needs a non-empty batch; got shape {a.shape}")
  return a.shape[0]


# --------------------------------------------------------------------------
# MoCo
# --------------------------------------------------------------------------
def moco(
    q: jax.Array,
    k: jax.Array,
    queue: jax.Array,
    temperature: float | jax.Array = 0.07,
) -> tuple[jax.Array, dict[str, jax.Array]]:
  r"""MoCo's InfoNCE against a queue of negative keys.

  He, Fan, Wu, Xie, Girshick 2020, "Momentum Contrast for Unsupervised Visual
  Representation Learning", eq. 1 and Algorithm 1. Query :math:`q_i` (online
  encoder) has one positive key :math:`k_i` (momentum encoder, same image,
  other view) and the K queued keys :math:`\{n_j\}` as negatives; the
  logits are ``[q.k+, q.queue^T] / t`` with the positive at label 0:

  .. math::
     \mathcal{L} = \frac{1}{N}\sum_{i=1}^{N} -\log
       \frac{\exp(q_i \cdot k_i/\tau)}
            {\exp(q_i \cdot k_i/\tau) + \sum_{j=1}^{K}\exp(q_i \cdot n_j/\tau)}.

  MoCo L2-normalises the encoder outputs (its Sec. 3.3); here q, k and the
  queue rows are L2-normalised on the way in (idempotent for rows that
  already are), so the dot products are cosine similarities. ``k`` and the
  queue get no gradient (``k.detach()`` in Algorithm 1; the queue is a
  buffer).

  There is no ``axis_name``: the negatives are the queue, which
  ``moco_enqueue`` keeps identical on every replica (it gathers the keys of
  all replicas before enqueueing). The loss of a replica's local queries is
  therefore already its share of the global-batch loss; the global loss is
  ``lax.pmean(loss, axis_name)``, and the module docstring's gradient recipes
  apply unchanged. MoCo's other cross-replica ingredient, shuffling BN, lives
  in the model, not the loss.

  Args:
    q: ``(N, D)`` queries.
    k: ``(N, D)`` positive keys, row i for query i.
    queue: ``(K, D)`` negative keys (K >= 1), e.g. the keys of past batches.
    temperature: :math:`\tau > 0` (0.07 in MoCo v1, 0.2 in MoCo v2).

  Returns:
    ``(loss, aux)``: the scalar mean loss over the N queries and scalar
    metrics (no gradient): ``contrastive_acc`` (fraction of queries whose
    positive logit beats every queue logit, i.e. top-1 accuracy of the
    (K+1)-way classification), ``pos_sim`` (mean cosine q.k+), ``neg_sim``
    (mean cosine with the queue).

  Raises:
    ValueError / TypeError: on mis-shaped or non-floating inputs, or a
      non-positive Python temperature.
  """
  q, k, queue = jnp.asarray(q), jnp.asarray(k), jnp.asarray(queue)
  if q.ndim != 2 or q.shape != k.shape:
    raise ValueError(
        f"moco expects q and k of the same shape (batch, dim); got {q.shape} "
        f"and {k.shape}")
  if queue.ndim != 2 or queue.shape[1] != q.shape[1] or queue.shape[0] < 1:
    raise ValueError(
        f"moco expects a non-empty queue of shape (K, {q.shape[1]}); got "
        f"{queue.shape}")
  _check_temperature(temperature)
  dtype = _compute_dtype(q, k, queue)
  qn = _l2_normalize(q.astype(dtype))
  kn = lax.stop_gradient(_l2_normalize(k.astype(dtype)))
  negs = lax.stop_gradient(_l2_normalize(queue.astype(dtype)))
  pos_sim = jnp.sum(qn * kn, axis=1)                                # (N,)
  neg_sim = jnp.matmul(qn, negs.T, precision=lax.Precision.HIGHEST)  # (N, K)
  t = jnp.asarray(temperature, dtype)
  logits = jnp.concatenate([pos_sim[:, None], neg_sim], axis=1) / t
  loss = jnp.mean(jax.nn.logsumexp(logits, axis=1) - logits[:, 0])
  logits_ng = lax.stop_gradient(logits)
  aux = {
      "contrastive_acc": jnp.mean(
          (logits_ng[:, 0] > jnp.max(logits_ng[:, 1:], axis=1)).astype(dtype)),
      "pos_sim": jnp.mean(lax.stop_gradient(pos_sim)),
      "neg_sim": jnp.mean(lax.stop_gradient(neg_sim)),
  }
  return loss, aux


def moco_enqueue(
    queue: jax.Array,
    queue_ptr: jax.Array | int,
    keys: jax.Array,
    axis_name: AxisName | None = None,
) -> tuple[jax.Array, jax.Array]:
  r"""MoCo's ``_dequeue_and_enqueue``: write the newest keys over the oldest.

  The queue is a ring buffer of K keys; the ``n`` new keys overwrite rows
  ``[ptr, ptr + n)`` and the pointer advances to ``(ptr + n) mod K``
  (He et al. 2020, Algorithm 1, ``enqueue``/``dequeue``). With ``axis_name``
  the keys of ALL replicas are gathered first, in replica order (replica r's
  keys at rows ``[r*n, (r+1)*n)`` of the global batch, as
  ``lax.all_gather(..., tiled=True)`` orders them), and every replica writes
  the same ``R*n`` keys, so queues that start identical stay identical and
  equal the single-device enqueue of the global batch.

  The gather is done as a ``lax.psum`` of each replica's keys placed at its
  offset in a zero array (exact: every other summand is zero). Unlike
  ``lax.all_gather``, whose result counts as device-varying under
  ``jax.shard_map``'s default ``check_vma=True``, that result is
  replica-invariant, so the new queue can be returned with ``out_specs=P()``.

  Args:
    queue: ``(K, D)`` ring buffer (any float dtype; keys are cast to it).
    queue_ptr: integer scalar, the row where the next keys go. Keep it a
      multiple of the global batch (it is, if it starts at 0 and only this
      function moves it).
    keys: ``(n, D)`` new keys (this replica's, with ``axis_name``). They are
      stored as given, with no gradient; ``moco`` L2-normalises queue rows
      itself, so raw or normalised keys give the same loss.
    axis_name: ``None``, or the mapped device axis name(s) to gather keys
      over.

  Returns:
    ``(new_queue, new_ptr)``; ``new_ptr`` has ``queue_ptr``'s integer dtype
    (int32 for a Python int).

  Raises:
    ValueError: on mis-shaped inputs, or if K is not a multiple of the
      global batch ``R*n`` (the ring buffer could not be overwritten in whole
      batches; MoCo's reference code asserts the same).
  """
  queue, keys = jnp.asarray(queue), jnp.asarray(keys)
  ptr = jnp.asarray(queue_ptr)
  if not jnp.issubdtype(ptr.dtype, jnp.integer) or ptr.ndim != 0:
    raise ValueError(
        f"queue_ptr must be an integer scalar; got shape {ptr.shape} and "
        f"dtype {ptr.dtype}")
  if queue.ndim != 2 or keys.ndim != 2 or keys.shape[1] != queue.shape[1]:
    raise ValueError(
        "moco_enqueue expects queue (K, D) and keys (n, D) with the same D; "
        f"got {queue.shape} and {keys.shape}")
  keys = lax.stop_gradient(keys).astype(queue.dtype)
  n = keys.shape[0]
  if axis_name is not None:
    num_replicas = lax.axis_size(axis_name)
    placed = lax.dynamic_update_slice(
        jnp.zeros((num_replicas * n, keys.shape[1]), keys.dtype), keys,
        (lax.axis_index(axis_name) * n, 0))
    keys = lax.psum(placed, axis_name)
  n_global, size = keys.shape[0], queue.shape[0]
  if n_global < 1 or size % n_global:
    raise ValueError(
        f"moco_enqueue needs the queue size K={size} to be a multiple of the "
        f"global batch of keys ({n_global}"
        + (f" = {n} per replica x {n_global // max(n, 1)} replicas)"
           if axis_name is not None else ")"))
  new_queue = lax.dynamic_update_slice(queue, keys,
                                       (ptr.astype(jnp.int32), 0))
  return new_queue, ((ptr + n_global) % size).astype(ptr.dtype)


# --------------------------------------------------------------------------
# Two-view (CLIP / CMC) and many-view (CMC full graph)
# --------------------------------------------------------------------------
def symmetric_info_nce(
    a: jax.Array,
    b: jax.Array,
    temperature: float | jax.Array = 0.1,
    axis_name: AxisName | None = None,
) -> tuple[jax.Array, dict[str, jax.Array]]:
  r"""Symmetric two-view InfoNCE (CLIP's loss; CMC's two-view objective).

  Radford et al. 2021, "Learning Transferable Visual Models From Natural
  Language Supervision" (Fig. 3: the mean of the image->text and
  text->image cross-entropies); Tian, Krishnan, Isola 2019, "Contrastive
  Multiview Coding" (its two-view loss, with the softmax form of InfoNCE). With
  :math:`s_{ij} = \mathrm{sim}(a_i, b_j)/\tau` (cosine similarity) over the
  N pairs of the (global) batch:

  .. math::
     \mathcal{L} = \frac{1}{2N}\sum_{i=1}^{N}\Big[
       -\log\frac{e^{s_{ii}}}{\sum_{j} e^{s_{ij}}}
       -\log\frac{e^{s_{ii}}}{\sum_{j} e^{s_{ji}}}\Big].

  Row i of ``a`` and of ``b`` are the positive pair; the N-1 other rows of
  the other view are the negatives (no within-view negatives, unlike
  NT-Xent). Both directions are ``info_nce`` calls.

  Args:
    a, b: ``(B, D)`` embeddings of the two views / modalities.
    temperature: :math:`\tau > 0`; may be a traced array (CLIP learns
      :math:`\log(1/\tau)`).
    axis_name: ``None``, or the mapped device axis name(s): a, b are the
      local pairs, the keys of each direction are gathered from every
      replica, and the global loss is ``lax.pmean(loss, axis_name)`` (see the
      module docstring for gradients).

  Returns:
    ``(loss, aux)``: scalar loss and scalar metrics over the local pairs:
    ``contrastive_acc`` (mean of the two directions' top-1 accuracy),
    ``acc_a_to_b``, ``acc_b_to_a``, ``pos_sim``, ``neg_sim``.
  """
  a, b = jnp.asarray(a), jnp.asarray(b)
  n = _check_pair("symmetric_info_nce", a, b)
  idx = jnp.arange(n)
  loss_ab, aux_ab = info_nce(a, b, idx, temperature, axis_name)
  loss_ba, aux_ba = info_nce(b, a, idx, temperature, axis_name)
  aux = {key: 0.5 * (aux_ab[key] + aux_ba[key]) for key in aux_ab}
  aux["acc_a_to_b"] = aux_ab["contrastive_acc"]
  aux["acc_b_to_a"] = aux_ba["contrastive_acc"]
  return 0.5 * (loss_ab + loss_ba), aux


def cmc_full_graph(
    views: Any,
    temperature: float | jax.Array = 0.1,
    axis_name: AxisName | None = None,
) -> tuple[jax.Array, dict[str, jax.Array]]:
  r"""CMC's full-graph objective over M >= 2 views.

  Tian, Krishnan, Isola 2019, "Contrastive Multiview Coding", the "full
  graph" paradigm: every pair of views is contrasted,

  .. math::
     \mathcal{L}_{full} = \sum_{1 \le i < j \le M}
       \mathcal{L}_{sym}(V_i, V_j),

  with :math:`\mathcal{L}_{sym}` = ``symmetric_info_nce`` (the MEAN of the
  two directions). CMC writes each pair's loss as the SUM of the two
  directions, :math:`L(V_i,V_j) = L^{V_i,V_j} + L^{V_j,V_i}`, so this is
  exactly half of the paper's :math:`\mathcal{L}_{full}` (same minimiser and
  gradient direction; scale the learning rate for plain SGD parity). With two
  views it is ``symmetric_info_nce``.

  Args:
    views: a sequence of M >= 2 arrays, each ``(B, D)``; row i of every view
      comes from the same sample.
    temperature: :math:`\tau > 0` (CMC uses 0.07).
    axis_name: as in ``symmetric_info_nce``.

  Returns:
    ``(loss, aux)``: scalar loss; aux holds the means over the M(M-1)/2
    pairs of ``contrastive_acc``, ``pos_sim`` and ``neg_sim``.
  """
  views = [jnp.asarray(v) for v in views]
  if len(views) < 2:
    raise ValueError(
        f"cmc_full_graph needs at least 2 views; got {len(views)}")
  for v in views[1:]:
    _check_pair("cmc_full_graph", views[0], v)
  losses, auxes = [], []
  for i in range(len(views)):
    for j in range(i + 1, len(views)):
      loss_ij, aux_ij = symmetric_info_nce(views[i], views[j], temperature,
                                           axis_name)
      losses.append(loss_ij)
      auxes.append(aux_ij)
  aux = {key: sum(x[key] for x in auxes) / len(auxes)
         for key in ("contrastive_acc", "pos_sim", "neg_sim")}
  return sum(losses), aux


# --------------------------------------------------------------------------
# SupCon
# --------------------------------------------------------------------------
def supervised_contrastive(
    z: jax.Array,
    labels: jax.Array,
    temperature: float | jax.Array = 0.1,
    axis_name: AxisName | None = None,
) -> tuple[jax.Array, dict[str, jax.Array]]:
  r"""Supervised contrastive loss, SupCon's :math:`\mathcal{L}^{sup}_{out}`.

  Khosla et al. 2020, "Supervised Contrastive Learning", eq. 2. For anchor
  i of the (multi-viewed) batch I, with :math:`A(i) = I \setminus \{i\}`
  and positives :math:`P(i) = \{p \in A(i) : y_p = y_i\}`:

  .. math::
     \ell_i = \frac{-1}{|P(i)|}\sum_{p \in P(i)} \log
       \frac{\exp(z_i \cdot z_p/\tau)}{\sum_{a \in A(i)} \exp(z_i \cdot z_a/\tau)},
     \qquad \mathcal{L} = \frac{1}{|I|}\sum_{i \in I} \ell_i,

  on L2-normalised z (the paper sums over anchors; the mean, as in its
  reference code, makes the scale independent of the batch). An anchor with
  no positive (its label is unique in the global batch) has an undefined
  :math:`\ell_i`; it contributes 0 (and no gradient) but still counts in
  the mean, which keeps ``lax.pmean`` of per-replica losses equal to the
  global loss. With two views per image and one label per image it is
  exactly SimCLR's NT-Xent.

  Args:
    z: ``(N, D)`` embeddings; put every view of the batch in it (e.g.
      ``concatenate([z1, z2])``, labels repeated).
    labels: ``(N,)`` integer class labels.
    temperature: :math:`\tau > 0` (0.1 in the paper).
    axis_name: ``None``, or the mapped device axis name(s): z, labels are
      the local rows; embeddings and labels of every replica are gathered,
      so positives and negatives come from the global batch, and the global
      loss is ``lax.pmean(loss, axis_name)`` (see the module docstring for
      gradients).

  Returns:
    ``(loss, aux)``: scalar loss and scalar metrics over the local anchors:
    ``contrastive_acc`` (fraction of anchors whose most similar other sample
    has the anchor's label, ties counted as misses; anchors without positives
    count as misses), ``pos_sim`` (mean cosine with positives, over anchors
    that have some), ``neg_sim`` (mean cosine with other-label samples),
    ``frac_with_positives``. ``pmean`` gives the global values, except
    ``pos_sim`` when replicas differ in how many anchors have positives.
  """
  z, labels = jnp.asarray(z), jnp.asarray(labels)
  if z.ndim != 2 or z.shape[0] < 1:
    raise ValueError(
        f"supervised_contrastive expects z of shape (N, D), N >= 1; got "
        f"{z.shape}")
  if labels.shape != (z.shape[0],) or not jnp.issubdtype(labels.dtype,
                                                         jnp.integer):
    raise ValueError(
        f"labels must be an integer array of shape ({z.shape[0]},); got "
        f"shape {labels.shape} and dtype {labels.dtype}")
  _check_temperature(temperature)
  dtype = _compute_dtype(z)
  n = z.shape[0]
  zn = _l2_normalize(z.astype(dtype))
  keys, key_labels, self_col = zn, labels, jnp.arange(n)
  if axis_name is not None:
    keys = lax.all_gather(zn, axis_name, tiled=True)
    key_labels = lax.all_gather(labels, axis_name, tiled=True)
    self_col = self_col + lax.axis_index(axis_name) * n

  cols = jnp.arange(keys.shape[0])
  others = cols[None, :] != self_col[:, None]                   # A(i)
  is_pos = others & (key_labels[None, :] == labels[:, None])    # P(i)
  is_neg = others & ~is_pos
  num_pos = jnp.sum(is_pos, axis=1)
  has_pos = num_pos > 0

  sim = jnp.matmul(zn, keys.T, precision=lax.Precision.HIGHEST)  # (N, Ng)
  logits = sim / jnp.asarray(temperature, dtype)
  lse = jax.nn.logsumexp(logits, axis=1, where=others)
  mean_pos_logit = (jnp.sum(jnp.where(is_pos, logits, 0.0), axis=1)
                    / jnp.maximum(num_pos, 1))
  loss = jnp.mean(jnp.where(has_pos, lse - mean_pos_logit, 0.0))

  sim_ng = lax.stop_gradient(sim)
  max_pos = jnp.max(jnp.where(is_pos, sim_ng, -jnp.inf), axis=1)
  max_neg = jnp.max(jnp.where(is_neg, sim_ng, -jnp.inf), axis=1)
  pos_mean = (jnp.sum(jnp.where(is_pos, sim_ng, 0.0), axis=1)
              / jnp.maximum(num_pos, 1))
  num_neg = jnp.sum(is_neg, axis=1)
  has_posf = has_pos.astype(dtype)
  aux = {
      "contrastive_acc": jnp.mean((max_pos > max_neg).astype(dtype)),
      "pos_sim": jnp.sum(pos_mean * has_posf) / jnp.maximum(
          jnp.sum(has_posf), 1.0),
      "neg_sim": jnp.mean(jnp.sum(jnp.where(is_neg, sim_ng, 0.0), axis=1)
                          / jnp.maximum(num_neg, 1)),
      "frac_with_positives": jnp.mean(has_posf),
  }
  return loss, aux
