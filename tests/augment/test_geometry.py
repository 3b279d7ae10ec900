"""Geometric kernels against PIL and a direct port of torchvision's sampler.

Tolerances:
* resize / crop+resize vs PIL float ('F' mode) images: 1e-5 (both float32).
* vs PIL uint8 RGB resize: 1/255 + 1e-6 (PIL rounds each of its two passes).
* crop boxes vs the Python reference: exact integers.
* sampler statistics: 4 standard errors on means over 4000 draws.
"""
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image

from ssl_jax import augment
from ssl_jax.augment import geometry


def _pil_resize_float(image, out_hw, box=None):
  """Per-channel PIL bilinear resize of a float image (no uint8 rounding)."""
  chans = []
  for c in range(image.shape[-1]):
    pil = Image.fromarray(np.ascontiguousarray(image[..., c], np.float32))
    if box is not None:
      top, left, h, w = box
      pil = pil.crop((left, top, left + w, top + h))
    chans.append(np.asarray(pil.resize(out_hw[::-1], Image.BILINEAR)))
  return np.stack(chans, -1)


# ----------------------------------------------------------------------------
# Bilinear crop + resize.
# ----------------------------------------------------------------------------


def test_resize_upscale_matches_pil():
  image = np.random.RandomState(0).randint(0, 256, (5, 7, 3)).astype(np.uint8)
  x = image.astype(np.float32) / 255
  ours = np.asarray(jax.jit(augment.resize, static_argnums=1)(x, (7, 9)))
  np.testing.assert_allclose(ours, _pil_resize_float(x, (7, 9)), atol=1e-5)
  pil_rgb = np.asarray(Image.fromarray(image).resize((9, 7), Image.BILINEAR))
  np.testing.assert_allclose(ours, pil_rgb / 255.0, atol=1 / 255 + 1e-6)


@pytest.mark.parametrize("box", [(0, 0, 20, 24),   # full image, downscale
                                 (3, 5, 11, 14),   # crop, downscale
                                 (8, 4, 5, 6),     # crop, upscale
                                 (0, 17, 20, 7)])  # touches the borders
def test_resized_crop_matches_pil_crop_then_resize(box):
  x = np.random.RandomState(1).rand(20, 24, 3).astype(np.float32)
  # One compile for every box: the box is traced, the output size static.
  crop = jax.jit(augment.resized_crop, static_argnums=2)
  ours = np.asarray(crop(x, jnp.asarray(box, jnp.int32), (7, 9)))
  np.testing.assert_allclose(ours, _pil_resize_float(x, (7, 9), box),
                             atol=1e-5)


def test_center_crop_resize():
  x = np.random.RandomState(2).rand(6, 10, 1).astype(np.float32)
  center = jax.jit(augment.center_crop_resize, static_argnums=(1, 2))
  # Same size: the weights are one-hot, so this is an exact crop.
  np.testing.assert_allclose(np.asarray(center(x, 6, 1.0)), x[:, 2:8],
                             atol=1e-6)
  np.testing.assert_allclose(np.asarray(center(x, 4, 4 / 6)), x[1:5, 3:7],
                             atol=1e-6)
  with pytest.raises(ValueError, match="crop_fraction"):
    augment.center_crop_resize(x, 4, crop_fraction=1.5)


# ----------------------------------------------------------------------------
# Crop-box sampler: exact vs torchvision's algorithm, then statistics.
# ----------------------------------------------------------------------------


def ref_crop_box(height, width, area_fracs, log_ratios, offsets, ratio):
  """torchvision RandomResizedCrop.get_params with the draws supplied."""
  area = np.float32(height * width)
  for frac, log_ratio in zip(area_fracs, log_ratios):
    target = area * np.float32(frac)
    aspect = np.exp(np.float32(log_ratio))
    w = int(round(float(np.sqrt(target * aspect))))
    h = int(round(float(np.sqrt(target / aspect))))
    if 0 < w <= width and 0 < h <= height:
      top = int(np.floor(np.float32(offsets[0]) * (height - h + 1)))
      left = int(np.floor(np.float32(offsets[1]) * (width - w + 1)))
      return top, left, h, w
  in_ratio = width / height
  if in_ratio < min(ratio):
    w, h = width, int(round(width / min(ratio)))
  elif in_ratio > max(ratio):
    h, w = height, int(round(height * max(ratio)))
  else:
    w, h = width, height
  return (height - h) // 2, (width - w) // 2, h, w


def test_crop_box_from_draws_matches_torchvision_algorithm():
  n, ratio = 400, (3 / 4, 4 / 3)
  # Landscape, square, and two shapes outside the ratio range (fallback).
  shapes = ((20, 30), (37, 37), (12, 60), (60, 12))
  rng = np.random.RandomState(0)
  fracs = rng.uniform(0.08, 1.0, (n, 10)).astype(np.float32)
  logs = rng.uniform(math.log(ratio[0]), math.log(ratio[1]),
                     (n, 10)).astype(np.float32)
  offsets = rng.uniform(0, 1, (n, 2)).astype(np.float32)

  @jax.jit
  def all_boxes(a, l, o):
    return [jax.vmap(lambda aa, ll, oo, hw=hw: augment.crop_box_from_draws(
        hw[0], hw[1], aa, ll, oo, ratio))(a, l, o) for hw in shapes]

  for (height, width), boxes in zip(shapes, all_boxes(fracs, logs, offsets)):
    boxes = np.asarray(boxes)
    refs = np.array([ref_crop_box(height, width, fracs[i], logs[i],
                                  offsets[i], ratio) for i in range(n)])
    np.testing.assert_array_equal(boxes, refs)
    # Every box lies inside the image.
    assert (boxes[:, :2] >= 0).all() and (boxes[:, 2:] >= 1).all()
    assert (boxes[:, 0] + boxes[:, 2] <= height).all()
    assert (boxes[:, 1] + boxes[:, 3] <= width).all()
    if max(height, width) / min(height, width) > 4:
      # The fallback (ratio-clamped central crop) is exercised here.
      short = min(height, width)
      fallback = tuple(sorted((short, round(short * 4 / 3))))
      assert any(tuple(sorted(b)) == fallback for b in boxes[:, 2:]), (
          height, width)


def test_sample_crop_box_statistics():
  # scale <= 0.5 and ratio in (3/4, 4/3) on 64x96: every try is valid, so
  # the first try is taken and the area fraction is U(0.08, 0.5).
  n, height, width = 4000, 64, 96
  scale, ratio = (0.08, 0.5), (3 / 4, 4 / 3)
  keys = jax.random.split(jax.random.key(0), n)
  boxes = np.asarray(jax.jit(jax.vmap(lambda k: augment.sample_crop_box(
      k, height, width, scale, ratio)))(keys)).astype(np.float64)
  top, left, h, w = boxes.T
  assert (top >= 0).all() and (top + h <= height).all()
  assert (left >= 0).all() and (left + w <= width).all()

  frac = h * w / (height * width)
  log_ratio = np.log(w / h)
  # Rounding w and h to integers moves area and ratio by at most ~0.5 px.
  slack_area = (0.5 * (w + h) + 0.25) / (height * width)
  slack_log = 0.5 / w + 0.5 / h + 1e-3
  assert (frac >= scale[0] - slack_area).all()
  assert (frac <= scale[1] + slack_area).all()
  assert (np.abs(log_ratio) <= math.log(4 / 3) + slack_log).all()

  def close_to(values, expected, width_of_uniform):
    se = width_of_uniform / math.sqrt(12 * n)
    assert abs(values.mean() - expected) < 4 * se, (values.mean(), expected)

  close_to(frac, 0.29, 0.42)  # E[U(0.08, 0.5)]
  close_to(log_ratio, 0.0, 2 * math.log(4 / 3))
  np.testing.assert_allclose(frac.std(), 0.42 / math.sqrt(12), rtol=0.05)
  # Offsets are uniform over the valid positions: mean relative offset 1/2.
  close_to((top + 0.5) / (height - h + 1), 0.5, 1.0)
  close_to((left + 0.5) / (width - w + 1), 0.5, 1.0)


def test_random_resized_crop_jit_vmap_shapes_and_keys():
  images = jnp.asarray(np.random.RandomState(3).rand(4, 16, 20, 3),
                       jnp.float32)
  keys = jax.random.split(jax.random.key(1), 4)

  def crop_two_ways(key, x):
    composed = augment.resized_crop(x, augment.sample_crop_box(key, 16, 20), 8)
    return augment.random_resized_crop(key, x, 8), composed

  rrc = jax.jit(jax.vmap(crop_two_ways))
  out, composed = rrc(keys, images)
  assert out.shape == (4, 8, 8, 3) and out.dtype == jnp.float32
  # Bilinear weights are convex: outputs stay inside the input range.
  assert float(out.min()) >= float(images.min()) - 1e-6
  assert float(out.max()) <= float(images.max()) + 1e-6
  np.testing.assert_array_equal(np.asarray(out),
                                np.asarray(rrc(keys, images)[0]))
  other = rrc(jax.random.split(jax.random.key(2), 4), images)[0]
  assert np.abs(np.asarray(out) - np.asarray(other)).max(axis=(1, 2, 3)).min() > 1e-3
  # It is sample_crop_box followed by resized_crop.
  np.testing.assert_allclose(np.asarray(out), np.asarray(composed), atol=1e-6)


def test_fallback_is_the_ratio_clamped_central_crop():
  # 40x100 (ratio 2.5) with scale ~1: no try fits, so the central crop of
  # ratio 4/3 is taken: h = 40, w = round(53.33) = 53, left = (100-53)//2.
  sample = jax.jit(augment.sample_crop_box, static_argnums=(1, 2, 3))
  box = sample(jax.random.key(0), 40, 100, (0.99, 1.0))
  np.testing.assert_array_equal(np.asarray(box), [0, 23, 40, 53])


# ----------------------------------------------------------------------------
# Flip and rot90.
# ----------------------------------------------------------------------------


def test_random_flip_rate_and_values():
  n = 2000
  x = jnp.asarray(np.random.RandomState(4).rand(3, 4, 1), jnp.float32)
  keys = jax.random.split(jax.random.key(3), n)
  out = np.asarray(jax.jit(jax.vmap(
      lambda k: augment.random_flip(k, x, 0.5)))(keys))
  flipped = np.all(out == np.asarray(x)[:, ::-1], axis=(1, 2, 3))
  kept = np.all(out == np.asarray(x), axis=(1, 2, 3))
  assert (flipped ^ kept).all()
  assert abs(flipped.mean() - 0.5) <= 3 * math.sqrt(0.25 / n)


def test_rot90_with_traced_k():
  x = np.arange(9, dtype=np.float32).reshape(3, 3, 1)  # Distinct pixels.
  rot = jax.jit(augment.rot90)
  for k in range(-1, 6):
    np.testing.assert_array_equal(np.asarray(rot(x, k)),
                                  np.rot90(x, k, axes=(0, 1)))
  with pytest.raises(ValueError, match="square"):
    augment.rot90(jnp.zeros((3, 4, 1)), 1)


def test_bad_inputs_raise():
  with pytest.raises(ValueError, match="rank 3"):
    augment.resize(jnp.zeros((4, 4)), 2)
  with pytest.raises(ValueError, match="scale"):
    augment.sample_crop_box(jax.random.key(0), 8, 8, scale=(0.5, 0.1))
  with pytest.raises(ValueError, match="positive int"):
    geometry.resized_crop(jnp.zeros((4, 4, 3)), jnp.zeros(4, jnp.int32), 0)
