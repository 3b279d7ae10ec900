"""Tests for ssl_jax.data.npz_to_tfds and the TFDS source that reads it back.

Uses the first few hundred images of the real CIFAR-10 in
../shared/datasets/cifar10, written to a temporary folder.
"""
import os
import pickle
import sys
import types
import zipfile

from absl import flags
import numpy as np
import pytest

from ssl_jax.data import npz_to_tfds
from ssl_jax.data import pipeline
from ssl_jax.data import sources

CIFAR_DIR = os.path.join(
    os.path.dirname(__file__), "..", "..", "..", "shared", "datasets", "cifar10"
)
CIFAR_NAMES = ("airplane automobile bird cat deer dog frog horse ship "
               "truck").split()
N_TRAIN, N_TEST = 300, 100

# grain worker processes read absl flags; pytest never parses them.
flags.FLAGS.mark_as_parsed()


def _read_head(path, key, n):
  """The first n rows of array `key` of an npz file, without reading the rest."""
  with zipfile.ZipFile(path) as z, z.open(key + ".npy") as fh:
    major, _ = np.lib.format.read_magic(fh)
    read_header = (np.lib.format.read_array_header_1_0 if major == 1
                   else np.lib.format.read_array_header_2_0)
    shape, fortran_order, dtype = read_header(fh)
    assert not fortran_order
    count = n * int(np.prod(shape[1:]))
    data = fh.read(count * dtype.itemsize)
  return np.frombuffer(data, dtype).reshape((n,) + tuple(shape[1:]))


@pytest.fixture(scope="module")
def cifar_npz(tmp_path_factory):
  """A small npz folder: the first CIFAR-10 images, in the original order."""
  if not os.path.isdir(CIFAR_DIR):
    pytest.skip(f"CIFAR-10 npz files not found at {CIFAR_DIR}")
  out = tmp_path_factory.mktemp("cifar_npz")
  arrays = {}
  for split, n in (("train", N_TRAIN), ("test", N_TEST)):
    path = os.path.join(CIFAR_DIR, f"{split}.npz")
    arrays[split] = (_read_head(path, "image", n), _read_head(path, "label", n))
    np.savez(out / f"{split}.npz", image=arrays[split][0], label=arrays[split][1])
  # The first labels of both splits, as the dataset README gives them.
  np.testing.assert_array_equal(arrays["train"][1][:10], [6, 9, 9, 4, 1, 1, 2, 7, 8, 3])
  np.testing.assert_array_equal(arrays["test"][1][:10], [3, 8, 8, 0, 6, 6, 1, 6, 3, 1])
  return out, arrays


@pytest.fixture(scope="module")
def cifar_tfds(cifar_npz, tmp_path_factory):
  npz_dir, arrays = cifar_npz
  data_dir = tmp_path_factory.mktemp("tfds")
  path = npz_to_tfds.write_tfds_from_npz(
      npz_dir, "cifar10_sample", data_dir, splits=("train", "test"),
      label_names=CIFAR_NAMES,
  )
  return str(data_dir), path, arrays


def test_tfds_reads_back_exactly_what_the_npz_held(cifar_tfds):
  import tensorflow_datasets as tfds

  data_dir, path, arrays = cifar_tfds
  assert path == os.path.join(data_dir, "cifar10_sample", "1.0.0")
  assert any(".array_record-" in f for f in os.listdir(path))
  for split, (images, labels) in arrays.items():
    ds = tfds.data_source("cifar10_sample", split=split, data_dir=data_dir)
    assert len(ds) == len(labels)
    got = np.stack([ds[i]["image"] for i in range(len(ds))])
    assert got.dtype == np.uint8
    np.testing.assert_array_equal(got, images)  # bit-exact, same order
    np.testing.assert_array_equal([ds[i]["label"] for i in range(len(ds))], labels)
  # Writing and reading never needed TensorFlow.
  assert "tensorflow" not in sys.modules


def test_tfds_metadata(cifar_tfds):
  import tensorflow_datasets as tfds

  data_dir, _, _ = cifar_tfds
  builder = tfds.builder("cifar10_sample", data_dir=data_dir)
  assert builder.info.file_format.value == "array_record"
  assert builder.info.splits["train"].num_examples == N_TRAIN
  assert builder.info.features["label"].names == list(CIFAR_NAMES)
  assert builder.info.features["image"].shape == (32, 32, 3)
  assert builder.info.features["image"].encoding_format == "png"


def test_load_tfds_source(cifar_tfds):
  data_dir, _, arrays = cifar_tfds
  src = sources.load_tfds("cifar10_sample", "test", data_dir)
  assert len(src) == N_TEST
  assert src.num_classes == 10
  assert src.image_shape == (32, 32, 3)
  rec = src[7]
  assert set(rec) == {"image", "label"} and isinstance(rec["label"], int)
  np.testing.assert_array_equal(rec["image"], arrays["test"][0][7])
  images, labels = sources.as_arrays(src, chunk_size=33)
  np.testing.assert_array_equal(images, arrays["test"][0])
  np.testing.assert_array_equal(labels, arrays["test"][1])
  assert labels.dtype == np.int32
  # Split slicing passes through to TFDS.
  assert len(sources.load_tfds("cifar10_sample", "train[:10]", data_dir)) == 10
  # Pickles without its open files (for grain worker processes).
  clone = pickle.loads(pickle.dumps(src))
  np.testing.assert_array_equal(clone[3]["image"], arrays["test"][0][3])


def test_get_source_tfds(cifar_tfds):
  data_dir, _, _ = cifar_tfds
  cfg = types.SimpleNamespace(source="tfds", name="cifar10_sample", data_dir=data_dir)
  assert len(sources.get_source(cfg, "train")) == N_TRAIN


def test_loader_gives_the_same_batches_from_tfds_and_npz(cifar_npz, cifar_tfds):
  npz_dir, _ = cifar_npz
  data_dir, _, _ = cifar_tfds
  from_npz = pipeline.make_train_loader(
      sources.load_npz(npz_dir, "train"), 32, 0, process_index=0, process_count=1
  )
  from_tfds = pipeline.make_train_loader(
      sources.load_tfds("cifar10_sample", "train", data_dir), 32, 0,
      process_index=0, process_count=1,
  )
  for a, b, _ in zip(from_npz, from_tfds, range(3)):
    np.testing.assert_array_equal(a["image"], b["image"])
    np.testing.assert_array_equal(a["label"], b["label"])
    assert b["label"].dtype == np.int32


def test_loader_reads_tfds_in_a_worker_process(cifar_npz, cifar_tfds):
  # The worker unpickles the source and reopens it; its prefetch threads all
  # ask at once. (Without TfdsSource's open lock this deadlocked on TFDS's lazy
  # imports in some runs; the race is timing-dependent, so this test checks
  # the worker path works rather than reproducing the race every time.)
  npz_dir, _ = cifar_npz
  data_dir, _, _ = cifar_tfds
  expected = pipeline.make_train_loader(
      sources.load_npz(npz_dir, "train"), 30, 4, process_index=0, process_count=1
  )
  it = iter(pipeline.make_train_loader(
      sources.load_tfds("cifar10_sample", "train", data_dir), 30, 4,
      process_index=0, process_count=1, worker_count=1, num_threads=4,
  ))
  try:
    for a, _ in zip(expected, range(4)):
      b = next(it)
      np.testing.assert_array_equal(a["image"], b["image"])
      np.testing.assert_array_equal(a["label"], b["label"])
  finally:
    it.close()


def test_load_tfds_missing_dataset_is_a_clear_error(tmp_path):
  with pytest.raises(FileNotFoundError, match="'not_there'.*not found.*array_record"):
    sources.load_tfds("not_there", "train", tmp_path)
  # A registered name whose files are absent: no download is attempted.
  with pytest.raises(FileNotFoundError, match="no array_record files.*'cifar10'"):
    sources.load_tfds("cifar10", "train", tmp_path)


def test_cli_grayscale_limit_and_overwrite(tmp_path, capsys):
  rng = np.random.RandomState(0)
  npz_dir = tmp_path / "npz"
  npz_dir.mkdir()
  images = rng.randint(0, 256, (12, 5, 7)).astype(np.uint8)  # grayscale
  labels = np.arange(12) % 4
  np.savez(npz_dir / "train.npz", image=images, label=labels)
  out = tmp_path / "out"
  argv = [f"--npz_dir={npz_dir}", "--name=gray_toy", f"--out_dir={out}",
          "--splits=train", "--limit=9"]
  assert npz_to_tfds.main(argv) == 0
  src = sources.load_tfds("gray_toy", "train", out)
  assert len(src) == 9 and src.num_classes == 4 and src.image_shape == (5, 7, 1)
  got, got_labels = sources.as_arrays(src)
  np.testing.assert_array_equal(got[..., 0], images[:9])
  np.testing.assert_array_equal(got_labels, labels[:9])
  # Existing output is not silently reused or replaced; the command says so
  # in one line and exits with status 2.
  with pytest.raises(SystemExit) as e:
    npz_to_tfds.main(argv)
  assert e.value.code == 2
  assert "already exists" in capsys.readouterr().err
  with pytest.raises(FileExistsError, match="overwrite=True"):
    npz_to_tfds.write_tfds_from_npz(npz_dir, "gray_toy", out, ["train"])
  assert npz_to_tfds.main(argv[:-1] + ["--limit=3", "--overwrite"]) == 0
  assert len(sources.load_tfds("gray_toy", "train", out)) == 3


@pytest.mark.parametrize(
    "name, match",
    [
        ("cifar10", "already registers.*'cifar10_npz'"),
        ("My-Data", "not a valid TFDS dataset name"),
    ],
)
def test_rejects_bad_names(tmp_path, name, match):
  with pytest.raises(ValueError, match=match):
    npz_to_tfds.write_tfds_from_npz(tmp_path, name, tmp_path / "out")


def test_label_names_must_match_num_classes(cifar_npz, tmp_path):
  npz_dir, _ = cifar_npz
  with pytest.raises(ValueError, match="num_classes=10 but 3 label_names"):
    npz_to_tfds.write_tfds_from_npz(
        npz_dir, "bad_names", tmp_path, splits=["test"],
        label_names=["a", "b", "c"], num_classes=10,
    )


def test_encode_png_rejects_non_images():
  with pytest.raises(ValueError, match="uint8 \\(H, W, C\\)"):
    npz_to_tfds.encode_png(np.zeros((4, 4, 5), np.uint8))
