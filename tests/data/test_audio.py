"""FSDD splits: the dataset's own split (repetitions 0-4 for test), the
speaker-disjoint split, waveform scaling, and clear errors."""

import numpy as np
import pytest

from ssl_jax.data import audio

FSDD = audio.DEFAULT_DIR


@pytest.fixture(scope="module")
def official():
  return audio.load_fsdd("train", FSDD), audio.load_fsdd("test", FSDD)


def test_official_split_counts_and_balance(official):
  train, test = official
  assert (len(train), len(test)) == (2700, 300)
  assert train.audio.shape == (2700, 8000) and train.audio.dtype == np.float32
  assert train.sample_rate == 8000 and len(train.speakers) == 6
  # 5 repetitions of each digit by each speaker in test, 45 in train.
  counts = np.zeros((6, 10), int)
  np.add.at(counts, (test.speaker, test.label), 1)
  assert np.all(counts == 5)
  assert -1.0 <= train.audio.min() and train.audio.max() < 1.0
  # Every recording has sound, and nothing after its true length.
  assert np.all(np.abs(train.audio).max(axis=1) > 0.01)
  tails = [np.abs(a[n:]).max(initial=0.0) for a, n in
           zip(train.audio, train.length)]
  assert max(tails) == 0.0


def test_held_out_speakers_are_disjoint():
  train = audio.load_fsdd("train", FSDD, test_speakers=("theo",))
  test = audio.load_fsdd("test", FSDD, test_speakers=("theo",))
  theo = train.speakers.index("theo")
  assert (len(train), len(test)) == (2500, 500)
  assert set(test.speaker) == {theo} and theo not in set(train.speaker)


def test_bad_arguments_say_what_to_do(tmp_path):
  with pytest.raises(ValueError, match="unknown test_speakers"):
    audio.load_fsdd("test", FSDD, test_speakers=("alice",))
  with pytest.raises(FileNotFoundError, match="data_dir"):
    audio.load_fsdd("train", str(tmp_path))
  with pytest.raises(ValueError, match="'train' or 'test'"):
    audio.load_fsdd("validation", FSDD)
