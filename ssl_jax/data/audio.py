"""The Free Spoken Digit Dataset (FSDD): real recordings of spoken digits.

``../shared/datasets/fsdd/fsdd.npz`` (see its README: 6 speakers x 10
digits x 50 repetitions, 8 kHz mono int16, zero-padded or truncated to 8000
samples, CC BY-SA 4.0). :func:`load_fsdd` gives a split as float waveforms
in [-1, 1) with their digit, speaker and true length:

* ``split='train'`` / ``'test'`` with no ``test_speakers``: the dataset's
  own split, repetitions 0-4 of every (speaker, digit) for test (300) and
  5-49 for train (2,700); the same speakers in both.
* ``test_speakers=('theo', ...)``: a speaker-disjoint split, every
  recording of those speakers for test and of the others for train (the
  held-out-speaker evaluation of the audio-visual methods).
"""

import dataclasses
import os

import numpy as np

DEFAULT_DIR = "../shared/datasets/fsdd"
SAMPLE_RATE = 8000


@dataclasses.dataclass(frozen=True)
class SpokenDigits:
  """One split of FSDD: ``audio`` float32 ``(N, 8000)`` in [-1, 1),
  ``length`` int32 ``(N,)`` (true samples, at most 8000 kept), ``label``
  int32 digit, ``speaker`` int32 index into ``speakers``."""

  audio: np.ndarray
  length: np.ndarray
  label: np.ndarray
  speaker: np.ndarray
  speakers: tuple
  sample_rate: int = SAMPLE_RATE

  def __len__(self):
    return len(self.label)


def load_fsdd(split="train", data_dir=DEFAULT_DIR, test_speakers=()):
  """A split of FSDD from ``data_dir/fsdd.npz``; see the module docstring."""
  if split not in ("train", "test"):
    raise ValueError(f"load_fsdd: split must be 'train' or 'test', got "
                     f"{split!r}.")
  path = os.path.join(data_dir, "fsdd.npz")
  if not os.path.exists(path):
    raise FileNotFoundError(
        f"load_fsdd: no {path}. The spoken digits live in "
        f"{DEFAULT_DIR}/fsdd.npz (see its README); pass data_dir= if they are "
        "elsewhere.")
  with np.load(path) as archive:
    arrays = {k: archive[k] for k in ("audio", "length", "label", "speaker",
                                      "speakers", "index", "sample_rate")}
  speakers = tuple(str(s) for s in arrays["speakers"])
  unknown = sorted(set(test_speakers) - set(speakers))
  if unknown:
    raise ValueError(f"load_fsdd: unknown test_speakers {unknown}; the "
                     f"speakers are {speakers}.")
  if test_speakers:
    held_out = np.isin(arrays["speaker"],
                       [speakers.index(s) for s in test_speakers])
    if held_out.all():
      raise ValueError("load_fsdd: test_speakers holds every speaker, which "
                       "leaves no training data.")
    is_test = held_out
  else:
    is_test = arrays["index"] <= 4
  rows = is_test if split == "test" else ~is_test
  return SpokenDigits(
      audio=arrays["audio"][rows].astype(np.float32) / 32768.0,
      length=np.minimum(arrays["length"][rows], arrays["audio"].shape[1]
                        ).astype(np.int32),
      label=arrays["label"][rows].astype(np.int32),
      speaker=arrays["speaker"][rows].astype(np.int32),
      speakers=speakers,
      sample_rate=int(arrays["sample_rate"]))
