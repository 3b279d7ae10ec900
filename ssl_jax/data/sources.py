"""Random-access image-classification sources.

Every source in this module is a read-only sequence of records of one form::

    {"image": np.ndarray  # uint8, (H, W, C)
     "label": int}

and exposes

* ``len(source)`` and ``source[i]`` (the grain ``RandomAccessDataSource``
  protocol, so a source plugs straight into :mod:`ssl_jax.data.pipeline`);
* ``num_classes`` -- the number of label classes (labels lie in
  ``[0, num_classes)``);
* ``image_shape`` -- ``(H, W, C)`` of every image (``None`` for a dimension
  that varies between images, which only TFDS sources can report).

Sources:

* :class:`ArraySource` -- images and labels already in memory.
* :func:`load_digits` -- the 8x8 handwritten digits that ship inside
  scikit-learn; needs no download, for smoke tests and CI.
* :func:`load_npz` -- a folder holding ``<split>.npz`` files with ``image``
  (uint8 NHWC, or NTHWC for videos) and ``label`` arrays.
* :func:`load_tfds` -- a TFDS dataset prepared in the ``array_record`` format,
  read through ``tfds.data_source`` (no TensorFlow needed, nothing downloaded).
* ``ssl_jax.data.image_folder.load_image_folder`` -- PNG/JPEG files laid out
  as ``<data_dir>/<split>/<class_name>/<image>``, decoded at load time.
* ``ssl_jax.data.video.MovingDigits`` -- seeded videos of coloured digits
  bouncing in a frame (records ``(T, H, W, 3)``), generated on the fly.
* ``ssl_jax.data.synthetic_scenes.SyntheticScenes`` -- seeded pairs of
  rendered frames of textured 3-D scenes with exact depth, segmentation,
  occlusion edges and optical flow (records carry these beside ``image``).

Bad data is refused when a source is built, not in the middle of training:
every problem with the files or arrays (dtype, rank, channels, pixel range,
labels, an empty split) raises :class:`DataError` (a ``ValueError``; the
dtype problems also a ``TypeError``) with one message naming the file or
array and the fix. A missing file or folder raises ``FileNotFoundError``.

:func:`get_source` picks one of these from a data config and :func:`as_arrays`
materialises any source as two arrays for evaluation.
"""
from __future__ import annotations

import difflib
import functools
import os
import threading
from typing import Any, Optional, Sequence

import numpy as np

__all__ = [
    "ArraySource",
    "DataError",
    "DataTypeError",
    "TfdsSource",
    "VALID_SOURCES",
    "DIGITS_SPLIT_SEED",
    "DIGITS_TEST_FRACTION",
    "load_digits",
    "load_npz",
    "load_tfds",
    "get_source",
    "as_arrays",
]

#: Values accepted for ``data_config.source`` by :func:`get_source`.
VALID_SOURCES = ("digits", "npz", "tfds", "moving_digits", "audio_visual",
                 "image_text", "image_folder", "synthetic_scenes", "text")

#: Seed of the fixed, class-stratified digits train/test split.
DIGITS_SPLIT_SEED = 0
#: Fraction of every digit class that goes to the 'test' split.
DIGITS_TEST_FRACTION = 0.2


class DataError(ValueError):
  """Data that cannot be trained on; the message names the file and the fix."""


class DataTypeError(DataError, TypeError):
  """A :class:`DataError` about a dtype (also a ``TypeError``)."""


def _is_integer_dtype(dtype: np.dtype) -> bool:
  return np.issubdtype(dtype, np.integer) and dtype != np.bool_


def uint8_fix(images: np.ndarray) -> str:
  """How to turn ``images`` (not uint8) into uint8 pixels, from their range."""
  images = np.asarray(images)
  if images.size == 0:
    return "Save the images as uint8."
  if images.dtype == np.bool_:
    return ("Its values are booleans; for binary images use "
            "images.astype(np.uint8) * 255.")
  if not (np.issubdtype(images.dtype, np.floating)
          or np.issubdtype(images.dtype, np.integer)):
    return "Save the pixels as a numeric uint8 array."
  if np.issubdtype(images.dtype, np.floating):
    bad = int(np.size(images) - np.count_nonzero(np.isfinite(images)))
    if bad:
      return (f"{bad} of its values are NaN or infinite; fix the data, then "
              "save the pixels as uint8 0..255.")
  lo, hi = images.min(), images.max()
  what = f"Its values lie in [{lo}, {hi}]"
  if lo < 0:
    return (f"{what}: negative pixels, so the images look normalised already. "
            "Pass the raw uint8 pixels 0..255; the pipeline normalises with "
            "config.augment.mean/std.")
  if np.issubdtype(images.dtype, np.floating) and hi <= 1:
    return (f"{what}, so convert with np.round(images * 255)"
            ".astype(np.uint8).")
  if hi <= 255:
    how = ("np.round(images).astype(np.uint8)"
           if np.issubdtype(images.dtype, np.floating)
           else "images.astype(np.uint8)")
    return f"{what}, so convert with {how}."
  scale = "257" if images.dtype == np.uint16 else f"({hi} / 255)"
  return (f"{what}, beyond 255 (more than 8 bits per pixel): rescale, e.g. "
          f"np.round(images / {scale}).astype(np.uint8).")


def check_channels(shape: Sequence[int], where: str) -> None:
  """Raises :class:`DataError` unless ``shape`` ends in 1 or 3 channels."""
  shape = tuple(int(d) for d in shape)
  channels = shape[-1]
  if channels in (1, 3):
    return
  # (N, C, H, W) or (N, T, C, H, W): the channel axis before the spatial ones.
  channel_axis = len(shape) - 3
  if channel_axis >= 1 and shape[channel_axis] in (1, 3):
    order = list(range(len(shape)))
    order.append(order.pop(channel_axis))
    fix = ("They look channels-first: make them channels-last with "
           f"images.transpose{tuple(order)}.")
  elif channels == 4:
    fix = "Drop the alpha channel with images[..., :3]."
  elif channels == 2:
    fix = "Drop the alpha channel of grey + alpha images with images[..., :1]."
  else:
    fix = "Give them 1 (grayscale) or 3 (RGB) channels."
  raise DataError(
      f"{where}: images of shape {shape} have {channels} channels last; "
      f"expected 1 (grayscale) or 3 (RGB) channels last. {fix}")


def _label_dtype_fix(labels: np.ndarray) -> str:
  if (np.issubdtype(labels.dtype, np.floating) and labels.size
      and np.all(np.isfinite(labels)) and np.all(labels == np.round(labels))):
    return "They are whole numbers: convert with labels.astype(np.int64)."
  return "Labels are class ids 0..num_classes-1."


def _label_range_fix(labels: np.ndarray, num_classes: int) -> str:
  negative = int(np.count_nonzero(labels < 0))
  too_big = int(np.count_nonzero(labels >= num_classes))
  parts = []
  if negative:
    parts.append(f"{negative} label(s) are negative (-1 often marks unlabelled "
                 "examples: drop them)")
  if too_big:
    parts.append(f"{too_big} label(s) are >= {num_classes} (pass the right "
                 "num_classes, or renumber the classes 0..num_classes-1)")
  return "; ".join(parts) + "."


class ArraySource:
  """An in-memory source over an image array and a label array.

  Args:
    images: uint8 array of shape ``(N, H, W, C)``, or ``(N, T, H, W, C)``
      for videos of ``T`` frames (``image_shape`` is then ``(T, H, W, C)``).
    labels: integer array of shape ``(N,)`` with values in
      ``[0, num_classes)``.
    num_classes: number of label classes (a positive int).
    name: optional short description used in ``repr`` and in error messages
      (e.g. ``"cifar10/train.npz"``).

  Raises:
    DataTypeError: (a ``TypeError`` and a ``ValueError``) if ``images`` is
      not uint8 (the message says how to convert, from the values' range) or
      ``labels`` not integer.
    DataError: (a ``ValueError``) on wrong ranks, a channel count other than
      1 or 3, mismatched lengths, an empty dataset or labels outside
      ``[0, num_classes)``.
  """

  def __init__(
      self,
      images: np.ndarray,
      labels: np.ndarray,
      num_classes: int,
      *,
      name: Optional[str] = None,
  ):
    what = f" ({name})" if name else ""
    images = np.asarray(images)
    labels = np.asarray(labels)
    if images.dtype != np.uint8:
      raise DataTypeError(
          f"ArraySource{what}: images must be uint8 with values 0..255, got "
          f"dtype {images.dtype}. {uint8_fix(images)}"
      )
    if images.ndim not in (4, 5):
      raise DataError(
          f"ArraySource{what}: images must have rank 4 (N, H, W, C), or 5 "
          f"(N, T, H, W, C) for videos, got shape {images.shape}. Add a "
          "channel axis to grayscale images with images[..., None]."
      )
    if labels.ndim != 1:
      hint = (" One-hot labels? Pass labels.argmax(axis=1)."
              if labels.ndim == 2 and labels.shape[0] == len(images) else "")
      raise DataError(
          f"ArraySource{what}: labels must have rank 1 (N,), got shape "
          f"{labels.shape}.{hint}"
      )
    if not _is_integer_dtype(labels.dtype):
      raise DataTypeError(
          f"ArraySource{what}: labels must be integers, got dtype "
          f"{labels.dtype}. {_label_dtype_fix(labels)}"
      )
    if len(images) != len(labels):
      raise DataError(
          f"ArraySource{what}: got {len(images)} images but {len(labels)} "
          "labels; they must have the same length."
      )
    if len(images) == 0:
      raise DataError(
          f"ArraySource{what}: the dataset holds no images (shape "
          f"{images.shape}); give it at least one example, or point the "
          "config at the split you meant."
      )
    check_channels(images.shape, f"ArraySource{what}")
    if isinstance(num_classes, bool) or not isinstance(
        num_classes, (int, np.integer)
    ) or num_classes < 1:
      raise DataError(
          f"ArraySource{what}: num_classes must be a positive int, got "
          f"{num_classes!r}."
      )
    lo, hi = int(labels.min()), int(labels.max())
    if lo < 0 or hi >= num_classes:
      raise DataError(
          f"ArraySource{what}: labels must lie in [0, {num_classes}), got "
          f"values in [{lo}, {hi}]: {_label_range_fix(labels, num_classes)}"
      )
    self._images = np.ascontiguousarray(images)
    self._labels = labels.astype(np.int32)
    self.num_classes = int(num_classes)
    self.image_shape = tuple(int(d) for d in images.shape[1:])
    self.name = name

  @property
  def images(self) -> np.ndarray:
    """All images, uint8 ``(N, H, W, C)`` (a view; do not modify)."""
    return self._images

  @property
  def labels(self) -> np.ndarray:
    """All labels, int32 ``(N,)`` (a view; do not modify)."""
    return self._labels

  def __len__(self) -> int:
    return len(self._labels)

  def __getitem__(self, index: int) -> dict[str, Any]:
    return {"image": self._images[index], "label": int(self._labels[index])}

  def __getitems__(self, indices: Sequence[int]) -> list[dict[str, Any]]:
    return [self[i] for i in indices]

  def read_batch(self, indices: Sequence[int]) -> dict[str, np.ndarray]:
    """Returns the stacked records at ``indices`` with one gather per array."""
    indices = np.asarray(indices, dtype=np.int64)
    return {"image": self._images[indices], "label": self._labels[indices]}

  def __repr__(self) -> str:
    return (
        f"ArraySource(name={self.name!r}, num_records={len(self)}, "
        f"image_shape={self.image_shape}, num_classes={self.num_classes})"
    )


# ----------------------------------------------------------------------------
# scikit-learn digits
# ----------------------------------------------------------------------------


@functools.lru_cache(maxsize=1)
def _digits_arrays() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
  """Builds the fixed digits split once per process (read-only arrays)."""
  from sklearn import datasets as sk_datasets  # pylint: disable=g-import-not-at-top

  digits = sk_datasets.load_digits()
  values = np.asarray(digits.images, dtype=np.float64)  # (1797, 8, 8), 0..16
  images = np.round(values * (255.0 / 16.0)).astype(np.uint8)[..., None]
  labels = np.asarray(digits.target, dtype=np.int64)

  # Class-stratified split with the legacy RandomState, whose streams NumPy
  # keeps fixed across versions (NEP 19), so every machine gets the same split.
  rng = np.random.RandomState(DIGITS_SPLIT_SEED)
  is_test = np.zeros(len(labels), dtype=bool)
  for c in range(10):
    members = np.flatnonzero(labels == c)
    n_test = int(round(DIGITS_TEST_FRACTION * len(members)))
    is_test[rng.permutation(members)[:n_test]] = True
  train_idx = np.flatnonzero(~is_test)
  test_idx = np.flatnonzero(is_test)
  out = (images[train_idx], labels[train_idx], images[test_idx],
         labels[test_idx])
  for a in out:
    a.setflags(write=False)
  return out


def load_digits(split: str = "train") -> ArraySource:
  """The 8x8 digits that ship inside scikit-learn, as a uint8 source.

  1,797 grayscale images of the digits 0-9 (UCI optical recognition of
  handwritten digits), shape ``(8, 8, 1)``. scikit-learn stores pixel values
  0..16; they are mapped to uint8 by ``round(v * 255 / 16)`` (0 -> 0,
  16 -> 255).

  The split is fixed: within every class, a ``RandomState(0)`` permutation
  sends ``round(0.2 * n_class)`` images to 'test' and the rest to 'train'
  (1,438 train / 359 test). Each split keeps scikit-learn's original order.
  The split is identical on every machine and needs no download.

  Args:
    split: 'train' or 'test'.

  Returns:
    An :class:`ArraySource` with ``num_classes == 10`` and
    ``image_shape == (8, 8, 1)``.
  """
  if split not in ("train", "test"):
    raise DataError(
        f"load_digits: unknown split {split!r}; the digits have the splits "
        "'train' and 'test'."
    )
  x_train, y_train, x_test, y_test = _digits_arrays()
  if split == "train":
    return ArraySource(x_train, y_train, 10, name="digits/train")
  return ArraySource(x_test, y_test, 10, name="digits/test")


# ----------------------------------------------------------------------------
# npz folders
# ----------------------------------------------------------------------------


def missing_split_hint(directory: str, list_splits, found_label: str,
                       none_label: str) -> str:
  """What ``directory`` holds instead of a missing split, for an error:
  ``'<found_label>: [...]'`` (``list_splits()``), ``none_label`` when that
  list is empty, or that the folder is a file or does not exist."""
  if os.path.isdir(directory):
    found = list_splits()
    return f"{found_label}: {found}" if found else none_label
  if os.path.exists(directory):
    return f"{directory} is a file, not a folder"
  return "the folder does not exist"


def _npz_path(directory: os.PathLike[str] | str, split: str) -> str:
  return os.path.join(os.fspath(directory), f"{split}.npz")


def _infer_npz_num_classes(directory: str) -> int:
  """1 + the largest label over every ``*.npz`` file in ``directory``."""
  max_label = -1
  for fname in sorted(os.listdir(directory)):
    if not fname.endswith(".npz"):
      continue
    try:
      with np.load(os.path.join(directory, fname), allow_pickle=False) as f:
        if "label" in f.files:
          labels = f["label"]
          if labels.size and _is_integer_dtype(labels.dtype):
            max_label = max(max_label, int(labels.max()))
    except Exception:  # pylint: disable=broad-except
      continue  # an unreadable file is reported when its split is loaded
  return max_label + 1


def load_npz(
    directory: os.PathLike[str] | str,
    split: str,
    *,
    num_classes: Optional[int] = None,
) -> ArraySource:
  """Loads ``<directory>/<split>.npz`` as an in-memory source.

  The file must hold ``image``, uint8 of shape ``(N, H, W, C)`` (or
  ``(N, H, W)`` for grayscale, which gets a channel axis; or
  ``(N, T, H, W, C)`` for videos of ``T`` frames), and ``label``, an integer
  array of shape ``(N,)``.

  Args:
    directory: folder holding ``train.npz``, ``test.npz``, ... .
    split: name of the file without ``.npz``.
    num_classes: number of classes. If None: the file's ``num_classes`` scalar
      if it holds one, else 1 + the largest label over *all* ``*.npz`` files of
      the folder (so train and test agree even if a split lacks a class).

  Raises:
    FileNotFoundError: if the folder or the file is missing (the message lists
      the splits that exist).
    DataError: (a ``ValueError``) if the file is not an npz, a key is
      missing, ``image`` is not uint8, has the wrong rank or channel count,
      is empty, or ``label`` does not match (shape, integer dtype, range).
  """
  directory = os.fspath(directory)
  path = _npz_path(directory, split)
  if not os.path.isfile(path):
    hint = missing_split_hint(
        directory,
        lambda: sorted(f[:-4] for f in os.listdir(directory)
                       if f.endswith(".npz")),
        "splits found there", "it holds no .npz file")
    raise FileNotFoundError(
        f"load_npz: no file {path} for split {split!r} ({hint}). Expected "
        f"<directory>/<split>.npz holding 'image' (uint8, N x H x W x C) and "
        "'label' (int, N)."
    )
  expected = ("Expected 'image' (uint8, N x H x W x C) and 'label' (int, "
              "N), e.g. np.savez(path, image=images, label=labels).")
  try:
    with np.load(path, allow_pickle=False) as f:
      files = f.files
      missing = [k for k in ("image", "label") if k not in files]
      if missing:
        raise DataError(
            f"load_npz: {path} lacks the array(s) {missing}; it holds "
            f"{sorted(files)}. {expected}"
        )
      images = f["image"]
      labels = f["label"]
      file_num_classes = (
          int(f["num_classes"]) if "num_classes" in files else None
      )
  except DataError:
    raise
  except Exception as e:  # pylint: disable=broad-except
    # Not a zip (pickle, .npy, truncated download) or object arrays.
    raise DataError(
        f"load_npz: cannot read {path} as an npz file of numeric arrays "
        f"({type(e).__name__}: {e}). {expected}"
    ) from e
  if images.dtype != np.uint8:
    raise DataError(
        f"load_npz: {path}: 'image' has dtype {images.dtype}, expected uint8 "
        f"with values 0..255. {uint8_fix(images)} Then re-save the file."
    )
  if images.ndim == 3:
    images = images[..., None]
  if images.ndim not in (4, 5):
    raise DataError(
        f"load_npz: {path}: 'image' has shape {images.shape}, expected rank 4 "
        "(N, H, W, C), rank 3 (N, H, W) for grayscale, or rank 5 "
        "(N, T, H, W, C) for videos."
        + (" Flattened images? Reshape them with images.reshape(N, H, W, C)."
           if images.ndim == 2 else "")
    )
  if len(images) == 0:
    raise DataError(
        f"load_npz: {path} holds no images ('image' has shape "
        f"{images.shape}); write the split's examples to it, or set "
        "config.data.data_dir / the split to the data you meant."
    )
  check_channels(images.shape, f"load_npz: {path}: 'image'")
  if labels.ndim != 1 or len(labels) != len(images):
    hint = (" One-hot labels? Save labels.argmax(axis=1)."
            if labels.ndim == 2 and len(labels) == len(images) else "")
    raise DataError(
        f"load_npz: {path}: 'label' has shape {labels.shape}, expected "
        f"({len(images)},), one label per image.{hint}"
    )
  if not _is_integer_dtype(labels.dtype):
    raise DataError(
        f"load_npz: {path}: 'label' has dtype {labels.dtype}, expected an "
        f"integer dtype. {_label_dtype_fix(labels)} Then re-save the file."
    )
  if num_classes is None:
    num_classes = file_num_classes
  if num_classes is None:
    num_classes = _infer_npz_num_classes(directory)
  return ArraySource(
      images, labels, num_classes,
      name=f"{os.path.basename(os.path.normpath(directory))}/{split}.npz",
  )


# ----------------------------------------------------------------------------
# TFDS (array_record)
# ----------------------------------------------------------------------------


class TfdsSource:
  """A TFDS split in the ``array_record`` format, read with random access.

  Reads through ``tfds.data_source(..., download=False)``: nothing is
  downloaded or generated, and TensorFlow is not needed. Images are decoded
  by TFDS (PIL or OpenCV) on each ``__getitem__``.

  The source pickles as its arguments and reopens the files lazily, so grain
  worker processes can use it.

  Args:
    name: TFDS name, optionally with config and version
      (``"cifar10"``, ``"my_set:1.0.0"``).
    split: TFDS split, including slicing syntax (``"train[:10%]"``).
    data_dir: TFDS data directory; None uses TFDS's default
      (``$TFDS_DATA_DIR`` or ``~/tensorflow_datasets``).
    image_key: feature holding the image.
    label_key: feature holding the class label (a ``ClassLabel``).
  """

  def __init__(
      self,
      name: str,
      split: str,
      data_dir: Optional[os.PathLike[str] | str] = None,
      *,
      image_key: str = "image",
      label_key: str = "label",
  ):
    self.name = name
    self.split = split
    self.data_dir = None if data_dir is None else os.fspath(data_dir)
    self.image_key = image_key
    self.label_key = label_key
    self._ds = None
    self._open_lock = threading.Lock()
    ds = self._data_source()
    features = ds.dataset_info.features
    missing = [k for k in (image_key, label_key) if k not in features]
    if missing:
      raise DataError(
          f"load_tfds: {name!r} has no feature(s) {missing}; its features are "
          f"{sorted(features.keys())}. Pass image_key=/label_key= naming the "
          "image and the class-label features."
      )
    label_feature = features[label_key]
    num_classes = getattr(label_feature, "num_classes", None)
    if not num_classes:
      raise DataError(
          f"load_tfds: feature {label_key!r} of {name!r} is a "
          f"{type(label_feature).__name__}, not a ClassLabel with a known "
          "number of classes."
      )
    self.num_classes = int(num_classes)
    image_feature = features[image_key]
    shape = tuple(image_feature.shape)
    if len(shape) != 3:
      raise DataError(
          f"load_tfds: feature {image_key!r} of {name!r} has shape {shape}; "
          "expected an image feature of shape (H, W, C)."
      )
    dtype = np.dtype(getattr(image_feature, "np_dtype", np.uint8))
    if dtype != np.uint8:
      raise DataTypeError(
          f"load_tfds: feature {image_key!r} of {name!r} holds {dtype} pixels; "
          "this pipeline reads uint8 images (0..255). Rebuild the dataset "
          "with tfds.features.Image(dtype=np.uint8), the pixels scaled to "
          "0..255."
      )
    if shape[-1] is not None:
      check_channels(shape, f"load_tfds: feature {image_key!r} of {name!r}")
    self.image_shape = tuple(None if d is None else int(d) for d in shape)
    if not len(ds):
      raise DataError(
          f"load_tfds: split {split!r} of {name!r} holds no examples; use a "
          "split that has some (the dataset's splits: "
          f"{sorted(getattr(ds.dataset_info, 'splits', {}) or [])})."
      )

  def _data_source(self):
    if self._ds is None:
      # After unpickling in a grain worker, several prefetch threads ask at
      # once. TFDS imports lazily, and concurrent first imports deadlock on
      # Python's import locks, so one thread opens the split and decodes a
      # record (pulling in the decoders) while the others wait.
      with self._open_lock:
        if self._ds is None:
          ds = self._open()
          if len(ds):
            ds[0]  # pylint: disable=pointless-statement
          self._ds = ds
    return self._ds

  def _open(self):
    """Opens the split with ``tfds.data_source``, translating its errors."""
    import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
    from tensorflow_datasets.core import registered  # pylint: disable=g-import-not-at-top

    where = (
        f"data_dir={self.data_dir!r}" if self.data_dir
        else "the default TFDS data_dir ($TFDS_DATA_DIR or "
        "~/tensorflow_datasets)"
    )
    how = (
        "Nothing is downloaded at run time: prepare the dataset there first "
        "in the array_record format (e.g. `tfds build --file_format="
        "array_record`), or convert an npz folder with `python -m "
        "ssl_jax.data.npz_to_tfds`."
    )
    try:
      return tfds.data_source(
          self.name,
          split=self.split,
          data_dir=self.data_dir,
          download=False,
          try_gcs=False,
      )
    except registered.DatasetNotFoundError as e:
      raise FileNotFoundError(
          f"load_tfds: TFDS dataset {self.name!r} was not found in {where}. "
          f"{how}"
      ) from e
    except NotImplementedError as e:
      # TFDS says this when the data is missing for a registered name, or
      # present only as tfrecord (no random access).
      raise FileNotFoundError(
          f"load_tfds: no array_record files of TFDS dataset {self.name!r} "
          f"in {where} (missing, or stored as tfrecord, which has no random "
          f"access). {how} TFDS said: {str(e).splitlines()[0]}"
      ) from e

  def _convert(self, record: dict[str, Any]) -> dict[str, Any]:
    return {
        "image": np.asarray(record[self.image_key], dtype=np.uint8),
        "label": int(record[self.label_key]),
    }

  def __len__(self) -> int:
    return len(self._data_source())

  def __getitem__(self, index: int) -> dict[str, Any]:
    return self._convert(self._data_source()[index])

  def __getitems__(self, indices: Sequence[int]) -> list[dict[str, Any]]:
    records = self._data_source().__getitems__([int(i) for i in indices])
    return [self._convert(r) for r in records]

  def __getstate__(self) -> dict[str, Any]:
    state = dict(self.__dict__)
    state["_ds"] = None  # Reopened lazily in the unpickling process.
    del state["_open_lock"]
    return state

  def __setstate__(self, state: dict[str, Any]) -> None:
    self.__dict__.update(state)
    self._open_lock = threading.Lock()

  def __repr__(self) -> str:
    return (
        f"TfdsSource(name={self.name!r}, split={self.split!r}, "
        f"data_dir={self.data_dir!r})"
    )


def load_tfds(
    name: str,
    split: str,
    data_dir: Optional[os.PathLike[str] | str] = None,
    *,
    image_key: str = "image",
    label_key: str = "label",
) -> TfdsSource:
  """Opens a prepared TFDS ``array_record`` split as a source.

  ``num_classes`` comes from the dataset's ``ClassLabel`` feature and
  ``image_shape`` from its ``Image`` feature. See :class:`TfdsSource`.
  """
  return TfdsSource(
      name, split, data_dir, image_key=image_key, label_key=label_key
  )


# ----------------------------------------------------------------------------
# Dispatch and materialisation
# ----------------------------------------------------------------------------


def get_source(data_config: Any, split: str):
  """Builds the source named by a data config.

  Args:
    data_config: an object (e.g. ``ml_collections.ConfigDict``) with

      * ``source``: one of ``'digits'``, ``'npz'``, ``'tfds'``,
        ``'moving_digits'`` (``ssl_jax.data.video``; its settings in the
        optional ``video`` section), ``'audio_visual'`` (digit images
        paired with spoken digits, ``ssl_jax.data.audio_visual``; settings
        in the ``audio_visual`` section), ``'image_text'`` (image/text
        pairs, ``ssl_jax.data.image_text``; settings in the ``image_text``
        section), ``'image_folder'`` (``<data_dir>/<split>/<class>/<image>``,
        ``ssl_jax.data.image_folder``), ``'synthetic_scenes'`` (rendered
        frame pairs with dense labels, ``ssl_jax.data.synthetic_scenes``;
        settings in the optional ``scenes`` section), ``'text'`` (text
        pretext tasks over the novels, int32 token records,
        ``ssl_jax.data.text_tasks``; settings in the ``text`` section);
      * ``name``: the TFDS name (``'tfds'`` only);
      * ``data_dir``: the npz folder (``'npz'``, required), the image folder
        (``'image_folder'``, required) or the TFDS data directory
        (``'tfds'``, optional);
      * ``image_size``, ``on_corrupt``: ``'image_folder'`` only (see
        :func:`ssl_jax.data.image_folder.load_image_folder`).
    split: the split to open ('train', 'test', or any TFDS split string).

  Raises:
    DataError: (a ``ValueError``) for an unknown ``source`` (the message
      lists the valid ones) or a missing required field, and, from the
      loaders, for data that cannot be trained on.
    FileNotFoundError: for a missing file or folder.
  """
  source = getattr(data_config, "source", None)
  name = getattr(data_config, "name", None)
  data_dir = getattr(data_config, "data_dir", None)
  if source == "digits":
    return load_digits(split)
  if source == "moving_digits":
    from ssl_jax.data import video  # pylint: disable=g-import-not-at-top

    return video.load_moving_digits(split, getattr(data_config, "video", None))
  if source == "synthetic_scenes":
    from ssl_jax.data import synthetic_scenes  # pylint: disable=g-import-not-at-top

    return synthetic_scenes.load_synthetic_scenes(
        split, getattr(data_config, "scenes", None))
  if source == "audio_visual":
    from ssl_jax.data import audio_visual  # pylint: disable=g-import-not-at-top

    return audio_visual.load_audio_visual(
        split, getattr(data_config, "audio_visual", None))
  if source == "image_text":
    from ssl_jax.data import image_text  # pylint: disable=g-import-not-at-top

    return image_text.load_image_text(
        split, getattr(data_config, "image_text", None))
  if source == "text":
    from ssl_jax.data import text_tasks  # pylint: disable=g-import-not-at-top

    return text_tasks.load_text_task(split, getattr(data_config, "text", None))
  if source == "npz":
    if not data_dir:
      raise DataError(
          "get_source: data_config.source='npz' needs data_config.data_dir, "
          "the folder holding <split>.npz files."
      )
    return load_npz(data_dir, split)
  if source == "image_folder":
    from ssl_jax.data import image_folder  # pylint: disable=g-import-not-at-top

    if not data_dir:
      raise DataError(
          "get_source: data_config.source='image_folder' needs "
          "data_config.data_dir, the folder holding <split>/<class>/<image> "
          "files."
      )
    return image_folder.load_image_folder(
        data_dir, split,
        image_size=getattr(data_config, "image_size", 0) or 0,
        on_corrupt=getattr(data_config, "on_corrupt", "error") or "error")
  if source == "tfds":
    if not name:
      raise DataError(
          "get_source: data_config.source='tfds' needs data_config.name, the "
          "TFDS dataset name (e.g. 'cifar10')."
      )
    return load_tfds(name, split, data_dir or None)
  close = difflib.get_close_matches(str(source), VALID_SOURCES, n=1)
  raise DataError(
      f"get_source: unknown data_config.source={source!r}; valid sources are "
      f"{list(VALID_SOURCES)}."
      + (f" Did you mean {close[0]!r}?" if close else "")
  )


def as_arrays(
    source, *, chunk_size: int = 1024
) -> tuple[np.ndarray, np.ndarray]:
  """Reads a whole source into ``(images uint8 (N,H,W,C), labels int32 (N,))``.

  For an :class:`ArraySource` this returns its arrays without copying.
  Other sources are read in order, ``chunk_size`` records at a time; all their
  images must share one shape. The images keep the records' dtype (uint8
  for images; a text source's int32 tokens).
  """
  if isinstance(source, ArraySource):
    return source.images, source.labels
  n = len(source)
  if n == 0:
    raise ValueError(f"as_arrays: {source!r} holds no records.")
  get_many = getattr(source, "__getitems__", None)
  images = labels = None
  for start in range(0, n, chunk_size):
    idx = list(range(start, min(start + chunk_size, n)))
    records = get_many(idx) if get_many else [source[i] for i in idx]
    for i, rec in zip(idx, records):
      img = np.asarray(rec["image"])
      if images is None:
        images = np.empty((n,) + img.shape, dtype=img.dtype)
        labels = np.empty((n,), dtype=np.int32)
      if img.shape != images.shape[1:]:
        raise ValueError(
            f"as_arrays: record {i} of {source!r} has image shape {img.shape} "
            f"but record 0 has {images.shape[1:]}; variable-size images must "
            "be resized to one shape before they can be stacked."
        )
      images[i] = img
      labels[i] = rec["label"]
  return images, labels
