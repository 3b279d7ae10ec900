"""Recipes and the view pipeline: wiring, determinism, shapes, errors.

The kernels themselves are checked against references in test_color.py and
test_geometry.py; here a recipe with every random choice pinned must equal
the hand-composed kernels (tolerance: bfloat16 rounding, 2^-7 relative).
"""
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import Mesh
from jax.sharding import PartitionSpec as P

from ssl_jax import augment
from ssl_jax.augment import color
from ssl_jax.augment import geometry
from ssl_jax.augment import recipes

FIELDS = ("crop_size", "crop_scale", "crop_ratio", "flip_prob", "jitter_prob",
          "brightness", "contrast", "saturation", "hue", "grayscale_prob",
          "blur_prob", "blur_sigma", "blur_kernel_fraction", "solarize_prob",
          "mean", "std", "dtype")


def _images(shape, seed=0):
  return np.random.RandomState(seed).randint(0, 256, shape).astype(np.uint8)


def test_recipes_follow_simclr():
  imagenet, cifar, digits = (augment.simclr_imagenet(), augment.simclr_cifar(),
                             augment.simclr_digits())
  for recipe in (imagenet, cifar, digits):
    for field in FIELDS:
      assert field in recipe, field
  # SimCLR ImageNet: colour strength 1, blur p=0.5, no solarize.
  assert imagenet.crop_size == 224
  assert (imagenet.brightness, imagenet.contrast, imagenet.saturation,
          imagenet.hue) == pytest.approx((0.8, 0.8, 0.8, 0.2))
  assert (imagenet.jitter_prob, imagenet.grayscale_prob, imagenet.blur_prob,
          imagenet.solarize_prob) == (0.8, 0.2, 0.5, 0.0)
  assert tuple(imagenet.crop_scale) == (0.08, 1.0)
  assert tuple(imagenet.blur_sigma) == (0.1, 2.0)
  # SimCLR CIFAR-10 (appendix B.9): strength 0.5, no blur.
  assert cifar.crop_size == 32 and cifar.blur_prob == 0.0
  assert (cifar.brightness, cifar.contrast, cifar.saturation,
          cifar.hue) == pytest.approx((0.4, 0.4, 0.4, 0.1))
  # Digits: one channel, gentler crops, no blur/hue.
  assert digits.crop_size == 8 and tuple(digits.crop_scale) == (0.3, 1.0)
  assert digits.blur_prob == 0.0 and digits.hue == 0.0
  assert len(digits.mean) == len(digits.std) == 1
  assert augment.simclr_imagenet(crop_size=96).crop_size == 96


def test_digits_statistics_match_the_data():
  from sklearn.datasets import load_digits
  pixels = load_digits().images / 16.0
  np.testing.assert_allclose(recipes.DIGITS_MEAN[0], pixels.mean(), atol=1e-3)
  np.testing.assert_allclose(recipes.DIGITS_STD[0], pixels.std(), atol=1e-3)


def test_batch_views_rgb_under_shard_map_shapes_range_and_keys():
  # Run data-parallel over every (simulated) device, as the train step does:
  # vmap inside shard_map is where lax.cond/switch on per-image predicates
  # break in JAX 0.10, so this guards the select-based kernels.
  recipe = augment.simclr_imagenet(crop_size=32)  # 3-tap blur at 32 px.
  mesh = Mesh(np.array(jax.devices()), ("batch",))
  n = mesh.size * max(1, 4 // mesh.size)
  images = _images((n, 40, 36, 3))
  raw_keys = jax.random.key_data(jax.random.split(jax.random.key(0), n))

  @jax.jit  # One compile serves every call below.
  @functools.partial(jax.shard_map, mesh=mesh, in_specs=P("batch"),
                     out_specs=P("batch"))
  def views(raw, imgs):
    return augment.batch_views(jax.random.wrap_key_data(raw), imgs, recipe)

  out = views(raw_keys, images)
  assert out.shape == (n, 32, 32, 3) and out.dtype == jnp.float32
  out = np.asarray(out)
  np.testing.assert_array_equal(out, np.asarray(views(raw_keys, images)))
  mean, std = np.asarray(recipe.mean), np.asarray(recipe.std)
  assert (out >= (0 - mean) / std - 1e-5).all()
  assert (out <= (1 - mean) / std + 1e-5).all()

  # Views of ONE image under different keys are all different.
  same_image = np.repeat(images[:1], n, axis=0)
  other_keys = jax.random.key_data(jax.random.split(jax.random.key(1), n))
  flat = np.asarray(views(other_keys, same_image)).reshape(n, -1)
  gaps = np.abs(flat[:, None] - flat[None]).max(-1) + np.eye(n)
  assert gaps.min() > 1e-2


def test_digits_one_channel_views_and_eval():
  recipe = augment.simclr_digits()
  images = _images((6, 8, 8, 1), seed=1)
  # Raw (B, 2) uint32 keys are accepted as well as typed keys.
  keys = jax.random.key_data(jax.random.split(jax.random.key(2), 6))
  out = jax.jit(lambda k, x: augment.batch_views(k, x, recipe))(keys, images)
  assert out.shape == (6, 8, 8, 1) and out.dtype == jnp.float32
  assert np.isfinite(np.asarray(out)).all()
  evals = jax.jit(lambda x: augment.batch_eval_views(x, recipe))(images)
  expected = (images / 255.0 - recipe.mean[0]) / recipe.std[0]
  np.testing.assert_allclose(np.asarray(evals), expected, atol=1e-5)


def test_pinned_recipe_equals_composed_kernels():
  # Every random choice pinned: full-image crop (scale 1, square image), no
  # flip, no jitter, grayscale, blur with sigma 1 and solarize always on.
  recipe = augment.simclr_imagenet(crop_size=30)
  recipe.update(crop_scale=(1.0, 1.0), flip_prob=0.0, jitter_prob=0.0,
                grayscale_prob=1.0, blur_prob=1.0, blur_sigma=(1.0, 1.0),
                solarize_prob=1.0, mean=(0.5,), std=(0.25,), dtype="bfloat16")
  image = _images((30, 30, 3), seed=2)
  out = jax.jit(lambda k: augment.view(k, image, recipe))(jax.random.key(3))
  assert out.shape == (30, 30, 3) and out.dtype == jnp.bfloat16

  @jax.jit
  def composed(image):
    gray = color.rgb_to_grayscale(image.astype(jnp.float32) / 255.0)
    size = color.blur_kernel_size(30)  # 3 taps.
    in_order = color.solarize(color.gaussian_blur(gray, 1.0, size))
    swapped = color.gaussian_blur(color.solarize(gray), 1.0, size)
    return (in_order - 0.5) / 0.25, (swapped - 0.5) / 0.25

  expected, swapped = map(np.asarray, composed(image))
  np.testing.assert_allclose(np.asarray(out, np.float32), expected,
                             atol=2.0 ** -7 * 2.0)
  # The check can fail: the other order gives a clearly different image.
  assert np.abs(swapped - expected).max() > 0.1


def test_eval_view_center_crops_and_normalises():
  recipe = augment.simclr_imagenet(crop_size=16)  # eval crop fraction 0.875
  image = _images((20, 24, 3), seed=4)

  @jax.jit
  def both(x):
    by_hand = geometry.resized_crop(
        x.astype(jnp.float32) / 255.0,
        jnp.asarray([1, 3, 18, 18]),  # side round(0.875 * 20) = 18, centred.
        16)
    return (augment.eval_view(x, recipe),
            color.normalize(by_hand, recipe.mean, recipe.std))

  out, expected = both(image)
  assert out.shape == (16, 16, 3)
  np.testing.assert_allclose(np.asarray(out), np.asarray(expected), atol=1e-5)


def test_bad_inputs_name_the_problem_and_the_fix():
  recipe = augment.simclr_cifar()
  key = jax.random.key(0)
  with pytest.raises(ValueError, match=r"uint8.*astype"):
    augment.view(key, jnp.zeros((32, 32, 3), jnp.float32), recipe)
  with pytest.raises(ValueError, match=r"rank 3.*\[\.\.\., None\]"):
    augment.view(key, jnp.zeros((32, 32), jnp.uint8), recipe)
  with pytest.raises(ValueError, match=r"batch_views"):
    augment.view(key, jnp.zeros((2, 32, 32, 3), jnp.uint8), recipe)
  with pytest.raises(ValueError, match=r"channels.*alpha"):
    augment.view(key, jnp.zeros((32, 32, 4), jnp.uint8), recipe)
  with pytest.raises(ValueError, match=r"mean has 3 entries.*simclr_digits"):
    augment.view(key, jnp.zeros((32, 32, 1), jnp.uint8), recipe)
  with pytest.raises(ValueError, match=r"one key per image.*split"):
    augment.batch_views(jax.random.split(key, 3),
                        jnp.zeros((2, 32, 32, 3), jnp.uint8), recipe)
  with pytest.raises(ValueError, match=r"rank 4"):
    augment.batch_eval_views(jnp.zeros((32, 32, 3), jnp.uint8), recipe)
  bad = augment.simclr_cifar()
  bad.dtype = "float16"
  with pytest.raises(ValueError, match="dtype"):
    augment.view(key, jnp.zeros((32, 32, 3), jnp.uint8), bad)
