"""Pretext transforms against independent numpy / scikit-image references.

Tolerances:
* Lab vs ``skimage.color.rgb2lab`` (float64): 2e-3 in L*a*b* units (float32
  arithmetic on values up to 100; measured 6e-5). ``lab2rgb`` and the
  rgb -> lab -> rgb round trip: 2e-5.
* Crops, masks, patches, block means: exact (or 1e-6 for float means).
* Rates: 4 standard errors.

Coordinate images (channel 0 = row, channel 1 = column) make every crop
report where it was taken from. Compiles dominate the run time on CPU (each
vmapped threefry draw costs about a second), so the random kernels run once,
together, as a data-parallel batch inside ``shard_map`` (the ``batch``
fixture), and the statistical tests read that batch.
"""
import functools
import math
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import Mesh
from jax.sharding import PartitionSpec as P

from ssl_jax import augment
from ssl_jax.augment import geometry
from ssl_jax.augment import pretext


def _coordinate_image(height, width):
  rows, cols = np.meshgrid(np.arange(height), np.arange(width), indexing="ij")
  extra = np.random.RandomState(0).rand(height, width)
  return np.stack([rows, cols, extra], -1).astype(np.float32)


def _keys(n, seed=0):
  return jax.random.split(jax.random.key(seed), n)


def _rate_ok(count, n, p):
  return abs(count / n - p) <= 4 * math.sqrt(p * (1 - p) / n)


# The batch: 2400 examples of every random kernel on one coordinate image.
N = 2400
IMAGE = _coordinate_image(17, 19)
# Jigsaw on 17x19: 5x6 cells centred at (1, 0); 3-px tiles, offsets 0..2 x 0..3.
CELL, ORIGIN, TILE = (5, 6), (1, 0), 3
PERM_SET = np.asarray([np.random.RandomState(s).permutation(9)
                       for s in range(4)])
# Relative position: 3-px patches, 2-px gaps, 1-px jitter (span 15).
PATCH, GAP, JITTER = 3, 2, 1
MASK_PATCHES, MASK_RATIO = 16, 0.75
KEYS = jax.random.split(jax.random.key(0), (N, 4))


def _all_kernels(keys, image):
  """Every random kernel on one image; ``keys``: four keys."""
  out = {}
  out["tiles"], out["index"] = pretext.jigsaw(keys[0], image, PERM_SET, TILE)
  # The same key with and without jitter / colour dropping: same label.
  for suffix, jitter, drop in (("", JITTER, False), ("_drop", JITTER, True),
                               ("_fixed", 0, False)):
    (out["centre" + suffix], out["neighbour" + suffix],
     out["label" + suffix]) = pretext.relative_position_pair(
         keys[1], image, PATCH, GAP, jitter, drop_colour=drop)
  out["mask"], out["ids_keep"], out["ids_restore"] = pretext.random_patch_mask(
      keys[2], MASK_PATCHES, MASK_RATIO)
  out["block"] = pretext.random_block_mask(keys[3], 6, 7, 1, 4)
  out["blocks"] = pretext.random_block_mask(keys[3], 16, 16, 3, (2, 5))
  return out


@pytest.fixture(scope="module")
def batch():
  mesh = Mesh(np.array(jax.devices()), ("batch",))
  images = jnp.broadcast_to(jnp.asarray(IMAGE), (N,) + IMAGE.shape)

  @jax.jit
  @functools.partial(jax.shard_map, mesh=mesh, in_specs=P("batch"),
                     out_specs=P("batch"))
  def run(raw_keys, imgs):
    return jax.vmap(_all_kernels)(jax.random.wrap_key_data(raw_keys), imgs)

  out = run(jax.random.key_data(KEYS), images)
  return {name: np.asarray(value) for name, value in out.items()}


def test_batch_under_shard_map_matches_single_examples(batch):
  shapes = {name: value.shape for name, value in batch.items()}
  keep = pretext.num_kept_patches(MASK_PATCHES, MASK_RATIO)
  assert shapes == {
      "tiles": (N, 9, TILE, TILE, 3), "index": (N,),
      "centre": (N, PATCH, PATCH, 3), "neighbour": (N, PATCH, PATCH, 3),
      "label": (N,), "centre_drop": (N, PATCH, PATCH, 3),
      "neighbour_drop": (N, PATCH, PATCH, 3), "label_drop": (N,),
      "centre_fixed": (N, PATCH, PATCH, 3),
      "neighbour_fixed": (N, PATCH, PATCH, 3), "label_fixed": (N,),
      "mask": (N, MASK_PATCHES), "ids_keep": (N, keep),
      "ids_restore": (N, MASK_PATCHES), "block": (N, 6, 7, 1),
      "blocks": (N, 16, 16, 1)}
  for name in ("index", "label", "ids_keep", "ids_restore"):
    assert batch[name].dtype == np.int32, name
  # vmap inside shard_map computes what one unbatched call does.
  single = jax.jit(_all_kernels)
  for i in (0, N - 1):
    for name, value in single(KEYS[i], IMAGE).items():
      np.testing.assert_allclose(batch[name][i], np.asarray(value),
                                 atol=1e-5, err_msg=name)


# ----------------------------------------------------------------------------
# CIE Lab.
# ----------------------------------------------------------------------------


_to_lab = jax.jit(pretext.rgb_to_lab)
_to_rgb = jax.jit(pretext.lab_to_rgb)


def test_lab_matches_scikit_image():
  skcolor = pytest.importorskip("skimage.color")
  rng = np.random.RandomState(0)
  rgb = np.concatenate([rng.rand(500, 3), np.eye(3), [[0, 0, 0], [1, 1, 1],
                                                      [0.02, 0.03, 0.04]]])
  rgb = rgb.astype(np.float32)
  lab = np.asarray(_to_lab(rgb))
  np.testing.assert_allclose(lab, skcolor.rgb2lab(rgb.astype(np.float64)),
                             atol=2e-3)
  np.testing.assert_allclose(np.asarray(_to_rgb(lab)), rgb, atol=2e-5)
  # lab2rgb on arbitrary Lab, most of it outside the sRGB gamut (clipped).
  lab_any = np.stack([rng.uniform(0, 100, 500), rng.uniform(-110, 110, 500),
                      rng.uniform(-110, 110, 500)], -1)
  with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # scikit-image warns about negative Z.
    ref = skcolor.lab2rgb(lab_any)
  np.testing.assert_allclose(np.asarray(_to_rgb(lab_any.astype(np.float32))),
                             ref, atol=2e-5)


def test_lab_known_values_split_and_round_trip():
  # sRGB primaries and white/black under D65 (published CIE Lab values).
  rgb = np.asarray([[1, 1, 1], [0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]],
                   np.float32)
  expected = [[100, 0, 0], [0, 0, 0], [53.24, 80.09, 67.20],
              [87.73, -86.18, 83.18], [32.30, 79.19, -107.86]]
  np.testing.assert_allclose(np.asarray(_to_lab(rgb)), expected, atol=0.01)
  image = np.random.RandomState(1).rand(4, 5, 3).astype(np.float32)
  lab = _to_lab(image)  # Leading dims are fine.
  l, ab = pretext.split_l_ab(lab)
  assert l.shape == (4, 5, 1) and ab.shape == (4, 5, 2)
  assert float(l.min()) >= 0 and float(l.max()) <= 100
  np.testing.assert_allclose(
      np.asarray(_to_rgb(jnp.concatenate([l, ab], -1))), image, atol=2e-5)
  with pytest.raises(ValueError, match="3 channels"):
    pretext.rgb_to_lab(jnp.zeros((4, 4, 1)))
  with pytest.raises(ValueError, match="/ 255"):
    pretext.rgb_to_lab(np.zeros((4, 4, 3), np.uint8))


# ----------------------------------------------------------------------------
# Patches and MAE masking.
# ----------------------------------------------------------------------------


def test_patchify_layout_and_inverse():
  images = np.random.RandomState(2).rand(2, 6, 9, 3).astype(np.float32)
  patches = np.asarray(pretext.patchify(images, 3))
  assert patches.shape == (2, 6, 27)
  # Patch (r, c) is the image block, flattened row, column, channel.
  for r in range(2):
    for c in range(3):
      np.testing.assert_array_equal(
          patches[1, r * 3 + c],
          images[1, 3 * r:3 * r + 3, 3 * c:3 * c + 3].reshape(-1))
  back = pretext.unpatchify(jnp.asarray(patches), 3, 6, 9, 3)
  np.testing.assert_array_equal(np.asarray(back), images)
  with pytest.raises(ValueError, match="divisible"):
    pretext.patchify(images, 4)
  with pytest.raises(ValueError, match="do not tile"):
    pretext.unpatchify(jnp.asarray(patches), 3, 6, 6, 3)


def test_num_kept_patches():
  assert pretext.num_kept_patches(196, 0.75) == 49  # MAE ViT-B/16 at 224.
  assert pretext.num_kept_patches(10, 0.7) == 3
  assert pretext.num_kept_patches(10, 0.9) == 1  # MAE's int() gives 0 here.
  assert pretext.num_kept_patches(10, 0.0) == 10
  assert pretext.num_kept_patches(7, 0.5) == 3  # floor(3.5).
  with pytest.raises(ValueError, match="mask_ratio"):
    pretext.num_kept_patches(10, 1.0)
  with pytest.raises(ValueError, match="keeps no patch"):
    pretext.num_kept_patches(3, 0.9)


def test_random_patch_mask_counts_restore_and_rates(batch):
  length, ratio = MASK_PATCHES, MASK_RATIO
  keep = pretext.num_kept_patches(length, ratio)  # 4
  masks, ids_keep, ids_restore = (batch["mask"], batch["ids_keep"],
                                  batch["ids_restore"])
  assert masks.dtype == np.float32 and set(np.unique(masks)) == {0.0, 1.0}
  np.testing.assert_array_equal(masks.sum(1), length - keep)
  tokens = np.arange(length) * 10 + 1
  for i in range(50):
    # Kept ids are exactly the unmasked positions.
    assert sorted(ids_keep[i]) == list(np.flatnonzero(masks[i] == 0))
    # MAE decoder un-shuffle: kept tokens + mask tokens, gathered back.
    full = np.concatenate([tokens[ids_keep[i]], np.full(length - keep, -1)])
    restored = full[ids_restore[i]]
    np.testing.assert_array_equal(restored,
                                  np.where(masks[i] == 1, -1, tokens))
  # Different keys give different masks: as many distinct ones as uniform
  # draws from the C(16, 4) = 1820 masks would give (about 1340 of 2400).
  combos = math.comb(length, keep)
  expected_distinct = combos * (1 - (1 - 1 / combos) ** N)
  distinct = len({m.tobytes() for m in masks})
  assert abs(distinct - expected_distinct) < 0.05 * expected_distinct, distinct
  # Every position is masked at rate 3/4.
  for count in masks.sum(0):
    assert _rate_ok(count, N, ratio), count


# ----------------------------------------------------------------------------
# Jigsaw.
# ----------------------------------------------------------------------------


def test_jigsaw_tiles_without_jitter_are_centred_crops_in_order():
  image = _coordinate_image(14, 13)  # Cells 4x4, centred: origin (1, 0).
  perm = np.asarray([2, 0, 1, 5, 4, 3, 8, 6, 7])
  tiles_fn = jax.jit(lambda p, normalize: pretext.jigsaw_tiles(
      jax.random.key(0), image, p, 2, jitter=False,
      normalize_tiles=normalize), static_argnums=1)
  tiles = np.asarray(tiles_fn(perm, False))
  assert tiles.shape == (9, 2, 2, 3)
  expected = []
  for cell in range(9):
    top, left = 1 + 4 * (cell // 3) + 1, 4 * (cell % 3) + 1
    expected.append(image[top:top + 2, left:left + 2])
  expected = np.asarray(expected)
  np.testing.assert_array_equal(tiles, expected[perm])
  np.testing.assert_array_equal(np.asarray(tiles_fn(np.arange(9), False)),
                                expected)
  normalised = np.asarray(tiles_fn(perm, True))
  np.testing.assert_allclose(normalised.mean(axis=(1, 2)), 0, atol=1e-5)
  np.testing.assert_allclose(normalised.std(axis=(1, 2)), 1, atol=1e-4)
  # A flat tile is only centred; a nearly flat one is scaled by at most
  # 1 / TILE_STD_FLOOR, not up to unit std.
  flat = np.zeros_like(image)
  flat[0, 0] = 1e-6
  flat_tiles = np.asarray(pretext.jigsaw_tiles(
      jax.random.key(0), jnp.asarray(flat), np.arange(9), 4, jitter=False,
      normalize_tiles=True))
  assert np.abs(flat_tiles).max() < 1e-6 / pretext.TILE_STD_FLOOR * 1.01
  with pytest.raises(ValueError, match="tile_size"):
    pretext.jigsaw_tiles(jax.random.key(0), image, perm, 5)
  with pytest.raises(ValueError, match="permutation must have shape"):
    pretext.jigsaw_tiles(jax.random.key(0), image, perm[:4], 2)
  with pytest.raises(ValueError, match="permutation_set"):
    pretext.jigsaw(jax.random.key(0), image, PERM_SET[:, :4], 2)


def test_jigsaw_index_uniform_tiles_jittered_inside_their_cells(batch):
  tiles, index = batch["tiles"], batch["index"]
  for p in range(len(PERM_SET)):
    assert _rate_ok((index == p).sum(), N, 1 / len(PERM_SET))
  corners = tiles[:, :, 0, 0, :2].astype(int)  # (N, 9, [row, col])
  # Tiles are contiguous crops.
  np.testing.assert_array_equal(tiles[:, :, 2, 1, :2], corners + [2, 1])
  # Which cell each slot came from, and where inside the cell.
  cell = (corners - ORIGIN) // CELL
  offset = corners - ORIGIN - cell * CELL
  # Slot i holds cell perm[i] of the drawn permutation.
  np.testing.assert_array_equal(cell[..., 0] * 3 + cell[..., 1],
                                PERM_SET[index])
  # Offsets cover every position a tile fits in, independently per tile.
  assert set(np.unique(offset[..., 0])) == {0, 1, 2}  # 5 - 3
  assert set(np.unique(offset[..., 1])) == {0, 1, 2, 3}  # 6 - 3
  assert len({o.tobytes() for o in offset[:300]}) == 300


# ----------------------------------------------------------------------------
# Relative position.
# ----------------------------------------------------------------------------


def _corner(patches):
  return patches[..., 0, 0, :2].astype(int)


def test_relative_position_neighbour_in_place_without_jitter(batch):
  centre, neighbour, label = (batch["centre_fixed"], batch["neighbour_fixed"],
                              batch["label_fixed"])
  c, n = _corner(centre), _corner(neighbour)
  for i in range(100):  # Exact crops of the image.
    np.testing.assert_array_equal(centre[i], IMAGE[c[i, 0]:c[i, 0] + PATCH,
                                                   c[i, 1]:c[i, 1] + PATCH])
    np.testing.assert_array_equal(neighbour[i],
                                  IMAGE[n[i, 0]:n[i, 0] + PATCH,
                                        n[i, 1]:n[i, 1] + PATCH])
  step = PATCH + GAP
  for lab, (dy, dx) in enumerate(pretext.NEIGHBOUR_OFFSETS):
    pick = label == lab
    assert pick.sum() > 200
    np.testing.assert_array_equal(n[pick] - c[pick],
                                  np.broadcast_to([step * dy, step * dx],
                                                  (pick.sum(), 2)))
  # The centre cell is one cell from the grid corner, which is uniform over
  # [0, size - span]; span = 3 * 3 + 2 * 2 = 13 on 17x19.
  for axis, size in enumerate(IMAGE.shape[:2]):
    assert set(np.unique(c[:, axis] - step)) == set(range(size - 13 + 1))
  # Reading order: 0 top-left, 1 top, 3 left, 4 right, 7 bottom-right.
  assert [pretext.NEIGHBOUR_OFFSETS[i] for i in (0, 1, 3, 4, 7)] == [
      (-1, -1), (-1, 0), (0, -1), (0, 1), (1, 1)]
  with pytest.raises(ValueError, match="needs 19x19"):
    pretext.relative_position_pair(jax.random.key(0), IMAGE, 5, 2)


def test_relative_position_labels_uniform_and_jitter(batch):
  label = batch["label"]
  counts = np.bincount(label, minlength=8)
  assert len(counts) == 8
  for count in counts:
    assert _rate_ok(count, N, 1 / 8), counts
  centre, neighbour = batch["centre"], batch["neighbour"]
  c, n = _corner(centre), _corner(neighbour)
  np.testing.assert_array_equal(centre[:, 2, 1, :2], c + [2, 1])
  step = PATCH + GAP
  shift = n - c - np.asarray(pretext.NEIGHBOUR_OFFSETS)[label] * step
  # The difference of two independent jitters in [-1, 1]: all of [-2, 2].
  assert set(np.unique(shift)) == set(range(-2 * JITTER, 2 * JITTER + 1))
  # Grid corner in [0, size - span], plus jitter room and one cell, +- jitter.
  span = 3 * PATCH + 2 * GAP + 2 * JITTER
  for axis, size in enumerate(IMAGE.shape[:2]):
    assert c[:, axis].min() == step  # corner 0, jitter -1.
    assert c[:, axis].max() == size - span + 2 * JITTER + step


def test_relative_position_colour_dropping(batch):
  np.testing.assert_array_equal(batch["label"], batch["label_drop"])
  np.testing.assert_array_equal(batch["label"], batch["label_fixed"])
  kept_channels = []
  for name in ("centre", "neighbour"):
    plain, dropped = batch[name], batch[name + "_drop"]
    same = np.all(plain == dropped, axis=(1, 2))  # (N, 3)
    np.testing.assert_array_equal(same.sum(1), 1)  # Exactly one channel kept.
    kept_channel = np.argmax(same, 1)
    kept_channels.append(kept_channel)
    for channel in range(3):
      assert _rate_ok((kept_channel == channel).sum(), N, 1 / 3)
    # Two-channel noise at the kept channel's mean, 1/100 of its spread.
    kept = plain[np.arange(N), :, :, kept_channel]  # (N, p, p)
    noise = dropped[~np.broadcast_to(same[:, None, None, :], dropped.shape)]
    noise = noise.reshape(N, -1)
    spread = kept.std(axis=(1, 2))
    np.testing.assert_allclose(noise.mean(1), kept.mean(axis=(1, 2)),
                               atol=1e-5 + 0.01 * spread.max())
    ratio = noise.std(1)[spread > 0] / spread[spread > 0]
    assert 0.007 < np.median(ratio) < 0.013, np.median(ratio)
  # Centre and neighbour drop independently.
  assert _rate_ok((kept_channels[0] == kept_channels[1]).sum(), N, 1 / 3)
  with pytest.raises(ValueError, match="RGB"):
    pretext.random_colour_drop(jax.random.key(0), jnp.zeros((4, 4, 1)))


# ----------------------------------------------------------------------------
# Inpainting masks.
# ----------------------------------------------------------------------------


def test_central_square_mask():
  mask = np.asarray(pretext.central_square_mask(128, 128))
  assert mask.shape == (128, 128, 1) and mask.dtype == np.float32
  expected = np.zeros((128, 128, 1), np.float32)
  expected[32:96, 32:96] = 1  # Context Encoders: 64x64 hole in 128x128.
  np.testing.assert_array_equal(mask, expected)
  mask = np.asarray(pretext.central_square_mask(10, 14, 0.25))
  rows, cols = np.nonzero(mask[..., 0])
  assert mask.sum() == 5 * 7 and (rows.min(), cols.min()) == (2, 3)
  assert np.asarray(pretext.central_square_mask(8, 8, 1.0)).all()
  with pytest.raises(ValueError, match="area_fraction"):
    pretext.central_square_mask(8, 8, 0.0)


def test_random_block_mask_area_and_positions(batch):
  one = batch["block"][..., 0]
  assert one.dtype == np.float32
  np.testing.assert_array_equal(one.sum((1, 2)), 16)
  corners = []
  for m in one[:400]:
    rows, cols = np.nonzero(m)
    assert rows.max() - rows.min() == 3 and cols.max() - cols.min() == 3
    corners.append((rows.min(), cols.min()))
  # Every one of the 3 x 4 positions of a 4x4 block in 6x7 is drawn.
  assert set(corners) == {(r, c) for r in range(3) for c in range(4)}
  area = batch["blocks"].sum((1, 2, 3))
  assert area.min() >= 10 and area.max() <= 30 and (area == 30).mean() > 0.5
  with pytest.raises(ValueError, match="fit"):
    pretext.random_block_mask(jax.random.key(0), 4, 4, 1, 5)


def test_apply_mask_fills():
  image = np.random.RandomState(4).rand(6, 6, 3).astype(np.float32)
  mask = pretext.central_square_mask(6, 6, 4 / 9)  # 4x4 hole.
  m = np.asarray(mask)
  grey = np.asarray(pretext.apply_mask(image, mask))
  np.testing.assert_array_equal(grey, np.where(m == 1, 0.5, image))
  per_channel = np.asarray(pretext.apply_mask(image, mask, (0.1, 0.2, 0.3)))
  np.testing.assert_allclose(per_channel[3, 3], [0.1, 0.2, 0.3])
  mean = np.asarray(pretext.apply_mask(image, mask, "mean"))
  visible_mean = image[m[..., 0] == 0].mean(0)
  np.testing.assert_allclose(mean[2, 2], visible_mean, atol=1e-6)
  np.testing.assert_array_equal(mean[0], image[0])
  with pytest.raises(ValueError, match="does not match"):
    pretext.apply_mask(image, jnp.zeros((5, 6, 1)))


# ----------------------------------------------------------------------------
# Super-resolution.
# ----------------------------------------------------------------------------


def test_downsample_upsample_degrade():
  image = np.random.RandomState(5).rand(6, 9, 3).astype(np.float32)

  @jax.jit
  def everything(x):
    small = pretext.downsample(x, 3)
    degraded = {m: pretext.degrade_for_super_resolution(x, 3, m)
                for m in ("nearest", "bilinear")}
    return (small, pretext.upsample(small, 3, "nearest"),
            pretext.upsample(small, 3), geometry.resize(small, (6, 9)),
            degraded, pretext.downsample(degraded["nearest"], 3))

  small, nearest, bilinear, resized, degraded, again = jax.tree.map(
      np.asarray, everything(image))
  block_mean = image.reshape(2, 3, 3, 3, 3).mean(axis=(1, 3))
  np.testing.assert_allclose(small, block_mean, atol=1e-6)
  np.testing.assert_array_equal(nearest, small.repeat(3, 0).repeat(3, 1))
  np.testing.assert_array_equal(bilinear, resized)
  np.testing.assert_array_equal(degraded["nearest"], nearest)
  np.testing.assert_array_equal(degraded["bilinear"], bilinear)
  # Box-averaging the degraded input gives back the low-res image.
  np.testing.assert_allclose(again, small, atol=1e-6)
  # Bilinear enlargement of a 2-pixel ramp: ends clamp, then linear.
  ramp = np.asarray(pretext.upsample(np.asarray([[[0.0], [1.0]]], np.float32),
                                    2))
  np.testing.assert_allclose(ramp[0, :, 0], [0, 0.25, 0.75, 1], atol=1e-6)
  with pytest.raises(ValueError, match="divisor"):
    pretext.downsample(image, 2)
  with pytest.raises(ValueError, match="method"):
    pretext.upsample(image, 2, "bicubic")


# ----------------------------------------------------------------------------
# Multi-crop and rotations.
# ----------------------------------------------------------------------------


def test_multi_crop_shapes_and_wiring():
  # A crop-only recipe (the colour ops are tested in test_color.py, and each
  # costs compile time) with square crops: at scale (1, 1) a view is then the
  # whole image resized, normalised -- known exactly.
  recipe = augment.simclr_digits(crop_size=8)
  recipe.jitter_prob = 0.0
  recipe.crop_ratio = (1.0, 1.0)
  image = np.random.RandomState(6).randint(0, 256, (12, 12, 1)).astype(
      np.uint8)
  crop = jax.jit(lambda k: pretext.multi_crop(
      k, image, recipe, num_global=2, num_local=3, local_size=4,
      global_scale=(1.0, 1.0)))
  global_views, local_views = crop(jax.random.key(7))
  assert global_views.shape == (2, 8, 8, 1)
  assert local_views.shape == (3, 4, 4, 1)
  assert global_views.dtype == jnp.float32
  whole = geometry.resize(image.astype(np.float32) / 255, 8)
  expected = (np.asarray(whole) - recipe.mean[0]) / recipe.std[0]
  for view in np.asarray(global_views):
    np.testing.assert_allclose(view, expected, atol=1e-5)
  # Local crops: random boxes of 5-14% of the area, so views differ.
  local_views = np.asarray(local_views)
  assert np.abs(local_views[0] - local_views[1]).max() > 1e-3
  # The caller's recipe is left alone.
  assert recipe.crop_size == 8 and tuple(recipe.crop_scale) == (0.3, 1.0)
  # Defaults: SwAV's 2 global + 6 local at 96/224 of the global size.
  cifar = augment.simclr_cifar()
  images = np.zeros((2, 32, 32, 3), np.uint8)
  shapes = jax.eval_shape(
      lambda k, x: pretext.batch_multi_crop(k, x, cifar), _keys(2), images)
  assert [s.shape for s in shapes] == [(2, 2, 32, 32, 3), (2, 6, 14, 14, 3)]
  with pytest.raises(ValueError, match="num_global"):
    pretext.multi_crop(jax.random.key(0), image, recipe, num_global=0)


def test_all_rotations():
  image = np.arange(12, dtype=np.float32).reshape(2, 2, 3)
  out = np.asarray(jax.jit(pretext.all_rotations)(image))
  np.testing.assert_array_equal(
      out, np.stack([np.rot90(image, k, axes=(0, 1)) for k in range(4)]))
