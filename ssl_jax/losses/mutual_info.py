r"""Mutual-information bounds as losses: Deep InfoMax (local-global) and CPC.

Scores here are raw dot products of learned features (the "critic"
:math:`T(x, y) = x^\top y` of DIM's encode-and-dot-product architecture, and
CPC's log-bilinear :math:`z^\top W_k c_t` with :math:`W_k c_t` precomputed as
the prediction); nothing is L2-normalised.

Every function takes ``axis_name=None``; with a named device axis (inside
``jax.shard_map`` or ``jax.pmap``, equal local batch sizes) negatives come
from the global batch and the global loss is ``lax.pmean(loss, axis_name)``,
equal to the single-device loss on the concatenated batch. Gradients follow
the recipes of ``ssl_jax.losses.contrastive`` (differentiate the pmean'd loss
under ``shard_map`` with ``check_vma=True``; differentiate the local loss and
``pmean`` the gradients under ``pmap``/``check_vma=False``). Where a bound
needs a log-sum-exp over negatives held by other replicas (DIM's
Donsker-Varadhan and InfoNCE estimators), the partial sums are combined with
``lax.psum`` inside the loss, so every replica's local loss already contains
the global log term.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from jax import lax

from ssl_jax.losses.contrastive import (AxisName, _check_temperature,
                                        _compute_dtype)

__all__ = ["cpc", "dim_local_global"]

ESTIMATORS = ("jsd", "infonce", "dv")


def _logsumexp_global(x, where, axis, axis_name):
  """log sum exp(x) over ``axis`` where ``where``, and over the replicas.

  Stable: shifted by the (stop-gradient) global max, found with ``lax.pmax``;
  masked entries get exactly zero gradient. ``-inf`` if nothing is selected.
  """
  x_ng = lax.stop_gradient(jnp.where(where, x, -jnp.inf))
  m = jnp.max(x_ng, axis=axis, keepdims=True)
  if axis_name is not None:
    m = lax.pmax(m, axis_name)
  m = jnp.where(jnp.isfinite(m), m, 0.0)
  e = jnp.where(where, jnp.exp(jnp.where(where, x, m) - m), 0.0)
  s = jnp.sum(e, axis=axis, keepdims=True)
  if axis_name is not None:
    s = lax.psum(s, axis_name)
  return jnp.squeeze(jnp.log(s) + m, axis=axis)


def _gather(x, axis_name):
  """(global x, offset of this replica's rows in it)."""
  if axis_name is None:
    return x, 0
  return (lax.all_gather(x, axis_name, tiled=True),
          lax.axis_index(axis_name) * x.shape[0])


def dim_local_global(
    local_features: jax.Array,
    global_features: jax.Array,
    estimator: str = "jsd",
    axis_name: AxisName | None = None,
) -> tuple[jax.Array, dict[str, jax.Array]]:
  r"""Deep InfoMax local-global objective (negative MI bound to minimise).

  Hjelm et al. 2019, "Learning Deep Representations by Mutual Information
  Estimation and Maximization" (local DIM). Image i has N local features
  :math:`l_{i,n}` (the cells of an M x M feature map) and one global feature
  :math:`g_i`; the score of a pair is :math:`T(l, g) = l^\top g`. Positive
  pairs :math:`(l_{i,n}, g_i)`, one per local feature (P); negative pairs
  :math:`(l_{j,n}, g_i)`, :math:`j \ne i`, every local feature of every
  other image of the (global) batch (N: the product of marginals). The MI
  estimate is averaged over local positions, as in local DIM:

  * ``'jsd'`` (Jensen-Shannon, f-GAN form; sp = softplus):
    :math:`\hat I = \mathbb{E}_P[-\mathrm{sp}(-T)] - \mathbb{E}_N[\mathrm{sp}(T)]`.
  * ``'dv'`` (Donsker-Varadhan):
    :math:`\hat I = \mathbb{E}_P[T] - \log \mathbb{E}_N[e^{T}]`, the log
    taken over ALL negative pairs of the global batch.
  * ``'infonce'``: for each positive :math:`(l_{i,n}, g_i)` a softmax over
    the candidates scored against the same :math:`g_i` -- the positive and
    the :math:`(B-1)N` local features of the other images (DIM's NCE form
    sums :math:`e^{T(x', E(x))}` over inputs :math:`x'` for a fixed
    encoding :math:`E(x)`):

    .. math::
       \ell_{i,n} = -\log\frac{e^{T(l_{i,n}, g_i)}}{e^{T(l_{i,n}, g_i)} +
         \sum_{j \ne i}\sum_{n'} e^{T(l_{j,n'}, g_i)}},
       \qquad \hat I = \log\big(1 + (B-1)N\big) - \mathbb{E}_{i,n}[\ell_{i,n}].

  The loss is :math:`-\hat I` for ``'jsd'`` and ``'dv'`` and
  :math:`\mathbb{E}[\ell]` (= the constant minus :math:`\hat I`) for
  ``'infonce'``.

  Args:
    local_features: ``(B, M, M, D)`` feature maps or ``(B, N, D)`` local
      features (any N >= 1).
    global_features: ``(B, D)``.
    estimator: ``'jsd'`` (DIM's default), ``'infonce'`` or ``'dv'``.
    axis_name: ``None``, or the mapped device axis name(s). The global
      features are all-gathered (gradients flowing back) so local features
      are scored against every image of the global batch; the positive of
      local image i is global image ``i + axis_index * B``. For ``'dv'`` and
      ``'infonce'`` the log-sum-exp over negatives held by other replicas is
      combined with ``psum``. The global loss is ``lax.pmean(loss,
      axis_name)``.

  Returns:
    ``(loss, aux)``: scalar loss; aux (no gradient): ``mi_estimate``
    (:math:`\hat I`, in nats), ``pos_score`` and ``neg_score`` (mean T over
    local positive / negative pairs). ``pmean`` gives global values.

  Raises:
    ValueError: on bad shapes, an unknown estimator, or a global batch of
      fewer than 2 images (no negatives).
  """
  local_features = jnp.asarray(local_features)
  global_features = jnp.asarray(global_features)
  if estimator not in ESTIMATORS:
    raise ValueError(
        f"unknown estimator {estimator!r}; expected one of {ESTIMATORS}")
  if local_features.ndim not in (3, 4) or global_features.ndim != 2:
    raise ValueError(
        "dim_local_global expects local_features (B, M, M, D) or (B, N, D) "
        f"and global_features (B, D); got {local_features.shape} and "
        f"{global_features.shape}")
  b, d = global_features.shape
  if local_features.shape[0] != b or local_features.shape[-1] != d:
    raise ValueError(
        "local_features and global_features must agree in batch and feature "
        f"dims; got {local_features.shape} and {global_features.shape}")
  dtype = _compute_dtype(local_features, global_features)
  loc = local_features.astype(dtype).reshape(b, -1, d)            # (B, N, D)
  num_local = loc.shape[1]
  glob, offset = _gather(global_features.astype(dtype), axis_name)
  b_global = glob.shape[0]
  if b_global < 2 or num_local < 1:
    raise ValueError(
        "dim_local_global needs >= 2 images in the global batch and >= 1 "
        f"local feature per image; got {b_global} images, {num_local} local")

  # scores[i, n, c] = T(l_{i,n}, g_c) for local image i, global image c.
  scores = jnp.einsum("ind,cd->inc", loc, glob,
                      precision=lax.Precision.HIGHEST)
  own = jnp.arange(b) + offset                                    # (B,)
  is_pos = (jnp.arange(b_global)[None, :] == own[:, None])[:, None, :]
  is_pos = jnp.broadcast_to(is_pos, scores.shape)
  pos = jnp.sum(jnp.where(is_pos, scores, 0.0), axis=2)           # (B, N)
  num_neg_local = b * num_local * (b_global - 1)

  if estimator == "jsd":
    e_pos = jnp.mean(-jax.nn.softplus(-pos))
    e_neg = jnp.sum(jnp.where(is_pos, 0.0, jax.nn.softplus(scores))) / (
        num_neg_local)
    mi = e_pos - e_neg
    loss = -mi
  elif estimator == "dv":
    # Over every negative pair of the global batch: Bg * N * (Bg - 1).
    log_mean_exp = (_logsumexp_global(scores, ~is_pos, None, axis_name)
                    - math.log(b_global * num_local * (b_global - 1)))
    mi = jnp.mean(pos) - log_mean_exp
    loss = -mi
  else:  # infonce
    # Negatives of column c: every local feature of the images != c, over
    # all replicas; summed per column, then read at each local image's own
    # column.
    neg_lse = _logsumexp_global(scores, ~is_pos, (0, 1), axis_name)  # (Bg,)
    neg_lse_own = jnp.take(neg_lse, own)[:, None]                 # (B, 1)
    loss = jnp.mean(jnp.logaddexp(pos, neg_lse_own) - pos)
    mi = math.log(1 + (b_global - 1) * num_local) - loss

  scores_ng = lax.stop_gradient(scores)
  aux = {
      "mi_estimate": lax.stop_gradient(mi),
      "pos_score": jnp.mean(lax.stop_gradient(pos)),
      "neg_score": jnp.sum(jnp.where(is_pos, 0.0, scores_ng)) / num_neg_local,
  }
  return loss, aux


def cpc(
    predictions: jax.Array,
    targets: jax.Array,
    temperature: float | jax.Array = 1.0,
    axis_name: AxisName | None = None,
) -> tuple[jax.Array, dict[str, jax.Array]]:
  r"""Contrastive Predictive Coding's InfoNCE over future latents.

  van den Oord, Li, Vinyals 2018, "Representation Learning with Contrastive
  Predictive Coding" (eq. 4, the log-bilinear :math:`f_k = \exp(z_{t+k}^\top
  W_k c_t)`); Hénaff et al. 2019, "Data-Efficient Image Recognition with
  Contrastive Predictive Coding" (images: rows of patch latents, negatives
  from other locations and other images).

  Shapes and indexing (0-based): a batch of B sequences of T latents
  ``targets[b, t]`` (the encoder outputs :math:`z_t`). ``predictions[b, t,
  k]`` is the prediction made from the context at position t for the latent
  ``k + 1`` steps ahead, i.e. :math:`\hat z = W_{k+1} c_t`, and its positive
  is ``targets[b, t + k + 1]``. Predictions with ``t + k + 1 >= T`` have no
  target: they are masked out (no loss, no gradient). The candidates of
  every prediction are ALL ``B*T`` target latents of the batch (global batch
  with ``axis_name``): the positive and, as negatives, every other position
  of the same sequence and every position of the other sequences. With
  :math:`s(p, z) = p^\top z/\tau`:

  .. math::
     \ell_{b,t,k} = -\log\frac{\exp s(\hat z_{b,t,k}, z_{b,t+k+1})}
       {\sum_{b', t'} \exp s(\hat z_{b,t,k}, z_{b',t'})},
     \qquad \mathcal{L} = \operatorname{mean}_{(b,t,k):\,t+k+1<T}
       \ell_{b,t,k}.

  For CPC v2's image layout (a grid of patch latents ``(B, H, W, D)``,
  predicting k rows below within a column), fold the columns into the batch:
  ``targets.transpose(0, 2, 1, 3).reshape(B * W, H, D)`` and likewise the
  predictions; the candidates are then still all patches of all images.

  Args:
    predictions: ``(B, T, K, D)``; K >= 1 prediction steps.
    targets: ``(B, T, D)``, T >= 2. Targets usually get gradients too (CPC
      trains the encoder through them); ``stop_gradient`` them if you
      prefer.
    temperature: :math:`\tau > 0` dividing the scores (1 = plain CPC).
    axis_name: ``None``, or the mapped device axis name(s): targets of every
      replica are all-gathered (gradients flowing back); the positive of
      local sequence b is global sequence ``b + axis_index * B``. The global
      loss is ``lax.pmean(loss, axis_name)``.

  Returns:
    ``(loss, aux)``: scalar loss; aux (no gradient) over the local valid
    predictions: ``contrastive_acc`` (top-1: the positive scores strictly
    above every other candidate), ``pos_score``, ``neg_score`` (mean
    :math:`p^\top z`), ``mi_lower_bound`` (:math:`\log(\#\text{candidates})
    - \mathcal{L}`, the InfoNCE bound on :math:`I(z_{t+k}; c_t)` in nats,
    averaged over k).
  """
  predictions, targets = jnp.asarray(predictions), jnp.asarray(targets)
  if predictions.ndim != 4 or targets.ndim != 3:
    raise ValueError(
        "cpc expects predictions (B, T, K, D) and targets (B, T, D); got "
        f"{predictions.shape} and {targets.shape}")
  b, t, k, d = predictions.shape
  if targets.shape != (b, t, d):
    raise ValueError(
        f"cpc: targets must be (B, T, D) = {(b, t, d)} to match predictions "
        f"{predictions.shape}; got {targets.shape}")
  if t < 2 or k < 1 or b < 1:
    raise ValueError(
        f"cpc needs B >= 1, T >= 2 and K >= 1 (some t + k + 1 < T); got "
        f"B={b}, T={t}, K={k}")
  _check_temperature(temperature)
  dtype = _compute_dtype(predictions, targets)
  preds = predictions.astype(dtype).reshape(b * t * k, d)
  keys, _ = _gather(targets.astype(dtype).reshape(b * t, d), axis_name)
  if d == 1:
    # A zero second feature (same scores): XLA turns a one-term dot into a
    # multiply that it recomputes inside both the max and the subtraction of
    # the log-sum-exp and contracts the latter into an FMA, so x - max(x)
    # was off by up to ulp(x): e^8000 at scores ~1e11, i.e. NaN.
    preds, keys = (jnp.pad(x, ((0, 0), (0, 1))) for x in (preds, keys))
  # This replica's first sequence in the global batch.
  offset = 0 if axis_name is None else lax.axis_index(axis_name) * b

  bi, ti, ki = jnp.meshgrid(jnp.arange(b), jnp.arange(t), jnp.arange(k),
                            indexing="ij")
  future = (ti + ki + 1).reshape(-1)
  valid = future < t                                             # (BTK,)
  pos_index = ((bi.reshape(-1) + offset) * t
               + jnp.minimum(future, t - 1))                     # clipped

  scores = jnp.matmul(preds, keys.T, precision=lax.Precision.HIGHEST)
  logits = scores / jnp.asarray(temperature, dtype)              # (BTK, Ng)
  is_pos = jnp.arange(keys.shape[0])[None, :] == pos_index[:, None]
  pos_logit = jnp.sum(jnp.where(is_pos, logits, 0.0), axis=1)
  lse = jax.nn.logsumexp(logits, axis=1)
  num_valid = jnp.sum(valid)
  validf = valid.astype(dtype)
  loss = jnp.sum(jnp.where(valid, lse - pos_logit, 0.0)) / num_valid

  logits_ng = lax.stop_gradient(logits)
  scores_ng = lax.stop_gradient(scores)
  max_neg = jnp.max(jnp.where(is_pos, -jnp.inf, logits_ng), axis=1)
  num_neg = keys.shape[0] - 1
  aux = {
      "contrastive_acc": jnp.sum(
          validf * (lax.stop_gradient(pos_logit) > max_neg)) / num_valid,
      "pos_score": jnp.sum(
          validf * jnp.sum(jnp.where(is_pos, scores_ng, 0.0), axis=1))
                   / num_valid,
      "neg_score": jnp.sum(
          validf * jnp.sum(jnp.where(is_pos, 0.0, scores_ng), axis=1))
                   / (num_valid * max(num_neg, 1)),
      "mi_lower_bound": math.log(keys.shape[0]) - lax.stop_gradient(loss),
  }
  return loss, aux
