r"""Writes an npz folder as a TFDS dataset in the array_record format.

No TensorFlow is needed, for writing or for reading back. Usage::

  python -m ssl_jax.data.npz_to_tfds \
      --npz_dir=../shared/datasets/cifar10 --name=cifar10_npz \
      --out_dir=/tmp/tfds [--splits=train,test] [--limit=N] \
      [--label_names=airplane,automobile,...] [--overwrite]

and then, from Python::

  tfds.data_source("cifar10_npz", split="train", data_dir="/tmp/tfds")
  ssl_jax.data.load_tfds("cifar10_npz", "train", "/tmp/tfds")

How it works. TFDS's own image encoder calls ``tf.image.encode_png`` and its
ad-hoc builder (``tfds.dataset_builders.store_as_tfds_dataset``) checks inputs
against ``tf.data.Dataset``; both need TensorFlow. This module instead

1. encodes every image to PNG with Pillow (lossless; 1, 2, 3 or 4 channels as
   L, LA, RGB, RGBA) and hands TFDS the PNG bytes, which
   ``tfds.features.Image`` stores unchanged;
2. defines a ``tfds.core.GeneratorBasedBuilder`` (unregistered) whose features
   are ``{"image": Image(shape=(H, W, C), encoding_format="png"),
   "label": ClassLabel}`` and whose splits yield those examples;
3. runs its ``download_and_prepare`` with ``file_format="array_record"`` and
   ``disable_shuffling=True``, so TFDS serialises the examples with its own
   protos, writes the array_record shards, ``dataset_info.json``,
   ``features.json`` and the label names, and record ``i`` of a split is row
   ``i`` of the npz file.

TFDS reads the result back with its read-only builder from those files and
decodes the PNGs with OpenCV or Pillow, bit-exactly.

The dataset goes to ``<out_dir>/<name>/<version>/``. ``name`` must not be a
name TFDS already registers (such as ``cifar10``): TFDS would read the folder
with the registered builder and its own version and features instead.
"""
from __future__ import annotations

import argparse
import io
import os
import re
import shutil
import sys
import tempfile
from typing import Iterator, Optional, Sequence

import numpy as np

from ssl_jax.data import sources as sources_lib

__all__ = ["write_tfds_from_npz", "encode_png", "main"]

_NAME_RE = re.compile(r"^[a-z][a-z0-9_]*$")
_PIL_MODES = {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}


def encode_png(image: np.ndarray) -> bytes:
  """Encodes one uint8 ``(H, W, C)`` image (C in 1..4) as PNG bytes."""
  from PIL import Image  # pylint: disable=g-import-not-at-top

  image = np.asarray(image)
  if (image.dtype != np.uint8 or image.ndim != 3
      or image.shape[-1] not in _PIL_MODES):
    raise ValueError(
        f"encode_png: expected a uint8 (H, W, C) image with C in 1..4, got "
        f"dtype {image.dtype} shape {image.shape}."
    )
  # Pillow infers the mode from the array: L, LA, RGB or RGBA.
  pixels = image[..., 0] if image.shape[-1] == 1 else image
  buf = io.BytesIO()
  Image.fromarray(np.ascontiguousarray(pixels)).save(buf, format="PNG")
  return buf.getvalue()


def _check_name(name: str) -> None:
  if not _NAME_RE.match(name or ""):
    raise ValueError(
        f"write_tfds_from_npz: name={name!r} is not a valid TFDS dataset name; "
        "use lower-case snake_case starting with a letter, e.g. 'cifar10_npz'."
    )
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  from tensorflow_datasets.core import registered  # pylint: disable=g-import-not-at-top

  try:
    tfds.builder_cls(name)
  except registered.DatasetNotFoundError:
    return
  raise ValueError(
      f"write_tfds_from_npz: {name!r} is a dataset TFDS already registers; "
      f"reading <out_dir>/{name} back, TFDS would use its registered builder "
      "(its own version and features) and not find this data. Choose another "
      f"name, e.g. {name + '_npz'!r}."
  )


def _make_builder_class():
  """Defines the builder lazily so importing this module stays cheap."""
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top

  class NpzImageBuilder(
      tfds.core.GeneratorBasedBuilder, skip_registration=True
  ):
    """TFDS builder over in-memory uint8 images and integer labels."""

    def __init__(
        self,
        *,
        name: str,
        version: str,
        features,
        split_arrays: dict[str, tuple[np.ndarray, np.ndarray]],
        description: str,
        data_dir: str,
    ):
      # Per-instance name and version, as tfds's own AdhocBuilder does.
      self.name = name
      self.VERSION = tfds.core.Version(version)  # pylint: disable=invalid-name
      self.RELEASE_NOTES = {version: description}  # pylint: disable=invalid-name
      self._features = features
      self._split_arrays = split_arrays
      self._description = description
      super().__init__(data_dir=data_dir, file_format="array_record")

    def _info(self):
      return tfds.core.DatasetInfo(
          builder=self,
          description=self._description,
          features=self._features,
          supervised_keys=("image", "label"),
          disable_shuffling=True,
      )

    def _split_generators(self, dl_manager):
      del dl_manager
      return {
          split: self._generate_examples(images, labels)
          for split, (images, labels) in self._split_arrays.items()
      }

    def _generate_examples(
        self, images: np.ndarray, labels: np.ndarray
    ) -> Iterator[tuple[int, dict[str, object]]]:
      for i in range(len(labels)):
        yield i, {"image": encode_png(images[i]), "label": int(labels[i])}

  return NpzImageBuilder


def write_tfds_from_npz(
    npz_dir: os.PathLike[str] | str,
    name: str,
    out_dir: os.PathLike[str] | str,
    splits: Sequence[str] = ("train", "test"),
    limit: Optional[int] = None,
    *,
    label_names: Optional[Sequence[str]] = None,
    num_classes: Optional[int] = None,
    version: str = "1.0.0",
    overwrite: bool = False,
) -> str:
  """Writes ``<npz_dir>/<split>.npz`` files as TFDS dataset ``name``.

  Args:
    npz_dir: folder of ``<split>.npz`` files (see
      :func:`ssl_jax.data.sources.load_npz`).
    name: TFDS name of the new dataset (snake_case, not a registered TFDS
      name).
    out_dir: TFDS data_dir to write into.
    splits: splits to write.
    limit: if set, write only the first ``limit`` records of every split.
    label_names: optional class names, one per class; otherwise classes are
      named '0', '1', ... .
    num_classes: number of classes; default ``len(label_names)`` or what
      :func:`load_npz` infers from the folder.
    version: TFDS version string of the dataset.
    overwrite: replace an existing ``<out_dir>/<name>/<version>``; otherwise
      that raises ``FileExistsError``.

  Returns:
    The folder written, ``<out_dir>/<name>/<version>``.
  """
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top

  _check_name(name)
  splits = [s for s in (splits or ()) if s]
  if not splits:
    raise ValueError("write_tfds_from_npz: no splits given.")
  if len(set(splits)) != len(splits):
    raise ValueError(f"write_tfds_from_npz: repeated split in {splits}.")
  if limit is not None and (isinstance(limit, bool) or int(limit) < 1):
    raise ValueError(f"write_tfds_from_npz: limit must be >= 1, got {limit!r}.")
  if label_names is not None:
    label_names = [str(n) for n in label_names]
    if num_classes is not None and num_classes != len(label_names):
      raise ValueError(
          f"write_tfds_from_npz: num_classes={num_classes} but "
          f"{len(label_names)} label_names were given."
      )
    num_classes = len(label_names)

  split_arrays = {}
  for split in splits:
    src = sources_lib.load_npz(npz_dir, split, num_classes=num_classes)
    images, labels = sources_lib.as_arrays(src)
    if limit is not None:
      images, labels = images[:limit], labels[:limit]
    split_arrays[split] = (images, labels)
    if num_classes is None:
      num_classes = src.num_classes

  shapes = {a[0].shape[1:] for a in split_arrays.values()}
  channels = {s[-1] for s in shapes}
  if len(channels) != 1 or next(iter(channels)) not in _PIL_MODES:
    raise ValueError(
        f"write_tfds_from_npz: splits have channel counts {sorted(channels)}; "
        "all splits need the same count, 1 to 4."
    )
  # A dimension that differs between splits is stored as variable (None).
  image_shape = tuple(
      dims[0] if len(set(dims)) == 1 else None for dims in zip(*shapes)
  )

  out_dir = os.fspath(out_dir)
  target = os.path.join(out_dir, name, version)
  if os.path.exists(target):
    if not overwrite:
      raise FileExistsError(
          f"write_tfds_from_npz: {target} already exists. Pass overwrite=True "
          "(--overwrite) to replace it, or choose another name/version."
      )
    shutil.rmtree(target)

  if label_names is not None:
    label = tfds.features.ClassLabel(names=label_names)
  else:
    label = tfds.features.ClassLabel(num_classes=num_classes)
  features = tfds.features.FeaturesDict({
      "image": tfds.features.Image(
          shape=image_shape, dtype=np.uint8, encoding_format="png"
      ),
      "label": label,
  })
  counts = ", ".join(f"{s}: {len(a[1])}" for s, a in split_arrays.items())
  description = (
      f"Images and labels of {os.path.abspath(os.fspath(npz_dir))} ({counts}), "
      "PNG-encoded, in npz order; written by ssl_jax.data.npz_to_tfds."
  )
  builder = _make_builder_class()(
      name=name,
      version=version,
      features=features,
      split_arrays=split_arrays,
      description=description,
      data_dir=out_dir,
  )
  with tempfile.TemporaryDirectory(prefix="npz_to_tfds_") as tmp:
    builder.download_and_prepare(download_dir=tmp)
  return os.fspath(builder.data_dir)


def _make_parser() -> argparse.ArgumentParser:
  parser = argparse.ArgumentParser(
      prog="python -m ssl_jax.data.npz_to_tfds",
      description=(
          "Write <npz_dir>/<split>.npz files as a TFDS array_record dataset "
          "(PNG images, ClassLabel labels), readable with "
          "tfds.data_source(NAME, data_dir=OUT_DIR). Needs no TensorFlow."
      ),
  )
  parser.add_argument("--npz_dir", required=True, help="folder of <split>.npz")
  parser.add_argument("--name", required=True, help="new TFDS dataset name")
  parser.add_argument("--out_dir", required=True, help="TFDS data_dir to write")
  parser.add_argument(
      "--splits", default="train,test", help="comma-separated (train,test)"
  )
  parser.add_argument(
      "--limit", type=int, default=None, help="first N records per split"
  )
  parser.add_argument(
      "--label_names", default=None, help="comma-separated class names"
  )
  parser.add_argument("--version", default="1.0.0", help="dataset version")
  parser.add_argument(
      "--overwrite", action="store_true", help="replace an existing version"
  )
  return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
  """Command-line entry point; returns 0 or exits with status 2 on an error.

  Errors in the input (missing files, bad arrays, a taken name, existing
  output) are printed as one line naming the problem, without a traceback.
  """
  parser = _make_parser()
  args = parser.parse_args(sys.argv[1:] if argv is None else argv)
  try:
    path = write_tfds_from_npz(
        args.npz_dir,
        args.name,
        args.out_dir,
        splits=[s.strip() for s in args.splits.split(",")],
        limit=args.limit,
        label_names=(
            [n.strip() for n in args.label_names.split(",")]
            if args.label_names else None
        ),
        version=args.version,
        overwrite=args.overwrite,
    )
  except (ValueError, TypeError, OSError) as e:
    parser.exit(2, f"{parser.prog}: error: {e}\n")
  print(f"Wrote TFDS dataset {args.name!r} to {path}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
