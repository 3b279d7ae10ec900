"""Tests for ssl_jax.data.sources: in-memory, digits, npz and dispatch.

TFDS sources are tested in test_npz_to_tfds.py, next to the writer that
produces them.
"""
import hashlib
import types

import numpy as np
import pytest

from ssl_jax.data import sources


def _images(n, h=4, w=5, c=3, seed=0):
  return np.random.RandomState(seed).randint(0, 256, (n, h, w, c)).astype(np.uint8)


# ----------------------------------------------------------------------------
# ArraySource
# ----------------------------------------------------------------------------


def test_array_source_records_and_attributes():
  images = _images(6)
  labels = np.array([0, 1, 2, 0, 1, 2], dtype=np.int64)
  src = sources.ArraySource(images, labels, 3, name="toy")
  assert len(src) == 6
  assert src.num_classes == 3
  assert src.image_shape == (4, 5, 3)
  rec = src[4]
  assert set(rec) == {"image", "label"}
  assert rec["image"].dtype == np.uint8
  np.testing.assert_array_equal(rec["image"], images[4])
  assert rec["label"] == 1 and isinstance(rec["label"], int)
  batch = src.read_batch([5, 0])
  np.testing.assert_array_equal(batch["image"], images[[5, 0]])
  np.testing.assert_array_equal(batch["label"], [2, 0])
  assert batch["label"].dtype == np.int32
  # repr identifies the source without memory addresses (used on resume).
  assert repr(src) == (
      "ArraySource(name='toy', num_records=6, image_shape=(4, 5, 3), "
      "num_classes=3)"
  )


@pytest.mark.parametrize(
    "images, labels, num_classes, error, match",
    [
        (_images(3).astype(np.float32), [0, 1, 2], 3, TypeError, "uint8"),
        (_images(3)[..., 0], [0, 1, 2], 3, ValueError, "rank 4"),
        (_images(3), [[0, 1, 2]], 3, ValueError, "rank 1"),
        (_images(3), [0.0, 1.0, 2.0], 3, TypeError, "integers"),
        (_images(3), [0, 1], 3, ValueError, "3 images but 2 labels"),
        (_images(3), [0, 1, 3], 3, ValueError, r"\[0, 3\).*\[0, 3\]"),
        (_images(3), [-1, 1, 2], 3, ValueError, r"\[0, 3\)"),
        (_images(3), [0, 1, 2], 0, ValueError, "num_classes"),
        (_images(0), np.zeros(0, np.int64), 3, ValueError, "no images"),
    ],
)
def test_array_source_validation(images, labels, num_classes, error, match):
  with pytest.raises(error, match=match):
    sources.ArraySource(images, np.asarray(labels), num_classes)


# ----------------------------------------------------------------------------
# digits
# ----------------------------------------------------------------------------


def test_digits_split_sizes_and_stratification():
  from sklearn.datasets import load_digits as sk_load_digits

  full_counts = np.bincount(sk_load_digits().target, minlength=10)
  train = sources.load_digits("train")
  test = sources.load_digits("test")
  assert len(train) + len(test) == 1797
  assert (len(train), len(test)) == (1438, 359)
  test_counts = np.bincount(test.labels, minlength=10)
  train_counts = np.bincount(train.labels, minlength=10)
  np.testing.assert_array_equal(train_counts + test_counts, full_counts)
  # Every class contributes round(20%) of its images to the test split.
  np.testing.assert_array_equal(
      test_counts, [int(round(0.2 * c)) for c in full_counts]
  )
  for src in (train, test):
    assert src.num_classes == 10
    assert src.image_shape == (8, 8, 1)


def test_digits_partition_the_original_images():
  from sklearn.datasets import load_digits as sk_load_digits

  raw = sk_load_digits()
  expected = np.round(raw.images * 255.0 / 16.0).astype(np.uint8)[..., None]
  train = sources.load_digits("train")
  test = sources.load_digits("test")
  # Together the splits hold each original (image, label) pair exactly once.
  key = lambda x, y: sorted(a.tobytes() + bytes([b]) for a, b in zip(x, y))
  got = key(np.concatenate([train.images, test.images]),
            np.concatenate([train.labels, test.labels]))
  assert got == key(expected, raw.target)


def test_digits_values_and_determinism():
  test = sources.load_digits("test")
  assert test.images.dtype == np.uint8
  assert test.images.min() == 0 and test.images.max() == 255
  allowed = {int(round(v * 255 / 16)) for v in range(17)}
  assert set(np.unique(test.images).tolist()) <= allowed
  # Rebuilding from scratch gives the same split...
  sources._digits_arrays.cache_clear()
  again = sources.load_digits("test")
  np.testing.assert_array_equal(again.images, test.images)
  np.testing.assert_array_equal(again.labels, test.labels)
  # ...and so does every machine: these digests are pinned.
  assert hashlib.sha256(again.labels.astype(np.int64).tobytes()).hexdigest() == (
      "7d108ee8fe30bb90e73e54fffbd17cbdba16de5978c5ecb0eb0a938f5f283322"
  )
  assert hashlib.sha256(again.images.tobytes()).hexdigest() == (
      "2f5eb12f1dfec8a2337c6effb5e27dbb6ed8b62a806850d96fc89030d272c03a"
  )


def test_digits_unknown_split():
  with pytest.raises(ValueError, match="'train' and 'test'"):
    sources.load_digits("validation")


# ----------------------------------------------------------------------------
# npz
# ----------------------------------------------------------------------------


def test_load_npz_round_trip(tmp_path):
  x_train, y_train = _images(10), np.arange(10) % 7
  x_test, y_test = _images(4, seed=1), np.array([0, 1, 2, 3])
  np.savez(tmp_path / "train.npz", image=x_train, label=y_train)
  np.savez(tmp_path / "test.npz", image=x_test, label=y_test)
  train = sources.load_npz(tmp_path, "train")
  test = sources.load_npz(str(tmp_path), "test")
  np.testing.assert_array_equal(train.images, x_train)
  np.testing.assert_array_equal(train.labels, y_train)
  np.testing.assert_array_equal(test[2]["image"], x_test[2])
  # num_classes comes from all splits of the folder, so they agree.
  assert train.num_classes == test.num_classes == 7
  assert sources.load_npz(tmp_path, "test", num_classes=10).num_classes == 10


def test_load_npz_grayscale_gets_channel_axis(tmp_path):
  np.savez(tmp_path / "train.npz", image=_images(3)[..., 0], label=[0, 1, 1])
  src = sources.load_npz(tmp_path, "train")
  assert src.image_shape == (4, 5, 1)
  assert src[0]["image"].shape == (4, 5, 1)


def test_load_npz_num_classes_stored_in_file(tmp_path):
  np.savez(tmp_path / "train.npz", image=_images(2), label=[0, 1], num_classes=5)
  assert sources.load_npz(tmp_path, "train").num_classes == 5


def test_load_npz_missing_file_lists_found_splits(tmp_path):
  np.savez(tmp_path / "train.npz", image=_images(2), label=[0, 1])
  with pytest.raises(FileNotFoundError) as e:
    sources.load_npz(tmp_path, "test")
  msg = str(e.value)
  assert str(tmp_path / "test.npz") in msg and "['train']" in msg
  with pytest.raises(FileNotFoundError, match="does not exist"):
    sources.load_npz(tmp_path / "nowhere", "train")


@pytest.mark.parametrize(
    "arrays, match",
    [
        (dict(image=_images(2).astype(np.float32), label=[0, 1]),
         "dtype float32, expected uint8"),
        (dict(image=np.zeros((2, 4), np.uint8), label=[0, 1]),
         r"shape \(2, 4\), expected rank 4"),
        (dict(image=_images(2), label=[0, 1, 1]), r"expected \(2,\)"),
        (dict(image=_images(2), label=[0.0, 1.0]), "integer dtype"),
        (dict(images=_images(2), label=[0, 1]), r"lacks the array\(s\) \['image'\]"),
    ],
)
def test_load_npz_bad_contents_name_file_and_expectation(tmp_path, arrays, match):
  np.savez(tmp_path / "train.npz", **arrays)
  with pytest.raises(ValueError, match=match) as e:
    sources.load_npz(tmp_path, "train")
  assert str(tmp_path / "train.npz") in str(e.value)


# ----------------------------------------------------------------------------
# get_source and as_arrays
# ----------------------------------------------------------------------------


def test_get_source_dispatch(tmp_path):
  np.savez(tmp_path / "test.npz", image=_images(3), label=[0, 1, 2])
  digits = sources.get_source(types.SimpleNamespace(source="digits"), "test")
  assert len(digits) == 359
  cfg = types.SimpleNamespace(source="npz", name=None, data_dir=str(tmp_path))
  assert len(sources.get_source(cfg, "test")) == 3


@pytest.mark.parametrize(
    "cfg, match",
    [
        (dict(source="folder"), r"\['digits', 'npz', 'tfds', 'moving_digits', 'audio_visual', 'image_text', 'image_folder', 'synthetic_scenes', 'text'\]"),
        (dict(), r"source=None.*\['digits', 'npz', 'tfds', 'moving_digits', 'audio_visual', 'image_text', 'image_folder', 'synthetic_scenes', 'text'\]"),
        (dict(source="npz", data_dir=None), "needs data_config.data_dir"),
        (dict(source="tfds", name=""), "needs data_config.name"),
    ],
)
def test_get_source_errors(cfg, match):
  with pytest.raises(ValueError, match=match):
    sources.get_source(types.SimpleNamespace(**cfg), "train")


def test_as_arrays_fast_path_shares_memory():
  src = sources.load_digits("test")
  images, labels = sources.as_arrays(src)
  assert np.shares_memory(images, src.images)
  assert images.shape == (359, 8, 8, 1) and labels.dtype == np.int32


class _ListSource:
  """A minimal source with only __len__ and __getitem__."""

  def __init__(self, images, labels):
    self.images, self.labels = images, labels
    self.num_classes, self.image_shape = 10, images.shape[1:]

  def __len__(self):
    return len(self.labels)

  def __getitem__(self, i):
    return {"image": self.images[i], "label": int(self.labels[i])}


def test_as_arrays_generic_source_in_chunks():
  x, y = _images(7), np.arange(7)
  images, labels = sources.as_arrays(_ListSource(x, y), chunk_size=3)
  np.testing.assert_array_equal(images, x)
  np.testing.assert_array_equal(labels, y)
  assert images.dtype == np.uint8 and labels.dtype == np.int32


def test_as_arrays_rejects_mixed_shapes():
  src = _ListSource(_images(2), np.arange(2))
  src.images = [src.images[0], src.images[1][:2]]
  with pytest.raises(ValueError, match="record 1 .* image shape"):
    sources.as_arrays(src)
