"""Image files in class folders: ``<data_dir>/<split>/<class_name>/<image>``.

The layout of torchvision's ``ImageFolder`` with one folder per split::

    data_dir/train/cat/0001.png
    data_dir/train/dog/0002.jpg
    data_dir/test/cat/0107.png
    ...

* Classes are the names of the class folders, sorted; label ``i`` is the
  ``i``-th name. The names are the union over every split folder of
  ``data_dir``, so train and test give a class the same label even when a
  split lacks one (an empty class folder still counts as a class).
* Files are read from each class folder and its subfolders, in sorted
  order. Only ``.png``, ``.jpg`` and ``.jpeg`` files (any case) are read;
  other files and hidden ones (``.DS_Store``, macOS ``._name.jpg``) are
  left out, and the log says how many.
* Pixels: 8-bit grayscale files give 1-channel images when every file of
  the split is grayscale; otherwise every image is converted to RGB
  (grayscale replicated, palette expanded, an alpha channel dropped: PIL's
  ``convert("RGB")``). Files with more than 8 bits per channel (16-bit PNGs,
  float TIFF modes) are refused with their name: convert them to 8 bits.
* Size (``image_size``, ``config.data.image_size``): 0 (the default) keeps
  the files' size, which must then be the same for all; the first file of
  another size is an error naming both sizes. ``S > 0`` crops the central
  square of each image (the shorter side) and resizes it to ``S x S``
  (bicubic), as :mod:`ssl_jax.data.image_text` does for its pairs.
* Unreadable files (``on_corrupt``, ``config.data.on_corrupt``): an image
  PIL cannot decode completely (garbage, truncated, wrong extension) is an
  error naming the file with ``'error'`` (the default); with ``'skip'`` it
  is left out, counted in ``source.skipped`` and logged (the count and the
  first few names).

Everything is decoded when the source is built (threads, PIL releases the
GIL), so a bad file stops the run before training starts, and the split is
then held in memory as one uint8 array, an
:class:`~ssl_jax.data.sources.ArraySource`: N x S x S x C bytes (50,000
images of 32 x 32 x 3 are 150 MB). It is not meant for ImageNet-sized
folders; convert those to TFDS.
"""

from __future__ import annotations

import concurrent.futures
import os
from typing import Optional

import numpy as np
from absl import logging

from ssl_jax.data import sources

__all__ = ["IMAGE_EXTENSIONS", "ON_CORRUPT", "ImageFolderSource",
           "load_image_folder"]

#: File extensions read (lower case); other files are ignored.
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg")
#: Values of ``on_corrupt``.
ON_CORRUPT = ("error", "skip")
#: Corrupt file names shown in the log and in messages.
_SHOWN = 5
_GRAY_MODES = ("1", "L", "LA")
_HIGH_DEPTH_MODES = ("I", "F", "I;16", "I;16B", "I;16L", "I;16N")


class ImageFolderSource(sources.ArraySource):
  """A decoded image folder split; an :class:`ArraySource` with the files.

  Attributes beyond ``ArraySource``'s: ``classes`` (the class names, label
  order), ``files`` (the path of each record) and ``skipped`` (the paths of
  the corrupt files left out with ``on_corrupt='skip'``).
  """

  def __init__(self, images, labels, classes, files, skipped, *, name):
    super().__init__(images, labels, len(classes), name=name)
    self.classes = tuple(classes)
    self.files = tuple(files)
    self.skipped = tuple(skipped)


class _Unsupported(Exception):
  """A readable file this source will not convert (e.g. 16-bit pixels)."""


def _is_hidden(name: str) -> bool:
  return name.startswith(".")


def _split_dirs(directory: str) -> list[str]:
  return sorted(d for d in os.listdir(directory)
                if not _is_hidden(d) and os.path.isdir(os.path.join(directory, d)))


def _class_names(directory: str) -> list[str]:
  """The sorted union of the class folders of every split folder."""
  names = set()
  for split_dir in _split_dirs(directory):
    names.update(_split_dirs(os.path.join(directory, split_dir)))
  return sorted(names)


def _list_files(class_dir: str) -> tuple[list[str], list[str]]:
  """(image files, ignored files) under ``class_dir``, sorted, recursively."""
  images, ignored = [], []
  for root, dirs, files in os.walk(class_dir, followlinks=True):
    dirs[:] = sorted(d for d in dirs if not _is_hidden(d))
    for name in sorted(files):
      path = os.path.join(root, name)
      if _is_hidden(name):
        ignored.append(path)
      elif os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS:
        images.append(path)
      else:
        ignored.append(path)
  return images, ignored


def _decode(path: str, image_size: int) -> np.ndarray:
  """uint8 (H, W) for grayscale or (H, W, 3); raises on a corrupt file."""
  from PIL import Image  # pylint: disable=g-import-not-at-top

  with Image.open(path) as image:
    image.load()  # decodes every byte: truncated files fail here
    mode = image.mode
    if mode in _HIGH_DEPTH_MODES:
      raise _Unsupported(
          f"{path} has {mode!r} pixels (more than 8 bits per channel); this "
          "source reads 8-bit images. Convert the file to 8-bit grayscale or "
          "RGB, e.g. PIL's Image.fromarray((np.asarray(im) >> 8)"
          ".astype(np.uint8)) for 16-bit PNGs.")
    image = image.convert("L" if mode in _GRAY_MODES else "RGB")
    if image_size:
      width, height = image.size
      side = min(width, height)
      left, top = (width - side) // 2, (height - side) // 2
      image = image.crop((left, top, left + side, top + side)).resize(
          (image_size, image_size), Image.Resampling.BICUBIC)
    return np.asarray(image, np.uint8)


def _try_decode(path: str, image_size: int):
  try:
    return _decode(path, image_size), None
  except _Unsupported as e:
    return None, e
  except Exception as e:  # pylint: disable=broad-except
    # PIL raises UnidentifiedImageError / OSError for garbage and truncated
    # files, SyntaxError for broken PNG chunks, ValueError and others.
    return None, f"{type(e).__name__}: {e}"


def load_image_folder(
    directory: os.PathLike[str] | str,
    split: str,
    *,
    image_size: int = 0,
    on_corrupt: str = "error",
    num_threads: Optional[int] = None,
) -> ImageFolderSource:
  """Decodes ``<directory>/<split>/<class>/<image>`` into an in-memory source.

  See the module docstring for the layout, the classes, the pixel and size
  policies and ``on_corrupt``.

  Args:
    directory: the folder holding one folder per split.
    split: the split folder's name ('train', 'test', ...).
    image_size: 0: keep the files' (common) size; ``S > 0``: centre square
      crop, bicubic resize to ``S x S``.
    on_corrupt: 'error' (raise, naming the file) or 'skip' (leave the file
      out, count and log it).
    num_threads: decoding threads (default: the CPU count, at most 32).

  Raises:
    FileNotFoundError: the folder or the split folder does not exist (the
      message lists the splits found).
    DataError: a bad ``image_size`` / ``on_corrupt``, a split without class
      folders or without images, a corrupt file (with 'error'), a file of
      more than 8 bits per channel, or images of different sizes with
      ``image_size=0``.
  """
  directory = os.fspath(directory)
  where = f"image_folder {directory}"
  if on_corrupt not in ON_CORRUPT:
    raise sources.DataError(
        f"config.data.on_corrupt={on_corrupt!r}; use one of {list(ON_CORRUPT)} "
        "(raise on an unreadable image file, or leave it out).")
  if (isinstance(image_size, bool) or not isinstance(image_size, (int, np.integer))
      or image_size < 0):
    raise sources.DataError(
        f"config.data.image_size={image_size!r}; use 0 (keep the files' "
        "size, the same for all) or a positive int S (centre crop, resize to "
        "S x S).")
  image_size = int(image_size)
  layout = ("Expected <data_dir>/<split>/<class_name>/<image>.png|.jpg, e.g. "
            f"{os.path.join(directory, split, 'cat', '0001.png')}.")
  split_dir = os.path.join(directory, split)
  if not os.path.isdir(split_dir):
    hint = sources.missing_split_hint(
        directory, lambda: _split_dirs(directory), "split folders found there",
        "it holds no folder")
    raise FileNotFoundError(
        f"{where}: no folder {split_dir} for split {split!r} ({hint}). "
        f"{layout}")
  classes = _class_names(directory)
  if not _split_dirs(split_dir):
    loose = [f for f in os.listdir(split_dir)
             if os.path.splitext(f)[1].lower() in IMAGE_EXTENSIONS]
    hint = (f" It holds {len(loose)} image file(s) directly: move each into "
            "the folder of its class." if loose else "")
    raise sources.DataError(
        f"{where}: {split_dir} holds no class folders.{hint} {layout}")
  files, labels, ignored = [], [], []
  for label, name in enumerate(classes):
    class_dir = os.path.join(split_dir, name)
    if not os.path.isdir(class_dir):
      continue  # a class of another split only
    found, left_out = _list_files(class_dir)
    files.extend(found)
    labels.extend([label] * len(found))
    ignored.extend(left_out)
  if ignored:
    logging.warning(
        "%s/%s: ignored %d file(s) that are hidden or not %s (e.g. %s).",
        where, split, len(ignored), "/".join(IMAGE_EXTENSIONS),
        ", ".join(ignored[:_SHOWN]))
  if not files:
    raise sources.DataError(
        f"{where}: the class folders of {split_dir} ({len(classes)}: "
        f"{classes[:_SHOWN]}{' ...' if len(classes) > _SHOWN else ''}) hold "
        f"no {'/'.join(IMAGE_EXTENSIONS)} files"
        + (f" ({len(ignored)} other file(s) ignored)" if ignored else "")
        + f". {layout}")

  threads = num_threads or min(32, os.cpu_count() or 1)
  with concurrent.futures.ThreadPoolExecutor(max_workers=threads) as pool:
    decoded = list(pool.map(lambda p: _try_decode(p, image_size), files))

  images, kept_files, kept_labels, skipped, reasons = [], [], [], [], []
  for path, label, (array, error) in zip(files, labels, decoded):
    if isinstance(error, _Unsupported):
      raise sources.DataError(f"{where}: {error}")
    if error is not None:
      if on_corrupt == "error":
        raise sources.DataError(
            f"{where}: cannot decode the image file {path} ({error}). Replace "
            "or delete the file, or set config.data.on_corrupt=skip to leave "
            "unreadable files out.")
      skipped.append(path)
      reasons.append(error)
      continue
    if images and array.shape[:2] != images[0].shape[:2]:
      raise sources.DataError(
          f"{where}: {path} is {array.shape[1]}x{array.shape[0]} (width x "
          f"height) but {kept_files[0]} is {images[0].shape[1]}x"
          f"{images[0].shape[0]}; with config.data.image_size=0 all images "
          "must have one size. Set config.data.image_size=S to centre-crop "
          "and resize every image to S x S, or resize the files.")
    images.append(array)
    kept_files.append(path)
    kept_labels.append(label)
  if skipped:
    shown = "; ".join(f"{p} ({r})" for p, r in
                      zip(skipped[:_SHOWN], reasons[:_SHOWN]))
    logging.warning(
        "%s/%s: skipped %d of %d image files that cannot be decoded "
        "(config.data.on_corrupt=skip): %s%s", where, split, len(skipped),
        len(files), shown, " ..." if len(skipped) > _SHOWN else "")
  if not images:
    raise sources.DataError(
        f"{where}: none of the {len(files)} image files of {split_dir} can be "
        f"decoded (first: {skipped[0]}: {reasons[0]}); check the files.")
  if any(a.ndim == 3 for a in images):  # some RGB: all RGB
    images = [a if a.ndim == 3 else np.repeat(a[..., None], 3, axis=-1)
              for a in images]
    stacked = np.stack(images)
  else:
    stacked = np.stack(images)[..., None]
  return ImageFolderSource(
      stacked, np.asarray(kept_labels, np.int32), classes, kept_files,
      skipped, name=f"{os.path.basename(os.path.normpath(directory))}/{split}")

