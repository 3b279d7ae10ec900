"""Photometric augmentation kernels: colour jitter, grayscale, blur, solarize.

Every kernel acts on ONE image: a float array in ``[0, 1]``, layout HWC, with
``C`` in ``{1, 3}``. Batch with ``jax.vmap`` over per-image keys. Random
kernels take an explicit ``key`` first and make one uniform draw from it;
apply-probabilities are selects (``jnp.where``), never Python control flow on
traced values, so everything here works under ``jit``, ``vmap`` and inside
``shard_map``.

Reference semantics are torchvision's functional ops on float tensors
(``torchvision.transforms.functional``), which in turn follow PIL's
``ImageEnhance`` (a blend ``factor * image + (1 - factor) * degenerate``,
clipped to ``[0, 1]``) but without PIL's rounding to uint8:

=====================  =====================================================
op                     degenerate image / definition
=====================  =====================================================
``adjust_brightness``  black
``adjust_contrast``    constant image at the mean of the grayscale image
``adjust_saturation``  the grayscale image
``adjust_hue``         rotate the hue in HSV space by ``hue_factor`` turns
``rgb_to_grayscale``   ITU-R 601-2 luma ``0.299 R + 0.587 G + 0.114 B``
``solarize``           invert pixels ``>= threshold`` (``ImageOps.solarize``)
``gaussian_blur``      separable Gaussian, SimCLR's kernel-size convention
=====================  =====================================================

One-channel images: saturation, hue and grayscale are identities; brightness
and contrast apply with the one-channel mean, as in torchvision.
"""
from __future__ import annotations

import itertools
import math
from typing import Sequence, Tuple, Union

import jax
import jax.numpy as jnp
from jax import lax

Array = jax.Array
Range = Union[float, Tuple[float, float]]

# ITU-R 601-2 luma transform, as used by PIL's ``convert('L')`` and torchvision.
LUMA_WEIGHTS = (0.299, 0.587, 0.114)


def _check_image(image: Array, fn: str) -> None:
  """Static (trace-time) checks on the shape of one HWC image."""
  if image.ndim != 3:
    raise ValueError(
        f"{fn}: expected ONE image of rank 3 (H, W, C), got shape "
        f"{tuple(image.shape)}. Batch with jax.vmap over per-image keys; "
        "add a channel axis to a 2-D grayscale image with image[..., None].")
  if image.shape[-1] not in (1, 3):
    raise ValueError(
        f"{fn}: expected 1 or 3 channels in the last axis (HWC layout), got "
        f"shape {tuple(image.shape)}. If the image is CHW, transpose it with "
        "jnp.transpose(image, (1, 2, 0)).")


def _blend(image: Array, degenerate: Array, factor: Array) -> Array:
  """``clip(factor * image + (1 - factor) * degenerate, 0, 1)``."""
  factor = jnp.asarray(factor, image.dtype)
  return jnp.clip(factor * image + (1.0 - factor) * degenerate, 0.0, 1.0)


# ---------------------------------------------------------------------------
# Deterministic colour ops.
# ---------------------------------------------------------------------------


def rgb_to_grayscale(image: Array) -> Array:
  """ITU-R 601-2 luma, keeping the channel count.

  ``L = 0.299 R + 0.587 G + 0.114 B`` broadcast back to three channels (the
  semantics of ``torchvision.transforms.functional.rgb_to_grayscale(img,
  num_output_channels=3)`` and of PIL ``Image.convert('L').convert('RGB')``
  without PIL's rounding). A one-channel image is returned unchanged.
  """
  _check_image(image, "rgb_to_grayscale")
  if image.shape[-1] == 1:
    return image
  weights = jnp.asarray(LUMA_WEIGHTS, image.dtype)
  luma = jnp.sum(image * weights, axis=-1, keepdims=True)
  return jnp.broadcast_to(luma, image.shape)


def adjust_brightness(image: Array, factor: Array) -> Array:
  """Blend with black: ``clip(factor * image, 0, 1)``.

  Reference: ``torchvision.transforms.functional.adjust_brightness`` /
  ``PIL.ImageEnhance.Brightness(img).enhance(factor)``.
  """
  _check_image(image, "adjust_brightness")
  return _blend(image, jnp.zeros_like(image), factor)


def adjust_contrast(image: Array, factor: Array) -> Array:
  """Blend with a constant image at the mean of the grayscale image.

  Reference: ``torchvision.transforms.functional.adjust_contrast`` /
  ``PIL.ImageEnhance.Contrast`` (PIL additionally rounds the mean to an
  integer grey level). For one-channel images the mean is the plain mean.
  """
  _check_image(image, "adjust_contrast")
  mean = jnp.mean(rgb_to_grayscale(image))
  return _blend(image, mean, factor)


def adjust_saturation(image: Array, factor: Array) -> Array:
  """Blend with the grayscale image (factor 0: gray, 1: unchanged).

  Reference: ``torchvision.transforms.functional.adjust_saturation`` /
  ``PIL.ImageEnhance.Color``. Identity on one-channel images.
  """
  _check_image(image, "adjust_saturation")
  if image.shape[-1] == 1:
    return image
  return _blend(image, rgb_to_grayscale(image), factor)


def rgb_to_hsv(image: Array) -> Array:
  """RGB in ``[0, 1]`` to HSV with every component in ``[0, 1]``.

  Same definition as Python's ``colorsys.rgb_to_hsv``: ``V = max``,
  ``S = (max - min) / max`` (0 for black), hue in turns, 0 for grays.
  """
  r, g, b = image[..., 0], image[..., 1], image[..., 2]
  value = jnp.max(image, axis=-1)
  chroma = value - jnp.min(image, axis=-1)
  safe_value = jnp.where(value > 0, value, 1.0)
  saturation = jnp.where(value > 0, chroma / safe_value, 0.0)
  safe_chroma = jnp.where(chroma > 0, chroma, 1.0)
  # Hue in sextants [0, 6): which channel holds the maximum decides the sector.
  hue_r = jnp.mod((g - b) / safe_chroma, 6.0)
  hue_g = (b - r) / safe_chroma + 2.0
  hue_b = (r - g) / safe_chroma + 4.0
  sextant = jnp.where(value == r, hue_r, jnp.where(value == g, hue_g, hue_b))
  hue = jnp.where(chroma > 0, jnp.mod(sextant / 6.0, 1.0), 0.0)
  return jnp.stack([hue, saturation, value], axis=-1)


def hsv_to_rgb(image: Array) -> Array:
  """Inverse of :func:`rgb_to_hsv` (``colorsys.hsv_to_rgb`` semantics).

  Uses the branch-free form ``C_n = V - V S max(0, min(k, 4 - k, 1))`` with
  ``k = (n + 6 H) mod 6`` and ``n = 5, 3, 1`` for R, G, B.
  """
  hue, saturation, value = image[..., 0:1], image[..., 1:2], image[..., 2:3]
  n = jnp.asarray([5.0, 3.0, 1.0], image.dtype)
  k = jnp.mod(n + 6.0 * hue, 6.0)
  ramp = jnp.clip(jnp.minimum(k, 4.0 - k), 0.0, 1.0)
  return value - value * saturation * ramp


def adjust_hue(image: Array, hue_factor: Array) -> Array:
  """Rotate the hue by ``hue_factor`` turns, ``hue_factor`` in ``[-0.5, 0.5]``.

  Reference: ``torchvision.transforms.functional.adjust_hue`` on float
  images: RGB -> HSV, ``H <- (H + hue_factor) mod 1``, HSV -> RGB. Saturation
  and value are untouched. Identity on one-channel images.
  """
  _check_image(image, "adjust_hue")
  if image.shape[-1] == 1:
    return image
  hsv = rgb_to_hsv(image)
  hue = jnp.mod(hsv[..., 0] + jnp.asarray(hue_factor, image.dtype), 1.0)
  rgb = hsv_to_rgb(jnp.stack([hue, hsv[..., 1], hsv[..., 2]], axis=-1))
  return jnp.clip(rgb, 0.0, 1.0)


def solarize(image: Array, threshold: float = 0.5) -> Array:
  """Invert every pixel ``>= threshold``: ``where(x >= t, 1 - x, x)``.

  Reference: ``PIL.ImageOps.solarize`` (threshold 128 on uint8 is
  ``128 / 255`` here) and ``torchvision.transforms.functional.solarize``.
  """
  _check_image(image, "solarize")
  return jnp.where(image >= threshold, 1.0 - image, image)


def normalize(image: Array, mean: Sequence[float], std: Sequence[float]) -> Array:
  """Per-channel ``(image - mean) / std`` (``torchvision Normalize``).

  ``mean`` and ``std`` have one entry per channel, or one entry for all.
  """
  _check_image(image, "normalize")
  mean = jnp.asarray(mean, image.dtype).reshape(-1)
  std = jnp.asarray(std, image.dtype).reshape(-1)
  channels = image.shape[-1]
  for name, value in (("mean", mean), ("std", std)):
    if value.shape[0] not in (1, channels):
      raise ValueError(
          f"normalize: {name} has {value.shape[0]} entries but the image has "
          f"{channels} channel(s); pass one value per channel or a single "
          "value (e.g. a 1-channel recipe for grayscale data).")
  return (image - mean) / std


# ---------------------------------------------------------------------------
# Gaussian blur.
# ---------------------------------------------------------------------------


def blur_kernel_size(side: int, kernel_fraction: float = 0.1) -> int:
  """Static odd kernel size for an image side, SimCLR's convention.

  SimCLR blurs with ``kernel_size = side // 10`` made odd as
  ``2 * (kernel_size // 2) + 1`` (23 for 224 pixels, 3 for 32, 1 -- i.e. no
  blur -- for sides under 20).
  """
  return 2 * (int(side * kernel_fraction) // 2) + 1


def gaussian_kernel1d(sigma: Array, kernel_size: int) -> Array:
  """Normalised 1-D Gaussian taps ``exp(-x^2 / (2 sigma^2))``,
  ``x = -(k // 2), ..., k // 2`` (torchvision's ``_get_gaussian_kernel1d``)."""
  if kernel_size < 1 or kernel_size % 2 != 1:
    raise ValueError(
        f"gaussian_kernel1d: kernel_size must be a positive odd int, got "
        f"{kernel_size}; use blur_kernel_size(side) for the SimCLR choice.")
  radius = kernel_size // 2
  x = jnp.arange(-radius, radius + 1, dtype=jnp.float32)
  sigma = jnp.asarray(sigma, jnp.float32)
  taps = jnp.exp(-0.5 * jnp.square(x / sigma))
  return taps / jnp.sum(taps)


def _convolve_axis(image: Array, taps: Array, axis: int, padding: str) -> Array:
  """Correlate ``image`` with symmetric ``taps`` along ``axis`` (0 or 1)."""
  kernel_size = taps.shape[0]
  radius = kernel_size // 2
  pad = [(0, 0)] * image.ndim
  pad[axis] = (radius, radius)
  if padding == "edge":
    padded = jnp.pad(image, pad, mode="edge")
  else:
    padded = jnp.pad(image, pad, mode="constant")
  size = image.shape[axis]
  out = jnp.zeros_like(image)
  # Static unrolled shift-and-add: kernel_size slices of static shape.
  for k in range(kernel_size):
    out = out + taps[k].astype(image.dtype) * lax.slice_in_dim(
        padded, k, k + size, axis=axis)
  return out


def gaussian_blur(image: Array, sigma: Array, kernel_size: int,
                  padding: str = "edge") -> Array:
  """Separable Gaussian blur with a static kernel size and traced ``sigma``.

  The image is convolved with :func:`gaussian_kernel1d` along H, then W.
  Border handling (``padding``, static):

  * ``'edge'`` (default): replicate border pixels (``scipy.ndimage``
    ``mode='nearest'``); a constant image stays constant.
  * ``'zero'``: zero padding, as SimCLR's reference TensorFlow code
    (``depthwise_conv2d(..., padding='SAME')``); darkens a ``kernel_size // 2``
    border.

  torchvision pads with ``reflect`` (PyTorch allows it only for a radius
  below the image side); ``'edge'`` is the border-preserving mode that is
  defined for any size, which matters on the tiny images this library also
  trains on. Away from a ``kernel_size // 2`` border all modes agree.
  """
  _check_image(image, "gaussian_blur")
  if padding not in ("edge", "zero"):
    raise ValueError(
        f"gaussian_blur: padding must be 'edge' or 'zero', got {padding!r}.")
  taps = gaussian_kernel1d(sigma, kernel_size)
  if kernel_size == 1:
    return image
  out = _convolve_axis(image, taps, 0, padding)
  out = _convolve_axis(out, taps, 1, padding)
  # Every output is a convex combination of input pixels (and of the zero
  # padding), but the float32 taps sum to 1 only up to rounding: without the
  # clip an all-white image blurred to 1 + 1.2e-7 (and solarize then made
  # it negative), and a constant image did not stay exactly constant.
  low = jnp.min(image, axis=(0, 1))
  high = jnp.max(image, axis=(0, 1))
  if padding == "zero":
    low, high = jnp.minimum(low, 0.0), jnp.maximum(high, 0.0)
  return jnp.clip(out, low, high)


# ---------------------------------------------------------------------------
# Random ops.
# ---------------------------------------------------------------------------


def _apply_with_prob(u: Array, prob: float, fn, image: Array) -> Array:
  """``fn(image)`` if the uniform draw ``u < prob``, else ``image``.

  A select (``jnp.where``), not ``lax.cond``: under ``vmap`` -- the way these
  kernels are meant to run -- a cond on a per-image predicate becomes the
  same select, and in JAX 0.10 ``vmap`` of ``lax.cond`` inside ``shard_map``
  fails its varying-axes check. Static probabilities 0 and 1 are resolved
  at trace time.
  """
  if prob <= 0.0:
    return image
  if prob >= 1.0:
    return fn(image)
  return jnp.where(u < prob, fn(image), image)


def random_grayscale(key: Array, image: Array, prob: float) -> Array:
  """``rgb_to_grayscale`` with probability ``prob`` (``RandomGrayscale``)."""
  _check_image(image, "random_grayscale")
  u = jax.random.uniform(key, (), jnp.float32)
  return _apply_with_prob(u, prob, rgb_to_grayscale, image)


def random_solarize(key: Array, image: Array, prob: float,
                    threshold: float = 0.5) -> Array:
  """``solarize`` with probability ``prob`` (``RandomSolarize``, BYOL)."""
  _check_image(image, "random_solarize")
  u = jax.random.uniform(key, (), jnp.float32)
  return _apply_with_prob(u, prob, lambda x: solarize(x, threshold), image)


def random_gaussian_blur(key: Array, image: Array, prob: float,
                         sigma_min: float = 0.1, sigma_max: float = 2.0,
                         kernel_fraction: float = 0.1,
                         padding: str = "edge") -> Array:
  """Gaussian blur with probability ``prob``, ``sigma ~ U[sigma_min, sigma_max]``.

  Kernel size is static: :func:`blur_kernel_size` of the shorter image side
  (SimCLR: 10% of the side, made odd). Follows SimCLR appendix A / BYOL.
  """
  _check_image(image, "random_gaussian_blur")
  kernel_size = blur_kernel_size(min(image.shape[0], image.shape[1]),
                                 kernel_fraction)
  if kernel_size == 1:
    return image  # A 1-tap normalised Gaussian is the identity.
  u = jax.random.uniform(key, (2,), jnp.float32)
  sigma = sigma_min + u[1] * (sigma_max - sigma_min)
  return _apply_with_prob(
      u[0], prob, lambda x: gaussian_blur(x, sigma, kernel_size, padding),
      image)


def _factor_range(value: Range, name: str, center: float,
                  bound: Tuple[float, float]) -> Tuple[float, float]:
  """ColorJitter's parameter convention: ``v`` -> ``[max(lo, c - v), c + v]``."""
  if isinstance(value, (int, float)):
    if value < 0:
      raise ValueError(f"color_jitter: {name} must be >= 0, got {value}.")
    low, high = center - float(value), center + float(value)
    low = max(low, bound[0])
  else:
    low, high = (float(v) for v in value)
  if not bound[0] <= low <= high <= bound[1]:
    raise ValueError(
        f"color_jitter: {name} range ({low}, {high}) must lie within {bound} "
        "with low <= high.")
  return low, high


# All 24 orders of (brightness, contrast, saturation, hue); a uniform index
# into this table is a uniform random permutation (torch.randperm(4)).
_ORDERS = tuple(itertools.permutations(range(4)))
JITTER_NUM_UNIFORMS = 5


def color_jitter_from_uniforms(uniforms: Array, image: Array,
                               brightness: Range = 0.0, contrast: Range = 0.0,
                               saturation: Range = 0.0,
                               hue: Range = 0.0) -> Array:
  """:func:`color_jitter` given its ``(5,)`` uniform draws in ``[0, 1)``.

  ``uniforms[:4]`` place the brightness, contrast, saturation and hue factors
  in their ranges; ``uniforms[4]`` picks one of the 24 orders.
  """
  _check_image(image, "color_jitter")
  ranges = (
      _factor_range(brightness, "brightness", 1.0, (0.0, math.inf)),
      _factor_range(contrast, "contrast", 1.0, (0.0, math.inf)),
      _factor_range(saturation, "saturation", 1.0, (0.0, math.inf)),
      _factor_range(hue, "hue", 0.0, (-0.5, 0.5)),
  )
  identities = (1.0, 1.0, 1.0, 0.0)
  ops = (adjust_brightness, adjust_contrast, adjust_saturation, adjust_hue)
  active = [r != (c, c) for r, c in zip(ranges, identities)]
  if not any(active):
    return image

  uniforms = jnp.asarray(uniforms, jnp.float32)
  low = jnp.asarray([r[0] for r in ranges], jnp.float32)
  high = jnp.asarray([r[1] for r in ranges], jnp.float32)
  factors = low + uniforms[:4] * (high - low)
  order_index = jnp.minimum(jnp.floor(uniforms[4] * len(_ORDERS)),
                            len(_ORDERS) - 1).astype(jnp.int32)
  order = jnp.asarray(_ORDERS, jnp.int32)[order_index]

  def body(step, x):
    # All four candidates, then a select on this step's op: exactly what a
    # lax.switch turns into under vmap, and (unlike vmap of lax.switch in
    # JAX 0.10) valid inside shard_map. Inactive ops are the identity.
    candidates = [ops[i](x, factors[i]) if active[i] else x for i in range(4)]
    return lax.select_n(order[step], *candidates)

  return lax.fori_loop(0, 4, body, image)


def color_jitter(key: Array, image: Array, brightness: Range = 0.0,
                 contrast: Range = 0.0, saturation: Range = 0.0,
                 hue: Range = 0.0) -> Array:
  """Random brightness, contrast, saturation and hue in a random order.

  Reference: ``torchvision.transforms.ColorJitter``. A scalar strength ``b``
  gives factors ``U[max(0, 1 - b), 1 + b]`` (brightness, contrast,
  saturation) and ``U[-h, h]`` for hue; a ``(low, high)`` pair is used as
  is. The four ops are applied in an order drawn uniformly from the 24
  permutations per image (a ``lax.fori_loop`` over four steps, each
  selecting one op with ``lax.select_n``). An op whose range is degenerate
  at its identity (strength 0) is skipped, as torchvision does.

  Cost: each step evaluates every active op and selects -- what a
  ``lax.switch`` on a per-image index costs under ``vmap`` anyway -- so four
  hue rotations per image whatever the order.
  """
  uniforms = jax.random.uniform(key, (JITTER_NUM_UNIFORMS,), jnp.float32)
  return color_jitter_from_uniforms(uniforms, image, brightness, contrast,
                                    saturation, hue)


def random_color_jitter(key: Array, image: Array, prob: float,
                        brightness: Range = 0.0, contrast: Range = 0.0,
                        saturation: Range = 0.0, hue: Range = 0.0) -> Array:
  """:func:`color_jitter` with probability ``prob`` (``RandomApply``)."""
  _check_image(image, "random_color_jitter")
  u = jax.random.uniform(key, (1 + JITTER_NUM_UNIFORMS,), jnp.float32)
  return _apply_with_prob(
      u[0], prob,
      lambda x: color_jitter_from_uniforms(u[1:], x, brightness, contrast,
                                           saturation, hue), image)
