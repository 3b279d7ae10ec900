"""Dataset sources and the host input pipeline.

Sources (:mod:`ssl_jax.data.sources`) are random-access sequences of
``{"image": uint8 (H, W, C), "label": int}`` records (``(T, H, W, C)`` for
videos) with ``num_classes`` and ``image_shape``; :mod:`ssl_jax.data.video`
generates moving-digits videos; the pipeline (:mod:`ssl_jax.data.pipeline`)
shuffles, shards per host and batches them with grain.
:mod:`ssl_jax.data.image_folder` decodes ``<data_dir>/<split>/<class>/<image>``
PNG/JPEG folders. Bad data raises :class:`DataError` when a source is built.
:mod:`ssl_jax.data.audio` loads the spoken digits (FSDD) as waveforms.
:mod:`ssl_jax.data.synthetic_scenes` renders textured frame pairs with exact
depth, segmentation, occlusion edges and flow.
:mod:`ssl_jax.data.npz_to_tfds` writes an npz folder as a TFDS array_record
dataset without TensorFlow.
"""
from ssl_jax.data.audio import SpokenDigits
from ssl_jax.data.audio import load_fsdd
from ssl_jax.data.image_folder import ImageFolderSource
from ssl_jax.data.image_folder import load_image_folder
from ssl_jax.data.pipeline import TrainIterator
from ssl_jax.data.pipeline import TrainLoader
from ssl_jax.data.pipeline import iterate_batches
from ssl_jax.data.pipeline import make_train_loader
from ssl_jax.data.pipeline import read_records
from ssl_jax.data.sources import VALID_SOURCES
from ssl_jax.data.sources import ArraySource
from ssl_jax.data.sources import DataError
from ssl_jax.data.sources import TfdsSource
from ssl_jax.data.sources import as_arrays
from ssl_jax.data.sources import get_source
from ssl_jax.data.sources import load_digits
from ssl_jax.data.sources import load_npz
from ssl_jax.data.sources import load_tfds
from ssl_jax.data.synthetic_scenes import SyntheticScenes
from ssl_jax.data.synthetic_scenes import load_synthetic_scenes
from ssl_jax.data.video import MovingDigits
from ssl_jax.data.video import load_moving_digits

__all__ = [
    "ArraySource",
    "DataError",
    "ImageFolderSource",
    "MovingDigits",
    "SpokenDigits",
    "SyntheticScenes",
    "TfdsSource",
    "TrainIterator",
    "TrainLoader",
    "VALID_SOURCES",
    "as_arrays",
    "get_source",
    "iterate_batches",
    "load_digits",
    "load_moving_digits",
    "load_fsdd",
    "load_image_folder",
    "load_npz",
    "load_synthetic_scenes",
    "load_tfds",
    "make_train_loader",
    "read_records",
    "write_tfds_from_npz",
]


def __getattr__(name):
  # Imported lazily so `python -m ssl_jax.data.npz_to_tfds` does not find the
  # module already imported by this package (runpy warns about that).
  if name == "write_tfds_from_npz":
    from ssl_jax.data.npz_to_tfds import write_tfds_from_npz  # pylint: disable=g-import-not-at-top

    return write_tfds_from_npz
  raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
