"""Pretext-task transforms: jigsaw, relative position, MAE masking,
inpainting masks, super-resolution inputs, CIE Lab, multi-crop, rotations.

Same contract as the rest of :mod:`ssl_jax.augment`: pure functions of
``(key, image)`` on ONE float HWC image in ``[0, 1]`` (unless stated),
explicit keys, static output shapes, selects instead of Python control flow
on traced values; batch with ``jax.vmap`` over per-image keys. References:

================================  ===========================================
function                          reference
================================  ===========================================
``jigsaw_tiles``, ``jigsaw``      Noroozi & Favaro 2016, "Solving Jigsaw
                                  Puzzles" (permutation sets:
                                  :mod:`ssl_jax.augment.permutations`)
``relative_position_pair``        Doersch, Gupta & Efros 2015, "Context
                                  Prediction"
``random_patch_mask``,            He et al. 2021, "Masked Autoencoders"
``patchify``                      (MAE)
``central_square_mask``,          Pathak et al. 2016, "Context Encoders"
``random_block_mask``
``degrade_for_super_resolution``  SRCNN-style input (Dong et al. 2014): the
                                  low resolution shown at full size
``rgb_to_lab``, ``lab_to_rgb``    CIE Lab as ``skimage.color.rgb2lab`` (for
                                  Zhang, Isola & Efros 2016, "Colorful
                                  Image Colorization")
``multi_crop``                    SwAV (Caron et al. 2020) multi-crop
``all_rotations``                 RotNet (Gidaris et al. 2018); reuses
                                  ``geometry.rot90``
================================  ===========================================
"""
from __future__ import annotations

import math
from typing import Sequence, Tuple, Union

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from jax import lax

from ssl_jax.augment import geometry
from ssl_jax.augment import recipes
from ssl_jax.augment.color import _check_image

Array = jax.Array
Size = Union[int, Tuple[int, int]]

# jigsaw_tiles(normalize_tiles=True) divides by max(std, TILE_STD_FLOOR).
TILE_STD_FLOOR = 0.01
# Relative-position labels 0..7: the eight neighbours of the centre cell in
# reading order, as (row, column) steps of one cell.
NEIGHBOUR_OFFSETS = ((-1, -1), (-1, 0), (-1, 1),
                     (0, -1), (0, 1),
                     (1, -1), (1, 0), (1, 1))


def _draw_uniforms(key: Array, shape) -> Array:
  """The ONE draw each random function below makes from its key.

  Uniforms in ``[0, 1)`` of ``shape``, sliced from a flat draw whose length
  is rounded up to a multiple of 8: every threefry instance costs compile
  time (about a second under ``vmap`` on CPU), and XLA compiles small draws
  of 3 to 7 or 9 values two to three times slower than one of 8.
  """
  count = int(np.prod(shape, dtype=np.int64))
  padded = max(8, -(-count // 8) * 8)
  return jax.random.uniform(key, (padded,), jnp.float32)[:count].reshape(shape)


def _to_int(u: Array, high) -> Array:
  """Map uniforms in ``[0, 1)`` to integers uniform in ``[0, high]``
  (inclusive; ``high`` broadcasts)."""
  high = jnp.asarray(high, jnp.int32)
  return jnp.minimum(jnp.floor(u * (high + 1).astype(jnp.float32)),
                     high).astype(jnp.int32)


def _to_normal(u: Array) -> Array:
  """Standard normals from uniforms in ``[0, 1)`` by the inverse CDF
  (what ``jax.random.normal`` does with its own uniforms)."""
  v = jnp.maximum(2.0 * u - 1.0, np.nextafter(np.float32(-1), np.float32(0)))
  return np.sqrt(2.0).astype(np.float32) * lax.erf_inv(v)


def _crop(image: Array, top: Array, left: Array,
          size: Tuple[int, int]) -> Array:
  """Static-size crop at a traced corner (``lax.dynamic_slice``)."""
  zero = jnp.zeros((), jnp.int32)
  return lax.dynamic_slice(image, (top, left, zero),
                           (size[0], size[1], image.shape[-1]))


# ---------------------------------------------------------------------------
# Jigsaw (Noroozi & Favaro 2016).
# ---------------------------------------------------------------------------


def jigsaw_tiles(key: Array, image: Array, permutation: Array, tile_size: int,
                 grid: int = 3, jitter: bool = True,
                 normalize_tiles: bool = False) -> Array:
  """Cut ``image`` into a ``grid x grid`` puzzle and shuffle the tiles.

  Noroozi & Favaro (2016) split a crop into a 3x3 grid of cells and take a
  smaller tile at a random place inside each cell, so that neighbouring
  tiles are separated by a random gap and edges cannot be matched (the
  paper: 64-px tiles in 75-px cells of a 225 crop; their public code: 64-px
  tiles in 85-px cells of a 255 crop).

  Layout: cells have side ``H // grid`` by ``W // grid`` and are centred in
  the image (leftover rows/columns at the borders are unused). Cells are
  numbered row-major ``0 .. grid^2 - 1``. Each tile is ``tile_size`` square;
  with ``jitter`` its offset inside the cell is uniform over the
  ``cell - tile_size + 1`` positions per axis (independently per tile and
  axis), without it the tile is centred (offset ``(cell - tile_size) // 2``),
  making the gap between neighbouring tiles exactly ``cell - tile_size``.

  Args:
    key: PRNG key (used only when ``jitter``).
    image: float ``(H, W, C)``.
    permutation: int ``(grid^2,)``, may be traced. Output slot ``i`` holds
      the tile of cell ``permutation[i]``, i.e. ``tiles[permutation]``.
    tile_size: static tile side, at most the cell side.
    grid: static number of cells per side.
    jitter: random (True) or centred (False) tile offsets.
    normalize_tiles: standardise each tile per channel to zero mean and
      unit standard deviation (the paper does this to remove low-level
      shortcuts). The standard deviation is floored at
      ``TILE_STD_FLOOR`` (0.01, under one grey level of a normalised
      uint8 image): a flat channel is only centred, and the rounding noise
      of a nearly flat one is not blown up to unit scale.

  Returns:
    ``(grid^2, tile_size, tile_size, C)``.
  """
  num_tiles = _check_jigsaw(image, permutation, tile_size, grid)
  uniforms = _draw_uniforms(key, (num_tiles, 2)) if jitter else None
  return _jigsaw_tiles(uniforms, image, permutation, tile_size, grid,
                       normalize_tiles)


def _check_jigsaw(image: Array, permutation: Array, tile_size: int,
                  grid: int) -> int:
  _check_image(image, "jigsaw_tiles")
  if grid < 1:
    raise ValueError(f"jigsaw_tiles: grid must be >= 1, got {grid}.")
  height, width, _ = image.shape
  cell = min(height // grid, width // grid)
  if not 1 <= tile_size <= cell:
    raise ValueError(
        f"jigsaw_tiles: tile_size must be in [1, {cell}] (the cell side of a "
        f"{grid}x{grid} grid on a {height}x{width} image), got {tile_size}; "
        "lower tile_size or pass a larger image (e.g. 64-px tiles need a 255 "
        "crop for 85-px cells).")
  if tuple(jnp.shape(permutation)) != (grid * grid,):
    raise ValueError(f"jigsaw_tiles: permutation must have shape "
                     f"({grid * grid},) for a {grid}x{grid} grid, got "
                     f"{tuple(jnp.shape(permutation))}.")
  return grid * grid


def _jigsaw_tiles(uniforms, image: Array, permutation: Array, tile_size: int,
                  grid: int, normalize_tiles: bool) -> Array:
  """:func:`jigsaw_tiles` given ``(grid^2, 2)`` offset uniforms (``None``:
  centred tiles)."""
  height, width, _ = image.shape
  cell_h, cell_w = height // grid, width // grid
  num_tiles = grid * grid
  cell_row = np.repeat(np.arange(grid), grid)
  cell_col = np.tile(np.arange(grid), grid)
  tops = (height - grid * cell_h) // 2 + cell_row * cell_h
  lefts = (width - grid * cell_w) // 2 + cell_col * cell_w
  slack = np.asarray([cell_h - tile_size, cell_w - tile_size])
  if uniforms is not None:
    offsets = _to_int(uniforms, slack)
  else:
    offsets = jnp.broadcast_to(jnp.asarray(slack // 2, jnp.int32),
                               (num_tiles, 2))
  tops = jnp.asarray(tops, jnp.int32) + offsets[:, 0]
  lefts = jnp.asarray(lefts, jnp.int32) + offsets[:, 1]
  tiles = jax.vmap(lambda t, l: _crop(image, t, l, (tile_size, tile_size)))(
      tops, lefts)
  if normalize_tiles:
    mean = jnp.mean(tiles, axis=(1, 2), keepdims=True)
    std = jnp.std(tiles, axis=(1, 2), keepdims=True)
    tiles = (tiles - mean) / jnp.maximum(std, TILE_STD_FLOOR)
  return jnp.take(tiles, jnp.asarray(permutation, jnp.int32), axis=0)


def jigsaw(key: Array, image: Array, permutation_set: Array, tile_size: int,
           grid: int = 3, jitter: bool = True,
           normalize_tiles: bool = False) -> Tuple[Array, Array]:
  """One jigsaw example: a permutation index drawn uniformly from the set,
  and the tiles shuffled by that permutation (:func:`jigsaw_tiles`).

  ``permutation_set``: int ``(P, grid^2)``, e.g. from
  :func:`ssl_jax.augment.permutations.load_or_create_permutations`.

  Returns:
    ``(tiles (grid^2, tile, tile, C), index)``; ``index`` (int32 in
    ``[0, P)``) is the classification target.
  """
  permutation_set = jnp.asarray(permutation_set, jnp.int32)
  if (permutation_set.ndim != 2 or permutation_set.shape[0] < 1 or
      permutation_set.shape[1] != grid * grid):
    raise ValueError(
        f"jigsaw: permutation_set must have shape (P, {grid * grid}) for a "
        f"{grid}x{grid} grid, got {tuple(permutation_set.shape)}; build one "
        f"with permutations.load_or_create_permutations(P, num_tiles="
        f"{grid * grid}).")
  num_tiles = _check_jigsaw(image, permutation_set[0], tile_size, grid)
  count = permutation_set.shape[0]
  u = _draw_uniforms(key, (1 + 2 * num_tiles,))
  index = _to_int(u[0], count - 1)
  uniforms = u[1:].reshape(num_tiles, 2) if jitter else None
  tiles = _jigsaw_tiles(uniforms, image, permutation_set[index], tile_size,
                        grid, normalize_tiles)
  return tiles, index


# ---------------------------------------------------------------------------
# Relative position (Doersch et al. 2015).
# ---------------------------------------------------------------------------


def random_colour_drop(key: Array, image: Array,
                       noise_scale: float = 0.01) -> Array:
  """Keep one random colour channel, replace the other two by noise.

  Doersch et al. (2015) "colour dropping": a network can tell where a patch
  lies in the lens from chromatic aberration (green shifted against red and
  blue), so two of the three channels are replaced by Gaussian noise with a
  standard deviation of ``noise_scale`` (1/100) times that of the kept
  channel. The noise is centred at the kept channel's mean (the paper works
  on mean-subtracted images, where this is zero). RGB images only.
  """
  _check_colour_drop(image)
  u = _draw_uniforms(key, (1 + image.size,))
  return _colour_drop(u[0], u[1:].reshape(image.shape), image, noise_scale)


def _check_colour_drop(image: Array) -> None:
  _check_image(image, "random_colour_drop")
  if image.shape[-1] != 3:
    raise ValueError(
        f"random_colour_drop: needs an RGB image, got shape "
        f"{tuple(image.shape)}; colour dropping is meaningless on one "
        "channel, so pass drop_colour=False.")


def _colour_drop(u_channel: Array, u_noise: Array, image: Array,
                 noise_scale: float) -> Array:
  """:func:`random_colour_drop` given its uniforms: one for the kept
  channel, one per pixel value for the noise."""
  keep = _to_int(u_channel, 2)
  is_kept = jnp.arange(3) == keep
  kept = jnp.sum(jnp.where(is_kept, image, 0.0), axis=-1)
  noise = jnp.mean(kept) + noise_scale * jnp.std(kept) * _to_normal(u_noise)
  return jnp.where(is_kept, image, noise.astype(image.dtype))


def relative_position_pair(key: Array, image: Array, patch_size: int,
                           gap: int, jitter: int = 0,
                           drop_colour: bool = False,
                           noise_scale: float = 0.01
                           ) -> Tuple[Array, Array, Array]:
  """Doersch et al. (2015) context prediction: a centre patch, one of its
  eight neighbours, and which neighbour it is.

  A 3x3 grid of ``patch_size`` squares separated by ``gap`` pixels is placed
  uniformly at random inside the image; it needs ``3 * patch_size + 2 * gap
  + 2 * jitter`` pixels per side (the paper: 96-px patches, 48-px gaps,
  jitter up to 7 px). The label is uniform over ``0..7``, numbering the
  neighbours in reading order (:data:`NEIGHBOUR_OFFSETS`: 0 top-left, 1 top,
  2 top-right, 3 left, 4 right, 5 bottom-left, 6 bottom, 7 bottom-right).
  Each of the two patches is then shifted by its own uniform integer jitter
  in ``[-jitter, jitter]`` per axis, so the network cannot rely on exact
  edge continuation. With ``drop_colour`` each patch goes through
  :func:`random_colour_drop` (independent draws).

  Returns:
    ``(centre, neighbour, label)``: two ``(patch, patch, C)`` patches and an
    int32 label.
  """
  _check_image(image, "relative_position_pair")
  height, width, _ = image.shape
  if patch_size < 1 or gap < 0 or jitter < 0:
    raise ValueError(
        f"relative_position_pair: need patch_size >= 1, gap >= 0 and jitter "
        f">= 0, got {patch_size}, {gap}, {jitter}.")
  step = patch_size + gap
  span = 3 * patch_size + 2 * gap + 2 * jitter
  if min(height, width) < span:
    raise ValueError(
        f"relative_position_pair: a 3x3 grid of {patch_size}-px patches with "
        f"{gap}-px gaps and {jitter}-px jitter needs {span}x{span} pixels, "
        f"got a {height}x{width} image; resize the image up or use a smaller "
        "patch_size / gap / jitter.")
  if drop_colour:
    _check_colour_drop(image)
  patch_values = patch_size * patch_size * image.shape[-1]
  # One draw: label, grid corner (2), jitters (2 x 2), then for colour
  # dropping a channel and the noise for each patch.
  u = _draw_uniforms(key, (7 + (2 + 2 * patch_values if drop_colour else 0),))
  label = _to_int(u[0], 7)
  corner = _to_int(u[1:3], np.asarray([height - span, width - span]))
  centre_corner = corner + jitter + step
  neighbour_corner = (centre_corner +
                      jnp.asarray(NEIGHBOUR_OFFSETS, jnp.int32)[label] * step)
  shifts = _to_int(u[3:7].reshape(2, 2), 2 * jitter) - jitter
  size = (patch_size, patch_size)
  centre = _crop(image, *(centre_corner + shifts[0]), size)
  neighbour = _crop(image, *(neighbour_corner + shifts[1]), size)
  if drop_colour:
    noise = u[9:].reshape((2,) + centre.shape)
    centre = _colour_drop(u[7], noise[0], centre, noise_scale)
    neighbour = _colour_drop(u[8], noise[1], neighbour, noise_scale)
  return centre, neighbour, label


# ---------------------------------------------------------------------------
# MAE random masking and patches (He et al. 2021).
# ---------------------------------------------------------------------------


def num_kept_patches(num_patches: int, mask_ratio: float) -> int:
  """Patches MAE keeps visible: ``floor(num_patches * (1 - mask_ratio))``.

  MAE computes ``int(L * (1 - mask_ratio))``; here the floor is taken with a
  1e-6 tolerance so that float round-off cannot drop a patch (MAE's
  expression gives 0 for ``L = 10, mask_ratio = 0.9``, this gives 1). For
  ViT-B/16 at 224 px (``L = 196``) and ratio 0.75: 49 kept, 147 masked.
  At least one patch must stay visible.
  """
  if not 0.0 <= mask_ratio < 1.0:
    raise ValueError(f"num_kept_patches: mask_ratio must be in [0, 1), got "
                     f"{mask_ratio}.")
  kept = int(math.floor(num_patches * (1.0 - mask_ratio) + 1e-6))
  if kept < 1:
    raise ValueError(
        f"num_kept_patches: mask_ratio={mask_ratio} keeps no patch out of "
        f"{num_patches}; lower the ratio or use more patches.")
  return kept


def random_patch_mask(key: Array, num_patches: int,
                      mask_ratio: float) -> Tuple[Array, Array, Array]:
  """MAE per-sample random masking by argsort of uniform noise.

  ``ids_shuffle = argsort(noise)``; the first ``len_keep =``
  :func:`num_kept_patches` of the shuffle are kept. ``ids_restore =
  argsort(ids_shuffle)`` undoes the shuffle: with ``kept = x[ids_keep]``,
  ``jnp.concatenate([kept, mask_tokens])[ids_restore]`` puts every token
  back at its position (the MAE decoder's un-shuffle). ``mask`` is 1 for a
  masked patch, i.e. ``mask[i] = ids_restore[i] >= len_keep``.

  Returns:
    ``(mask float32 (L,), ids_keep int32 (len_keep,), ids_restore int32
    (L,))``.
  """
  len_keep = num_kept_patches(num_patches, mask_ratio)
  noise = _draw_uniforms(key, (num_patches,))
  ids_shuffle = jnp.argsort(noise).astype(jnp.int32)
  ids_restore = jnp.argsort(ids_shuffle).astype(jnp.int32)
  mask = (ids_restore >= len_keep).astype(jnp.float32)
  return mask, ids_shuffle[:len_keep], ids_restore


def patchify(image: Array, patch_size: int) -> Array:
  """``(..., H, W, C)`` -> ``(..., L, patch_size^2 * C)``, MAE's layout.

  Patches in row-major order (``L = (H / p) * (W / p)``), each flattened in
  ``(row, column, channel)`` order; exactly inverted by :func:`unpatchify`.
  """
  if image.ndim < 3:
    raise ValueError(f"patchify: expected (..., H, W, C), got shape "
                     f"{tuple(image.shape)}.")
  *lead, height, width, channels = image.shape
  if height % patch_size or width % patch_size:
    raise ValueError(
        f"patchify: {height}x{width} is not divisible by patch_size "
        f"{patch_size}; resize or crop the image to a multiple of it.")
  rows, cols = height // patch_size, width // patch_size
  x = image.reshape(*lead, rows, patch_size, cols, patch_size, channels)
  x = jnp.swapaxes(x, -4, -3)  # (..., rows, cols, p, p, C)
  return x.reshape(*lead, rows * cols, patch_size * patch_size * channels)


def unpatchify(patches: Array, patch_size: int, height: int, width: int,
               channels: int) -> Array:
  """Inverse of :func:`patchify`: ``(..., L, p^2 C)`` -> ``(..., H, W, C)``."""
  rows, cols = height // patch_size, width // patch_size
  expected = (rows * cols, patch_size * patch_size * channels)
  if (height % patch_size or width % patch_size or
      tuple(patches.shape[-2:]) != expected):
    raise ValueError(
        f"unpatchify: patches of shape {tuple(patches.shape)} do not tile a "
        f"{height}x{width}x{channels} image with patch_size {patch_size} "
        f"(expected (..., {expected[0]}, {expected[1]})).")
  lead = patches.shape[:-2]
  x = patches.reshape(*lead, rows, cols, patch_size, patch_size, channels)
  x = jnp.swapaxes(x, -4, -3)  # (..., rows, p, cols, p, C)
  return x.reshape(*lead, height, width, channels)


# ---------------------------------------------------------------------------
# Inpainting masks (Pathak et al. 2016).
# ---------------------------------------------------------------------------


def central_square_mask(height: int, width: int,
                        area_fraction: float = 0.25) -> Array:
  """Context Encoders' central region: 1 inside a centred rectangle.

  The rectangle has sides ``round(H * s)`` and ``round(W * s)`` with
  ``s = sqrt(area_fraction)``, so it covers ``area_fraction`` of the image
  (up to rounding) and is square on a square image: the default 0.25 is the
  paper's 64x64 hole in a 128x128 image. Offsets ``(H - h) // 2``,
  ``(W - w) // 2``.

  Returns:
    float32 ``(H, W, 1)``, 1 = removed.
  """
  if not 0.0 < area_fraction <= 1.0:
    raise ValueError(f"central_square_mask: area_fraction must be in (0, 1], "
                     f"got {area_fraction}.")
  side = math.sqrt(area_fraction)
  hole_h = max(1, int(round(height * side)))
  hole_w = max(1, int(round(width * side)))
  top, left = (height - hole_h) // 2, (width - hole_w) // 2
  mask = np.zeros((height, width, 1), np.float32)
  mask[top:top + hole_h, left:left + hole_w] = 1.0
  return jnp.asarray(mask)


def random_block_mask(key: Array, height: int, width: int, num_blocks: int,
                      block_size: Size) -> Array:
  """Union of ``num_blocks`` blocks at uniform random positions.

  Context Encoders' "random block" masks: each block is ``block_size``
  (an int or ``(h, w)``) and lies fully inside the image, its corner uniform
  over the valid positions; blocks may overlap, so the masked area is between
  one block and ``num_blocks`` blocks.

  Returns:
    float32 ``(H, W, 1)``, 1 = removed.
  """
  block_h, block_w = geometry._pair(block_size, "random_block_mask")
  if block_h > height or block_w > width or num_blocks < 1:
    raise ValueError(
        f"random_block_mask: need num_blocks >= 1 and blocks of "
        f"{block_h}x{block_w} that fit in {height}x{width}, got "
        f"num_blocks={num_blocks}; use smaller blocks.")
  u = _draw_uniforms(key, (num_blocks, 2))
  corners = _to_int(u, np.asarray([height - block_h, width - block_w]))
  rows = jnp.arange(height)[None, :]
  cols = jnp.arange(width)[None, :]
  in_rows = (rows >= corners[:, :1]) & (rows < corners[:, :1] + block_h)
  in_cols = (cols >= corners[:, 1:]) & (cols < corners[:, 1:] + block_w)
  mask = jnp.any(in_rows[:, :, None] & in_cols[:, None, :], axis=0)
  return mask[..., None].astype(jnp.float32)


def apply_mask(image: Array, mask: Array,
               fill: Union[float, Sequence[float], str] = 0.5) -> Array:
  """Replace the masked pixels: ``image * (1 - mask) + fill * mask``.

  ``fill``: a value (0.5: mid grey), one value per channel (e.g. the data
  set mean, as Context Encoders), or ``'mean'`` for the per-channel mean of
  this image's visible pixels. ``mask`` is ``(H, W, 1)`` or ``(H, W, C)``,
  1 = removed; fractional masks blend.
  """
  _check_image(image, "apply_mask")
  mask = jnp.asarray(mask, image.dtype)
  if mask.ndim != 3 or mask.shape[:2] != image.shape[:2]:
    raise ValueError(f"apply_mask: mask of shape {tuple(mask.shape)} does not "
                     f"match the image {tuple(image.shape)}; expected "
                     f"({image.shape[0]}, {image.shape[1]}, 1).")
  if isinstance(fill, str):
    if fill != "mean":
      raise ValueError(f"apply_mask: fill must be a number, one number per "
                       f"channel, or 'mean'; got {fill!r}.")
    visible = 1.0 - mask
    count = jnp.maximum(jnp.sum(jnp.broadcast_to(visible, image.shape),
                                axis=(0, 1)), 1.0)
    fill_value = jnp.sum(image * visible, axis=(0, 1)) / count
  else:
    fill_value = jnp.asarray(fill, image.dtype).reshape(-1)
    if fill_value.shape[0] not in (1, image.shape[-1]):
      raise ValueError(f"apply_mask: fill has {fill_value.shape[0]} values for "
                       f"{image.shape[-1]} channel(s).")
  return image * (1.0 - mask) + fill_value * mask


# ---------------------------------------------------------------------------
# Super-resolution inputs.
# ---------------------------------------------------------------------------


def downsample(image: Array, factor: int) -> Array:
  """Box (area) average over ``factor x factor`` blocks.

  Equivalent to ``cv2.INTER_AREA`` / PIL ``Image.reduce(factor)`` on float
  images for integer factors. ``H`` and ``W`` must be multiples of
  ``factor``.
  """
  _check_image(image, "downsample")
  height, width, channels = image.shape
  if factor < 1 or height % factor or width % factor:
    raise ValueError(
        f"downsample: factor must be a positive divisor of {height} and "
        f"{width}, got {factor}; crop first, e.g. image[:{height} - {height} % "
        f"f, :{width} - {width} % f].")
  blocks = image.reshape(height // factor, factor, width // factor, factor,
                         channels)
  return jnp.mean(blocks, axis=(1, 3))


def upsample(image: Array, factor: int, method: str = "bilinear") -> Array:
  """Enlarge by an integer ``factor``.

  ``'nearest'``: every pixel repeated ``factor x factor`` times.
  ``'bilinear'``: :func:`ssl_jax.augment.geometry.resize`, i.e. PIL
  ``Image.resize(..., BILINEAR)`` (half-pixel centres, borders clamped).
  """
  _check_image(image, "upsample")
  if factor < 1:
    raise ValueError(f"upsample: factor must be >= 1, got {factor}.")
  if method == "nearest":
    return jnp.repeat(jnp.repeat(image, factor, axis=0), factor, axis=1)
  if method == "bilinear":
    return geometry.resize(image, (image.shape[0] * factor,
                                   image.shape[1] * factor))
  raise ValueError(f"upsample: method must be 'bilinear' or 'nearest', got "
                   f"{method!r}.")


def degrade_for_super_resolution(image: Array, factor: int,
                                 method: str = "bilinear") -> Array:
  """The super-resolution input: :func:`downsample` then :func:`upsample`
  back to the original size (SRCNN feeds the network the interpolated
  low-resolution image; it used bicubic both ways, this uses box-down and
  ``method``-up). The target is ``image`` itself."""
  return upsample(downsample(image, factor), factor, method)


# ---------------------------------------------------------------------------
# CIE Lab (colorization).
# ---------------------------------------------------------------------------

# sRGB (linear) -> CIE XYZ and the D65 white point (2-degree observer), the
# constants of scikit-image's rgb2lab / lab2rgb.
XYZ_FROM_RGB = np.asarray([[0.412453, 0.357580, 0.180423],
                           [0.212671, 0.715160, 0.072169],
                           [0.019334, 0.119193, 0.950227]])
RGB_FROM_XYZ = np.linalg.inv(XYZ_FROM_RGB)
D65_WHITE = (0.95047, 1.0, 1.08883)
_LAB_EPSILON = 0.008856  # (6/29)^3, rounded as in scikit-image
_LAB_SLOPE = 7.787  # (29/6)^2 / 3, rounded as in scikit-image


def _check_rgb(image: Array, fn: str) -> None:
  if image.ndim < 1 or image.shape[-1] != 3:
    raise ValueError(f"{fn}: expected 3 channels last (..., 3), got shape "
                     f"{tuple(image.shape)}; a grayscale image has L only "
                     "(a = b = 0).")
  if not jnp.issubdtype(image.dtype, jnp.floating):
    raise ValueError(f"{fn}: expected float values, got dtype {image.dtype}; "
                     "convert uint8 pixels with image / 255.")


def _matmul_last(x: Array, matrix: np.ndarray) -> Array:
  return jnp.einsum("...j,ij->...i", x, jnp.asarray(matrix, jnp.float32),
                    precision=lax.Precision.HIGHEST)


def rgb_to_lab(image: Array) -> Array:
  """sRGB in ``[0, 1]`` -> CIE L*a*b* (D65, 2-degree observer).

  Reference: ``skimage.color.rgb2lab``: undo the sRGB gamma
  (``((c + 0.055) / 1.055)^2.4`` above 0.04045, ``c / 12.92`` below),
  linear RGB -> XYZ, divide by the white point, ``f(t) = t^(1/3)`` above
  0.008856 and ``7.787 t + 16/116`` below, ``L = 116 f(Y) - 16``,
  ``a = 500 (f(X) - f(Y))``, ``b = 200 (f(Y) - f(Z))``. ``L`` is in
  ``[0, 100]``, ``a, b`` roughly in ``[-128, 128]``. Works on any leading
  shape ``(..., 3)``.
  """
  _check_rgb(image, "rgb_to_lab")
  x = jnp.asarray(image, jnp.float32)
  high = jnp.power((jnp.maximum(x, 0.04045) + 0.055) / 1.055, 2.4)
  linear = jnp.where(x > 0.04045, high, x / 12.92)
  xyz = _matmul_last(linear, XYZ_FROM_RGB) / jnp.asarray(D65_WHITE,
                                                         jnp.float32)
  f = jnp.where(xyz > _LAB_EPSILON,
                jnp.cbrt(jnp.maximum(xyz, _LAB_EPSILON)),
                _LAB_SLOPE * xyz + 16.0 / 116.0)
  fx, fy, fz = f[..., 0], f[..., 1], f[..., 2]
  return jnp.stack([116.0 * fy - 16.0, 500.0 * (fx - fy), 200.0 * (fy - fz)],
                   axis=-1)


def lab_to_rgb(lab: Array) -> Array:
  """CIE L*a*b* -> sRGB in ``[0, 1]``, the inverse of :func:`rgb_to_lab`.

  Reference: ``skimage.color.lab2rgb``, including its handling of colours
  outside the sRGB gamut: a negative ``f(Z)`` is set to 0 and the final RGB
  is clipped to ``[0, 1]``.
  """
  _check_rgb(lab, "lab_to_rgb")
  lab = jnp.asarray(lab, jnp.float32)
  fy = (lab[..., 0] + 16.0) / 116.0
  fx = lab[..., 1] / 500.0 + fy
  fz = jnp.maximum(fy - lab[..., 2] / 200.0, 0.0)
  f = jnp.stack([fx, fy, fz], axis=-1)
  threshold = 6.0 / 29.0  # f(epsilon); scikit-image writes 0.2068966.
  xyz = jnp.where(f > threshold, f ** 3, (f - 16.0 / 116.0) / _LAB_SLOPE)
  linear = _matmul_last(xyz * jnp.asarray(D65_WHITE, jnp.float32),
                        RGB_FROM_XYZ)
  high = 1.055 * jnp.power(jnp.maximum(linear, 0.0031308), 1.0 / 2.4) - 0.055
  rgb = jnp.where(linear > 0.0031308, high, 12.92 * linear)
  return jnp.clip(rgb, 0.0, 1.0)


def split_l_ab(lab: Array) -> Tuple[Array, Array]:
  """``(..., 3)`` Lab -> ``(L (..., 1), ab (..., 2))``: the colorization
  input and target (Zhang et al. 2016). ``jnp.concatenate([L, ab], -1)``
  joins them again."""
  _check_rgb(lab, "split_l_ab")
  return lab[..., :1], lab[..., 1:]


# ---------------------------------------------------------------------------
# Multi-crop (SwAV) and rotations (RotNet).
# ---------------------------------------------------------------------------


def _with_crop(recipe: ml_collections.ConfigDict, size: int,
               scale: Tuple[float, float]) -> ml_collections.ConfigDict:
  if isinstance(recipe, ml_collections.FrozenConfigDict):
    recipe = recipe.as_configdict()
  out = recipe.copy_and_resolve_references()
  out.crop_size = int(size)
  out.crop_scale = tuple(float(s) for s in scale)
  return out


def multi_crop(key: Array, image_uint8: Array,
               recipe: ml_collections.ConfigDict, num_global: int = 2,
               global_size: Union[int, None] = None, num_local: int = 6,
               local_size: Union[int, None] = None,
               global_scale: Tuple[float, float] = (0.14, 1.0),
               local_scale: Tuple[float, float] = (0.05, 0.14)
               ) -> Tuple[Array, Array]:
  """SwAV multi-crop (Caron et al. 2020): a few large views and several
  small ones of one uint8 HWC image.

  Every view is :func:`ssl_jax.augment.recipes.view` with the recipe's
  colour pipeline; only the crop changes: ``num_global`` views of
  ``global_size`` (default ``recipe.crop_size``) with RandomResizedCrop
  scale ``global_scale``, and ``num_local`` views of ``local_size`` (default
  ``round(global_size * 96 / 224)``, SwAV's 224/96 ratio) with scale
  ``local_scale``. SwAV's ImageNet setting is 2x224 at (0.14, 1) plus 6x96
  at (0.05, 0.14), the defaults here.

  Returns:
    ``(global_views (num_global, g, g, C), local_views (num_local, l, l,
    C))`` in ``recipe.dtype``, normalised as ``view``.
  """
  if num_global < 1 or num_local < 0:
    raise ValueError(f"multi_crop: need num_global >= 1 and num_local >= 0, "
                     f"got {num_global} and {num_local}.")
  global_size = recipe.crop_size if global_size is None else global_size
  if local_size is None:
    local_size = max(1, int(round(global_size * 96 / 224)))
  global_recipe = _with_crop(recipe, global_size, global_scale)
  local_recipe = _with_crop(recipe, local_size, local_scale)
  keys = jax.random.split(key, num_global + num_local)
  global_views = jax.vmap(
      lambda k: recipes.view(k, image_uint8, global_recipe))(keys[:num_global])
  local_views = jax.vmap(
      lambda k: recipes.view(k, image_uint8, local_recipe))(keys[num_global:])
  return global_views, local_views


def batch_multi_crop(keys: Array, images_uint8: Array,
                     recipe: ml_collections.ConfigDict,
                     **kwargs) -> Tuple[Array, Array]:
  """``jax.vmap(multi_crop)`` over per-image keys and a uint8 NHWC batch.

  Returns ``((B, num_global, g, g, C), (B, num_local, l, l, C))``; keyword
  arguments are those of :func:`multi_crop`.
  """
  num_keys = jnp.asarray(keys).shape[0]
  if images_uint8.ndim != 4 or num_keys != images_uint8.shape[0]:
    raise ValueError(
        f"batch_multi_crop: expected a (B, H, W, C) batch and one key per "
        f"image, got images {tuple(images_uint8.shape)} and keys "
        f"{tuple(jnp.asarray(keys).shape)}; use jax.random.split(key, B).")
  return jax.vmap(lambda k, x: multi_crop(k, x, recipe, **kwargs))(
      keys, images_uint8)


def all_rotations(image: Array) -> Array:
  """RotNet's four inputs: ``image`` rotated by 0, 90, 180 and 270 degrees
  counter-clockwise (:func:`ssl_jax.augment.geometry.rot90`), stacked as
  ``(4, H, W, C)``; the labels are ``jnp.arange(4)``. The image must be
  square."""
  return jnp.stack([geometry.rot90(image, k) for k in range(4)])
