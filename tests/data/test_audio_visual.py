"""The digit-image / spoken-digit pairs: every pair shows and says one digit,
the held-out speakers and the test images never reach training, the
pairing is balanced and seeded, batches carry the recordings, the
evaluation pairs are balanced, and bad settings say what to change."""

import ml_collections
import numpy as np
import pytest

from ssl_jax import data
from ssl_jax.data import audio_visual

FSDD = "../shared/datasets/fsdd"


@pytest.fixture(scope="module")
def splits():
  return {split: audio_visual.load_audio_visual(split, {"fsdd_dir": FSDD})
          for split in ("train", "test")}


def test_pairs_share_a_class_and_test_speakers_stay_out(splits):
  train, test = splits["train"], splits["test"]
  assert (len(train), len(test)) == (2500, 500)
  theo = train.speakers.index("theo")
  assert theo not in set(train.speaker) and set(test.speaker) == {theo}
  digits = {s: data.load_digits(s) for s in ("train", "test")}
  for split, source in splits.items():
    np.testing.assert_array_equal(source.labels, source.audio_label)
    # Each record's image is the digits split's image at image_index.
    np.testing.assert_array_equal(
        source.images, digits[split].images[source.image_index])
    np.testing.assert_array_equal(
        source.labels, digits[split].labels[source.image_index])
    assert source.image_shape == (8, 8, 1) and source.num_classes == 10
    assert source.audio.shape == (len(source), 8000)
    assert source.audio.dtype == np.float32
    # Within a class every image is used equally often, to one.
    for c in range(10):
      counts = np.bincount(source.image_index[source.labels == c])
      used = counts[np.flatnonzero(digits[split].labels == c)]
      assert used.max() - used.min() <= 1


def test_records_and_batches_carry_the_recording(splits):
  train = splits["train"]
  record = train[7]
  assert record["label"] == record["audio_label"]
  np.testing.assert_array_equal(record["audio"], train.audio[7])
  batch = data.read_records(train, np.array([7, 3, 2000]))
  assert set(batch) == {"image", "label", "audio", "audio_label",
                        "audio_length", "speaker", "index"}
  assert batch["audio"].shape == (3, 8000)
  np.testing.assert_array_equal(batch["image"][0], record["image"])
  np.testing.assert_array_equal(batch["index"], [7, 3, 2000])
  # The record-by-record path of the pipeline stacks the same batch.
  stacked = data.read_records(
      type("Records", (), {"__getitem__": lambda _, i: train[i]})(),
      np.array([7, 3, 2000]))
  for key in batch:
    np.testing.assert_array_equal(stacked[key], batch[key])


def test_pairing_is_seeded_and_settings_come_from_the_config(splits):
  config = ml_collections.ConfigDict({
      "source": "audio_visual",
      "audio_visual": {"fsdd_dir": FSDD, "test_speakers": "theo,nicolas",
                       "num_samples": 4000, "seed": 1}})
  other = data.get_source(config, "test")
  assert len(other) == 1000 and other.audio.shape == (1000, 4000)
  assert other.audio_length.max() <= 4000
  same = audio_visual.pair_images(
      data.load_digits("train").labels, splits["train"].audio_label, 0,
      "train")
  np.testing.assert_array_equal(same, splits["train"].image_index)
  reseeded = audio_visual.pair_images(
      data.load_digits("train").labels, splits["train"].audio_label, 1,
      "train")
  assert np.mean(reseeded != same) > 0.9


def test_evaluation_pairs_are_balanced(splits):
  test = splits["test"]
  images, recordings, target = audio_visual.correspondence_pairs(
      test.labels, test.audio_label, seed=0)
  assert len(target) == 1000 and target.sum() == 500
  same = test.labels[images] == test.audio_label[recordings]
  np.testing.assert_array_equal(same, target == 1)
  again = audio_visual.correspondence_pairs(test.labels, test.audio_label, 0)
  np.testing.assert_array_equal(again[1], recordings)


@pytest.mark.parametrize("settings, error, match", [
    ({"speakers": "theo"}, ValueError, "unknown field"),
    ({"test_speakers": ""}, ValueError, "test_speakers is empty"),
    ({"test_speakers": "alice"}, ValueError, "unknown test_speakers"),
    ({"num_samples": 9000}, ValueError, "num_samples"),
    ({"fsdd_dir": "/nonexistent"}, FileNotFoundError, "fsdd_dir"),
])
def test_bad_settings_say_what_to_change(settings, error, match):
  with pytest.raises(error, match=match):
    audio_visual.load_audio_visual("train", {"fsdd_dir": FSDD, **settings})
  with pytest.raises(ValueError, match="split"):
    audio_visual.load_audio_visual("validation")
