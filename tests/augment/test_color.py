"""Colour kernels against PIL, colorsys and scipy references.

Tolerances:
* vs PIL (uint8 in, uint8 out): 2/255 -- PIL truncates blends to uint8 and
  rounds its grey/mean degenerate images, we do not round at all.
* vs float64 numpy / colorsys / scipy references: 1e-5 (float32 arithmetic).
"""
import colorsys
import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.ndimage
from PIL import Image, ImageEnhance, ImageOps

from ssl_jax import augment
from ssl_jax.augment import color

PIL_ATOL = 2.0 / 255.0
FLOAT_ATOL = 1e-5


@pytest.fixture(scope="module")
def rgb_uint8():
  # Non-square so that H/W mix-ups show.
  return np.random.RandomState(0).randint(0, 256, (7, 9, 3)).astype(np.uint8)


def _f(x_uint8):
  return x_uint8.astype(np.float32) / 255.0


def _pil_float(pil_image):
  out = np.asarray(pil_image).astype(np.float32) / 255.0
  return out[..., None] if out.ndim == 2 else out


def _three_sigma_ok(hits, n, p):
  return abs(hits / n - p) <= 3.0 * np.sqrt(p * (1 - p) / n)


# ----------------------------------------------------------------------------
# float64 numpy references of the torchvision float semantics.
# ----------------------------------------------------------------------------


def np_gray(x):
  luma = x @ np.array([0.299, 0.587, 0.114])
  return np.repeat(luma[..., None], 3, axis=-1)


def np_brightness(x, f):
  return np.clip(f * x, 0, 1)


def np_contrast(x, f):
  return np.clip(f * x + (1 - f) * np_gray(x).mean(), 0, 1)


def np_saturation(x, f):
  return np.clip(f * x + (1 - f) * np_gray(x), 0, 1)


def np_hue(x, f):
  out = np.empty_like(x, dtype=np.float64)
  for idx in np.ndindex(x.shape[:2]):
    h, s, v = colorsys.rgb_to_hsv(*x[idx].astype(np.float64))
    out[idx] = colorsys.hsv_to_rgb((h + f) % 1.0, s, v)
  return out


# ----------------------------------------------------------------------------
# Deterministic ops.
# ----------------------------------------------------------------------------


def test_grayscale_matches_pil_and_keeps_channels(rgb_uint8):
  ours = np.asarray(jax.jit(augment.rgb_to_grayscale)(_f(rgb_uint8)))
  assert ours.shape == rgb_uint8.shape
  ref = _pil_float(Image.fromarray(rgb_uint8).convert("L"))
  np.testing.assert_allclose(ours, np.repeat(ref, 3, -1), atol=1.0 / 255)
  np.testing.assert_allclose(ours, np_gray(_f(rgb_uint8)), atol=FLOAT_ATOL)


@pytest.mark.parametrize("factor", [0.4, 1.6])
@pytest.mark.parametrize("name", ["brightness", "contrast", "saturation"])
def test_blend_ops_match_pil_imageenhance(rgb_uint8, name, factor):
  ours_fn, pil_cls, np_fn = {
      "brightness": (augment.adjust_brightness, ImageEnhance.Brightness,
                     np_brightness),
      "contrast": (augment.adjust_contrast, ImageEnhance.Contrast, np_contrast),
      "saturation": (augment.adjust_saturation, ImageEnhance.Color,
                     np_saturation),
  }[name]
  ours = np.asarray(jax.jit(ours_fn)(_f(rgb_uint8), factor))
  ref = _pil_float(pil_cls(Image.fromarray(rgb_uint8)).enhance(factor))
  np.testing.assert_allclose(ours, ref, atol=PIL_ATOL)
  np.testing.assert_allclose(ours, np_fn(_f(rgb_uint8), factor),
                             atol=FLOAT_ATOL)
  assert ours.min() >= 0.0 and ours.max() <= 1.0


def test_rgb_to_hsv_matches_colorsys(rgb_uint8):
  x = _f(rgb_uint8)
  # Include grays, black and white, which take the special branches.
  x[0, :3] = [[0, 0, 0], [1, 1, 1], [0.5, 0.5, 0.5]]
  ours = np.asarray(jax.jit(augment.rgb_to_hsv)(x))
  ref = np.array([colorsys.rgb_to_hsv(*p) for p in x.reshape(-1, 3)
                  .astype(np.float64)]).reshape(x.shape)
  hue_diff = np.abs(ours[..., 0] - ref[..., 0])
  np.testing.assert_allclose(np.minimum(hue_diff, 1 - hue_diff), 0,
                             atol=FLOAT_ATOL)
  np.testing.assert_allclose(ours[..., 1:], ref[..., 1:], atol=FLOAT_ATOL)
  np.testing.assert_allclose(np.asarray(jax.jit(augment.hsv_to_rgb)(ours)), x,
                             atol=FLOAT_ATOL)


@pytest.mark.parametrize("hue_factor", [-0.5, -0.13, 0.3])
def test_adjust_hue_matches_colorsys(rgb_uint8, hue_factor):
  x = _f(rgb_uint8)
  ours = np.asarray(jax.jit(augment.adjust_hue)(x, hue_factor))
  np.testing.assert_allclose(ours, np_hue(x, hue_factor), atol=FLOAT_ATOL)


def test_solarize_matches_pil_exactly(rgb_uint8):
  ours = np.asarray(augment.solarize(_f(rgb_uint8), threshold=128 / 255))
  ref = _pil_float(ImageOps.solarize(Image.fromarray(rgb_uint8), 128))
  np.testing.assert_allclose(ours, ref, atol=1e-6)


def test_one_channel_images(rgb_uint8):
  x = _f(rgb_uint8[..., :1])
  for fn in (augment.rgb_to_grayscale,
             lambda im: augment.adjust_saturation(im, 0.0),
             lambda im: augment.adjust_hue(im, 0.3)):
    np.testing.assert_array_equal(np.asarray(fn(x)), x)
  np.testing.assert_allclose(np.asarray(augment.adjust_brightness(x, 0.5)),
                             0.5 * x, atol=1e-7)
  np.testing.assert_allclose(np.asarray(augment.adjust_contrast(x, 0.5)),
                             0.5 * x + 0.5 * x.mean(), atol=1e-6)


def test_normalize():
  x = np.random.RandomState(1).rand(3, 4, 3).astype(np.float32)
  mean, std = (0.1, 0.2, 0.3), (0.5, 0.25, 2.0)
  np.testing.assert_allclose(np.asarray(augment.normalize(x, mean, std)),
                             (x - np.array(mean)) / np.array(std), atol=1e-6)
  with pytest.raises(ValueError, match="3 channel"):
    augment.normalize(x, (0.1, 0.2), std)


def test_bad_shapes_raise_with_a_fix():
  with pytest.raises(ValueError, match=r"jax.vmap"):
    augment.adjust_brightness(jnp.zeros((2, 4, 4, 3)), 1.0)
  with pytest.raises(ValueError, match=r"transpose"):
    augment.adjust_contrast(jnp.zeros((3, 4, 4)), 1.0)


# ----------------------------------------------------------------------------
# Gaussian blur.
# ----------------------------------------------------------------------------


def test_blur_kernel_size_follows_simclr():
  assert augment.blur_kernel_size(224) == 23
  assert augment.blur_kernel_size(32) == 3
  assert augment.blur_kernel_size(8) == 1
  assert augment.blur_kernel_size(96) == 9


def test_gaussian_kernel_taps():
  taps = np.asarray(augment.gaussian_kernel1d(1.3, 7))
  x = np.arange(-3, 4)
  ref = np.exp(-x**2 / (2 * 1.3**2))
  np.testing.assert_allclose(taps, ref / ref.sum(), atol=1e-7)
  with pytest.raises(ValueError, match="odd"):
    augment.gaussian_kernel1d(1.0, 4)


@pytest.mark.parametrize("padding,mode", [("edge", "nearest"),
                                          ("zero", "constant")])
def test_gaussian_blur_matches_scipy_2d_convolution(padding, mode):
  x = np.random.RandomState(2).rand(9, 11, 3)
  sigma, size = 1.7, 5
  blur = jax.jit(augment.gaussian_blur, static_argnums=(2, 3))
  ours = np.asarray(blur(x.astype(np.float32), sigma, size, padding))
  taps = np.exp(-np.arange(-2, 3)**2 / (2 * sigma**2))
  kernel2d = np.outer(taps, taps) / taps.sum()**2  # Non-separable reference.
  ref = np.stack([scipy.ndimage.convolve(x[..., c], kernel2d, mode=mode,
                                         cval=0.0) for c in range(3)], -1)
  np.testing.assert_allclose(ours, ref, atol=FLOAT_ATOL)


def test_gaussian_blur_edge_keeps_constant_images():
  x = jnp.full((6, 6, 1), 0.7)
  blur = jax.jit(augment.gaussian_blur, static_argnums=2)
  np.testing.assert_allclose(np.asarray(blur(x, 2.0, 5)), 0.7, atol=1e-6)


# ----------------------------------------------------------------------------
# Random ops: rates, factor distributions, random order.
# ----------------------------------------------------------------------------


def test_apply_probabilities_hit_their_rates():
  n = 2000
  keys = jax.random.split(jax.random.key(0), n)
  x = jnp.asarray(np.random.RandomState(3).rand(6, 6, 3).astype(np.float32))

  def changed(key):
    # One key for all three (correlated draws, same marginal rates), which
    # keeps the compiled test small.
    gray = augment.random_grayscale(key, x, 0.2)
    sol = augment.random_solarize(key, x, 0.5)
    # kernel_fraction 0.5 on a 6-pixel side gives a 3-tap kernel.
    blur = augment.random_gaussian_blur(key, x, 0.3, kernel_fraction=0.5)
    return jnp.stack([jnp.any(jnp.abs(y - x) > 1e-6) for y in (gray, sol, blur)])

  hits = np.asarray(jax.jit(jax.vmap(changed))(keys)).sum(0)
  for count, p in zip(hits, (0.2, 0.5, 0.3)):
    assert _three_sigma_ok(count, n, p), (count, p)


def test_random_color_jitter_rate_and_factor_distributions():
  n = 2000
  keys = jax.random.split(jax.random.key(1), n)
  # Pixel 0 is 0.5 gray: hue leaves it alone, brightness f maps it to 0.5 f.
  # Pixel 1 is pure red (hue 0): brightness keeps its hue, so after the hue
  # op its hue is the sampled hue factor mod 1, whatever the order.
  x = jnp.asarray([[[0.5, 0.5, 0.5], [1.0, 0.0, 0.0]]])
  jitter = jax.jit(jax.vmap(lambda k: augment.random_color_jitter(
      k, x, 0.8, brightness=0.8, hue=0.2)))
  out = np.asarray(jitter(keys))
  np.testing.assert_array_equal(out, np.asarray(jitter(keys)))  # Same keys.

  applied = np.abs(out - np.asarray(x)).max(axis=(1, 2, 3)) > 1e-6
  assert _three_sigma_ok(applied.sum(), n, 0.8), applied.mean()
  np.testing.assert_array_equal(out[~applied], np.broadcast_to(x, out[~applied].shape))
  out = out[applied]
  b = out[:, 0, 0, 0] / 0.5
  h = np.array([colorsys.rgb_to_hsv(*p)[0] for p in out[:, 0, 1]])
  h = np.where(h > 0.5, h - 1.0, h)
  m = len(out)
  for values, low, high in ((b, 0.2, 1.8), (h, -0.2, 0.2)):
    assert values.min() >= low - 1e-5 and values.max() <= high + 1e-5
    width = high - low
    # Uniform: mean within 4 standard errors, std close to width / sqrt(12).
    assert abs(values.mean() - (low + high) / 2) < 4 * width / np.sqrt(12 * m)
    np.testing.assert_allclose(values.std(), width / np.sqrt(12), rtol=0.05)
    # And it fills the range: both end deciles are populated.
    assert (values < low + 0.1 * width).mean() > 0.05
    assert (values > high - 0.1 * width).mean() > 0.05


def test_color_jitter_order_covers_all_24_permutations(rgb_uint8):
  x = _f(rgb_uint8).astype(np.float64)
  factors = {"b": 1.5, "c": 0.5, "s": 1.7, "h": 0.25}
  refs = {"b": lambda im: np_brightness(im, factors["b"]),
          "c": lambda im: np_contrast(im, factors["c"]),
          "s": lambda im: np_saturation(im, factors["s"]),
          "h": lambda im: np_hue(im, factors["h"])}
  compositions = {}
  for order in itertools.permutations("bcsh"):
    im = x
    for op in order:
      im = refs[op](im)
    compositions[order] = im
  # The test is only meaningful if the 24 orders give distinct images.
  stacked = np.stack(list(compositions.values()))
  gaps = np.abs(stacked[:, None] - stacked[None]).max(axis=(2, 3, 4))
  assert np.min(gaps + np.eye(24)) > 0.01

  # Degenerate (low, high) ranges pin the factors; the order uniform
  # u[4] sweeps the centres of the 24 cells, one per permutation.
  strengths = ((1.5, 1.5), (0.5, 0.5), (1.7, 1.7), (0.25, 0.25))
  u = np.full((24, color.JITTER_NUM_UNIFORMS), 0.5, np.float32)
  u[:, 4] = (np.arange(24) + 0.5) / 24
  jitter = jax.jit(jax.vmap(lambda uu: color.color_jitter_from_uniforms(
      uu, x.astype(np.float32), *strengths)))
  outs = np.asarray(jitter(jnp.asarray(u)))
  seen = set()
  for out in outs:
    errs = {o: np.abs(out - ref).max() for o, ref in compositions.items()}
    best = min(errs, key=errs.get)
    assert errs[best] < 1e-4, errs[best]
    seen.add(best)
  assert len(seen) == 24  # A bijection onto the 24 orders.


def test_color_jitter_zero_strength_is_identity_and_checks_args(rgb_uint8):
  x = jnp.asarray(_f(rgb_uint8))
  key = jax.random.key(3)
  np.testing.assert_array_equal(np.asarray(augment.color_jitter(key, x)), x)
  with pytest.raises(ValueError, match="hue"):
    augment.color_jitter(key, x, hue=0.7)
  with pytest.raises(ValueError, match="brightness"):
    augment.color_jitter(key, x, brightness=-0.1)
