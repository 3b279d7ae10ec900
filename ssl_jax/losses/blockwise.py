"""Memory-lean NT-Xent for very large batches: streamed log-sum-exp.

``nt_xent`` materialises the (2B x 2B) logits (and, for the gradient, a few
more matrices of that size): 16 GiB each at B = 32k in float32. Here the keys
are processed in blocks of ``block_size`` columns with a ``lax.scan``:

* forward: an online (streaming) log-sum-exp per anchor -- running max ``m``
  and running sum ``s`` of ``exp(logit - m)``, rescaled whenever the max
  grows (as in FlashAttention) -- plus the positive logit and the aux
  statistics, all gathered in the same pass;
* backward (``jax.custom_vjp``): the only residuals are the scaled anchors,
  the keys and two numbers per anchor (the max logit and the log of the
  rescaled sum); each block of logits is recomputed, turned into
  ``softmax - onehot(positive)`` and immediately contracted into the
  gradients of the anchors (a carried sum) and of that block's keys.

Peak memory is O(2B * block_size) for the block temporaries plus O(B * D)
for embeddings and gradients, instead of O(B^2). Value and gradient are those
of ``ssl_jax.losses.contrastive.nt_xent`` (same equation, up to float
rounding; when the loss is tiny, e.g. near-duplicate views at a low
temperature, this one is the more precise: it forms ``max - positive`` and
``softmax - 1`` without cancellation against the O(1/tau) logits).
``experiments/bench_losses.py`` measures both.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax import lax

from ssl_jax.losses.contrastive import (AxisName, _check_temperature,
                                        _compute_dtype, _l2_normalize)

__all__ = ["nt_xent_blockwise"]

_HIGHEST = lax.Precision.HIGHEST


def _zero_like_all(*arrays):
  """A scalar 0 that is device-varying wherever any input is.

  Under ``shard_map(check_vma=True)`` a ``scan`` carry must keep its
  varying-manual-axes type; an initial value built from constants would be
  replica-invariant while the updated carry is not.
  """
  return sum(jnp.zeros_like(a.reshape(-1)[0]) for a in arrays)


def _blocked_keys(k, block_size):
  """Keys zero-padded to whole blocks: ``(num_blocks, block_size, D)``."""
  n, d = k.shape
  num_blocks = -(-n // block_size)
  k = jnp.pad(k, ((0, num_blocks * block_size - n), (0, 0)))
  return k.reshape(num_blocks, block_size, d), (
      jnp.arange(num_blocks) * block_size)


def _block_masks(start, block_size, num_keys, pos, excl):
  cols = start + jnp.arange(block_size)
  valid = (cols[None, :] < num_keys) & (cols[None, :] != excl[:, None])
  is_pos = cols[None, :] == pos[:, None]
  return valid, is_pos


def _forward_stats(q, k, pos, excl, block_size):
  """Streams over key blocks.

  Returns ``(ell, pos_logit, max_neg, sum_neg)`` per anchor and the
  ``(max, log_sum)`` of the softmax normaliser (``lse = max + log_sum``).
  """
  m, num_keys = q.shape[0], k.shape[0]
  kb_all, starts = _blocked_keys(k, block_size)
  zero = _zero_like_all(q, k, pos, excl).astype(q.dtype)
  neg_inf = jnp.full((m,), -jnp.inf, q.dtype) + zero
  zeros = jnp.zeros((m,), q.dtype) + zero

  def body(carry, xs):
    run_max, run_sum, pos_logit, max_neg, sum_neg = carry
    kb, start = xs
    logits = jnp.matmul(q, kb.T, precision=_HIGHEST)             # (M, bs)
    valid, is_pos = _block_masks(start, block_size, num_keys, pos, excl)
    is_neg = valid & ~is_pos
    masked = jnp.where(valid, logits, -jnp.inf)
    new_max = jnp.maximum(run_max, jnp.max(masked, axis=1))
    # -inf only while every key so far was masked; any finite shift works.
    shift = jnp.where(jnp.isfinite(new_max), new_max, 0.0)
    run_sum = (run_sum * jnp.exp(run_max - shift)
               + jnp.sum(jnp.exp(masked - shift[:, None]), axis=1))
    pos_logit = pos_logit + jnp.sum(jnp.where(is_pos, logits, 0.0), axis=1)
    max_neg = jnp.maximum(
        max_neg, jnp.max(jnp.where(is_neg, logits, -jnp.inf), axis=1))
    sum_neg = sum_neg + jnp.sum(jnp.where(is_neg, logits, 0.0), axis=1)
    return (new_max, run_sum, pos_logit, max_neg, sum_neg), None

  (run_max, run_sum, pos_logit, max_neg, sum_neg), _ = lax.scan(
      body, (neg_inf, zeros, zeros, neg_inf, zeros), (kb_all, starts))
  log_sum = jnp.log(run_sum)
  # lse - pos = (max - pos) + log(sum): max - pos is exactly 0 when the
  # positive has the largest logit, so a small loss is not lost in the
  # rounding of the O(1/tau) logits.
  ell = (run_max - pos_logit) + log_sum
  return (ell, pos_logit, max_neg, sum_neg), (run_max, log_sum)


@functools.partial(jax.custom_vjp, nondiff_argnums=(4,))
def _streamed_nt_xent_terms(q, k, pos, excl, block_size):
  """Per anchor i, over logits ``q_i . k_j`` (``j != excl_i``, ``j < N``).

  Returns ``(ell, pos_logit, max_neg, sum_neg)``: the cross-entropy
  ``ell_i = logsumexp_j(logit_ij) - logit_{i,pos_i}``, the positive's logit,
  and the max / sum of the negatives' logits. Only ``ell`` is
  differentiable: the cotangents of the others are ignored (callers stop
  their gradient).
  """
  return _forward_stats(q, k, pos, excl, block_size)[0]


def _streamed_fwd(q, k, pos, excl, block_size):
  out, (run_max, log_sum) = _forward_stats(q, k, pos, excl, block_size)
  return out, (q, k, pos, excl, run_max, log_sum)


def _streamed_bwd(block_size, residuals, cotangents):
  q, k, pos, excl, run_max, log_sum = residuals
  g = cotangents[0]                                             # (M,)
  num_keys = k.shape[0]
  kb_all, starts = _blocked_keys(k, block_size)
  zero = _zero_like_all(q, k, pos, excl, run_max, g).astype(q.dtype)

  def body(dq, xs):
    kb, start = xs
    logits = jnp.matmul(q, kb.T, precision=_HIGHEST)
    valid, is_pos = _block_masks(start, block_size, num_keys, pos, excl)
    # d ell_i / d logit_ij = softmax_ij - [j == pos_i]; the softmax as
    # exp((logit - max) - log_sum), and expm1 for the positive, stay accurate
    # when the positive dominates (softmax ~ 1, loss ~ 0).
    x = (logits - run_max[:, None]) - log_sum[:, None]
    dlogits = jnp.where(valid, jnp.where(is_pos, jnp.expm1(x), jnp.exp(x)),
                        0.0) * g[:, None]                        # (M, bs)
    dq = dq + jnp.matmul(dlogits, kb, precision=_HIGHEST)
    dkb = jnp.matmul(dlogits.T, q, precision=_HIGHEST)           # (bs, D)
    return dq, dkb

  dq, dk_blocks = lax.scan(body, jnp.zeros_like(q) + zero, (kb_all, starts))
  dk = dk_blocks.reshape(-1, k.shape[1])[:num_keys]
  return dq, dk, None, None


_streamed_nt_xent_terms.defvjp(_streamed_fwd, _streamed_bwd)


def nt_xent_blockwise(
    z1: jax.Array,
    z2: jax.Array,
    temperature: float | jax.Array = 0.1,
    block_size: int = 1024,
    axis_name: AxisName | None = None,
) -> tuple[jax.Array, dict[str, jax.Array]]:
  r"""SimCLR's NT-Xent without materialising the (2B)^2 logits.

  Same loss as ``ssl_jax.losses.contrastive.nt_xent`` (Chen et al. 2020,
  "A Simple Framework for Contrastive Learning of Visual Representations",
  eq. 1): for the 2B anchors :math:`z_i` (both views, L2-normalised),

  .. math::
     \ell_i = \log\sum_{k \ne i} \exp(z_i^\top z_k/\tau)
              - z_i^\top z_{p(i)}/\tau,
     \qquad \mathcal{L} = \frac{1}{2B}\sum_i \ell_i,

  with :math:`p(i)` the other view of anchor i's image; the log-sum-exp is
  streamed over blocks of keys, and the gradient recomputes each block (see
  the module docstring), so memory is O(2B * block_size), not O(B^2).

  Args:
    z1, z2: ``(B, D)`` projections of the two views (row i: same image).
    temperature: :math:`\tau > 0`; may be a traced array (its gradient flows).
    block_size: keys per block (>= 1). It need NOT divide the number of
      keys (2B, or 2B * replicas with ``axis_name``): the last block is
      zero-padded and its padding masked out. Values above the number of
      keys are clipped to it. Larger blocks mean fewer, bigger matmuls
      (faster, up to a point) and proportionally more temporary memory:
      about ``2B * block_size * 4`` bytes per block temporary.
    axis_name: as in ``nt_xent``: keys are all-gathered from every replica
      (gradients flowing back through the gather); the positives and the
      excluded self-similarity are located with ``lax.axis_index``; the
      global loss is ``lax.pmean(loss, axis_name)``, and the gradient recipes
      of ``ssl_jax.losses.contrastive`` apply unchanged.

  Returns:
    ``(loss, aux)`` exactly as ``nt_xent``: ``contrastive_acc``, ``pos_sim``,
    ``neg_sim`` (means over the local anchors).

  Raises:
    ValueError / TypeError: as ``nt_xent``, and for ``block_size < 1``.
  """
  z1, z2 = jnp.asarray(z1), jnp.asarray(z2)
  if z1.ndim != 2 or z1.shape != z2.shape:
    raise ValueError(
        "nt_xent_blockwise expects z1 and z2 of the same shape (batch, dim); "
        f"got {z1.shape} and {z2.shape}")
  b = z1.shape[0]
  if b < 1:
    raise ValueError(
        f"nt_xent_blockwise needs a non-empty batch; got shape {z1.shape}")
  if not isinstance(block_size, int) or block_size < 1:
    raise ValueError(f"block_size must be an int >= 1; got {block_size!r}")
  _check_temperature(temperature)
  dtype = _compute_dtype(z1, z2)
  t = jnp.asarray(temperature, dtype)

  zn = _l2_normalize(jnp.concatenate([z1, z2], axis=0).astype(dtype))
  m = 2 * b
  anchors = jnp.arange(m)
  pos, excl = (anchors + b) % m, anchors
  keys = zn
  if axis_name is not None:
    keys = lax.all_gather(zn, axis_name, tiled=True)
    offset = lax.axis_index(axis_name) * m
    pos, excl = pos + offset, excl + offset
  num_keys = keys.shape[0]

  ell, pos_logit, max_neg, sum_neg = _streamed_nt_xent_terms(
      zn / t, keys, pos, excl, min(block_size, num_keys))
  loss = jnp.mean(ell)

  pos_logit = lax.stop_gradient(pos_logit)
  t_ng = lax.stop_gradient(t)
  num_neg = max(num_keys - 2, 1)
  aux = {
      "contrastive_acc": jnp.mean(
          (pos_logit > lax.stop_gradient(max_neg)).astype(dtype)),
      "pos_sim": jnp.mean(pos_logit) * t_ng,
      "neg_sim": jnp.mean(lax.stop_gradient(sum_neg)) * t_ng / num_neg,
  }
  return loss, aux
