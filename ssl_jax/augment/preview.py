r"""Look at what an augmentation recipe does: write a PNG grid of views.

    python -m ssl_jax.augment.preview --recipe=simclr --out=views.png
    python -m ssl_jax.augment.preview --recipe=byol_view2 --dataset=cifar10 \
        --index=7 --num_views=15 --out=byol.png
    python -m ssl_jax.augment.preview --recipe=mocov2 --image=cat.png \
        --out=moco.png

The first panel is the original image, the next ``--num_views`` are
independent draws of the recipe (:func:`ssl_jax.augment.batch_views` under
``jit``), de-normalised back to ``[0, 1]`` (``x * std + mean``) for display.
Each panel is scaled to ``--panel_size`` pixels (nearest-neighbour when
enlarging, so that the pixels of a 32x32 view stay visible) and captioned.

``--recipe`` takes

* ``simclr``: chosen by the image. One channel: ``simclr_digits``; a shorter
  side of at most 64 pixels (CIFAR-sized): ``simclr_cifar``; larger images:
  ``simclr_imagenet``. Each keeps its own crop size unless ``--crop_size``
  is given;
* any :func:`ssl_jax.augment.get_recipe` name (``simclr_imagenet``,
  ``simclr_cifar``, ``simclr_digits``, ``mocov2``, ``byol_view1``,
  ``byol_view2``);
* a pretext task name (:data:`PRETEXT_PANELS`, kernels from
  :mod:`ssl_jax.augment.pretext`): panels of that task's inputs instead of
  recipe views, from the image centre-cropped to a square:

  =====================  ================================================
  ``rotation``           the four rotations with their labels (RotNet)
  ``jigsaw``             the 3x3 cells in order, then ``--num_views``
                         shuffled puzzles with their permutation index
                         (a ``--permutations`` set, cached)
  ``relative_position``  centre patch and neighbour, laid out where the
                         label puts the neighbour (Doersch et al.)
  ``mae_mask``           75% of an 8x8 patch grid masked grey (MAE)
  ``inpainting``         the central hole, then random-block masks
  ``super_resolution``   the x2 / x4 / x8 degraded inputs
  ``colorization``       L input, a and b targets, Lab -> RGB round trip
  ``multi_crop``         SwAV's 2 global and up to 6 local views of the
                         ``simclr`` recipe chosen for the image
  =====================  ================================================

A recipe's channel count wins: a colour image is converted to luma for a
one-channel recipe, a one-channel image is repeated to RGB for the others.

The image: ``--image`` (any file PIL reads), else ``--dataset`` at
``--index`` (``cifar10``: the test split of ``--data_dir``, by default
``../shared/datasets/cifar10`` beside the repository; ``digits``:
scikit-learn's 8x8 digits, enlarged to 32x32), else by default the first
CIFAR-10 test image if that file exists, else the first digit.
"""
from __future__ import annotations

import argparse
import dataclasses
import math
import os
import pathlib
import sys
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from PIL import Image
from PIL import ImageDraw
from PIL import ImageFont

from ssl_jax.augment import color
from ssl_jax.augment import permutations
from ssl_jax.augment import pretext
from ssl_jax.augment import recipes

Panel = Tuple[str, np.ndarray]  # (caption, float HWC image in [0, 1])

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]
DEFAULT_CIFAR10_DIR = REPO_ROOT.parent / "shared" / "datasets" / "cifar10"
DIGITS_DISPLAY_SIZE = 32

PAD = 4             # pixels between panels and around the grid
CAPTION_HEIGHT = 14  # pixels of caption under every panel
HEADER_HEIGHT = 16   # pixels of the title line above the grid
MAX_AUTO_COLUMNS = 9
BACKGROUND = (255, 255, 255)


class PreviewError(ValueError):
  """A bad option or input, reported by the CLI as one line."""


# ---------------------------------------------------------------------------
# Images.
# ---------------------------------------------------------------------------


def _digit(index: int) -> np.ndarray:
  from sklearn.datasets import load_digits  # pylint: disable=g-import-not-at-top
  digits = load_digits().images
  if not 0 <= index < len(digits):
    raise PreviewError(f"--index={index} is out of range for the digits "
                       f"(0..{len(digits) - 1}).")
  pixels = np.round(digits[index] * (255.0 / 16.0)).astype(np.uint8)
  big = Image.fromarray(pixels, "L").resize(
      (DIGITS_DISPLAY_SIZE, DIGITS_DISPLAY_SIZE), Image.BILINEAR)
  return np.asarray(big)[..., None]


def _cifar10(index: int, data_dir: pathlib.Path) -> np.ndarray:
  path = pathlib.Path(data_dir) / "test.npz"
  if not path.exists():
    raise PreviewError(f"no CIFAR-10 test split at {path}; pass --data_dir=DIR "
                       "(a folder with test.npz) or use --dataset=digits.")
  with np.load(path) as data:
    images = data["image"]
    if not 0 <= index < len(images):
      raise PreviewError(f"--index={index} is out of range for {path} "
                         f"(0..{len(images) - 1}).")
    return np.asarray(images[index], np.uint8)


def load_image(image: Optional[str] = None, dataset: Optional[str] = None,
               index: int = 0, data_dir: Optional[str] = None
               ) -> Tuple[np.ndarray, str]:
  """The image to preview as uint8 HWC (1 or 3 channels) and a short label.

  ``image`` (a path) wins over ``dataset``; with neither, the first CIFAR-10
  test image if ``data_dir`` (default :data:`DEFAULT_CIFAR10_DIR`) holds
  ``test.npz``, else the first scikit-learn digit.
  """
  data_dir = pathlib.Path(data_dir) if data_dir else DEFAULT_CIFAR10_DIR
  if image is not None:
    try:
      with Image.open(image) as img:
        img.load()
        if img.mode in ("1", "L", "I", "I;16", "F"):
          pixels = np.asarray(img.convert("L"))[..., None]
        else:
          pixels = np.asarray(img.convert("RGB"))
    except OSError as e:
      raise PreviewError(f"cannot read --image={image}: {e}") from e
    return pixels, os.path.basename(image)
  if dataset is None:
    dataset = "cifar10" if (data_dir / "test.npz").exists() else "digits"
  if dataset == "cifar10":
    return _cifar10(index, data_dir), f"cifar10 test[{index}]"
  if dataset == "digits":
    return _digit(index), f"digits[{index}]"
  raise PreviewError(f"unknown --dataset={dataset!r}; use cifar10 or digits.")


def _adapt_channels(image: np.ndarray, channels: int) -> np.ndarray:
  """uint8 HWC image with ``channels`` channels (luma or repeated gray)."""
  if image.shape[-1] == channels:
    return image
  if channels == 1:
    luma = np.asarray(color.rgb_to_grayscale(image.astype(np.float32)))
    return np.round(luma[..., :1]).astype(np.uint8)
  return np.repeat(image, channels, axis=-1)


# ---------------------------------------------------------------------------
# Recipes and views.
# ---------------------------------------------------------------------------


def resolve_recipe(name: str, image_shape: Sequence[int],
                   crop_size: Optional[int] = None
                   ) -> Tuple[str, ml_collections.ConfigDict]:
  """``(recipe name, recipe)`` for ``--recipe``; ``simclr`` picks by image.

  ``simclr``: ``simclr_digits`` for one channel, ``simclr_cifar`` when the
  shorter side is at most 64 pixels, ``simclr_imagenet`` otherwise.
  """
  if name == "simclr":
    if image_shape[-1] == 1:
      name = "simclr_digits"
    elif min(image_shape[0], image_shape[1]) <= 64:
      name = "simclr_cifar"
    else:
      name = "simclr_imagenet"
  try:
    return name, recipes.get_recipe(name, crop_size)
  except ValueError as e:
    raise PreviewError(
        f"{e} Also: simclr (chosen by image size) and the pretext tasks "
        f"{', '.join(PRETEXT_PANELS)}.") from e


def denormalize(views: np.ndarray,
                recipe: ml_collections.ConfigDict) -> np.ndarray:
  """``clip(x * std + mean, 0, 1)``: normalised views back to display pixels."""
  std = np.asarray(recipe.std, np.float32)
  mean = np.asarray(recipe.mean, np.float32)
  return np.clip(np.asarray(views, np.float32) * std + mean, 0.0, 1.0)


def recipe_panels(key: jax.Array, image: np.ndarray,
                  recipe: ml_collections.ConfigDict,
                  num_views: int) -> List[Panel]:
  """``num_views`` random views of ``image`` (uint8 HWC), for display."""
  image = _adapt_channels(image, len(recipe.mean))
  images = np.broadcast_to(image, (num_views,) + image.shape)
  keys = jax.random.split(key, num_views)
  views = jax.jit(lambda k, x: recipes.batch_views(k, x, recipe))(keys, images)
  views = denormalize(views, recipe)
  return [(f"view {i + 1}", v) for i, v in enumerate(views)]


# ---------------------------------------------------------------------------
# Pretext panels.
# ---------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class PretextOptions:
  """What the pretext panels take from the command line."""
  num_views: int = 8
  crop_size: Optional[int] = None  # multi_crop: the global crop size
  num_permutations: int = 100      # jigsaw: size of the permutation set
  seed: int = 0                    # jigsaw: seed of the permutation set


def _square(image: np.ndarray, multiple: int = 1) -> np.ndarray:
  """Float ``[0, 1]`` HWC image, centre-cropped to a square whose side is a
  multiple of ``multiple`` (no resampling)."""
  x = image.astype(np.float32) / 255.0
  side = min(x.shape[0], x.shape[1])
  side -= side % multiple
  if side < 1:
    raise PreviewError(f"the image {image.shape[:2]} is too small for this "
                       f"pretext task (needs a side of at least {multiple}).")
  top, left = (x.shape[0] - side) // 2, (x.shape[1] - side) // 2
  return x[top:top + side, left:left + side]


def _rgb(image: np.ndarray) -> np.ndarray:
  return _adapt_channels(image, 3)


def _rotation_panels(key, image, options):
  """RotNet (Gidaris et al. 2018): the four rotations, labels 0..3."""
  del key, options
  rotations = np.asarray(jax.jit(pretext.all_rotations)(_square(image)))
  return [(f"rot {90 * k} (label {k})", r) for k, r in enumerate(rotations)]


def _mosaic(tiles: np.ndarray, grid: int, gap: int) -> np.ndarray:
  """``(grid^2, t, t, C)`` tiles laid out row-major, ``gap`` white pixels
  apart."""
  t, channels = tiles.shape[1], tiles.shape[-1]
  side = grid * t + (grid - 1) * gap
  out = np.ones((side, side, channels), np.float32)
  for i, tile in enumerate(tiles):
    row, col = divmod(i, grid)
    out[row * (t + gap):row * (t + gap) + t,
        col * (t + gap):col * (t + gap) + t] = tile
  return out


# Each task below runs as ONE jit of a vmap over the draws: a single compile,
# instead of op-by-op dispatch of every small kernel.


def _jigsaw_panels(key, image, options):
  """Noroozi & Favaro (2016): the cells in order, then shuffled puzzles.

  Tiles are 64/85 of the cell side (their public code: 64-px tiles in 85-px
  cells); the set has ``num_permutations`` maximal-Hamming permutations
  (:func:`ssl_jax.augment.permutations.load_or_create_permutations`).
  """
  x = _square(image, 3)
  cell = x.shape[0] // 3
  tile = max(1, round(cell * 64 / 85))
  gap = max(1, tile // 8)
  perms = permutations.load_or_create_permutations(options.num_permutations,
                                                   options.seed)

  @jax.jit
  def draw(keys, x):
    ordered = pretext.jigsaw_tiles(keys[0], x, jnp.arange(9), tile,
                                   jitter=False)
    tiles, index = jax.vmap(lambda k: pretext.jigsaw(k, x, perms, tile))(keys)
    return ordered, tiles, index

  ordered, tiles, index = draw(jax.random.split(key, options.num_views), x)
  return [("cells in order", _mosaic(np.asarray(ordered), 3, gap))] + [
      (f"perm {int(i)}/{len(perms)}", _mosaic(np.asarray(t), 3, gap))
      for t, i in zip(tiles, index)]


def _relative_position_panels(key, image, options):
  """Doersch et al. (2015): each pair drawn where the question puts it.

  Patch, gap and jitter are the paper's 96 / 48 / 7 pixels of a 398-px span,
  scaled to the image. Each panel shows the centre patch in the middle of a
  3x3 layout and the neighbour at the cell its label names.
  """
  x = _square(image)
  side = x.shape[0]
  patch = max(1, side * 96 // 398)
  gap, jitter = side * 48 // 398, side * 7 // 398
  draw = jax.jit(jax.vmap(
      lambda k, x: pretext.relative_position_pair(k, x, patch, gap, jitter),
      in_axes=(0, None)))
  centres, neighbours, labels = draw(
      jax.random.split(key, options.num_views), x)
  step = patch + max(1, gap)
  panels = []
  for centre, neighbour, label in zip(centres, neighbours, labels):
    label = int(label)
    canvas = np.ones((3 * patch + 2 * max(1, gap),) * 2 + (x.shape[-1],),
                     np.float32)
    canvas[step:step + patch, step:step + patch] = np.asarray(centre)
    row, col = pretext.NEIGHBOUR_OFFSETS[label]
    top, left = (1 + row) * step, (1 + col) * step
    canvas[top:top + patch, left:left + patch] = np.asarray(neighbour)
    panels.append((f"label {label}", canvas))
  return panels


def _mae_mask_panels(key, image, options):
  """He et al. (2021): 75% of the patches of an 8x8 grid masked (grey)."""
  x = _square(image, 8)
  patch, side = x.shape[0] // 8, x.shape[0]

  def one(k, x):
    mask, _, _ = pretext.random_patch_mask(k, 64, 0.75)
    pixel_mask = pretext.unpatchify(
        jnp.broadcast_to(mask[:, None], (64, patch * patch)), patch, side,
        side, 1)
    return pretext.apply_mask(x, pixel_mask, 0.5)

  masked = jax.jit(jax.vmap(one, in_axes=(0, None)))(
      jax.random.split(key, options.num_views), x)
  kept = pretext.num_kept_patches(64, 0.75)
  return [(f"{kept}/64 kept", np.asarray(m)) for m in masked]


def _inpainting_panels(key, image, options):
  """Pathak et al. (2016): the central hole, then random-block masks."""
  x = _square(image)
  side = x.shape[0]
  block = max(1, side // 4)

  @jax.jit
  def draw(keys, x):
    hole = pretext.apply_mask(x, pretext.central_square_mask(side, side),
                              "mean")
    masks = jax.vmap(lambda k: pretext.random_block_mask(
        k, side, side, 4, block))(keys)
    blocks = jax.vmap(lambda m: pretext.apply_mask(x, m, "mean"))(masks)
    return hole, blocks, jnp.mean(masks, axis=(1, 2, 3))

  hole, blocks, fractions = draw(
      jax.random.split(key, max(1, options.num_views - 1)), x)
  return [("central 25%", np.asarray(hole))] + [
      (f"{float(f):.0%} in blocks", np.asarray(b))
      for b, f in zip(blocks, fractions)]


def _super_resolution_panels(key, image, options):
  """The low-resolution inputs (box down, bilinear or nearest back up)."""
  del key, options
  x = _square(image, 8)
  factors = [f for f in (2, 4, 8) if x.shape[0] // f >= 2]

  @jax.jit
  def degrade(x):
    return ([pretext.degrade_for_super_resolution(x, f) for f in factors] +
            [pretext.degrade_for_super_resolution(x, 4, "nearest")])

  captions = [f"x{f} bilinear" for f in factors] + ["x4 nearest"]
  return [(c, np.asarray(v)) for c, v in zip(captions, degrade(x))]


def _colorization_panels(key, image, options):
  """Zhang et al. (2016): the L input and the a, b targets (shown at L=70)."""
  del key, options

  @jax.jit
  def channels(x):
    lab = pretext.rgb_to_lab(x)
    lightness, ab = pretext.split_l_ab(lab)
    grey = jnp.full_like(lightness, 70.0)
    zero = jnp.zeros_like(lightness)
    a_only = jnp.concatenate([grey, ab[..., :1], zero], axis=-1)
    b_only = jnp.concatenate([grey, zero, ab[..., 1:]], axis=-1)
    return (lightness / 100.0, pretext.lab_to_rgb(a_only),
            pretext.lab_to_rgb(b_only), pretext.lab_to_rgb(lab))

  captions = ("L (input)", "a (target)", "b (target)", "Lab -> RGB")
  return [(c, np.asarray(v))
          for c, v in zip(captions, channels(_square(_rgb(image))))]


def _multi_crop_panels(key, image, options):
  """SwAV (Caron et al. 2020): 2 global and up to 6 local views of the
  ``simclr`` recipe picked for the image (``--crop_size``: global size)."""
  name, recipe = resolve_recipe("simclr", image.shape, options.crop_size)
  image = _adapt_channels(image, len(recipe.mean))
  num_local = max(1, min(6, options.num_views - 2))
  fn = jax.jit(lambda k, im: pretext.multi_crop(k, im, recipe,
                                                num_local=num_local))
  global_views, local_views = fn(key, image)
  global_views = denormalize(global_views, recipe)
  local_views = denormalize(local_views, recipe)
  return ([(f"global {global_views.shape[1]}px", v) for v in global_views] +
          [(f"local {local_views.shape[1]}px", v) for v in local_views])


PRETEXT_PANELS: Dict[str, Callable[..., List[Panel]]] = {
    "rotation": _rotation_panels,
    "jigsaw": _jigsaw_panels,
    "relative_position": _relative_position_panels,
    "mae_mask": _mae_mask_panels,
    "inpainting": _inpainting_panels,
    "super_resolution": _super_resolution_panels,
    "colorization": _colorization_panels,
    "multi_crop": _multi_crop_panels,
}


# ---------------------------------------------------------------------------
# The grid.
# ---------------------------------------------------------------------------


def grid_columns(num_panels: int, columns: int = 0) -> int:
  """``columns`` if positive, else one row of up to :data:`MAX_AUTO_COLUMNS`."""
  return columns if columns > 0 else min(num_panels, MAX_AUTO_COLUMNS)


def grid_size(num_panels: int, panel_size: int,
              columns: int = 0) -> Tuple[int, int]:
  """Pixel ``(width, height)`` of the PNG :func:`render_grid` writes.

  ``width = cols * panel + (cols + 1) * PAD`` and ``height = HEADER +
  rows * (panel + CAPTION) + (rows + 1) * PAD``.
  """
  cols = grid_columns(num_panels, columns)
  rows = math.ceil(num_panels / cols)
  width = cols * panel_size + (cols + 1) * PAD
  height = (HEADER_HEIGHT + rows * (panel_size + CAPTION_HEIGHT) +
            (rows + 1) * PAD)
  return width, height


def _to_pil(pixels: np.ndarray, panel_size: int) -> Image.Image:
  """Float ``[0, 1]`` HWC (or HW) array -> RGB PIL image fitted in the panel."""
  pixels = np.asarray(pixels, np.float32)
  if pixels.ndim == 2:
    pixels = pixels[..., None]
  pixels = np.round(np.clip(pixels, 0.0, 1.0) * 255.0).astype(np.uint8)
  if pixels.shape[-1] == 1:
    pixels = np.repeat(pixels, 3, axis=-1)
  img = Image.fromarray(pixels[..., :3], "RGB")
  height, width = pixels.shape[:2]
  scale = panel_size / max(height, width)
  size = (max(1, round(width * scale)), max(1, round(height * scale)))
  resample = Image.NEAREST if scale >= 1 else Image.BILINEAR
  return img.resize(size, resample)


def render_grid(panels: Sequence[Panel], panel_size: int = 128,
                columns: int = 0, title: str = "") -> Image.Image:
  """Panels in row-major order with captions; size from :func:`grid_size`.

  Each image is scaled to fit ``panel_size`` (aspect kept, centred).
  """
  if not panels:
    raise PreviewError("nothing to draw.")
  width, height = grid_size(len(panels), panel_size, columns)
  cols = grid_columns(len(panels), columns)
  canvas = Image.new("RGB", (width, height), BACKGROUND)
  draw = ImageDraw.Draw(canvas)
  font = ImageFont.load_default()
  if title:
    draw.text((PAD, 2), title, fill=(0, 0, 0), font=font)
  for i, (caption, pixels) in enumerate(panels):
    row, col = divmod(i, cols)
    x0 = PAD + col * (panel_size + PAD)
    y0 = HEADER_HEIGHT + PAD + row * (panel_size + CAPTION_HEIGHT + PAD)
    img = _to_pil(pixels, panel_size)
    canvas.paste(img, (x0 + (panel_size - img.width) // 2,
                       y0 + (panel_size - img.height) // 2))
    draw.text((x0, y0 + panel_size + 1), caption[:max(4, panel_size // 6)],
              fill=(0, 0, 0), font=font)
  return canvas


# ---------------------------------------------------------------------------
# CLI.
# ---------------------------------------------------------------------------


def make_preview(recipe: str = "simclr", image: Optional[str] = None,
                 dataset: Optional[str] = None, index: int = 0,
                 data_dir: Optional[str] = None, num_views: int = 8,
                 seed: int = 0, crop_size: Optional[int] = None,
                 panel_size: int = 128, columns: int = 0,
                 num_permutations: int = 100) -> Image.Image:
  """The preview grid as a PIL image (what :func:`main` saves)."""
  if num_views < 1:
    raise PreviewError(f"--num_views must be >= 1, got {num_views}.")
  if panel_size < 8:
    raise PreviewError(f"--panel_size must be >= 8, got {panel_size}.")
  pixels, source = load_image(image, dataset, index, data_dir)
  key = jax.random.key(seed)
  original = ("original", pixels.astype(np.float32) / 255.0)
  if recipe in PRETEXT_PANELS:
    options = PretextOptions(num_views, crop_size, num_permutations, seed)
    panels = PRETEXT_PANELS[recipe](key, pixels, options)
    title = f"{recipe} on {source}, seed {seed}"
  else:
    name, config = resolve_recipe(recipe, pixels.shape, crop_size)
    panels = recipe_panels(key, pixels, config, num_views)
    title = f"{name} (crop {config.crop_size}) on {source}, seed {seed}"
  return render_grid([original] + panels, panel_size, columns, title)


def _make_parser() -> argparse.ArgumentParser:
  parser = argparse.ArgumentParser(
      prog="python -m ssl_jax.augment.preview",
      description="Write a PNG grid: an image, then its augmented views.")
  parser.add_argument("--recipe", default="simclr",
                      help="simclr, a get_recipe name, or a pretext task")
  parser.add_argument("--out", required=True, help="PNG file to write")
  parser.add_argument("--image", default=None, help="image file to augment")
  parser.add_argument("--dataset", default=None, choices=("cifar10", "digits"),
                      help="take the image from a data set instead")
  parser.add_argument("--index", type=int, default=0,
                      help="image index in --dataset")
  parser.add_argument("--data_dir", default=None,
                      help="folder holding CIFAR-10 test.npz")
  parser.add_argument("--num_views", type=int, default=8,
                      help="random views to draw")
  parser.add_argument("--seed", type=int, default=0, help="PRNG seed")
  parser.add_argument("--crop_size", type=int, default=None,
                      help="override the recipe's crop size")
  parser.add_argument("--panel_size", type=int, default=128,
                      help="pixels per panel side")
  parser.add_argument("--permutations", type=int, default=100,
                      help="jigsaw: size of the permutation set")
  parser.add_argument("--cols", type=int, default=0,
                      help=f"panels per row (0: up to {MAX_AUTO_COLUMNS})")
  return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
  """Command-line entry point: 0 on success, exit status 2 on a bad option."""
  parser = _make_parser()
  args = parser.parse_args(sys.argv[1:] if argv is None else argv)
  try:
    grid = make_preview(args.recipe, args.image, args.dataset, args.index,
                        args.data_dir, args.num_views, args.seed,
                        args.crop_size, args.panel_size, args.cols,
                        args.permutations)
    out = pathlib.Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    grid.save(out, format="PNG")
  except (ValueError, OSError) as e:
    parser.exit(2, f"{parser.prog}: error: {e}\n")
  print(f"Wrote {out} ({grid.width}x{grid.height})")
  return 0


if __name__ == "__main__":
  sys.exit(main())
