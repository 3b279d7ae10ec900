"""Property-based fuzzing (hypothesis) of the kernels in ssl_jax.augment.

Images are drawn with the extremes on purpose: all black, all white,
constant (grey or one colour), pure black-and-white, uniform noise, and
pixels picked one by one by hypothesis (which likes 0, 1, repeats and
subnormal values); one-channel, square RGB and non-square RGB layouts.
The properties are the documented contracts:

* the output shape and dtype, finite values, and the documented range
  (``[0, 1]`` for the colour kernels; the input's own range for the
  convex resamplings: blur, resize, box downsampling; the normalised range
  for the recipe views);
* a fixed key gives the same output twice; probabilities 0 and 1 are
  identity and the op;
* kernels that move pixels (flip, rot90, jigsaw tiles, relative-position
  patches, patchify) keep the pixel values exactly, where they came from;
* documented identities: constant images stay constant under blur and
  resize, hue rotation keeps grey pixels and each pixel's max and min,
  Lab round-trips, patchify inverts, identical frames have zero flow, a
  louder signal's log-mel is shifted by log(gain^2).

Shapes come from small fixed sets and every kernel is a jitted function
of arrays, so XLA compiles each (kernel, shape) once. Hypothesis is
derandomised with no example database, so CI runs the same examples.
"""
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from ssl_jax import augment
from ssl_jax.augment import color, flow, geometry, pretext, recipes

FUZZ = settings(max_examples=15, deadline=None, derandomize=True,
                database=None, print_blob=True,
                suppress_health_check=[HealthCheck.too_slow,
                                       HealthCheck.data_too_large])
# The recipe views compile a whole pipeline per shape: fewer examples.
FUZZ_SLOW = settings(FUZZ, max_examples=8)

# One channel, square RGB, non-square RGB (H/W mix-ups show).
IMAGE_SHAPES = ((8, 8, 1), (8, 8, 3), (12, 16, 3))
SQUARE_SHAPES = ((8, 8, 1), (8, 8, 3))
KINDS = ("uniform", "black", "white", "constant", "binary", "pixels")


@st.composite
def images(draw, shapes=IMAGE_SHAPES):
  """A float32 HWC image in [0, 1] of one of ``shapes``."""
  shape = draw(st.sampled_from(shapes))
  kind = draw(st.sampled_from(KINDS))
  if kind == "pixels":
    return draw(hnp.arrays(np.float32, shape,
                           elements=st.floats(0.0, 1.0, width=32)))
  if kind == "black":
    return np.zeros(shape, np.float32)
  if kind == "white":
    return np.ones(shape, np.float32)
  if kind == "constant":  # one colour (grey when the values agree)
    values = draw(st.lists(st.floats(0.0, 1.0, width=32), min_size=shape[-1],
                           max_size=shape[-1]))
    return np.broadcast_to(np.asarray(values, np.float32), shape).copy()
  rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
  if kind == "binary":
    return rng.integers(0, 2, shape).astype(np.float32)
  return rng.random(shape, np.float32)


keys = st.integers(0, 2**32 - 1).map(jax.random.PRNGKey)


def white(shape):
  return np.ones(shape, np.float32)


def assert_in_range(x, low, high, what):
  x = np.asarray(x, np.float64)
  assert np.all(np.isfinite(x)), f"{what}: not finite"
  assert np.all(x >= low) and np.all(x <= high), (
      f"{what}: values in [{x.min()!r}, {x.max()!r}], outside "
      f"[{low!r}, {high!r}]")


def assert_shape_dtype(x, shape, dtype, what):
  assert x.shape == tuple(shape), f"{what}: shape {x.shape} != {shape}"
  assert x.dtype == dtype, f"{what}: dtype {x.dtype} != {dtype}"


def crop_positions(image, patch):
  """Every ``(row, col)`` where ``patch`` occurs exactly in ``image``."""
  ph, pw = patch.shape[:2]
  return {(r, c)
          for r in range(image.shape[0] - ph + 1)
          for c in range(image.shape[1] - pw + 1)
          if np.array_equal(image[r:r + ph, c:c + pw], patch)}


# ---------------------------------------------------------------------------
# Colour.
# ---------------------------------------------------------------------------
@jax.jit
def _colour_ops(image, factors):
  return (color.adjust_brightness(image, factors[0]),
          color.adjust_contrast(image, factors[1]),
          color.adjust_saturation(image, factors[2]),
          color.adjust_hue(image, factors[3]),
          color.rgb_to_grayscale(image),
          color.solarize(image))


@FUZZ
@given(image=images(), factors=st.tuples(
    st.floats(0.0, 3.0, width=32), st.floats(0.0, 3.0, width=32),
    st.floats(0.0, 3.0, width=32), st.floats(-0.5, 0.5, width=32)))
def test_colour_ops_stay_in_unit_range(image, factors):
  """Brightness, contrast, saturation, hue, grayscale and solarize keep
  shape and dtype and map [0, 1] into [0, 1] for any factor; on one
  channel saturation, hue and grayscale are the identity; grayscale has
  equal channels; solarize gives x below 0.5 and 1 - x from 0.5 up."""
  outs = _colour_ops(image, np.asarray(factors, np.float32))
  names = ("brightness", "contrast", "saturation", "hue", "grayscale",
           "solarize")
  for name, out in zip(names, outs):
    assert_shape_dtype(out, image.shape, np.float32, name)
    assert_in_range(out, 0.0, 1.0, name)
  _, _, saturation, hue, gray, solarized = (np.asarray(o) for o in outs)
  if image.shape[-1] == 1:
    for name, out in (("saturation", saturation), ("hue", hue),
                      ("grayscale", gray)):
      np.testing.assert_array_equal(out, image, err_msg=name)
  else:
    np.testing.assert_array_equal(gray, gray[..., :1].repeat(3, -1))
  np.testing.assert_array_equal(
      solarized, np.where(image >= 0.5, 1.0 - image, image))


@FUZZ
@given(image=images(shapes=((8, 8, 3), (12, 16, 3))),
       hue=st.floats(-0.5, 0.5, width=32))
def test_hue_rotation_keeps_grey_pixels_and_value(image, hue):
  """Rotating the hue keeps saturation and value: every pixel's max and
  min channel are unchanged (1e-6), and grey pixels (R = G = B) exactly."""
  out = np.asarray(_colour_ops(image, np.asarray([1, 1, 1, hue],
                                                 np.float32))[3])
  np.testing.assert_allclose(out.max(-1), image.max(-1), atol=1e-6)
  np.testing.assert_allclose(out.min(-1), image.min(-1), atol=1e-6)
  grey = (image[..., 0] == image[..., 1]) & (image[..., 1] == image[..., 2])
  np.testing.assert_array_equal(out[grey], image[grey])


_blur = jax.jit(color.gaussian_blur, static_argnames=("kernel_size",
                                                       "padding"))


@FUZZ
@given(image=images(), sigma=st.floats(float(np.float32(0.1)), 2.0, width=32),
       kernel_size=st.sampled_from((3, 5)),
       padding=st.sampled_from(("edge", "zero")))
@example(image=white((8, 8, 3)), sigma=np.float32(2.0), kernel_size=5,
         padding="edge")
def test_gaussian_blur_stays_in_input_range(image, sigma, kernel_size,
                                            padding):
  """The blur averages pixels (and, with zero padding, zeros) with
  non-negative weights: the output stays in the input's range per channel
  (widened to 0 for zero padding), so in [0, 1], and with edge padding a
  constant image stays exactly constant, as documented (before the fix an
  all-white image blurred to 1 + 1.2e-7: the explicit example)."""
  out = np.asarray(_blur(image, np.float32(sigma), kernel_size=kernel_size,
                         padding=padding))
  assert_shape_dtype(out, image.shape, np.float32, "gaussian_blur")
  low, high = image.min((0, 1)), image.max((0, 1))
  if padding == "zero":
    low, high = np.minimum(low, 0.0), np.maximum(high, 0.0)
  assert np.all(out >= low) and np.all(out <= high)
  if padding == "edge" and np.all(image == image[:1, :1]):
    np.testing.assert_array_equal(out, image)


@jax.jit
def _random_colour(key, image):
  k = jax.random.split(key, 5)
  return (color.random_grayscale(k[0], image, 0.5),
          color.random_solarize(k[1], image, 0.5),
          color.random_gaussian_blur(k[2], image, 0.5, kernel_fraction=0.4),
          color.random_color_jitter(k[3], image, 0.8, 0.8, 0.8, 0.8, 0.2),
          color.color_jitter(k[4], image, 0.4, 0.4, 0.4, 0.1),
          color.random_grayscale(k[0], image, 0.0),
          color.random_solarize(k[1], image, 1.0))


@FUZZ
@given(key=keys, image=images())
def test_random_colour_ops_range_determinism_and_static_probs(key, image):
  """The random colour kernels keep shape and dtype and stay in [0, 1];
  the same key gives the same output; probability 0 is the identity and
  probability 1 always applies the op."""
  outs = _random_colour(key, image)
  again = _random_colour(key, image)
  for i, (out, out2) in enumerate(zip(outs, again)):
    assert_shape_dtype(out, image.shape, np.float32, f"output {i}")
    assert_in_range(out, 0.0, 1.0, f"output {i}")
    np.testing.assert_array_equal(out, out2, err_msg=f"output {i}")
  np.testing.assert_array_equal(outs[5], image)
  np.testing.assert_array_equal(outs[6], color.solarize(image))


# ---------------------------------------------------------------------------
# Geometry.
# ---------------------------------------------------------------------------
@jax.jit
def _crops(key, image):
  box = geometry.sample_crop_box(key, image.shape[0], image.shape[1])
  return (box, geometry.resized_crop(image, box, 3),
          geometry.random_resized_crop(key, image, 8),
          geometry.center_crop_resize(image, 5, 0.875),
          geometry.resize(image, image.shape[:2]))


@FUZZ
@given(key=keys, image=images())
@example(key=jax.random.PRNGKey(0), image=white((8, 8, 3)))
def test_crops_and_resizes_stay_in_input_range(key, image):
  """Crop boxes lie inside the image; crop + bilinear resize (up or down)
  keeps the output shape and dtype and stays within the input's per-
  channel range (convex weights), so a constant image stays exactly
  constant (before the fix an all-white image resized to 3x3 gave
  1 + 1.2e-7: the explicit example); resizing to the image's own size is
  the identity; a fixed key gives the same crop."""
  box, small, crop, centre, same = (np.asarray(x) for x in _crops(key, image))
  top, left, h, w = box
  assert 0 <= top and 0 <= left and 1 <= h and 1 <= w
  assert top + h <= image.shape[0] and left + w <= image.shape[1]
  low, high = image.min((0, 1)), image.max((0, 1))
  for name, out, side in (("resized_crop", small, 3),
                          ("random_resized_crop", crop, 8),
                          ("center_crop_resize", centre, 5)):
    assert_shape_dtype(out, (side, side, image.shape[-1]), np.float32, name)
    assert np.all(out >= low) and np.all(out <= high), name
  np.testing.assert_array_equal(same, image)
  np.testing.assert_array_equal(np.asarray(_crops(key, image)[2]), crop)


@FUZZ
@given(draws=st.tuples(
    hnp.arrays(np.float32, (geometry.NUM_CROP_TRIES,),
               elements=st.floats(0.0, 1.0, width=32)),
    hnp.arrays(np.float32, (geometry.NUM_CROP_TRIES,),
               elements=st.floats(-3.0, 3.0, width=32)),
    hnp.arrays(np.float32, (2,), elements=st.floats(
        0.0, float(np.float32(1.0 - 2**-24)), width=32))),
    size=st.sampled_from(((8, 8), (12, 16), (3, 40))))
def test_crop_box_from_any_draws_is_inside(draws, size):
  """Whatever the draws (zero area, extreme aspect ratios, offset
  uniforms at 0 and just below 1), the box is non-empty and inside the
  image."""
  top, left, h, w = np.asarray(geometry.crop_box_from_draws(
      size[0], size[1], *(jnp.asarray(d) for d in draws)))
  assert 0 <= top and 0 <= left and 1 <= h and 1 <= w
  assert top + h <= size[0] and left + w <= size[1]


@jax.jit
def _flips(key, image):
  return (geometry.random_flip(key, image), geometry.random_flip(key, image,
                                                                  0.0),
          geometry.random_flip(key, image, 1.0))


@FUZZ
@given(key=keys, image=images())
def test_random_flip_is_the_image_or_its_mirror(key, image):
  """A flip returns exactly the image or its left-right mirror (the same
  one for the same key); probability 0 never and 1 always flips."""
  out, never, always = (np.asarray(x) for x in _flips(key, image))
  mirror = image[:, ::-1]
  assert np.array_equal(out, image) or np.array_equal(out, mirror)
  np.testing.assert_array_equal(np.asarray(_flips(key, image)[0]), out)
  np.testing.assert_array_equal(never, image)
  np.testing.assert_array_equal(always, mirror)


_rot90 = jax.jit(geometry.rot90)
_all_rotations = jax.jit(pretext.all_rotations)


@FUZZ
@given(image=images(shapes=SQUARE_SHAPES), k=st.integers(-2**31, 2**31 - 1))
def test_rot90_is_numpy_rot90_for_any_k(image, k):
  """rot90 by any int32 k (negative, huge) is numpy's rot90 by k mod 4;
  all_rotations stacks the four."""
  np.testing.assert_array_equal(np.asarray(_rot90(image, np.int32(k))),
                                np.rot90(image, k % 4, axes=(0, 1)))
  stacked = np.asarray(_all_rotations(image))
  for i in range(4):
    np.testing.assert_array_equal(stacked[i], np.rot90(image, i, axes=(0, 1)))


# ---------------------------------------------------------------------------
# Pretext transforms.
# ---------------------------------------------------------------------------
PERMUTATIONS = np.stack([np.arange(9), np.arange(9)[::-1],
                         np.roll(np.arange(9), 4)]).astype(np.int32)


def _tile_size(image):
  return max(1, min(image.shape[0], image.shape[1]) // 3 - 1)


@jax.jit
def _jigsaw(key, image, permutation):
  ts = _tile_size(image)
  return (pretext.jigsaw_tiles(key, image, permutation, ts),
          pretext.jigsaw_tiles(key, image, jnp.arange(9), ts),
          pretext.jigsaw_tiles(key, image, permutation, ts,
                               normalize_tiles=True),
          pretext.jigsaw(key, image, PERMUTATIONS, ts))


@FUZZ
@given(key=keys, image=images(), perm=st.permutations(range(9)))
def test_jigsaw_tiles_are_crops_in_permuted_order(key, image, perm):
  """Jigsaw tiles are exact crops of the image, tile i of the shuffled
  puzzle is tile perm[i] of the ordered one (same key); normalised tiles
  are finite (a flat tile is only centred) with zero mean; jigsaw's index
  is in range and its tiles are crops too."""
  perm = np.asarray(perm, np.int32)
  tiles, ordered, normed, (puzzle, index) = jax.tree_util.tree_map(
      np.asarray, _jigsaw(key, image, perm))
  ts = _tile_size(image)
  assert_shape_dtype(tiles, (9, ts, ts, image.shape[-1]), np.float32,
                     "jigsaw_tiles")
  np.testing.assert_array_equal(tiles, ordered[perm])
  for tile in list(tiles) + list(puzzle):
    assert crop_positions(image, tile), "a tile that is not a crop"
  assert np.all(np.isfinite(normed))
  np.testing.assert_allclose(normed.mean((1, 2)), 0.0, atol=1e-4)
  assert 0 <= int(index) < len(PERMUTATIONS)


@jax.jit
def _relative_position(key, image):
  return pretext.relative_position_pair(
      key, image, patch_size=2, gap=0, jitter=1,
      drop_colour=image.shape[-1] == 3)


@FUZZ
@given(key=keys, image=images())
def test_relative_position_patches_come_from_the_image(key, image):
  """The label is in 0..7; both patches (their kept channel, with colour
  dropping) are exact crops of the image, at positions whose difference is
  the label's neighbour step up to the two jitters; dropped channels are
  finite noise, even on flat images (std 0)."""
  centre, neighbour, label = jax.tree_util.tree_map(
      np.asarray, _relative_position(key, image))
  assert 0 <= int(label) < 8
  assert np.all(np.isfinite(centre)) and np.all(np.isfinite(neighbour))
  if image.shape[-1] == 3:
    # The kept channel: the one that matches a crop of that channel.
    def positions(patch):
      return set().union(*(crop_positions(image[..., c:c + 1],
                                          patch[..., c:c + 1])
                           for c in range(3)))
  else:
    def positions(patch):
      return crop_positions(image, patch)
  step = np.asarray(pretext.NEIGHBOUR_OFFSETS[int(label)]) * 2  # patch + gap
  centres, neighbours = positions(centre), positions(neighbour)
  assert centres and neighbours, "a patch that is not a crop"
  assert any(np.all(np.abs(np.subtract(n, c) - step) <= 2)
             for c in centres for n in neighbours)


MASK_CASES = ((4, 0.0), (16, 0.5), (49, 0.75))


@FUZZ
@given(key=keys, case=st.sampled_from(MASK_CASES))
def test_random_patch_mask_keeps_the_documented_count(key, case):
  """MAE masking: exactly L - num_kept patches masked; ids_restore is a
  permutation that undoes the shuffle; the kept ids are unmasked."""
  num_patches, ratio = case
  mask, ids_keep, ids_restore = (np.asarray(x) for x in jax.jit(
      pretext.random_patch_mask, static_argnums=(1, 2))(
          key, num_patches, ratio))
  kept = pretext.num_kept_patches(num_patches, ratio)
  assert mask.sum() == num_patches - kept and set(np.unique(mask)) <= {0, 1}
  assert sorted(ids_restore) == list(range(num_patches))
  assert len(ids_keep) == kept and np.all(mask[ids_keep] == 0)
  tokens = np.arange(num_patches)
  shuffled = np.concatenate([tokens[ids_keep],
                             tokens[np.argsort(ids_restore)[kept:]]])
  np.testing.assert_array_equal(shuffled[ids_restore], tokens)


@FUZZ
@given(image=images(), patch=st.sampled_from((1, 2, 4)))
def test_patchify_round_trips_exactly(image, patch):
  """patchify keeps every pixel (a reshuffle) and unpatchify inverts it."""
  h, w, c = image.shape
  patches = np.asarray(pretext.patchify(image, patch))
  assert patches.shape == (h * w // patch**2, patch * patch * c)
  np.testing.assert_array_equal(np.sort(patches.ravel()),
                                np.sort(image.ravel()))
  np.testing.assert_array_equal(
      np.asarray(pretext.unpatchify(patches, patch, h, w, c)), image)


@jax.jit
def _masks(key, image, fill):
  block = pretext.random_block_mask(key, image.shape[0], image.shape[1], 3, 2)
  return (block, pretext.apply_mask(image, block, fill),
          pretext.apply_mask(image, block, "mean"),
          pretext.apply_mask(image, jnp.ones_like(block), "mean"))


@FUZZ
@given(key=keys, image=images(), fill=st.floats(0.0, 1.0, width=32))
def test_block_masks_and_apply_mask(key, image, fill):
  """Random block masks are 0/1 and cover between one block and three;
  apply_mask leaves visible pixels exactly unchanged, writes the fill into
  masked ones, stays in [0, 1]; the 'mean' fill is finite and in [0, 1]
  even when everything is masked."""
  block, filled, mean_filled, all_masked = (
      np.asarray(x) for x in _masks(key, image, np.float32(fill)))
  assert set(np.unique(block)) <= {0.0, 1.0}
  assert 4 <= block.sum() <= 12
  visible = np.broadcast_to(block == 0, image.shape)
  np.testing.assert_array_equal(filled[visible], image[visible])
  np.testing.assert_array_equal(filled[~visible], np.float32(fill))
  for name, out in (("fill", filled), ("mean", mean_filled),
                    ("all masked", all_masked)):
    assert_in_range(out, 0.0, 1.0, name)


@jax.jit
def _super_resolution(image):
  return (pretext.downsample(image, 2),
          pretext.degrade_for_super_resolution(image, 2),
          pretext.degrade_for_super_resolution(image, 4, "nearest"),
          pretext.downsample(pretext.upsample(image, 2, "nearest"), 2))


@FUZZ
@given(image=images())
def test_super_resolution_inputs_stay_in_input_range(image):
  """Box downsampling and bilinear / nearest upsampling stay in [0, 1] and
  in the per-channel range of the input, and keep the shape of the
  degraded image; box averaging a nearest-upsampled image gives the image
  back. The input range is allowed one float32 ulp: the box mean is a
  float sum (16 equal values of a constant channel can sum to 1 ulp under
  16 c), and downsample does not promise exact constants."""
  down, bilinear, nearest, back = (np.asarray(x)
                                   for x in _super_resolution(image))
  low, high = image.min((0, 1)), image.max((0, 1))
  low, high = low - np.spacing(low), high + np.spacing(high)
  assert down.shape == (image.shape[0] // 2, image.shape[1] // 2,
                        image.shape[2])
  for name, out in (("downsample", down), ("bilinear", bilinear),
                    ("nearest", nearest)):
    assert_in_range(out, 0.0, 1.0, name)
    assert np.all(out >= low) and np.all(out <= high), name
  assert bilinear.shape == nearest.shape == image.shape
  np.testing.assert_allclose(back, image, rtol=1e-6, atol=0)


_lab = jax.jit(lambda x: (pretext.rgb_to_lab(x),
                          pretext.lab_to_rgb(pretext.rgb_to_lab(x))))
_lab_to_rgb = jax.jit(pretext.lab_to_rgb)


@FUZZ
@given(image=images(shapes=((8, 8, 3), (12, 16, 3))),
       lab=hnp.arrays(np.float32, (4, 4, 3), elements=st.floats(
           -128.0, 128.0, width=32)))
def test_lab_round_trip_and_gamut(image, lab):
  """RGB -> Lab has L in [0, 100] and round-trips to the image (1e-4);
  Lab -> RGB of any L in [0, 100], a, b in [-128, 128] (in or out of the
  sRGB gamut) is finite and in [0, 1]."""
  lab_image, back = (np.asarray(x) for x in _lab(image))
  assert_in_range(lab_image[..., 0], -1e-3, 100.0 + 1e-3, "L")
  np.testing.assert_allclose(back, image, atol=1e-4)
  lab = lab.copy()
  lab[..., 0] = np.abs(lab[..., 0]) * (100.0 / 128.0)
  assert_in_range(_lab_to_rgb(lab), 0.0, 1.0, "lab_to_rgb")


# ---------------------------------------------------------------------------
# Recipe views (uint8 in, normalised float out).
# ---------------------------------------------------------------------------
def _rgb_recipe():
  recipe = recipes.byol_view2(24)  # 24 px: a 3-tap blur
  recipe.blur_prob = 0.5
  recipe.solarize_prob = 0.5
  return recipe


VIEW_CASES = {"rgb": (_rgb_recipe(), (12, 16, 3)),
              "digits": (recipes.simclr_digits(8), (8, 8, 1))}
_views = {name: jax.jit(lambda k, x, r=recipe: (
    recipes.batch_views(k, x, r), recipes.batch_eval_views(x, r)))
          for name, (recipe, _) in VIEW_CASES.items()}


@pytest.mark.parametrize("name", sorted(VIEW_CASES))
@FUZZ_SLOW
@given(seed=st.integers(0, 2**32 - 1), data=st.data())
def test_views_shape_dtype_range_and_determinism(name, seed, data):
  """batch_views / batch_eval_views on uint8 batches (black, white,
  constant, noise, 0/255): (B, crop, crop, C) float32, finite, within the
  normalised range ((0 - mean) / std, (1 - mean) / std) per channel, and
  the same views for the same keys."""
  recipe, shape = VIEW_CASES[name]
  batch = np.stack([data.draw(images(shapes=(shape,))) for _ in range(2)])
  batch = np.round(batch * 255).astype(np.uint8)
  keys = jax.random.split(jax.random.PRNGKey(seed), 2)
  views, evals = _views[name](keys, batch)
  views_again, _ = _views[name](keys, batch)
  side, channels = recipe.crop_size, shape[-1]
  mean = np.asarray(recipe.mean, np.float64)
  std = np.asarray(recipe.std, np.float64)
  for what, out in (("views", views), ("eval views", evals)):
    assert_shape_dtype(out, (2, side, side, channels), np.float32, what)
    out = np.asarray(out, np.float64)
    assert np.all(np.isfinite(out)), what
    tol = 1e-5
    assert np.all(out >= (0.0 - mean) / std - tol), what
    assert np.all(out <= (1.0 - mean) / std + tol), what
  np.testing.assert_array_equal(np.asarray(views), np.asarray(views_again))


_multi_crop = jax.jit(lambda k, x: pretext.multi_crop(
    k, x, VIEW_CASES["rgb"][0], num_global=2, global_size=16, num_local=2,
    local_size=8))


@FUZZ_SLOW
@given(key=keys, image=images(shapes=((12, 16, 3),)))
def test_multi_crop_shapes_and_range(key, image):
  """SwAV multi-crop of a uint8 image: the documented view shapes, finite
  and within the normalised range, the same for the same key."""
  recipe = VIEW_CASES["rgb"][0]
  image = np.round(image * 255).astype(np.uint8)
  glob, loc = _multi_crop(key, image)
  assert_shape_dtype(glob, (2, 16, 16, 3), np.float32, "global views")
  assert_shape_dtype(loc, (2, 8, 8, 3), np.float32, "local views")
  mean, std = np.asarray(recipe.mean), np.asarray(recipe.std)
  for out in (glob, loc):
    out = np.asarray(out, np.float64)
    assert np.all(np.isfinite(out))
    assert np.all(out >= -mean / std - 1e-5)
    assert np.all(out <= (1 - mean) / std + 1e-5)
  np.testing.assert_array_equal(np.asarray(_multi_crop(key, image)[0]),
                                np.asarray(glob))


# ---------------------------------------------------------------------------
# Optical flow and audio.
# ---------------------------------------------------------------------------
_flow = jax.jit(lambda a, b: flow.horn_schunck(a, b, num_iters=5,
                                               num_warps=2))
_flow_image = jax.jit(lambda f: flow.flow_to_image(f, 2.0))


@FUZZ
@given(first=images(shapes=((8, 8, 1),)), second=images(shapes=((8, 8, 1),)))
def test_horn_schunck_finite_and_zero_for_identical_frames(first, second):
  """Horn-Schunck is finite for any pair of frames in [0, 1] (flat frames
  included: the 2x2 systems have alpha^2 on the diagonal); identical frames
  have zero flow; flow_to_image is in [-1, 1] (u, v) and [0, 1]
  (magnitude)."""
  field = np.asarray(_flow(first, second))
  assert field.shape == (8, 8, 2) and np.all(np.isfinite(field))
  np.testing.assert_allclose(np.asarray(_flow(first, first)), 0.0, atol=1e-6)
  picture = np.asarray(_flow_image(field))
  assert_in_range(picture[..., :2], -1.0, 1.0, "flow u, v")
  assert_in_range(picture[..., 2], 0.0, 1.0, "flow magnitude")


_log_mel = jax.jit(lambda x: augment.log_mel_spectrogram(
    x, 16000, fft_size=64, hop_length=32, num_mels=8))
EPS_LOG = math.log(1e-6)


@FUZZ
@given(signal=st.one_of(
    hnp.arrays(np.float32, (2, 256), elements=st.floats(-1.0, 1.0,
                                                        width=32)),
    st.integers(0, 2**32 - 1).map(lambda s: np.clip(
        np.random.default_rng(s).standard_normal((2, 256)), -1, 1).astype(
            np.float32)),
    st.sampled_from((0.0, 1.0, -0.5)).map(
        lambda v: np.full((2, 256), v, np.float32))),
    gain=st.sampled_from((1.0, 1e-30, 1e3, 1e20, 1e30, 1e38)))
@example(signal=np.full((2, 256), 1.0, np.float32), gain=1e20)
def test_log_mel_finite_and_shifted_by_the_gain(signal, gain):
  """The log-mel spectrogram is finite and >= log(eps) for any finite
  signal, however loud (before the fix the power of a signal above ~1e17
  overflowed and inf * 0 in the filterbank gave NaN: the explicit
  example); multiplying a signal by g >= 1 adds log(g^2) wherever the mel
  power is above eps."""
  base = np.asarray(_log_mel(signal))
  loud = np.asarray(_log_mel((signal * np.float32(gain)).astype(np.float32)))
  assert loud.shape == (2, 9, 8)
  assert np.all(np.isfinite(loud)) and np.all(loud >= EPS_LOG - 1e-5)
  if gain >= 1.0:
    above = base > EPS_LOG + 1e-3
    np.testing.assert_allclose(loud[above],
                               base[above] + 2 * math.log(gain),
                               rtol=1e-5, atol=1e-3)
    assert np.all(loud >= base - 1e-3)
