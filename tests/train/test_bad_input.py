"""Bad input, clear errors (issue #11).

Every bad input below is refused through a public path (the CLI,
``data.get_source`` or ``loop.Run`` / ``loop.train_and_evaluate``) before
any training, with one message that names the problem and the fix, and
leaves nothing in the workdir that looks like a run.
"""

import io
import json
import os
import subprocess
import sys
import types

import ml_collections
import numpy as np
import pytest
from PIL import Image

from ssl_jax import data
from ssl_jax.data import sources
from ssl_jax.train import loop
from tests.conftest import REPO_ROOT
from tests.conftest import load_config
from tests.conftest import tiny_simclr_config


def _images(n, h=8, w=8, c=1, seed=0):
  return np.random.RandomState(seed).randint(0, 256, (n, h, w, c)).astype(
      np.uint8)


def _npz_dir(tmp_path, train, test=None, name="mydata"):
  """A folder with train.npz (and test.npz) from dicts of arrays."""
  folder = tmp_path / name
  folder.mkdir()
  np.savez(folder / "train.npz", **train)
  test = test if test is not None else dict(image=_images(8, seed=1),
                                            label=np.arange(8) % 2)
  np.savez(folder / "test.npz", **test)
  return folder


def _npz_config(folder):
  config = tiny_simclr_config()
  config.data.source = "npz"
  config.data.data_dir = str(folder)
  return config


def _get(data_config, split="train"):
  return data.get_source(ml_collections.ConfigDict(data_config), split)


def _refused_before_training(config, workdir, error, match):
  """Run(config, workdir) raises ``error`` and the workdir stays absent."""
  with pytest.raises(error, match=match) as e:
    loop.train_and_evaluate(config, str(workdir))
  assert not os.path.exists(workdir), os.listdir(workdir)
  return str(e.value)


# ----------------------------------------------------------------------------
# 1. Images: dtype, rank, channels, values (npz, arrays, tfds)
# ----------------------------------------------------------------------------


@pytest.mark.parametrize("image, match", [
    (_images(16).astype(np.float32) / 255,
     r"'image' has dtype float32, expected uint8 with values 0\.\.255\. Its "
     r"values lie in \[0\.0, 1\.0\], so convert with "
     r"np\.round\(images \* 255\)\.astype\(np\.uint8\)"),
    (_images(16).astype(np.float32) / 64 - 2,
     r"negative pixels, so the images look normalised already\. Pass the raw "
     r"uint8 pixels"),
    (_images(16).astype(np.int64),
     r"dtype int64.*so convert with images\.astype\(np\.uint8\)"),
    (_images(16).astype(np.uint16) * 200,
     r"beyond 255 \(more than 8 bits per pixel\): rescale, e\.g\. "
     r"np\.round\(images / 257\)"),
    (np.zeros((16, 64), np.uint8), r"shape \(16, 64\), expected rank 4"),
    (np.transpose(_images(16, c=3), (0, 3, 1, 2)),
     r"images of shape \(16, 3, 8, 8\) have 8 channels last; expected 1 "
     r"\(grayscale\) or 3 \(RGB\) channels last\. They look channels-first: "
     r"make them channels-last with images\.transpose\(0, 2, 3, 1\)\."),
    (_images(16, c=4), r"have 4 channels last; expected 1 \(grayscale\) or "
     r"3 \(RGB\) channels last\. Drop the alpha channel with images\[\.\.\., :3\]"),
])
def test_bad_npz_images_are_refused_at_load(tmp_path, image, match):
  folder = _npz_dir(tmp_path, dict(image=image, label=np.arange(16) % 2))
  with pytest.raises(sources.DataError, match=match) as e:
    _get(dict(source="npz", data_dir=str(folder)))
  assert str(folder / "train.npz") in str(e.value)
  # The same through a run: nothing is written.
  _refused_before_training(_npz_config(folder), tmp_path / "run",
                           sources.DataError, match)


def test_recipe_of_another_channel_count_is_refused():
  """The run's views must fit the data's channels (checked once Run passes
  the training source's image_shape to validate_config)."""
  from ssl_jax.augment import recipes  # pylint: disable=g-import-not-at-top
  config = tiny_simclr_config()
  config.augment = recipes.simclr_cifar(crop_size=8)  # 3-channel mean/std
  with pytest.raises(loop.ConfigError, match=(
      r"config\.augment\.mean has 3 entries but the training images have 1 "
      r"channel\(s\) \(shape \(8, 8, 1\)\); use the preset made for this data")):
    loop.validate_config(config, 8, 1438, image_shape=(8, 8, 1))
  loop.validate_config(config, 8, 1438, image_shape=(8, 8, 3))


def test_bad_arrays_are_refused():
  with pytest.raises(TypeError, match=r"uint8.*np\.round\(images \* 255\)"):
    sources.ArraySource(_images(4).astype(np.float64) / 255, np.arange(4), 4)
  with pytest.raises(sources.DataError, match=r"images\.transpose\(0, 2, 3, 1\)"):
    sources.ArraySource(np.zeros((4, 3, 8, 8), np.uint8), np.arange(4), 4)


class _FakeTfds:
  """What tfds.data_source returns, for a dataset with given features."""

  def __init__(self, features, n):
    self.dataset_info = types.SimpleNamespace(features=features, splits={})
    self._n = n

  def __len__(self):
    return self._n

  def __getitem__(self, i):
    return {"image": np.zeros((8, 8, 3), np.uint8), "label": 0}


@pytest.mark.parametrize("image_feature, n, match", [
    (dict(shape=(8, 8, 1), dtype=np.float32), 4,
     r"holds float32 pixels; this pipeline reads uint8 images"),
    (dict(shape=(8, 8, 4), dtype=np.uint8), 4,
     r"4 channels last.*Drop the alpha channel"),
    (dict(shape=(8, 8, 3), dtype=np.uint8), 0,
     r"split 'train' of 'fake' holds no examples"),
])
def test_bad_tfds_datasets_are_refused_at_load(monkeypatch, image_feature, n,
                                               match):
  tfds = pytest.importorskip("tensorflow_datasets")
  features = tfds.features.FeaturesDict({
      "image": tfds.features.Image(**image_feature),
      "label": tfds.features.ClassLabel(num_classes=2)})
  monkeypatch.setattr(tfds, "data_source",
                      lambda *a, **k: _FakeTfds(features, n))
  with pytest.raises(sources.DataError, match=match):
    _get(dict(source="tfds", name="fake"))


# ----------------------------------------------------------------------------
# 2. Labels: range and dtype
# ----------------------------------------------------------------------------


@pytest.mark.parametrize("labels, extra, match", [
    (np.arange(16) % 2 - 1, {},
     r"labels must lie in \[0, 1\), got values in \[-1, 0\]: 8 label\(s\) are "
     r"negative \(-1 often marks unlabelled examples: drop them\)"),
    (np.arange(16) % 4, dict(num_classes=3),
     r"labels must lie in \[0, 3\), got values in \[0, 3\]: 4 label\(s\) are "
     r">= 3 \(pass the right num_classes"),
    ((np.arange(16) % 2).astype(np.float32), {},
     r"'label' has dtype float32, expected an integer dtype\. They are whole "
     r"numbers: convert with labels\.astype\(np\.int64\)"),
    (np.full(16, 0.5), {}, r"'label' has dtype float64.*class ids"),
    (np.eye(2, dtype=np.int64)[np.arange(16) % 2], {},
     r"'label' has shape \(16, 2\).*One-hot labels\? Save "
     r"labels\.argmax\(axis=1\)"),
])
def test_bad_labels_are_refused_at_load(tmp_path, labels, extra, match):
  folder = _npz_dir(tmp_path, dict(image=_images(16), label=labels, **extra),
                    test=dict(image=_images(2), label=[0, 0]))
  with pytest.raises(sources.DataError, match=match):
    _get(dict(source="npz", data_dir=str(folder)))
  _refused_before_training(_npz_config(folder), tmp_path / "run",
                           sources.DataError, match)


# ----------------------------------------------------------------------------
# 3. Empty or missing data
# ----------------------------------------------------------------------------


def test_empty_split_is_refused(tmp_path):
  folder = _npz_dir(tmp_path, dict(image=_images(16), label=np.arange(16) % 2),
                    test=dict(image=_images(0), label=np.zeros(0, np.int64)))
  match = (r"test\.npz holds no images \('image' has shape \(0, 8, 8, 1\)\); "
           r"write the split's examples to it")
  with pytest.raises(sources.DataError, match=match):
    _get(dict(source="npz", data_dir=str(folder)), "test")
  _refused_before_training(_npz_config(folder), tmp_path / "run",
                           sources.DataError, match)
  # A source of no examples never reaches training either.
  with pytest.raises(loop.ConfigError, match="holds no examples"):
    loop.validate_config(tiny_simclr_config(), 8, 0)


def test_missing_data_is_refused(tmp_path):
  config = _npz_config(tmp_path / "nowhere")
  _refused_before_training(config, tmp_path / "run", FileNotFoundError,
                           r"no file .*train\.npz .*the folder does not exist")
  (tmp_path / "a_file").write_text("x")
  with pytest.raises(FileNotFoundError, match="is a file, not a folder"):
    _get(dict(source="npz", data_dir=str(tmp_path / "a_file")))
  folder = tmp_path / "only_train"
  folder.mkdir()
  np.savez(folder / "train.npz", image=_images(16), label=np.arange(16) % 2)
  with pytest.raises(FileNotFoundError, match=r"splits found there: \['train'\]"):
    _get(dict(source="npz", data_dir=str(folder)), "test")
  (tmp_path / "broken").mkdir()
  (tmp_path / "broken" / "train.npz").write_bytes(b"not a zip")
  with pytest.raises(sources.DataError,
                     match=r"cannot read .*train\.npz as an npz file"):
    _get(dict(source="npz", data_dir=str(tmp_path / "broken")))
  with pytest.raises(sources.DataError, match=r"Did you mean 'image_folder'\?"):
    _get(dict(source="imagefolder"))


# ----------------------------------------------------------------------------
# 4. Image folders, with a corrupt file
# ----------------------------------------------------------------------------


def _png(path, size=(8, 8), mode="L", seed=0):
  rng = np.random.RandomState(seed)
  shape = (size[1], size[0]) + (() if mode == "L" else (len(mode),))
  path.parent.mkdir(parents=True, exist_ok=True)
  Image.fromarray(rng.randint(0, 256, shape).astype(np.uint8), mode).save(path)
  return path


def _image_folder(root, per_class=12, test_per_class=4, mode="L", size=(8, 8)):
  """root/{train,test}/{cat,dog}/NNN.png (and 'bird' in test only)."""
  for split, n in (("train", per_class), ("test", test_per_class)):
    for c, name in enumerate(("dog", "cat")):
      for i in range(n):
        _png(root / split / name / f"{i:03d}.png", size, mode, seed=100 * c + i)
  (root / "test" / "bird").mkdir()
  return root


def _truncated_png(path):
  """A PNG whose pixel data stops half way: it opens, but does not decode."""
  buffer = io.BytesIO()
  noise = np.random.RandomState(0).randint(0, 256, (32, 32)).astype(np.uint8)
  Image.fromarray(noise, "L").save(buffer, "PNG")
  path.write_bytes(buffer.getvalue()[:len(buffer.getvalue()) // 2])
  with Image.open(path) as image:  # the header is intact
    assert image.size == (32, 32)
  return path


def test_image_folder_reads_classes_sorted(tmp_path):
  root = _image_folder(tmp_path / "pets")
  (root / "train" / "cat" / ".DS_Store").write_bytes(b"\0")
  (root / "train" / "cat" / "notes.txt").write_text("x")
  train = _get(dict(source="image_folder", data_dir=str(root)))
  test = _get(dict(source="image_folder", data_dir=str(root)), "test")
  assert train.classes == test.classes == ("bird", "cat", "dog")
  assert train.num_classes == 3 and len(train) == 24 and len(test) == 8
  assert train.image_shape == (8, 8, 1)
  np.testing.assert_array_equal(np.bincount(train.labels), [0, 12, 12])
  first = train.files.index(str(root / "train" / "dog" / "000.png"))
  expected = np.asarray(Image.open(root / "train" / "dog" / "000.png"))
  np.testing.assert_array_equal(train.images[first, ..., 0], expected)
  assert train.labels[first] == 2
  # One RGB file makes every image RGB; image_size crops and resizes.
  _png(root / "train" / "cat" / "big.png", (12, 10), "RGB")
  resized = _get(dict(source="image_folder", data_dir=str(root), image_size=6))
  assert resized.image_shape == (6, 6, 3) and len(resized) == 25


def test_image_folder_corrupt_file_error_or_skip(tmp_path, caplog):
  root = _image_folder(tmp_path / "pets")
  garbage = root / "train" / "cat" / "garbage.png"
  garbage.write_bytes(b"this is not an image")
  truncated = _truncated_png(root / "train" / "dog" / "truncated.png")
  cfg = dict(source="image_folder", data_dir=str(root))
  with pytest.raises(
      sources.DataError,
      match=(rf"cannot decode the image file {garbage} \(UnidentifiedImageError"
             r".*\)\. Replace or delete the file, or set "
             r"config\.data\.on_corrupt=skip")):
    _get(cfg)
  caplog.set_level("WARNING")
  train = _get(dict(cfg, on_corrupt="skip"))
  assert len(train) == 24 and train.skipped == (str(garbage), str(truncated))
  assert "skipped 2 of 26 image files" in caplog.text
  assert str(garbage) in caplog.text and str(truncated) in caplog.text
  assert "OSError: image file is truncated" in caplog.text
  # With 'error', the truncated file is named when it is the first bad one.
  garbage.unlink()
  with pytest.raises(sources.DataError, match=(
      rf"cannot decode the image file {truncated} \(OSError: image file is "
      r"truncated")):
    _get(cfg)
  garbage.write_bytes(b"this is not an image")
  with pytest.raises(sources.DataError,
                     match=r"on_corrupt='ignore'; use one of \['error', 'skip'\]"):
    _get(dict(cfg, on_corrupt="ignore"))

  # Through a run: refused before training, no workdir.
  config = tiny_simclr_config()
  config.data.source = "image_folder"
  config.data.data_dir = str(root)
  _refused_before_training(config, tmp_path / "run", sources.DataError,
                           "cannot decode the image file")
  config.data.on_corrupt = "skip"
  run = loop.Run(config, str(tmp_path / "run_skip"))
  run.checkpointer.close()
  assert len(run.train_source) == 24 and run.num_classes == 3


def test_image_folder_sizes_layout_and_depth(tmp_path):
  root = _image_folder(tmp_path / "pets")
  cfg = dict(source="image_folder", data_dir=str(root))
  odd = _png(root / "train" / "dog" / "zzz.png", (9, 7))
  with pytest.raises(sources.DataError, match=(
      rf"{odd} is 9x7 \(width x height\) but .* is 8x8; with "
      r"config\.data\.image_size=0 all images must have one size\. Set "
      r"config\.data\.image_size=S")):
    _get(cfg)
  assert _get(dict(cfg, image_size=8)).image_shape == (8, 8, 1)
  odd.unlink()
  deep = root / "train" / "dog" / "deep.png"
  Image.fromarray(np.full((8, 8), 4000, np.uint16)).save(deep)
  with pytest.raises(sources.DataError, match=r"more than 8 bits per channel"):
    _get(cfg)
  with pytest.raises(FileNotFoundError,
                     match=r"no folder .*valid for split 'valid' \(split "
                     r"folders found there: \['test', 'train'\]\)"):
    _get(cfg, "valid")
  flat = tmp_path / "flat" / "train"
  _png(flat / "a.png")
  with pytest.raises(sources.DataError, match=(
      r"holds no class folders\. It holds 1 image file\(s\) directly: move "
      r"each into the folder of its class")):
    _get(dict(source="image_folder", data_dir=str(tmp_path / "flat")))
  (tmp_path / "empty" / "train" / "cat").mkdir(parents=True)
  with pytest.raises(sources.DataError, match=r"hold no \.png/\.jpg/\.jpeg"):
    _get(dict(source="image_folder", data_dir=str(tmp_path / "empty")))


# ----------------------------------------------------------------------------
# 5, 6. Batch against devices; MoCo queue against batch
# ----------------------------------------------------------------------------


def test_batch_not_divisible_by_devices(tmp_path):
  config = tiny_simclr_config()
  config.train.batch_size = 12  # 8 devices
  _refused_before_training(
      config, tmp_path / "run", loop.ConfigError,
      r"^config\.train\.batch_size=12 is not divisible by the 8 devices; use "
      r"a multiple of 8\.$")


def test_moco_queue_not_a_multiple_of_the_batch(tmp_path):
  config = load_config("moco", "digits")
  config.model.width_multiplier = 0.125
  config.train.batch_size = 16
  config.moco.queue_size = 100
  _refused_before_training(
      config, tmp_path / "run", loop.ConfigError,
      r"^config\.moco\.queue_size=100 must be a positive multiple of the "
      r"global batch config\.train\.batch_size=16; set it to e\.g\. 96\.$")


# ----------------------------------------------------------------------------
# 7. Unknown config keys on the command line; data errors there
# ----------------------------------------------------------------------------


def _cli(*args):
  env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=8")
  result = subprocess.run(
      [sys.executable, "-m", "ssl_jax.main", *args], cwd=REPO_ROOT, env=env,
      capture_output=True, text=True, timeout=180)
  assert result.returncode == 2, result.stderr
  assert "Traceback" not in result.stderr, result.stderr
  lines = [l for l in result.stderr.splitlines()
           if l.startswith("ssl_jax: error:")]
  assert len(lines) == 1, result.stderr
  return lines[0]


@pytest.mark.parametrize("override, expected", [
    ("--config.train.batchsize=8",
     "ssl_jax: error: unknown config key config.train.batchsize (in "
     "--config.train.batchsize=8); did you mean --config.train.batch_size?"),
    ("--config.batchsize=8",
     "ssl_jax: error: unknown config key config.batchsize (in "
     "--config.batchsize=8); did you mean --config.eval.batch_size or "
     "--config.train.batch_size?"),
])
def test_unknown_config_key_names_it_and_the_closest(tmp_path, override,
                                                    expected):
  workdir = tmp_path / "run"
  line = _cli("--config=configs/simclr.py:digits", override,
              f"--workdir={workdir}")
  assert line == expected
  assert not workdir.exists()


def test_cli_data_error_is_one_line(tmp_path):
  folder = _npz_dir(tmp_path, dict(image=_images(16).astype(np.float32) / 255,
                                   label=np.arange(16) % 2))
  workdir = tmp_path / "run"
  line = _cli("--config=configs/simclr.py:digits", "--config.data.source=npz",
              f"--config.data.data_dir={folder}", f"--workdir={workdir}")
  assert "'image' has dtype float32, expected uint8" in line
  assert "np.round(images * 255).astype(np.uint8)" in line
  assert not workdir.exists()


# ----------------------------------------------------------------------------
# 8. A workdir holding another run
# ----------------------------------------------------------------------------


def test_workdir_of_another_method(tmp_path):
  workdir = tmp_path / "run"
  byol = load_config("byol", "digits")
  loop.check_workdir(byol, str(workdir))  # what a byol run leaves first
  before = (workdir / "config.json").read_text()
  with pytest.raises(loop.ConfigError, match=(
      rf"^workdir {workdir} holds a run with method='byol' \(this run: "
      r"'simclr'\); use another --workdir for this run \(or that run's "
      r"settings to resume it\)\.$")):
    loop.train_and_evaluate(tiny_simclr_config(), str(workdir))
  assert (workdir / "config.json").read_text() == before
  assert not (workdir / "eval.json").exists()
  assert not (workdir / "metrics.jsonl").exists()


def test_workdir_of_another_dataset_names_the_field(tmp_path):
  config = tiny_simclr_config()
  loop.check_workdir(config, str(tmp_path))
  other = tiny_simclr_config()
  other.data.source = "npz"
  other.data.data_dir = "/data/elsewhere"
  with pytest.raises(loop.ConfigError, match=(
      r"holds a run with data\.data_dir='' \(this run: '/data/elsewhere'\), "
      r"data\.source='digits' \(this run: 'npz'\); use another --workdir")):
    loop.check_workdir(other, str(tmp_path), write=False)


def test_workdir_of_an_older_version_still_resumes(tmp_path):
  """A run recorded before config.data gained image_size / on_corrupt."""
  config = tiny_simclr_config()
  loop.check_workdir(config, str(tmp_path))
  record = json.loads((tmp_path / "config.json").read_text())
  del record["data"]["image_size"], record["data"]["on_corrupt"]
  (tmp_path / "config.json").write_text(json.dumps(record))
  assert loop.check_workdir(config, str(tmp_path), write=False) is not None
  config.data.on_corrupt = "skip"
  with pytest.raises(loop.ConfigError, match=r"data\.on_corrupt='error'"):
    loop.check_workdir(config, str(tmp_path), write=False)
  (tmp_path / "config.json").write_text('{"method": "sim')  # cut short
  with pytest.raises(loop.ConfigError, match="config.json that cannot be read"):
    loop.check_workdir(config, str(tmp_path), write=False)
