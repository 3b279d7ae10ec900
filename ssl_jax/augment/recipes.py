"""Augmentation recipes (SimCLR and friends) and the view functions that run them.

A recipe is an ``ml_collections.ConfigDict`` of static, Python-valued fields:

======================  ====================================================
field                   meaning
======================  ====================================================
crop_size               output side of the square view
crop_scale, crop_ratio  RandomResizedCrop area-fraction and aspect ranges
flip_prob               horizontal-flip probability
jitter_prob             probability of applying colour jitter
brightness, contrast,   ColorJitter strengths (factor ranges ``1 +- s``,
saturation, hue         hue ``+- h``)
grayscale_prob          RandomGrayscale probability
blur_prob               Gaussian-blur probability
blur_sigma              ``(min, max)`` of the uniform blur sigma
blur_kernel_fraction    kernel size as a fraction of the side (made odd)
solarize_prob           solarization probability (threshold 0.5)
mean, std               per-channel normalisation (of ``[0, 1]`` pixels)
dtype                   output dtype, ``'float32'`` or ``'bfloat16'``
eval_crop_fraction      central-crop fraction of the eval transform
======================  ====================================================

Presets: :func:`simclr_imagenet`, :func:`simclr_cifar`, :func:`simclr_digits`,
:func:`mocov2` and BYOL's asymmetric :func:`byol_pair` (also as
:func:`byol_view1` / :func:`byol_view2`); :func:`get_recipe` looks them up by
name. They are plain data: copy one and change a field to make a variant.

Because the fields are read at trace time, close over the recipe when
jitting: ``jax.jit(lambda k, x: batch_views(k, x, recipe))``.

The pipeline of :func:`view` is SimCLR's (Chen et al. 2020, appendix A):
random resized crop -> horizontal flip -> colour jitter (random order, with
probability) -> random grayscale -> Gaussian blur -> solarize -> normalise.
"""
from __future__ import annotations

import numbers
from typing import Callable, Dict, Optional, Tuple

import jax
import jax.numpy as jnp
import ml_collections

from ssl_jax.augment import color
from ssl_jax.augment import geometry

Array = jax.Array

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)
# scikit-learn's 8x8 digits, pixel values / 16 (all 1797 images).
DIGITS_MEAN = (0.3053,)
DIGITS_STD = (0.3760,)

_DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}


def _simclr(crop_size: int, strength: float, blur_prob: float,
            mean, std) -> ml_collections.ConfigDict:
  return ml_collections.ConfigDict(dict(
      crop_size=crop_size,
      crop_scale=(0.08, 1.0),
      crop_ratio=(3 / 4, 4 / 3),
      flip_prob=0.5,
      jitter_prob=0.8,
      brightness=0.8 * strength,
      contrast=0.8 * strength,
      saturation=0.8 * strength,
      hue=0.2 * strength,
      grayscale_prob=0.2,
      blur_prob=blur_prob,
      blur_sigma=(0.1, 2.0),
      blur_kernel_fraction=0.1,
      solarize_prob=0.0,
      mean=tuple(mean),
      std=tuple(std),
      dtype="float32",
      eval_crop_fraction=1.0,
  ))


def simclr_imagenet(crop_size: int = 224) -> ml_collections.ConfigDict:
  """SimCLR's ImageNet views: colour strength 1.0, blur p=0.5, no solarize.

  Jitter ``(0.8, 0.8, 0.8, 0.2)`` with p=0.8, grayscale p=0.2, blur sigma
  ``U[0.1, 2]`` with a kernel of 10% of the side; ImageNet mean/std. The eval
  transform is the 0.875 central crop.
  """
  recipe = _simclr(crop_size, 1.0, 0.5, IMAGENET_MEAN, IMAGENET_STD)
  recipe.eval_crop_fraction = 0.875
  return recipe


def simclr_cifar(crop_size: int = 32) -> ml_collections.ConfigDict:
  """SimCLR's CIFAR-10 views (appendix B.9): colour strength 0.5, no blur.

  Jitter ``(0.4, 0.4, 0.4, 0.1)`` with p=0.8, grayscale p=0.2; CIFAR-10
  mean/std; eval uses the full image.
  """
  return _simclr(crop_size, 0.5, 0.0, CIFAR10_MEAN, CIFAR10_STD)


def simclr_digits(crop_size: int = 8) -> ml_collections.ConfigDict:
  """SimCLR-style views for the 8x8 one-channel scikit-learn digits.

  Crops keep at least 30% of the area (an 8x8 image has only 64 pixels), no
  flips (mirrored digits are different symbols), brightness/contrast jitter
  0.4 with p=0.8, no hue/saturation/grayscale (identities on one channel
  anyway), no blur, no solarize. One-channel mean/std of the data set.
  """
  recipe = _simclr(crop_size, 0.5, 0.0, DIGITS_MEAN, DIGITS_STD)
  recipe.crop_scale = (0.3, 1.0)
  recipe.flip_prob = 0.0
  recipe.saturation = 0.0
  recipe.hue = 0.0
  recipe.grayscale_prob = 0.0
  return recipe


def mocov2(crop_size: int = 224) -> ml_collections.ConfigDict:
  """MoCo v2's views (Chen, Fan, Girshick, He 2020, "Improved Baselines with
  Momentum Contrastive Learning", section 2 and its reference code).

  RandomResizedCrop scale ``(0.2, 1)``; colour jitter ``(0.4, 0.4, 0.4, 0.1)``
  with p=0.8; grayscale p=0.2; Gaussian blur p=0.5 with sigma ``U[0.1, 2]``;
  horizontal flip p=0.5; no solarize; ImageNet mean/std; 0.875 central-crop
  eval. MoCo's code blurs with PIL ``GaussianBlur(radius=sigma)``, which has
  no kernel size; here the kernel is SimCLR's 10% of the side (23 taps at
  224, i.e. +- 5.5 sigma at sigma 2), which truncates nothing visible.
  """
  recipe = _simclr(crop_size, 0.5, 0.5, IMAGENET_MEAN, IMAGENET_STD)
  recipe.crop_scale = (0.2, 1.0)
  recipe.eval_crop_fraction = 0.875
  return recipe


def _byol(crop_size: int, blur_prob: float,
          solarize_prob: float) -> ml_collections.ConfigDict:
  recipe = _simclr(crop_size, 1.0, blur_prob, IMAGENET_MEAN, IMAGENET_STD)
  recipe.brightness = 0.4
  recipe.contrast = 0.4
  recipe.saturation = 0.2
  recipe.hue = 0.1
  recipe.solarize_prob = solarize_prob
  recipe.eval_crop_fraction = 0.875
  return recipe


def byol_pair(crop_size: int = 224
             ) -> Tuple[ml_collections.ConfigDict, ml_collections.ConfigDict]:
  """BYOL's asymmetric pair of view recipes ``(view1, view2)``.

  Grill et al. 2020, "Bootstrap Your Own Latent", appendix B, Table 6. Both
  views: RandomResizedCrop scale ``(0.08, 1)``, flip p=0.5, colour jitter
  (brightness 0.4, contrast 0.4, saturation 0.2, hue 0.1) with p=0.8,
  grayscale p=0.2, blur sigma ``U[0.1, 2]`` with a 23x23 kernel at 224 px
  (10% of the side, the convention here). They differ in blur probability (1.0 / 0.1) and solarization
  probability (0.0 / 0.2). ImageNet mean/std; 0.875 central-crop eval.
  """
  return _byol(crop_size, 1.0, 0.0), _byol(crop_size, 0.1, 0.2)


def byol_view1(crop_size: int = 224) -> ml_collections.ConfigDict:
  """First of :func:`byol_pair`: always blurred, never solarized."""
  return byol_pair(crop_size)[0]


def byol_view2(crop_size: int = 224) -> ml_collections.ConfigDict:
  """Second of :func:`byol_pair`: blur p=0.1, solarize p=0.2."""
  return byol_pair(crop_size)[1]


RECIPES: Dict[str, Callable[..., ml_collections.ConfigDict]] = {
    "simclr_imagenet": simclr_imagenet,
    "simclr_cifar": simclr_cifar,
    "simclr_digits": simclr_digits,
    "mocov2": mocov2,
    "byol_view1": byol_view1,
    "byol_view2": byol_view2,
}


def geometric_only(recipe: ml_collections.ConfigDict,
                   crop_scale: Optional[Tuple[float, float]] = None
                   ) -> ml_collections.ConfigDict:
  """A copy of ``recipe`` with its crop, resize and flip and no colour
  distortion (jitter, grayscale, blur, solarize off), for tasks whose
  target is the pixels themselves (MAE, inpainting, colorization,
  super-resolution) and for fine-tuning; ``crop_scale`` replaces the crop's
  area range when given."""
  recipe = recipe.copy_and_resolve_references()
  for field in ("jitter_prob", "grayscale_prob", "blur_prob", "solarize_prob"):
    if field in recipe:
      recipe[field] = 0.0
  if crop_scale is not None:
    recipe.crop_scale = tuple(crop_scale)
  return recipe


def get_recipe(name: str,
               crop_size: Optional[int] = None) -> ml_collections.ConfigDict:
  """The recipe called ``name`` (a key of :data:`RECIPES`), a fresh copy.

  ``crop_size=None`` keeps the recipe's own default (224 for the ImageNet
  recipes, 32 for CIFAR-10, 8 for the digits).
  """
  if name not in RECIPES:
    raise ValueError(f"get_recipe: unknown recipe {name!r}; known recipes: "
                     f"{', '.join(sorted(RECIPES))}.")
  if crop_size is None:
    return RECIPES[name]()
  if isinstance(crop_size, bool) or not isinstance(
      crop_size, numbers.Integral) or crop_size < 1:
    raise ValueError(f"get_recipe: crop_size must be a positive int, got "
                     f"{crop_size!r}.")
  return RECIPES[name](int(crop_size))


# ---------------------------------------------------------------------------
# Input checks.
# ---------------------------------------------------------------------------


def _check_uint8_image(image: Array, fn: str, batched: bool) -> None:
  rank = 4 if batched else 3
  layout = "(B, H, W, C)" if batched else "(H, W, C)"
  if image.dtype != jnp.uint8:
    raise ValueError(
        f"{fn}: expected uint8 pixels in [0, 255], got dtype {image.dtype}. "
        "Decode images to uint8 on the host; for float images in [0, 1] use "
        "(x * 255).round().astype(jnp.uint8), or call the kernels in "
        "ssl_jax.augment.color / geometry directly.")
  if image.ndim != rank:
    hint = (" Use batch_views for a batch." if not batched and image.ndim == 4
            else " Add a channel axis with images[..., None]."
            if image.ndim == rank - 1 else "")
    raise ValueError(f"{fn}: expected rank {rank} {layout}, got shape "
                     f"{tuple(image.shape)}.{hint}")
  if image.shape[-1] not in (1, 3):
    raise ValueError(
        f"{fn}: expected 1 or 3 channels last {layout}, got shape "
        f"{tuple(image.shape)}. Transpose NCHW data to NHWC; drop an alpha "
        "channel with image[..., :3].")


def _check_recipe(recipe: ml_collections.ConfigDict, channels: int) -> None:
  if recipe.dtype not in _DTYPES:
    raise ValueError(f"recipe.dtype must be one of {sorted(_DTYPES)}, got "
                     f"{recipe.dtype!r}.")
  for name in ("flip_prob", "jitter_prob", "grayscale_prob", "blur_prob",
               "solarize_prob"):
    if not 0.0 <= recipe[name] <= 1.0:
      raise ValueError(f"recipe.{name} must be in [0, 1], got {recipe[name]}.")
  for name in ("mean", "std"):
    if len(recipe[name]) not in (1, channels):
      raise ValueError(
          f"recipe.{name} has {len(recipe[name])} entries but the images have "
          f"{channels} channel(s); use a recipe made for this data (e.g. "
          "simclr_digits for 1-channel images) or set recipe.mean/std.")


def _to_float(image: Array) -> Array:
  return image.astype(jnp.float32) / 255.0


# ---------------------------------------------------------------------------
# Views.
# ---------------------------------------------------------------------------


def view(key: Array, image_uint8: Array,
         recipe: ml_collections.ConfigDict) -> Array:
  """One augmented, normalised view of one uint8 HWC image.

  crop (to ``crop_size``, in float, no rounding) -> flip -> colour jitter
  with ``jitter_prob`` -> grayscale -> blur -> solarize -> normalise ->
  cast to ``recipe.dtype``. Returns ``(crop_size, crop_size, C)``.
  """
  _check_uint8_image(image_uint8, "view", batched=False)
  _check_recipe(recipe, image_uint8.shape[-1])
  keys = jax.random.split(key, 6)
  x = _to_float(image_uint8)
  x = geometry.random_resized_crop(keys[0], x, recipe.crop_size,
                                   tuple(recipe.crop_scale),
                                   tuple(recipe.crop_ratio))
  x = geometry.random_flip(keys[1], x, recipe.flip_prob)
  x = color.random_color_jitter(keys[2], x, recipe.jitter_prob,
                                recipe.brightness, recipe.contrast,
                                recipe.saturation, recipe.hue)
  x = color.random_grayscale(keys[3], x, recipe.grayscale_prob)
  x = color.random_gaussian_blur(keys[4], x, recipe.blur_prob,
                                 recipe.blur_sigma[0], recipe.blur_sigma[1],
                                 recipe.blur_kernel_fraction)
  x = color.random_solarize(keys[5], x, recipe.solarize_prob)
  x = color.normalize(x, recipe.mean, recipe.std)
  return x.astype(_DTYPES[recipe.dtype])


def _as_key_batch(keys: Array, batch: int) -> Array:
  keys = jnp.asarray(keys)
  if jnp.issubdtype(keys.dtype, jax.dtypes.prng_key):
    ok = keys.ndim == 1
  else:
    ok = keys.ndim == 2 and keys.dtype == jnp.uint32
  if not ok or keys.shape[0] != batch:
    raise ValueError(
        f"batch_views: expected one key per image, i.e. typed keys of shape "
        f"({batch},) or raw uint32 keys of shape ({batch}, 2); got "
        f"{keys.dtype} {tuple(keys.shape)}. Use jax.random.split(key, {batch}).")
  return keys


def batch_views(keys: Array, images_uint8: Array,
                recipe: ml_collections.ConfigDict) -> Array:
  """``jax.vmap(view)`` over per-image keys and a uint8 NHWC batch.

  ``keys``: typed keys of shape ``(B,)`` or raw ``(B, 2)`` uint32 keys.
  Returns ``(B, crop_size, crop_size, C)`` in ``recipe.dtype``.
  """
  _check_uint8_image(images_uint8, "batch_views", batched=True)
  keys = _as_key_batch(keys, images_uint8.shape[0])
  return jax.vmap(lambda k, x: view(k, x, recipe))(keys, images_uint8)


def eval_view(image_uint8: Array, recipe: ml_collections.ConfigDict) -> Array:
  """Deterministic test-time view: central crop of ``eval_crop_fraction`` of
  the shorter side, bilinear resize to ``crop_size``, normalise, cast."""
  _check_uint8_image(image_uint8, "eval_view", batched=False)
  _check_recipe(recipe, image_uint8.shape[-1])
  x = geometry.center_crop_resize(_to_float(image_uint8), recipe.crop_size,
                                  recipe.get("eval_crop_fraction", 1.0))
  x = color.normalize(x, recipe.mean, recipe.std)
  return x.astype(_DTYPES[recipe.dtype])


def batch_eval_views(images_uint8: Array,
                     recipe: ml_collections.ConfigDict) -> Array:
  """``jax.vmap(eval_view)`` over a uint8 NHWC batch."""
  _check_uint8_image(images_uint8, "batch_eval_views", batched=True)
  return jax.vmap(lambda x: eval_view(x, recipe))(images_uint8)

