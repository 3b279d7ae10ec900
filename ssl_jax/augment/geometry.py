"""Geometric augmentation kernels: random resized crop, flips, rotations.

Every kernel acts on ONE HWC image (float in ``[0, 1]`` unless stated) and is
batched with ``jax.vmap`` over per-image keys. Output shapes are static; crop
boxes are traced values.

Crop-and-resize is a single static-shape op: for each output axis a dense
``(out, in)`` matrix of bilinear weights restricted to the crop box is built
from the (traced) box, and the image is contracted with the two matrices.
This reproduces ``torchvision.transforms.functional.resized_crop`` with
``InterpolationMode.BILINEAR, antialias=True`` -- crop, then PIL-style
bilinear resampling (half-pixel centres, triangle filter widened by the
downscale factor when shrinking, weights renormalised at the borders of the
crop) -- without ever slicing a dynamically sized box.
"""
from __future__ import annotations

import math
from typing import Tuple, Union

import jax
import jax.numpy as jnp
from jax import lax

from ssl_jax.augment.color import _check_image

Array = jax.Array
Size = Union[int, Tuple[int, int]]

NUM_CROP_TRIES = 10  # torchvision RandomResizedCrop.get_params


def _pair(size: Size, name: str) -> Tuple[int, int]:
  if isinstance(size, int):
    size = (size, size)
  size = tuple(int(s) for s in size)
  if len(size) != 2 or min(size) < 1:
    raise ValueError(f"{name}: expected a positive int or (height, width), "
                     f"got {size}.")
  return size


# ---------------------------------------------------------------------------
# Crop-box sampling (torchvision RandomResizedCrop.get_params).
# ---------------------------------------------------------------------------


def crop_box_from_draws(height: int, width: int, area_fractions: Array,
                        log_ratios: Array, offset_uniforms: Array,
                        ratio: Tuple[float, float] = (3 / 4, 4 / 3)) -> Array:
  """The deterministic part of torchvision's crop sampler, given its draws.

  For try ``t``: ``w = round(sqrt(A * a_t * exp(l_t)))``,
  ``h = round(sqrt(A * a_t / exp(l_t)))`` with ``A = height * width``. The first
  try with ``0 < w <= width`` and ``0 < h <= height`` wins; its offsets are
  ``top = floor(u_0 * (height - h + 1))``, ``left = floor(u_1 * (width - w + 1))``
  (a uniform integer in ``[0, height - h]``, ``[0, width - w]``). If no try is
  valid, the fallback is the largest central crop whose aspect ratio is
  clamped to ``ratio``.

  Args:
    height, width: static image size.
    area_fractions: ``(T,)`` target area fractions.
    log_ratios: ``(T,)`` log aspect ratios (width / height).
    offset_uniforms: ``(2,)`` uniforms in ``[0, 1)`` for top and left.
    ratio: static aspect-ratio range, used by the fallback.

  Returns:
    int32 ``[top, left, crop_height, crop_width]``.
  """
  area = float(height * width)
  target = area * area_fractions.astype(jnp.float32)
  aspect = jnp.exp(log_ratios.astype(jnp.float32))
  # jnp.round is round-half-to-even, like Python's round().
  widths = jnp.round(jnp.sqrt(target * aspect)).astype(jnp.int32)
  heights = jnp.round(jnp.sqrt(target / aspect)).astype(jnp.int32)
  valid = ((widths > 0) & (widths <= width) & (heights > 0) &
           (heights <= height))
  first = jnp.argmax(valid)  # Index of the first valid try (0 if none).
  any_valid = jnp.any(valid)

  # Fallback: static, computed in Python exactly as torchvision does.
  in_ratio = width / height
  if in_ratio < min(ratio):
    fb_w = width
    fb_h = int(round(fb_w / min(ratio)))
  elif in_ratio > max(ratio):
    fb_h = height
    fb_w = int(round(fb_h * max(ratio)))
  else:
    fb_w, fb_h = width, height

  crop_h = jnp.where(any_valid, heights[first], fb_h)
  crop_w = jnp.where(any_valid, widths[first], fb_w)
  u = offset_uniforms.astype(jnp.float32)
  top = jnp.minimum(jnp.floor(u[0] * (height - crop_h + 1)).astype(jnp.int32),
                    height - crop_h)
  left = jnp.minimum(jnp.floor(u[1] * (width - crop_w + 1)).astype(jnp.int32),
                     width - crop_w)
  top = jnp.where(any_valid, top, (height - fb_h) // 2)
  left = jnp.where(any_valid, left, (width - fb_w) // 2)
  return jnp.stack([top, left, crop_h, crop_w]).astype(jnp.int32)


def sample_crop_box(key: Array, height: int, width: int,
                    scale: Tuple[float, float] = (0.08, 1.0),
                    ratio: Tuple[float, float] = (3 / 4, 4 / 3)) -> Array:
  """Sample a crop box as ``torchvision.transforms.RandomResizedCrop``.

  Area fraction ``~ U(scale)``, log aspect ratio ``~ U(log ratio)``, 10 tries
  drawn at once, first valid wins, else the clamped central crop (see
  :func:`crop_box_from_draws`). ``height``/``width``/``scale``/``ratio`` are
  static.

  Returns:
    int32 ``[top, left, crop_height, crop_width]``.
  """
  if not 0.0 < scale[0] <= scale[1]:
    raise ValueError(f"sample_crop_box: need 0 < scale[0] <= scale[1], got "
                     f"{scale}.")
  if not 0.0 < ratio[0] <= ratio[1]:
    raise ValueError(f"sample_crop_box: need 0 < ratio[0] <= ratio[1], got "
                     f"{ratio}.")
  # One draw: 10 area fractions, 10 log-ratios, 2 offsets.
  u = jax.random.uniform(key, (2 * NUM_CROP_TRIES + 2,), jnp.float32)
  area_fractions = scale[0] + u[:NUM_CROP_TRIES] * (scale[1] - scale[0])
  log_low, log_high = math.log(ratio[0]), math.log(ratio[1])
  log_ratios = log_low + u[NUM_CROP_TRIES:2 * NUM_CROP_TRIES] * (
      log_high - log_low)
  offset_uniforms = u[2 * NUM_CROP_TRIES:]
  return crop_box_from_draws(height, width, area_fractions, log_ratios,
                             offset_uniforms, ratio)


# ---------------------------------------------------------------------------
# Crop + resize as one static-shape op.
# ---------------------------------------------------------------------------


def _bilinear_weights(start: Array, length: Array, in_size: int,
                      out_size: int, antialias: bool) -> Array:
  """``(out_size, in_size)`` resampling matrix for the interval
  ``[start, start + length)`` of one axis (PIL ``ImagingResample`` semantics).

  Output pixel ``o`` is centred at ``c = start + (o + 0.5) * length / out``;
  input pixel ``i`` (centre ``i + 0.5``) gets the triangle weight
  ``max(0, 1 - |i + 0.5 - c| / s)`` with ``s = max(length / out, 1)`` when
  antialiasing (``s = 1`` otherwise). Pixels outside the interval get zero
  weight and each row is renormalised to sum to one.
  """
  start = jnp.asarray(start, jnp.float32)
  length = jnp.asarray(length, jnp.float32)
  step = length / out_size
  support = jnp.maximum(step, 1.0) if antialias else jnp.float32(1.0)
  centres = start + (jnp.arange(out_size, dtype=jnp.float32) + 0.5) * step
  pixel = jnp.arange(in_size, dtype=jnp.float32) + 0.5
  distance = jnp.abs(pixel[None, :] - centres[:, None]) / support
  weights = jnp.maximum(0.0, 1.0 - distance)
  inside = (pixel >= start) & (pixel < start + length)
  weights = jnp.where(inside[None, :], weights, 0.0)
  # The nearest in-box pixel is within half a pixel, so every row sum > 0.
  return weights / jnp.sum(weights, axis=1, keepdims=True)


def resized_crop(image: Array, box: Array, out_size: Size,
                 antialias: bool = True) -> Array:
  """Crop ``box = [top, left, height, width]`` (traced) and resize bilinearly.

  Reference: ``torchvision.transforms.functional.resized_crop(img, top,
  left, height, width, size, BILINEAR, antialias=True)`` on float images,
  i.e. PIL ``img.crop(box).resize(size, Image.BILINEAR)`` without rounding.
  The output has static shape ``out_size + (C,)`` and the input's float
  dtype (float32 for integer input, which is not rescaled).

  Cost: two dense contractions, ``out_h * H * W * C + out_h * out_w * W * C``
  multiply-adds, in float32 (``Precision.HIGHEST``) so that the result
  matches the reference to 1e-5; on TPU/GPU this is matmul work.
  """
  _check_image(image, "resized_crop")
  out_h, out_w = _pair(out_size, "resized_crop")
  in_h, in_w, _ = image.shape
  box = jnp.asarray(box)
  rows = _bilinear_weights(box[0], box[2], in_h, out_h, antialias)
  cols = _bilinear_weights(box[1], box[3], in_w, out_w, antialias)
  dtype = image.dtype if jnp.issubdtype(image.dtype, jnp.floating) else jnp.float32
  x = image.astype(jnp.float32)
  # Rows of non-negative weights summing to 1: every output is a convex
  # combination of pixels, and the clip to the input's range (per channel)
  # removes the rounding of the weights' sum (an all-white image resized to
  # 1 + 1.2e-7 without it).
  low, high = jnp.min(x, axis=(0, 1)), jnp.max(x, axis=(0, 1))
  x = jnp.einsum("oh,hwc->owc", rows, x, precision=lax.Precision.HIGHEST)
  x = jnp.einsum("pw,owc->opc", cols, x, precision=lax.Precision.HIGHEST)
  return jnp.clip(x, low, high).astype(dtype)


def resize(image: Array, out_size: Size, antialias: bool = True) -> Array:
  """Bilinear resize of the whole image (PIL ``Image.resize(..., BILINEAR)``)."""
  _check_image(image, "resize")
  box = jnp.asarray([0, 0, image.shape[0], image.shape[1]], jnp.int32)
  return resized_crop(image, box, out_size, antialias)


def random_resized_crop(key: Array, image: Array, out_size: int,
                        scale: Tuple[float, float] = (0.08, 1.0),
                        ratio: Tuple[float, float] = (3 / 4, 4 / 3)) -> Array:
  """``torchvision.transforms.RandomResizedCrop(out_size, scale, ratio)``.

  :func:`sample_crop_box` followed by :func:`resized_crop` to
  ``(out_size, out_size)`` with antialiased bilinear interpolation.
  """
  _check_image(image, "random_resized_crop")
  box = sample_crop_box(key, image.shape[0], image.shape[1], scale, ratio)
  return resized_crop(image, box, out_size)


def center_crop_resize(image: Array, out_size: int,
                       crop_fraction: float = 1.0) -> Array:
  """Deterministic eval transform: central square crop, then resize.

  The crop is the centred square of side ``round(crop_fraction * min(H, W))``
  (offsets as ``torchvision CenterCrop``), resized bilinearly (antialiased) to
  ``(out_size, out_size)``. ``crop_fraction=0.875`` is the usual ImageNet
  ``Resize(256) + CenterCrop(224)`` up to the order of crop and resize (the
  same as SimCLR's ``CROP_PROPORTION``).
  """
  _check_image(image, "center_crop_resize")
  if not 0.0 < crop_fraction <= 1.0:
    raise ValueError(f"center_crop_resize: crop_fraction must be in (0, 1], "
                     f"got {crop_fraction}.")
  height, width = image.shape[0], image.shape[1]
  side = max(1, int(round(crop_fraction * min(height, width))))
  top = int(round((height - side) / 2.0))
  left = int(round((width - side) / 2.0))
  box = jnp.asarray([top, left, side, side], jnp.int32)
  return resized_crop(image, box, out_size)


# ---------------------------------------------------------------------------
# Flips and rotations.
# ---------------------------------------------------------------------------


def random_flip(key: Array, image: Array, prob: float = 0.5) -> Array:
  """Horizontal (left-right) flip with probability ``prob``
  (``torchvision.transforms.RandomHorizontalFlip``)."""
  _check_image(image, "random_flip")
  flip = jax.random.uniform(key, (), jnp.float32) < prob
  return jnp.where(flip, image[:, ::-1, :], image)


def rot90(image: Array, k: Array) -> Array:
  """Rotate a square image by ``k * 90`` degrees counter-clockwise.

  ``k`` may be traced (the RotNet pretext task samples it per image); it is
  taken modulo 4 and selects among the four ``jnp.rot90(image, k, axes=(0,
  1))`` (``lax.select_n``: what a ``lax.switch`` becomes under ``vmap``, and
  unlike ``vmap`` of ``lax.switch`` it works inside ``shard_map``). The
  image must be square so that every rotation has the same static shape.
  """
  _check_image(image, "rot90")
  if image.shape[0] != image.shape[1]:
    raise ValueError(
        f"rot90: the image must be square for a traced k (static output "
        f"shape), got {tuple(image.shape)}; center-crop or resize it first, "
        "e.g. with center_crop_resize.")
  rotations = [jnp.rot90(image, i, axes=(0, 1)) for i in range(4)]
  return lax.select_n(jnp.mod(jnp.asarray(k, jnp.int32), 4), *rotations)
