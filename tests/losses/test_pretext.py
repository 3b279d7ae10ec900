"""Tests for ssl_jax.losses.pretext.

Every loss is checked against an independent float64 numpy implementation
(MAE's per-patch normalised masked MSE, Zhang et al.'s soft-encoded,
rebalanced cross-entropy, ...) and against analytic cases (perfect
predictions, uniform logits).
"""
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ssl_jax.losses import pretext
from ssl_jax.losses.pretext import (
    ab_bins, binary_correspondence, classification, colorization,
    decode_annealed_mean, mae_reconstruction, rebalancing_weights,
    reconstruction, smooth_ab_distribution, soft_encode_ab)

# Jitted once per shape (eager mode compiles every primitive separately).
_cls = jax.jit(classification)
_bce = jax.jit(binary_correspondence)
_mae = jax.jit(mae_reconstruction, static_argnames="norm_pix_loss")
_rec = jax.jit(reconstruction, static_argnames="kind")
_color = jax.jit(colorization, static_argnames=("k",))
_soft = jax.jit(soft_encode_ab, static_argnames=("k",))
_smooth = jax.jit(smooth_ab_distribution)
_weights = jax.jit(rebalancing_weights)

# A small bin set: multiples of 40 in [-80, 80] (25 bins) keeps Q tiny.
BINS = np.asarray(ab_bins(grid=40.0, extent=80.0))
Q = BINS.shape[0]


def _log_softmax_np(x):
  x = np.asarray(x, np.float64)
  m = x.max(-1, keepdims=True)
  return x - m - np.log(np.exp(x - m).sum(-1, keepdims=True))


# ---------------------------- classification ------------------------------
def classification_numpy(logits, labels, eps):
  logp = _log_softmax_np(logits)
  c = logits.shape[-1]
  target = (1 - eps) * np.eye(c)[labels] + eps / c
  return -(target * logp).sum(-1).mean()


@pytest.mark.parametrize("eps", [0.0, 0.1])
def test_classification_matches_numpy_and_accuracy(eps):
  rng = np.random.default_rng(0)
  logits = (3 * rng.normal(size=(2, 6, 4))).astype(np.float32)
  labels = rng.integers(0, 4, size=(2, 6))
  loss, aux = _cls(logits, labels, eps)
  np.testing.assert_allclose(loss, classification_numpy(logits, labels, eps),
                             rtol=1e-5)
  np.testing.assert_allclose(aux["nll"], classification_numpy(
      logits, labels, 0.0), rtol=1e-5)
  np.testing.assert_allclose(aux["accuracy"],
                             np.mean(logits.argmax(-1) == labels))


def test_classification_analytic_cases():
  labels = np.array([0, 3, 1, 2, 3, 0])
  uniform, aux = _cls(np.zeros((6, 4), np.float32), labels, 0.0)
  np.testing.assert_allclose(uniform, math.log(4), rtol=1e-6)
  np.testing.assert_allclose(_cls(np.zeros((6, 4), np.float32), labels, 0.3)[0],
                             math.log(4), rtol=1e-6)
  perfect, aux = _cls(100.0 * np.eye(4, dtype=np.float32)[labels], labels, 0.0)
  np.testing.assert_allclose(perfect, 0.0, atol=1e-6)
  assert float(aux["accuracy"]) == 1.0


# ------------------------- binary correspondence --------------------------
def test_binary_correspondence_matches_numpy_and_is_stable():
  rng = np.random.default_rng(1)
  logits = (2 * rng.normal(size=(3, 5))).astype(np.float32)
  targets = rng.integers(0, 2, size=(3, 5))
  loss, aux = _bce(logits, targets)
  x = logits.astype(np.float64)
  sig = 1 / (1 + np.exp(-x))
  ref = -np.mean(targets * np.log(sig) + (1 - targets) * np.log(1 - sig))
  np.testing.assert_allclose(loss, ref, rtol=1e-5)
  np.testing.assert_allclose(aux["accuracy"], np.mean((x > 0) == targets))
  # Saturated logits: correct -> ~0, wrong -> |logit|, never inf/nan.
  big = np.array([[200.0, -200.0, 200.0]], np.float32)
  correct, aux_c = jax.jit(binary_correspondence)(big, np.array([[1, 0, 1]]))
  wrong, _ = jax.jit(binary_correspondence)(
      big, np.array([[0.0, 1.0, 0.0]], np.float32))
  np.testing.assert_allclose(correct, 0.0, atol=1e-6)
  np.testing.assert_allclose(wrong, 200.0, rtol=1e-6)
  assert float(aux_c["accuracy"]) == 1.0


# ---------------------------------- MAE -----------------------------------
def mae_numpy(pred, target, mask, norm_pix_loss):
  """MAE's forward_loss, literally (Tensor.var is unbiased: ddof=1)."""
  pred = np.asarray(pred, np.float64)
  target = np.asarray(target, np.float64)
  if norm_pix_loss:
    mean = target.mean(-1, keepdims=True)
    var = target.var(-1, ddof=1, keepdims=True)
    target = (target - mean) / (var + 1.e-6) ** .5
  loss = ((pred - target) ** 2).mean(-1)
  return (loss * mask).sum() / mask.sum()


def _mae_inputs(seed=2, b=2, l=6, p=5):
  rng = np.random.default_rng(seed)
  target = (rng.normal(size=(b, l, p)) * rng.uniform(0.5, 3, size=(b, l, 1))
            + rng.normal(size=(b, l, 1)) * 2).astype(np.float32)
  pred = rng.normal(size=(b, l, p)).astype(np.float32)
  mask = np.zeros((b, l), np.float32)
  mask[0, [0, 2, 3]] = 1
  mask[1, [1, 5]] = 1
  return pred, target, mask


@pytest.mark.parametrize("norm_pix", [True, False])
def test_mae_matches_numpy(norm_pix):
  pred, target, mask = _mae_inputs()
  loss, aux = _mae(pred, target, mask, norm_pix_loss=norm_pix)
  np.testing.assert_allclose(loss, mae_numpy(pred, target, mask, norm_pix),
                             rtol=1e-5)
  np.testing.assert_allclose(aux["mask_ratio"], 5 / 12, rtol=1e-6)
  np.testing.assert_allclose(
      aux["visible_loss"], mae_numpy(pred, target, 1 - mask, norm_pix),
      rtol=1e-5)


def test_mae_ignores_visible_patches():
  pred, target, mask = _mae_inputs()
  loss, _ = _mae(pred, target, mask, norm_pix_loss=True)
  changed = pred.copy()
  changed[mask == 0] += 10.0   # visible patches only
  np.testing.assert_allclose(_mae(changed, target, mask, norm_pix_loss=True)[0],
                             loss, rtol=1e-6)
  g = jax.jit(jax.grad(lambda p: mae_reconstruction(p, target, mask)[0]))(pred)
  g = np.asarray(g)
  assert np.all(g[mask == 0] == 0.0)
  assert np.all(np.abs(g[mask == 1]).max(-1) > 0)
  # Boolean masks work too; nothing masked -> 0, not nan.
  np.testing.assert_allclose(
      _mae(pred, target, mask.astype(bool), norm_pix_loss=True)[0], loss,
      rtol=1e-6)
  np.testing.assert_allclose(
      _mae(pred, target, np.zeros_like(mask), norm_pix_loss=True)[0], 0.0)


def test_mae_norm_pix_normalises_each_patch():
  pred, target, mask = _mae_inputs()
  # The per-patch normalised target (computed independently) is a perfect
  # prediction with norm_pix_loss, the raw target is not ...
  t = target.astype(np.float64)
  normed = (t - t.mean(-1, keepdims=True)) / np.sqrt(
      t.var(-1, ddof=1, keepdims=True) + 1e-6)
  np.testing.assert_allclose(
      _mae(normed.astype(np.float32), target, mask, norm_pix_loss=True)[0],
      0.0, atol=1e-6)
  assert float(_mae(target, target, mask, norm_pix_loss=True)[0]) > 0.1
  # ... while without it the raw target is.
  np.testing.assert_allclose(
      _mae(target, target, mask, norm_pix_loss=False)[0], 0.0, atol=1e-7)
  # Per-patch affine changes of the target (each patch its own scale and
  # shift) leave the normalised loss unchanged, but not the raw one.
  rng = np.random.default_rng(3)
  scale = rng.uniform(0.5, 4.0, size=target.shape[:2] + (1,))
  shift = rng.normal(size=target.shape[:2] + (1,)) * 5
  moved = (target * scale + shift).astype(np.float32)
  np.testing.assert_allclose(
      _mae(pred, moved, mask, norm_pix_loss=True)[0],
      _mae(pred, target, mask, norm_pix_loss=True)[0], rtol=1e-5)
  assert abs(float(_mae(pred, moved, mask, norm_pix_loss=False)[0])
             - float(_mae(pred, target, mask, norm_pix_loss=False)[0])) > 1.0


# ---------------------------- reconstruction ------------------------------
def test_reconstruction_l1_l2_with_and_without_mask():
  rng = np.random.default_rng(4)
  pred = rng.normal(size=(2, 3, 3, 2)).astype(np.float32)
  target = rng.normal(size=(2, 3, 3, 2)).astype(np.float32)
  mask = (rng.uniform(size=(2, 3, 3)) > 0.5).astype(np.float32)
  d = pred.astype(np.float64) - target
  m = np.broadcast_to(mask[..., None], d.shape)
  for kind, err in (("l2", d ** 2), ("l1", np.abs(d))):
    loss, aux = _rec(pred, target, None, kind=kind)
    np.testing.assert_allclose(loss, err.mean(), rtol=1e-5)
    # (B, H, W) mask is broadcast over the channel axis.
    loss_m, aux_m = _rec(pred, target, mask, kind=kind)
    np.testing.assert_allclose(loss_m, (err * m).sum() / m.sum(), rtol=1e-5)
  np.testing.assert_allclose(aux_m["l2"], (d ** 2 * m).sum() / m.sum(),
                             rtol=1e-5)
  np.testing.assert_allclose(aux["l1"], np.abs(d).mean(), rtol=1e-5)
  # A full-rank mask gives the same.
  loss_full, _ = _rec(pred, target, np.array(m, np.float32), kind="l1")
  np.testing.assert_allclose(loss_full, loss_m, rtol=1e-6)
  # Perfect prediction -> 0; errors outside the mask are ignored.
  outside = np.where(m > 0, target, target + 3.0).astype(np.float32)
  np.testing.assert_allclose(_rec(outside, target, mask, kind="l2")[0], 0.0)
  assert float(_rec(outside, target, None, kind="l2")[0]) > 1.0


def test_reconstruction_errors():
  with pytest.raises(ValueError, match="kind"):
    reconstruction(jnp.ones(3), jnp.ones(3), kind="l3")
  with pytest.raises(ValueError, match="same shape"):
    reconstruction(jnp.ones(3), jnp.ones(4))
  with pytest.raises(ValueError, match="mask"):
    reconstruction(jnp.ones((2, 3)), jnp.ones((2, 3)), mask=jnp.ones(4))


# ------------------------------ colorization ------------------------------
def soft_encode_numpy(ab, bins, sigma, k):
  """Brute force: sort the bins by distance, Gaussian-weight the first k."""
  ab = np.asarray(ab, np.float64).reshape(-1, 2)
  out = np.zeros((ab.shape[0], bins.shape[0]))
  for i, x in enumerate(ab):
    d2 = ((bins - x) ** 2).sum(-1)
    near = np.argsort(d2, kind="stable")[:k]
    w = np.exp(-d2[near] / (2 * sigma ** 2))
    out[i, near] = w / w.sum()
  return out


def colorization_numpy(logits, target_ab, bins, weights, sigma, k):
  z = soft_encode_numpy(target_ab, bins, sigma, k)
  logp = _log_softmax_np(logits).reshape(-1, bins.shape[0])
  v = np.ones(z.shape[0]) if weights is None else weights[z.argmax(-1)]
  return np.mean(-v * (z * logp).sum(-1))


def _color_inputs(seed=5):
  rng = np.random.default_rng(seed)
  logits = (2 * rng.normal(size=(2, 3, 3, Q))).astype(np.float32)
  target_ab = rng.uniform(-75, 75, size=(2, 3, 3, 2)).astype(np.float32)
  return logits, target_ab


def test_ab_bins_grid():
  bins = np.asarray(ab_bins())
  assert bins.shape == (23 * 23, 2) and bins.dtype == np.float32
  assert bins.min() == -110 and bins.max() == 110
  assert np.all(np.mod(bins, 10) == 0)
  assert len({tuple(b) for b in bins}) == bins.shape[0]
  assert [0.0, 0.0] in bins.tolist()
  assert BINS.shape == (25, 2)


def test_soft_encoding_matches_numpy():
  _, target_ab = _color_inputs()
  # sigma large enough that all k weights matter with 40-unit bins.
  soft, nearest = _soft(target_ab, BINS, 30.0, k=5)
  ref = soft_encode_numpy(target_ab, BINS, 30.0, 5)
  np.testing.assert_allclose(np.asarray(soft).reshape(-1, Q), ref, rtol=1e-5,
                             atol=1e-7)
  np.testing.assert_array_equal(np.asarray(nearest).ravel(), ref.argmax(-1))
  np.testing.assert_allclose(np.asarray(soft).sum(-1), 1.0, rtol=1e-6)
  assert np.all((np.asarray(soft) > 0).sum(-1) == 5)


@pytest.mark.parametrize("weighted", [False, True])
def test_colorization_matches_numpy(weighted):
  logits, target_ab = _color_inputs()
  weights = (np.random.default_rng(6).uniform(0.2, 5.0, size=Q)
             .astype(np.float32) if weighted else None)
  loss, aux = _color(logits, target_ab, BINS, weights, 30.0, k=5)
  np.testing.assert_allclose(
      loss, colorization_numpy(logits, target_ab, BINS, weights, 30.0, 5),
      rtol=1e-5)
  np.testing.assert_allclose(
      aux["cross_entropy"],
      colorization_numpy(logits, target_ab, BINS, None, 30.0, 5), rtol=1e-5)
  nearest = soft_encode_numpy(target_ab, BINS, 30.0, 1).argmax(-1)
  np.testing.assert_allclose(
      aux["accuracy"], np.mean(logits.reshape(-1, Q).argmax(-1) == nearest))


def test_colorization_k1_is_plain_cross_entropy_and_uniform_is_log_q():
  logits, target_ab = _color_inputs()
  loss, _ = _color(logits, target_ab, BINS, None, 5.0, k=1)
  _, nearest = _soft(target_ab, BINS, 5.0, k=1)
  ce, _ = _cls(logits, nearest, 0.0)
  np.testing.assert_allclose(loss, ce, rtol=1e-6)
  uniform, _ = _color(np.zeros_like(logits), target_ab, BINS, None, 5.0, k=5)
  np.testing.assert_allclose(uniform, math.log(Q), rtol=1e-6)
  # A confident correct one-hot prediction with k=1 costs ~0.
  perfect = 100.0 * np.asarray(jax.nn.one_hot(nearest, Q), np.float32)
  np.testing.assert_allclose(
      _color(perfect, target_ab, BINS, None, 5.0, k=1)[0], 0.0, atol=1e-6)


def test_rebalancing_weights_normalised_and_inverse_to_frequency():
  rng = np.random.default_rng(7)
  counts = rng.integers(0, 50, size=Q).astype(np.float32)
  counts[3] = 0.0
  lam = 0.5
  # Unsmoothed (the distribution is taken as already smoothed).
  w = np.asarray(_weights(counts, lam))
  p = counts / counts.sum()
  np.testing.assert_allclose((p * w).sum(), 1.0, rtol=1e-6)
  ref = 1 / ((1 - lam) * p.astype(np.float64) + lam / Q)
  np.testing.assert_allclose(w, ref / (p * ref).sum(), rtol=1e-5)
  assert np.argmax(w) == np.argmin(p) and np.argmin(w) == np.argmax(p)
  # Smoothed over the bins: normalised under the smoothed distribution.
  p_s = np.asarray(_smooth(counts, BINS, 30.0))
  w_s = np.asarray(_weights(counts, lam, 30.0, ab_bins=BINS))
  np.testing.assert_allclose((p_s * w_s).sum(), 1.0, rtol=1e-6)
  # lam = 1: uniform weights.
  np.testing.assert_allclose(_weights(counts, 1.0), np.ones(Q),
                             rtol=1e-6)


def test_smooth_ab_distribution_matches_numpy():
  rng = np.random.default_rng(8)
  p = rng.uniform(size=Q).astype(np.float32)
  got = np.asarray(_smooth(p, BINS, 30.0))
  d2 = ((BINS[:, None, :].astype(np.float64) - BINS[None]) ** 2).sum(-1)
  g = np.exp(-d2 / (2 * 30.0 ** 2))
  pn = p / p.sum()
  ref = np.array([sum(pn[s] * g[q, s] / g[:, s].sum() for s in range(Q))
                  for q in range(Q)])
  np.testing.assert_allclose(got, ref, rtol=1e-5)
  np.testing.assert_allclose(got.sum(), 1.0, rtol=1e-6)
  # A tiny sigma leaves the distribution unchanged.
  np.testing.assert_allclose(_smooth(p, BINS, 1e-3), pn,
                             rtol=1e-6)


def test_decode_annealed_mean():
  rng = np.random.default_rng(9)
  logits = (2 * rng.normal(size=(2, 3, Q))).astype(np.float32)
  decode = jax.jit(decode_annealed_mean)
  for t in (1.0, 0.38):
    got = decode(logits, BINS, t)
    # f_T(z) from the probabilities, as the paper writes it.
    z = np.exp(_log_softmax_np(logits))
    f = np.exp(np.log(z) / t)
    f /= f.sum(-1, keepdims=True)
    np.testing.assert_allclose(got, f @ BINS, rtol=1e-5, atol=1e-4)
  # T -> 0: the mode.
  np.testing.assert_allclose(decode(logits, BINS, 1e-4),
                             BINS[logits.argmax(-1)], atol=1e-3)


def test_colorization_errors():
  logits, target_ab = _color_inputs()
  with pytest.raises(ValueError, match="one entry per bin"):
    colorization(logits, target_ab, BINS[:-1])
  with pytest.raises(ValueError, match="target_ab"):
    colorization(logits, target_ab[..., :1], BINS)
  with pytest.raises(ValueError, match="k must be"):
    soft_encode_ab(target_ab, BINS, k=Q + 1)
  with pytest.raises(ValueError, match="class_weights"):
    colorization(logits, target_ab, BINS, class_weights=np.ones(3, np.float32))


def test_classification_and_mae_errors():
  with pytest.raises(ValueError, match="labels"):
    classification(jnp.zeros((4, 3)), jnp.zeros((5,), jnp.int32))
  with pytest.raises(TypeError, match="integers"):
    classification(jnp.zeros((4, 3)), jnp.zeros((4,)))
  with pytest.raises(ValueError, match="label_smoothing"):
    classification(jnp.zeros((4, 3)), jnp.zeros((4,), jnp.int32), 1.5)
  with pytest.raises(ValueError, match="mask"):
    mae_reconstruction(jnp.zeros((2, 3, 4)), jnp.zeros((2, 3, 4)),
                       jnp.zeros((2, 4)))
  with pytest.raises(ValueError, match="same shape"):
    binary_correspondence(jnp.zeros(3), jnp.zeros(4))


def test_module_exports():
  for name in pretext.__all__:
    assert callable(getattr(pretext, name))


def test_colour_by_pointing_matches_numpy():
  rng = np.random.default_rng(0)
  target = rng.normal(size=(2, 5, 4)).astype(np.float32)
  reference = rng.normal(size=(2, 6, 4)).astype(np.float32)
  ref_colours = np.eye(3, dtype=np.float32)[rng.integers(0, 3, (2, 6))]
  tgt_colours = np.eye(3, dtype=np.float32)[rng.integers(0, 3, (2, 5))]
  logits = np.einsum("bje,bie->bji", target, reference) / 0.5
  attention = np.exp(logits - logits.max(-1, keepdims=True))
  attention /= attention.sum(-1, keepdims=True)
  np.testing.assert_allclose(
      pretext.pointing_attention(target, reference, 0.5), attention, rtol=1e-5)
  predicted = attention @ ref_colours
  expected = -np.mean(np.sum(tgt_colours * np.log(predicted + 1e-8), -1))
  loss, aux = pretext.colour_by_pointing(target, reference, ref_colours,
                                         tgt_colours, temperature=0.5)
  np.testing.assert_allclose(loss, expected, rtol=1e-5)
  np.testing.assert_allclose(
      aux["accuracy"], np.mean(predicted.argmax(-1) == tgt_colours.argmax(-1)))


def test_colour_by_pointing_is_zero_when_pointing_at_the_same_colour():
  """Each target location embedded like one reference location of its own
  colour (sharply): the copied colour is the true one, the loss ~0."""
  reference = np.eye(4, dtype=np.float32) * 30.0
  order = np.array([2, 0, 3, 1])
  colours = np.eye(2, dtype=np.float32)[[0, 1, 1, 0]]
  loss, aux = pretext.colour_by_pointing(reference[order], reference, colours,
                                         colours[order])
  assert float(loss) < 1e-6 and float(aux["accuracy"]) == 1.0
  # Uniform attention copies the mean colour: the loss is its cross-entropy.
  loss, _ = pretext.colour_by_pointing(np.zeros((4, 3)), np.zeros((4, 3)),
                                       colours, colours)
  np.testing.assert_allclose(loss, -math.log(0.5), rtol=1e-5)
  with pytest.raises(ValueError, match="one width"):
    pretext.pointing_attention(np.zeros((2, 3)), np.zeros((2, 4)))
