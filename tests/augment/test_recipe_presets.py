"""Recipe presets as data: MoCo v2, BYOL's asymmetric pair, get_recipe.

The numbers are the papers' (MoCo v2: Chen et al. 2020, "Improved
Baselines"; BYOL: Grill et al. 2020, Table 6). The rate test runs the real
view-2 pipeline on tiny constant images, where solarization and grayscale can
be read off the output exactly.
"""
import jax
import ml_collections
import numpy as np
import pytest

from ssl_jax import augment
from ssl_jax.augment import recipes

FIELDS = ("crop_size", "crop_scale", "crop_ratio", "flip_prob", "jitter_prob",
          "brightness", "contrast", "saturation", "hue", "grayscale_prob",
          "blur_prob", "blur_sigma", "blur_kernel_fraction", "solarize_prob",
          "mean", "std", "dtype", "eval_crop_fraction")


def _jitter(recipe):
  return (recipe.brightness, recipe.contrast, recipe.saturation, recipe.hue)


def test_mocov2_carries_the_paper_numbers():
  recipe = augment.mocov2()
  assert recipe.crop_size == 224
  assert tuple(recipe.crop_scale) == (0.2, 1.0)
  assert tuple(recipe.crop_ratio) == pytest.approx((3 / 4, 4 / 3))
  assert _jitter(recipe) == pytest.approx((0.4, 0.4, 0.4, 0.1))
  assert (recipe.jitter_prob, recipe.grayscale_prob, recipe.blur_prob,
          recipe.flip_prob, recipe.solarize_prob) == (0.8, 0.2, 0.5, 0.5, 0.0)
  assert tuple(recipe.blur_sigma) == (0.1, 2.0)
  assert tuple(recipe.mean) == recipes.IMAGENET_MEAN
  assert tuple(recipe.std) == recipes.IMAGENET_STD
  assert augment.mocov2(crop_size=64).crop_size == 64


def test_byol_pair_is_table_6():
  view1, view2 = augment.byol_pair()
  for recipe in (view1, view2):
    assert recipe.crop_size == 224
    assert tuple(recipe.crop_scale) == (0.08, 1.0)
    assert _jitter(recipe) == pytest.approx((0.4, 0.4, 0.2, 0.1))
    assert (recipe.jitter_prob, recipe.grayscale_prob,
            recipe.flip_prob) == (0.8, 0.2, 0.5)
    assert tuple(recipe.blur_sigma) == (0.1, 2.0)
    assert tuple(recipe.mean) == recipes.IMAGENET_MEAN
  # The asymmetry: blur 1.0 / 0.1, solarize 0.0 / 0.2.
  assert (view1.blur_prob, view2.blur_prob) == (1.0, 0.1)
  assert (view1.solarize_prob, view2.solarize_prob) == (0.0, 0.2)
  # Two independent ConfigDicts: editing one leaves the other alone.
  view1.hue = 0.0
  assert view2.hue == 0.1
  assert augment.byol_pair(crop_size=96)[1].crop_size == 96


def test_get_recipe_names_and_defaults():
  expected = {"simclr_imagenet": 224, "simclr_cifar": 32, "simclr_digits": 8,
              "mocov2": 224, "byol_view1": 224, "byol_view2": 224}
  assert set(recipes.RECIPES) == set(expected)
  for name, default_size in expected.items():
    recipe = augment.get_recipe(name)
    assert isinstance(recipe, ml_collections.ConfigDict)
    assert set(recipe.keys()) == set(FIELDS), name
    assert recipe.crop_size == default_size
    assert augment.get_recipe(name, 48).crop_size == 48
  assert augment.get_recipe("byol_view2").to_dict() == (
      augment.byol_pair()[1].to_dict())
  assert augment.get_recipe("simclr_cifar").to_dict() == (
      augment.simclr_cifar().to_dict())
  # Fresh copies: a caller's edit does not leak into the next lookup.
  augment.get_recipe("mocov2").blur_prob = 0.0
  assert augment.get_recipe("mocov2").blur_prob == 0.5


def test_get_recipe_errors_list_the_names():
  with pytest.raises(ValueError) as info:
    augment.get_recipe("simclr")
  for name in recipes.RECIPES:
    assert name in str(info.value)
  with pytest.raises(ValueError, match="crop_size"):
    augment.get_recipe("mocov2", crop_size=0)


def test_byol_view2_solarizes_and_grays_at_the_paper_rates():
  """Run the whole view-2 pipeline on 6x6 constant images over many keys.

  White image: crop, flip and blur keep it constant; jitter only scales it
  by a brightness factor >= 0.6 (contrast, saturation and hue act trivially
  on gray), so before solarization every pixel is >= 0.6 and after it <= 0.4.
  Coloured image: saturation factors stay >= 0.8, so R == G == B iff the
  grayscale op ran (solarization only flips channels independently).
  """
  _, view2 = augment.byol_pair(crop_size=6)
  n = 2000
  white = np.full((n, 6, 6, 3), 255, np.uint8)
  colour = np.broadcast_to(np.asarray([230, 90, 30], np.uint8),
                           (n, 6, 6, 3))
  images = np.concatenate([white, colour])
  keys = jax.random.split(jax.random.key(0), 2 * n)
  mean = np.asarray(recipes.IMAGENET_MEAN, np.float32)
  std = np.asarray(recipes.IMAGENET_STD, np.float32)

  # One compile only (the dominant cost of this test).
  out = jax.jit(lambda k, x: augment.batch_views(k, x, view2))(keys, images)
  pixels = np.asarray(out) * std + mean  # Back to [0, 1].
  bright, coloured = pixels[:n], pixels[n:]
  assert np.all((bright.max(axis=(1, 2, 3)) <= 0.4 + 1e-4) |
                (bright.min(axis=(1, 2, 3)) >= 0.6 - 1e-4))
  solarize_rate = np.mean(bright.max(axis=(1, 2, 3)) < 0.5)
  spread = coloured.max(axis=-1) - coloured.min(axis=-1)
  gray_rate = np.mean(spread.max(axis=(1, 2)) < 1e-4)
  # Binomial(2000, 0.2): standard deviation 0.009; allow 4.4 of them.
  assert abs(solarize_rate - 0.2) < 0.04, solarize_rate
  assert abs(gray_rate - 0.2) < 0.04, gray_rate
