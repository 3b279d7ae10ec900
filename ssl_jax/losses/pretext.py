"""Pretext-task losses: classification, correspondence, reconstruction, colour.

Pure functions returning ``(scalar loss, aux dict)``; aux values carry no
gradient. Every loss is a mean over the elements it is given (local batch);
under data parallelism with equal local batch sizes the global loss is
``lax.pmean(loss, axis_name)`` -- except for the masked means
(:func:`mae_reconstruction`, :func:`reconstruction` with a mask), which are
ratios of sums: there ``pmean`` weighs every replica equally rather than every
masked element, unless each replica masks the same number of elements (the
usual fixed mask ratio).

* :func:`classification` -- softmax cross-entropy with optional label
  smoothing, for discrete pretext labels: rotation prediction (Gidaris et al.
  2018), jigsaw permutation index (Noroozi & Favaro 2016), relative patch
  position (Doersch et al. 2015), DeepCluster pseudo-labels (Caron et al.
  2018).
* :func:`binary_correspondence` -- sigmoid binary cross-entropy for yes/no
  pretext tasks: audio-visual correspondence (Arandjelovic & Zisserman 2017),
  temporal order verification (Misra et al. 2016).
* :func:`mae_reconstruction` -- MAE's masked-patch MSE with per-patch
  normalised targets (He et al. 2021).
* :func:`colorization` -- Zhang, Isola, Efros 2016's class-rebalanced
  multinomial cross-entropy over quantised ab bins, with the helpers
  :func:`ab_bins`, :func:`soft_encode_ab`, :func:`smooth_ab_distribution`,
  :func:`rebalancing_weights` and :func:`decode_annealed_mean`.
* :func:`reconstruction` -- L1 / L2 pixel losses for inpainting (Pathak et
  al. 2016, masked region only) and super-resolution.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

__all__ = [
    "classification",
    "binary_correspondence",
    "mae_reconstruction",
    "colorization",
    "reconstruction",
    "ab_bins",
    "soft_encode_ab",
    "smooth_ab_distribution",
    "rebalancing_weights",
    "decode_annealed_mean",
    "pointing_attention",
    "colour_by_pointing",
]


def _float(x: Any, name: str) -> jax.Array:
  """``x`` as a float32 (float64 if it already is) array; rejects ints."""
  x = jnp.asarray(x)
  if not jnp.issubdtype(x.dtype, jnp.floating):
    raise TypeError(f"{name} must be floating point, got dtype {x.dtype}")
  return x.astype(jnp.result_type(jnp.float32, x.dtype))


def _safe_ratio(num: jax.Array, den: jax.Array) -> jax.Array:
  """``num / den``, and 0 (with zero gradient) where ``den == 0``."""
  ok = den > 0
  return jnp.where(ok, num / jnp.where(ok, den, 1.0), 0.0)


def _check_positive(value: Any, name: str) -> None:
  if isinstance(value, (int, float)) and not value > 0:
    raise ValueError(f"{name} must be > 0, got {value}")


# ----------------------------------------------------------------------------
# Discrete pretext labels.
# ----------------------------------------------------------------------------
def classification(
    logits: jax.Array,
    labels: jax.Array,
    label_smoothing: float | jax.Array = 0.0,
) -> tuple[jax.Array, dict[str, jax.Array]]:
  r"""Softmax cross-entropy on pretext labels, optionally label-smoothed.

  For logits :math:`s \in \mathbb{R}^{C}` and label :math:`y`, with
  :math:`\log p = \mathrm{log\_softmax}(s)` and smoothing :math:`\epsilon`
  (Szegedy et al. 2016, "Rethinking the Inception Architecture", Sec. 7):

  .. math::
     \ell = -\sum_c \big[(1 - \epsilon)\,\mathbb{1}[c = y]
             + \epsilon / C\big] \log p_c ,

  averaged over all leading positions. The loss for rotation prediction
  (Gidaris et al. 2018, 4 classes), jigsaw puzzles (Noroozi & Favaro 2016,
  index into a permutation set), relative patch position (Doersch et al.
  2015, 8 classes) and DeepCluster (Caron et al. 2018, k-means pseudo-labels).
  Uniform logits give :math:`\log C` for any :math:`\epsilon`.

  Args:
    logits: ``(..., C)`` float logits; computed in float32 (float64 if they
      are float64).
    labels: ``(...)`` integer class indices in ``[0, C)`` (not checked under
      ``jit``: out-of-range labels give meaningless values).
    label_smoothing: :math:`\epsilon \in [0, 1]`.

  Returns:
    ``(loss, aux)``: the scalar mean loss; ``accuracy`` (top-1, ties broken
    towards the lowest index) and ``nll`` (the unsmoothed cross-entropy).
  """
  logits = _float(logits, "logits")
  labels = jnp.asarray(labels)
  if logits.ndim < 1 or labels.shape != logits.shape[:-1]:
    raise ValueError(
        f"labels must have the shape of logits without its last (class) "
        f"axis; got logits {logits.shape} and labels {labels.shape}")
  if not jnp.issubdtype(labels.dtype, jnp.integer):
    raise TypeError(f"labels must be integers, got dtype {labels.dtype}")
  if isinstance(label_smoothing, (int, float)) and not (
      0.0 <= label_smoothing <= 1.0):
    raise ValueError(
        f"label_smoothing must be in [0, 1], got {label_smoothing}")
  logp = jax.nn.log_softmax(logits, axis=-1)
  nll = -jnp.take_along_axis(logp, labels[..., None], axis=-1)[..., 0]
  eps = jnp.asarray(label_smoothing, logp.dtype)
  per_example = (1.0 - eps) * nll - eps * jnp.mean(logp, axis=-1)
  loss = jnp.mean(per_example)
  pred = jnp.argmax(lax.stop_gradient(logits), axis=-1)
  aux = {
      "accuracy": jnp.mean((pred == labels).astype(logp.dtype)),
      "nll": jnp.mean(lax.stop_gradient(nll)),
  }
  return loss, aux


def binary_correspondence(
    logits: jax.Array,
    targets: jax.Array,
) -> tuple[jax.Array, dict[str, jax.Array]]:
  r"""Sigmoid binary cross-entropy for yes/no pretext tasks.

  .. math::
     \ell = -\big[t \log \sigma(s) + (1 - t) \log(1 - \sigma(s))\big]
          = \mathrm{softplus}(s) - t\, s ,

  averaged over all entries (the right-hand form is evaluated: stable for
  any logit). Used for audio-visual correspondence (Arandjelovic & Zisserman
  2017, "Look, Listen and Learn": do this frame and this audio clip belong
  together?) and temporal order verification (Misra, Zitnick, Hebert 2016,
  "Shuffle and Learn": are these frames in the right order?).

  Args:
    logits: float logits of any shape.
    targets: same shape; 0/1 (bool, int or float) or soft targets in [0, 1].

  Returns:
    ``(loss, aux)``: the scalar mean loss and ``accuracy``: the fraction of
    entries where ``logits > 0`` agrees with ``targets > 0.5``.
  """
  logits = _float(logits, "logits")
  targets = jnp.asarray(targets)
  if targets.shape != logits.shape:
    raise ValueError(
        f"logits and targets must have the same shape; got {logits.shape} "
        f"and {targets.shape}")
  t = targets.astype(logits.dtype)
  loss = jnp.mean(jax.nn.softplus(logits) - t * logits)
  agree = (lax.stop_gradient(logits) > 0) == (t > 0.5)
  return loss, {"accuracy": jnp.mean(agree.astype(logits.dtype))}


# ----------------------------------------------------------------------------
# Reconstruction.
# ----------------------------------------------------------------------------
def mae_reconstruction(
    pred_patches: jax.Array,
    target_patches: jax.Array,
    mask: jax.Array,
    norm_pix_loss: bool = True,
) -> tuple[jax.Array, dict[str, jax.Array]]:
  r"""MAE's mean squared error on the masked patches only.

  He, Chen, Xie, Li, Dollar, Girshick 2021, "Masked Autoencoders Are
  Scalable Vision Learners", Sec. 3 ("Reconstruction target"). For patch
  :math:`l` of image :math:`b` with P pixel values, the target is the patch
  itself or, with ``norm_pix_loss``, the patch normalised by its own pixels'
  mean and variance:

  .. math::
     \hat x_{b,l} = \frac{x_{b,l} - \mu_{b,l}}{\sqrt{\sigma^2_{b,l} + 10^{-6}}},
     \qquad
     \mathcal{L} = \frac{\sum_{b,l} m_{b,l} \frac1P \lVert \hat y_{b,l}
                   - \hat x_{b,l} \rVert_2^2}{\sum_{b,l} m_{b,l}},

  where :math:`m_{b,l} = 1` for a masked (removed, to-be-reconstructed)
  patch and 0 for a visible one: visible patches do not contribute at all.
  :math:`\sigma^2` is the unbiased (1/(P-1)) variance, as in the authors'
  code (``Tensor.var``). The target carries no gradient.

  Args:
    pred_patches: ``(B, L, P)`` decoder outputs per patch.
    target_patches: ``(B, L, P)`` patchified images (same patch order).
    mask: ``(B, L)``, 1 (True) for masked patches, 0 for visible ones; soft
      weights are allowed.
    norm_pix_loss: normalise each target patch (the paper's better-performing
      variant, Table 1d). Needs P >= 2.

  Returns:
    ``(loss, aux)``: the scalar loss (0 if nothing is masked) and
    ``mask_ratio`` (mean of ``mask``) and ``visible_loss`` (the same mean
    squared error over the visible patches -- a diagnostic only, not part of
    the loss).
  """
  pred = _float(pred_patches, "pred_patches")
  target = _float(target_patches, "target_patches")
  if pred.ndim != 3 or pred.shape != target.shape:
    raise ValueError(
        f"pred_patches and target_patches must both be (B, L, P); got "
        f"{pred.shape} and {target.shape}")
  mask = jnp.asarray(mask)
  if mask.shape != pred.shape[:2]:
    raise ValueError(
        f"mask must be (B, L) = {pred.shape[:2]}; got {mask.shape}")
  if norm_pix_loss and pred.shape[2] < 2:
    raise ValueError("norm_pix_loss needs at least 2 values per patch")
  dtype = jnp.result_type(pred.dtype, target.dtype)
  pred, target = pred.astype(dtype), lax.stop_gradient(target.astype(dtype))
  mask = mask.astype(dtype)
  if norm_pix_loss:
    mean = jnp.mean(target, axis=-1, keepdims=True)
    centred = target - mean
    # Computed on centred / s, s = the patch's largest |centred| value, so
    # the variance of values above ~1e19 cannot overflow to inf (which
    # normalised such a patch to 0); eps / s / s is the 1e-6 in those units.
    s = jnp.max(jnp.abs(centred), axis=-1, keepdims=True)
    # Clipped to [2^-126, 2^126]: XLA:CPU divides by multiplying with the
    # reciprocal, which flushes to 0 above 2^126.
    s = jnp.where(s > 0, jnp.clip(s, 2.0 ** -126, 2.0 ** 126),
                  jnp.ones_like(s))
    scaled = centred / s
    var = jnp.sum(scaled * scaled, axis=-1, keepdims=True) / (
        target.shape[-1] - 1)
    target = scaled * lax.rsqrt(var + 1e-6 / s / s)
  per_patch = jnp.mean(jnp.square(pred - target), axis=-1)         # (B, L)
  loss = _safe_ratio(jnp.sum(per_patch * mask), jnp.sum(mask))
  per_patch_ng = lax.stop_gradient(per_patch)
  aux = {
      "mask_ratio": jnp.mean(mask),
      "visible_loss": _safe_ratio(jnp.sum(per_patch_ng * (1.0 - mask)),
                                  jnp.sum(1.0 - mask)),
  }
  return loss, aux


def reconstruction(
    pred: jax.Array,
    target: jax.Array,
    mask: jax.Array | None = None,
    kind: str = "l2",
) -> tuple[jax.Array, dict[str, jax.Array]]:
  r"""L2 (mean squared) or L1 (mean absolute) pixel reconstruction loss.

  .. math::
     \mathcal{L}_2 = \frac{\sum_e m_e (\hat x_e - x_e)^2}{\sum_e m_e},
     \qquad
     \mathcal{L}_1 = \frac{\sum_e m_e |\hat x_e - x_e|}{\sum_e m_e},

  over all elements e, with :math:`m \equiv 1` when no mask is given (plain
  mean: super-resolution, denoising, autoencoding). For inpainting (Pathak et
  al. 2016, "Context Encoders", eq. 1) pass the mask of the dropped region so
  only it is scored. The target carries no gradient.

  Args:
    pred: predictions, any shape.
    target: same shape as ``pred``.
    mask: optional; 1 where the loss is taken. Either broadcastable to
      ``pred`` (NumPy rules), or of lower rank matching ``pred``'s LEADING
      axes (e.g. ``(B, H, W)`` for ``(B, H, W, C)`` images), in which case it
      is broadcast over the trailing axes. Soft weights are allowed.
    kind: ``"l2"`` or ``"l1"``.

  Returns:
    ``(loss, aux)``: the scalar loss (0 if the mask is empty), and ``l1`` and
    ``l2``: both (masked) means, whichever ``kind`` is optimised.
  """
  if kind not in ("l1", "l2"):
    raise ValueError(f"kind must be 'l1' or 'l2', got {kind!r}")
  pred = _float(pred, "pred")
  target = _float(target, "target")
  if pred.shape != target.shape:
    raise ValueError(
        f"pred and target must have the same shape; got {pred.shape} and "
        f"{target.shape}")
  dtype = jnp.result_type(pred.dtype, target.dtype)
  diff = pred.astype(dtype) - lax.stop_gradient(target.astype(dtype))
  if mask is None:
    m = jnp.ones(pred.shape, dtype)
  else:
    mask = jnp.asarray(mask)
    if (mask.ndim < pred.ndim
        and mask.shape == pred.shape[:mask.ndim] and mask.ndim > 0):
      mask = mask.reshape(mask.shape + (1,) * (pred.ndim - mask.ndim))
    try:
      m = jnp.broadcast_to(mask.astype(dtype), pred.shape)
    except ValueError as e:
      raise ValueError(
          f"mask of shape {mask.shape} fits neither pred's leading axes nor "
          f"broadcasts to {pred.shape}") from e
  den = jnp.sum(m)
  l1 = _safe_ratio(jnp.sum(m * jnp.abs(diff)), den)
  l2 = _safe_ratio(jnp.sum(m * diff * diff), den)
  loss = l2 if kind == "l2" else l1
  return loss, {"l1": lax.stop_gradient(l1), "l2": lax.stop_gradient(l2)}


# ----------------------------------------------------------------------------
# Colorization (Zhang, Isola, Efros 2016).
# ----------------------------------------------------------------------------
def ab_bins(grid: float = 10.0, extent: float = 110.0) -> jax.Array:
  r"""Quantised ab colour space: centres of a square grid, ``(Q, 2)`` float32.

  Centres are the multiples of ``grid`` in ``[-extent, extent]`` for both a
  and b (grid 10: 23 x 23 = 529 bins), a-major (bin ``i * n + j`` is
  ``(a_i, b_j)``). Zhang et al. 2016 (Sec. 2.1) keep only the Q = 313 bins
  "in gamut"; that set depends on how gamut is judged (their released
  ``pts_in_hull.npy``) and is not reproduced by a simple sRGB check of the
  bin centres, so the full grid is returned here. Bins that never occur get
  near-zero probability in training; to use a reduced set, pass any
  ``(Q, 2)`` array (e.g. the authors' 313 points, or
  ``bins[empirical_distribution > 0]``) wherever ``ab_bins`` is taken.
  """
  _check_positive(grid, "grid")
  k = int(np.floor(extent / grid + 1e-9))
  axis = np.arange(-k, k + 1, dtype=np.float64) * grid
  a, b = np.meshgrid(axis, axis, indexing="ij")
  return jnp.asarray(np.stack([a.ravel(), b.ravel()], axis=-1), jnp.float32)


def _sq_dist_to_bins(ab: jax.Array, bins: jax.Array) -> jax.Array:
  """``(..., Q)`` squared Euclidean distances from ``ab (..., 2)``."""
  d = ab[..., None, :] - bins
  return jnp.sum(d * d, axis=-1)


def soft_encode_ab(
    target_ab: jax.Array,
    ab_bins: jax.Array,  # pylint: disable=redefined-outer-name
    sigma: float = 5.0,
    k: int = 5,
) -> tuple[jax.Array, jax.Array]:
  r"""Soft-encodes ground-truth ab values onto their k nearest bins.

  Zhang et al. 2016, Sec. 2.1: each ground-truth :math:`(a, b)` is spread
  over its k nearest bin centres :math:`c_q` with weights proportional to a
  Gaussian kernel of their distance,

  .. math::
     Z_q \propto \exp\!\big(-\lVert (a, b) - c_q \rVert^2 / (2\sigma^2)\big)
     \ \text{for the k nearest } q, \qquad Z_q = 0 \text{ otherwise},

  normalised to sum to 1 (paper: k = 5, sigma = 5). ``k = 1`` is the hard
  one-hot encoding onto the nearest bin.

  Args:
    target_ab: ``(..., 2)`` ab values.
    ab_bins: ``(Q, 2)`` bin centres.
    sigma: kernel width in ab units (> 0).
    k: number of nearest bins, ``1 <= k <= Q``.

  Returns:
    ``(soft, nearest)``: ``(..., Q)`` soft targets (no gradient) and the
    ``(...)`` integer index of the nearest bin (ties: the lower index), which
    is also the argmax of ``soft``.
  """
  weights, idx = _nearest_bin_weights(target_ab, ab_bins, sigma, k)
  q = jnp.asarray(ab_bins).shape[0]
  soft = jnp.sum(weights[..., None]
                 * jax.nn.one_hot(idx, q, dtype=weights.dtype), axis=-2)
  return soft, idx[..., 0]


def _nearest_bin_weights(target_ab, ab_bins, sigma, k):  # pylint: disable=redefined-outer-name
  """The k nearest bins of every ab value and their normalised Gaussian
  weights: ``(weights (..., k), indices (..., k))``, nearest first (the
  sparse form of :func:`soft_encode_ab`)."""
  target_ab = _float(target_ab, "target_ab")
  bins = _float(ab_bins, "ab_bins").astype(target_ab.dtype)
  if target_ab.ndim < 1 or target_ab.shape[-1] != 2:
    raise ValueError(f"target_ab must be (..., 2); got {target_ab.shape}")
  if bins.ndim != 2 or bins.shape[1] != 2:
    raise ValueError(f"ab_bins must be (Q, 2); got {bins.shape}")
  q = bins.shape[0]
  if not 1 <= k <= q:
    raise ValueError(f"k must be in [1, Q={q}], got {k}")
  _check_positive(sigma, "sigma")
  target_ab = lax.stop_gradient(target_ab)
  neg_d2, idx = lax.top_k(-_sq_dist_to_bins(target_ab, bins), k)   # (..., k)
  # Relative to the nearest bin, so the largest weight is exp(0) = 1.
  w = jnp.exp((neg_d2 - neg_d2[..., :1]) / (2.0 * jnp.square(sigma)))
  return w / jnp.sum(w, axis=-1, keepdims=True), idx


def colorization(
    logits: jax.Array,
    target_ab: jax.Array,
    ab_bins: jax.Array,  # pylint: disable=redefined-outer-name
    class_weights: jax.Array | None = None,
    sigma: float = 5.0,
    k: int = 5,
) -> tuple[jax.Array, dict[str, jax.Array]]:
  r"""Class-rebalanced multinomial cross-entropy over quantised ab colours.

  Zhang, Isola, Efros 2016, "Colorful Image Colorization", eq. 2-4. With the
  predicted distribution :math:`\hat Z_{h,w} = \mathrm{softmax}(s_{h,w})`
  over the Q bins and the soft-encoded ground truth :math:`Z_{h,w}`
  (:func:`soft_encode_ab`),

  .. math::
     \mathcal{L}(\hat Z, Z) = -\frac{1}{BHW} \sum_{b,h,w}
        v(Z_{b,h,w}) \sum_q Z_{b,h,w,q} \log \hat Z_{b,h,w,q},
     \qquad v(Z_{h,w}) = w_{\arg\max_q Z_{h,w,q}},

  with the rebalancing weights w from :func:`rebalancing_weights` (all 1 if
  ``class_weights`` is None). The paper sums over pixels; this averages over
  them (a constant factor). Uniform logits without weights give
  :math:`\log Q`; with ``k = 1`` this is the plain cross-entropy on the
  nearest bin.

  Args:
    logits: ``(B, H, W, Q)`` logits (any leading shape works).
    target_ab: ``(B, H, W, 2)`` ground-truth ab channels (Lab colour space).
    ab_bins: ``(Q, 2)`` bin centres (:func:`ab_bins` or the paper's 313).
    class_weights: optional ``(Q,)`` per-bin weights w.
    sigma: soft-encoding kernel width (paper: 5).
    k: nearest bins in the soft encoding (paper: 5).

  Returns:
    ``(loss, aux)``: the scalar loss; ``accuracy`` (fraction of pixels whose
    predicted argmax bin is the ground truth's nearest bin) and
    ``cross_entropy`` (the mean unweighted cross-entropy against the soft
    targets).
  """
  logits = _float(logits, "logits")
  bins = jnp.asarray(ab_bins)
  if bins.ndim != 2 or logits.shape[-1] != bins.shape[0]:
    raise ValueError(
        f"logits' last axis must have one entry per bin; got logits "
        f"{logits.shape} and ab_bins {bins.shape}")
  target_ab = jnp.asarray(target_ab)
  if target_ab.shape != logits.shape[:-1] + (2,):
    raise ValueError(
        f"target_ab must be {logits.shape[:-1] + (2,)}; got {target_ab.shape}")
  if class_weights is not None:
    class_weights = _float(class_weights, "class_weights")
    if class_weights.shape != (bins.shape[0],):
      raise ValueError(
          f"class_weights must be ({bins.shape[0]},); got "
          f"{class_weights.shape}")
  # The soft targets have k non-zero entries: gather those k log-probs
  # rather than build the (..., Q) target (k / Q of the work).
  soft_weights, idx = _nearest_bin_weights(target_ab, bins, sigma, k)
  nearest = idx[..., 0]
  logp = jax.nn.log_softmax(logits, axis=-1)
  ce = -jnp.sum(soft_weights.astype(logp.dtype)
                * jnp.take_along_axis(logp, idx, axis=-1), axis=-1)
  if class_weights is None:
    weighted = ce
  else:
    w = lax.stop_gradient(class_weights.astype(logp.dtype))
    weighted = w[nearest] * ce
  loss = jnp.mean(weighted)
  pred = jnp.argmax(lax.stop_gradient(logits), axis=-1)
  aux = {
      "accuracy": jnp.mean((pred == nearest).astype(logp.dtype)),
      "cross_entropy": jnp.mean(lax.stop_gradient(ce)),
  }
  return loss, aux


def smooth_ab_distribution(
    distribution: jax.Array,
    ab_bins: jax.Array,  # pylint: disable=redefined-outer-name
    sigma: float = 5.0,
) -> jax.Array:
  r"""Gaussian smoothing of a distribution over ab bins (Zhang et al. Sec. 2.2).

  Each bin's mass is spread over all bins with weights proportional to
  :math:`\exp(-\lVert c_q - c_{q'}\rVert^2 / (2\sigma^2))`, normalised per
  source bin so that no mass is lost at the edge of the bin set:

  .. math::
     \tilde p_q = \sum_{q'} p_{q'}\,
        \frac{G_\sigma(c_q - c_{q'})}{\sum_{r} G_\sigma(c_r - c_{q'})} .

  The input is normalised to sum to 1 first.

  Args:
    distribution: ``(Q,)`` non-negative counts or probabilities.
    ab_bins: ``(Q, 2)`` bin centres.
    sigma: kernel width in ab units (> 0).

  Returns:
    ``(Q,)`` smoothed probabilities :math:`\tilde p`, summing to 1.
  """
  p = _float(distribution, "distribution")
  bins = _float(ab_bins, "ab_bins").astype(p.dtype)
  if p.ndim != 1 or bins.shape != (p.shape[0], 2):
    raise ValueError(
        f"distribution must be (Q,) and ab_bins (Q, 2); got {p.shape} and "
        f"{bins.shape}")
  _check_positive(sigma, "sigma")
  p = p / jnp.sum(p)
  kernel = jnp.exp(-_sq_dist_to_bins(bins, bins) / (2.0 * jnp.square(sigma)))
  kernel = kernel / jnp.sum(kernel, axis=0, keepdims=True)  # column: source
  return jnp.matmul(kernel, p, precision=lax.Precision.HIGHEST)


def rebalancing_weights(
    empirical_distribution: jax.Array,
    lam: float = 0.5,
    sigma: float = 5.0,
    ab_bins: jax.Array | None = None,  # pylint: disable=redefined-outer-name
) -> jax.Array:
  r"""Zhang et al. 2016's class-rebalancing weights (eq. 4).

  .. math::
     w \propto \Big((1 - \lambda)\,\tilde p + \frac{\lambda}{Q}\Big)^{-1},
     \qquad \mathbb{E}_{\tilde p}[w] = \sum_q \tilde p_q w_q = 1,

  where :math:`\tilde p` is the empirical distribution of (nearest) ab bins
  over the training set, smoothed with a Gaussian of width ``sigma``
  (:func:`smooth_ab_distribution`). Rare colours get weights up to about
  :math:`Q / \lambda` times larger than common ones (paper: :math:`\lambda =
  1/2`, :math:`\sigma = 5`).

  Args:
    empirical_distribution: ``(Q,)`` non-negative counts or probabilities
      (normalised here).
    lam: :math:`\lambda \in (0, 1]`, the weight of the uniform mixture.
    sigma: smoothing kernel width; used only with ``ab_bins``.
    ab_bins: ``(Q, 2)`` bin centres. Smoothing needs the bins' positions: if
      None, ``empirical_distribution`` is taken as already smoothed
      (:math:`\tilde p`) and ``sigma`` is ignored.

  Returns:
    ``(Q,)`` weights w with :math:`\sum_q \tilde p_q w_q = 1`.
  """
  p = _float(empirical_distribution, "empirical_distribution")
  if p.ndim != 1 or p.shape[0] < 1:
    raise ValueError(f"empirical_distribution must be (Q,); got {p.shape}")
  if isinstance(lam, (int, float)) and not 0.0 < lam <= 1.0:
    raise ValueError(f"lam must be in (0, 1], got {lam}")
  if ab_bins is None:
    p_smooth = p / jnp.sum(p)
  else:
    p_smooth = smooth_ab_distribution(p, ab_bins, sigma)
  q = p.shape[0]
  w = 1.0 / ((1.0 - lam) * p_smooth + lam / q)
  return w / jnp.sum(p_smooth * w)


def decode_annealed_mean(
    logits: jax.Array,
    ab_bins: jax.Array,  # pylint: disable=redefined-outer-name
    temperature: float = 0.38,
) -> jax.Array:
  r"""Annealed-mean point estimate of ab from per-pixel bin logits.

  Zhang et al. 2016, eq. 5: re-adjust the predicted distribution
  :math:`z = \mathrm{softmax}(s)` by a temperature T and take its mean,

  .. math::
     f_T(z) = \frac{\exp(\log z / T)}{\sum_q \exp(\log z_q / T)}
            = \mathrm{softmax}(s / T), \qquad
     \widehat{ab} = \sum_q f_T(z)_q\, c_q .

  T = 1 is the mean of the distribution, T -> 0 its mode; the paper uses
  T = 0.38.

  Args:
    logits: ``(..., Q)`` logits.
    ab_bins: ``(Q, 2)`` bin centres.
    temperature: T > 0.

  Returns:
    ``(..., 2)`` ab estimates.
  """
  logits = _float(logits, "logits")
  bins = _float(ab_bins, "ab_bins").astype(logits.dtype)
  if bins.ndim != 2 or bins.shape != (logits.shape[-1], 2):
    raise ValueError(
        f"ab_bins must be (Q, 2) with Q = logits.shape[-1]; got logits "
        f"{logits.shape} and ab_bins {bins.shape}")
  _check_positive(temperature, "temperature")
  probs = jax.nn.softmax(logits / temperature, axis=-1)
  return jnp.matmul(probs, bins, precision=lax.Precision.HIGHEST)


# ----------------------------------------------------------------------------
# Colour by pointing (video colorization).
# ----------------------------------------------------------------------------
def pointing_attention(
    target_embeddings: jax.Array,
    reference_embeddings: jax.Array,
    temperature: float = 1.0,
) -> jax.Array:
  r"""Where each target location points in the reference frame.

  Vondrick et al. 2018, "Tracking Emerges by Colorizing Videos", eq. 1:

  .. math::
     A_{ij} = \frac{\exp(f_i^\top f_j / T)}{\sum_k \exp(f_k^\top f_j / T)},

  for reference locations i, k and target location j, with the embeddings f
  of the two frames (the paper's T = 1).

  Args:
    target_embeddings: ``(..., N_target, E)``.
    reference_embeddings: ``(..., N_reference, E)``.
    temperature: T > 0.

  Returns:
    ``(..., N_target, N_reference)``; every row sums to 1.
  """
  target = _float(target_embeddings, "target_embeddings")
  reference = _float(reference_embeddings, "reference_embeddings")
  if target.shape[-1] != reference.shape[-1]:
    raise ValueError(
        f"the embeddings must have one width; got target {target.shape} and "
        f"reference {reference.shape}")
  _check_positive(temperature, "temperature")
  if target.shape[-1] == 1:
    # A zero second feature (same similarities): XLA turns a one-term dot
    # into a multiply that it recomputes inside both the max and the
    # subtraction of the softmax and contracts the latter into an FMA, so
    # x - max(x) was off by up to ulp(x): NaN for similarities above ~1e9.
    pad = [(0, 0)] * (target.ndim - 1) + [(0, 1)]
    target = jnp.pad(target, pad)
    reference = jnp.pad(reference, [(0, 0)] * (reference.ndim - 1) + [(0, 1)])
  similarity = jnp.einsum("...je,...ie->...ji", target, reference,
                          precision=lax.Precision.HIGHEST)
  return jax.nn.softmax(similarity / temperature, axis=-1)


def colour_by_pointing(
    target_embeddings: jax.Array,
    reference_embeddings: jax.Array,
    reference_colours: jax.Array,
    target_colours: jax.Array,
    temperature: float = 1.0,
) -> tuple[jax.Array, dict[str, jax.Array]]:
  r"""Cross-entropy of target colours copied from a reference frame.

  Vondrick et al. 2018, "Tracking Emerges by Colorizing Videos", eq. 2-3:
  the predicted colour distribution of target location j is the
  attention-weighted sum of the reference colours,
  :math:`\hat y_j = \sum_i A_{ij} c_i` (:func:`pointing_attention`), and the
  loss is the categorical cross-entropy against the true target colour
  :math:`y_j` (both over quantised colours, the paper's 16 k-means clusters
  in Lab; any one-hot or soft distributions here),

  .. math::
     \mathcal{L} = -\frac{1}{|J|} \sum_j \sum_q y_{jq}
                   \log \Big(\sum_i A_{ij} c_{iq} + \epsilon\Big),

  with :math:`\epsilon = 10^{-8}`. The only way to lower it is to point
  each target location at reference locations of the same colour, so the
  embeddings learn to match what moved where: the attention is a tracker.

  Args:
    target_embeddings: ``(..., N_target, E)``.
    reference_embeddings: ``(..., N_reference, E)``.
    reference_colours: ``(..., N_reference, Q)`` distributions.
    target_colours: ``(..., N_target, Q)`` distributions.
    temperature: T > 0 of the attention.

  Returns:
    ``(loss, aux)`` with ``aux["accuracy"]``, the fraction of target
    locations whose most likely copied colour is the true one's most likely.
  """
  attention = pointing_attention(target_embeddings, reference_embeddings,
                                 temperature)
  reference_colours = _float(reference_colours, "reference_colours")
  target_colours = lax.stop_gradient(_float(target_colours, "target_colours"))
  predicted = jnp.einsum("...ji,...iq->...jq", attention, reference_colours,
                         precision=lax.Precision.HIGHEST)
  cross_entropy = -jnp.sum(target_colours * jnp.log(predicted + 1e-8), axis=-1)
  accuracy = jnp.mean(jnp.argmax(predicted, -1) == jnp.argmax(target_colours, -1))
  return jnp.mean(cross_entropy), {"accuracy": accuracy}
