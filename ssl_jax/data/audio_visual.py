"""Audio-visual pairs: real digit images with real recordings of the spoken
digit, for audio-visual correspondence (L3-Net, Arandjelovic & Zisserman,
"Look, Listen and Learn", ICCV 2017; AVE-Net / AVOL-Net, "Objects that
Sound", ECCV 2018).

A record is one recording of the Free Spoken Digit Dataset
(``ssl_jax.data.audio``, ``../shared/datasets/fsdd``) with a digit image of
the same class from the scikit-learn digits (``sources.load_digits``, the
fixed split)::

    {"image": uint8 (8, 8, 1)    a digit image of the spoken class,
     "label": int                its digit,
     "audio": float32 (num_samples,)   the waveform in [-1, 1), 8 kHz,
     "audio_label": int          the spoken digit (== label),
     "audio_length": int         true samples of the recording (<= num_samples),
     "speaker": int}             index into ``source.speakers``

* Splits: 'train' pairs the training speakers' recordings with the digits'
  train images; 'test' pairs the held-out speakers' recordings
  (``test_speakers``) with the digits' test images. No speaker, and no
  image, is in both.
* Pairing: within each class the images are dealt out in seeded
  permutations (``RandomState([seed, split])``, fixed across NumPy
  versions), one after the other, to a seeded permutation of the
  recordings, so every image of the class is used ``floor(n_rec / n_img)``
  or one more times. The pairing is fixed; a method that wants positives to
  change over epochs re-pairs within the batch on device (the recordings of
  one class are interchangeable), and forms negatives the same way.

Settings (``config.data.audio_visual``, all optional): ``fsdd_dir``,
``test_speakers`` (comma-separated names, or a sequence), ``num_samples``
(the first samples of each recording kept, at most 8000: 1 s), ``seed``.
"""

from __future__ import annotations

import os
from typing import Any, Sequence

import numpy as np

from ssl_jax.data import audio as audio_lib
from ssl_jax.data import sources

__all__ = ["AudioVisualPairs", "DEFAULTS", "correspondence_pairs",
           "load_audio_visual", "pair_images"]

DEFAULTS = {
    "fsdd_dir": audio_lib.DEFAULT_DIR,
    "test_speakers": "theo",
    "num_samples": 8000,
    "seed": 0,
}
_SPLITS = ("train", "test")


def _speaker_tuple(test_speakers: Any) -> tuple:
  if isinstance(test_speakers, str):
    return tuple(s.strip() for s in test_speakers.split(",") if s.strip())
  return tuple(str(s) for s in test_speakers)


def pair_images(image_labels: np.ndarray, audio_labels: np.ndarray,
                seed: int, split: str) -> np.ndarray:
  """For every recording, the index of an image of the same class.

  Within each class, seeded permutations of the class's images, one after
  the other, are dealt to a seeded permutation of its recordings (every
  image used equally often, to one). Raises ValueError when a class of the
  recordings has no image.
  """
  rng = np.random.RandomState([int(seed), _SPLITS.index(split)])
  image_index = np.empty(len(audio_labels), np.int64)
  for c in np.unique(audio_labels):
    recordings = np.flatnonzero(audio_labels == c)
    images = np.flatnonzero(image_labels == c)
    if not len(images):
      raise ValueError(f"audio_visual: the digits' {split} split has no image "
                       f"of class {c} to pair with its recordings.")
    rounds = -(-len(recordings) // len(images))
    dealt = np.concatenate([rng.permutation(images) for _ in range(rounds)])
    image_index[rng.permutation(recordings)] = dealt[:len(recordings)]
  return image_index


class AudioVisualPairs:
  """One split of the digit-image / spoken-digit pairs; see the module
  docstring. A random-access source (``len``, ``[i]``, ``read_batch``)
  with ``num_classes`` (10) and ``image_shape`` ((8, 8, 1)).

  The whole split is in memory: ``images`` / ``labels`` (the paired digit
  images, one per record), ``audio`` float32 ``(N, num_samples)``,
  ``audio_label``, ``audio_length``, ``speaker`` (index into
  ``speakers``), and ``image_index`` (the record's image in the digits
  split).
  """

  def __init__(self, split: str = "train", *,
               fsdd_dir: str = DEFAULTS["fsdd_dir"],
               test_speakers: Any = DEFAULTS["test_speakers"],
               num_samples: int = DEFAULTS["num_samples"],
               seed: int = DEFAULTS["seed"]):
    if split not in _SPLITS:
      raise ValueError(f"audio_visual: unknown split {split!r}; use 'train' "
                       "(training speakers) or 'test' (held-out speakers).")
    speakers = _speaker_tuple(test_speakers)
    if not speakers:
      raise ValueError(
          "audio_visual: config.data.audio_visual.test_speakers is empty; "
          "name the held-out speakers (e.g. 'theo'), so that the test pairs "
          "are spoken by voices never heard in training.")
    if not os.path.exists(os.path.join(fsdd_dir, "fsdd.npz")):
      raise FileNotFoundError(
          f"audio_visual: no {os.path.join(fsdd_dir, 'fsdd.npz')}; set "
          "config.data.audio_visual.fsdd_dir to the folder of the Free "
          f"Spoken Digit Dataset (default {audio_lib.DEFAULT_DIR}).")
    speech = audio_lib.load_fsdd(split, fsdd_dir, speakers)
    full = speech.audio.shape[1]
    num_samples = int(num_samples)
    if not 0 < num_samples <= full:
      raise ValueError(
          f"audio_visual: config.data.audio_visual.num_samples={num_samples} "
          f"must be in [1, {full}], the samples stored per recording "
          f"({full / speech.sample_rate:g} s at {speech.sample_rate} Hz).")
    digits = sources.load_digits(split)
    self.split = split
    self.seed = int(seed)
    self.test_speakers = speakers
    self.speakers = speech.speakers
    self.sample_rate = speech.sample_rate
    self.image_index = pair_images(digits.labels, speech.label, seed, split)
    self.images = np.ascontiguousarray(digits.images[self.image_index])
    self.labels = digits.labels[self.image_index].astype(np.int32)
    self.audio = np.ascontiguousarray(speech.audio[:, :num_samples])
    self.audio_label = speech.label.astype(np.int32)
    self.audio_length = np.minimum(speech.length, num_samples).astype(np.int32)
    self.speaker = speech.speaker.astype(np.int32)
    for array in (self.images, self.labels, self.audio, self.audio_label,
                  self.audio_length, self.speaker, self.image_index):
      array.setflags(write=False)
    self.num_classes = digits.num_classes
    self.image_shape = digits.image_shape
    self.num_samples = num_samples

  def __len__(self) -> int:
    return len(self.labels)

  def read_batch(self, indices: Sequence[int]) -> dict[str, np.ndarray]:
    """The stacked records at ``indices``, one gather per array."""
    i = np.asarray(indices, np.int64)
    return {"image": self.images[i], "label": self.labels[i],
            "audio": self.audio[i], "audio_label": self.audio_label[i],
            "audio_length": self.audio_length[i], "speaker": self.speaker[i]}

  def __getitem__(self, index: int) -> dict[str, Any]:
    record = self.read_batch([int(index)])
    return {k: (v[0] if v.ndim > 1 else v[0].item()) for k, v in
            record.items()}

  def __getitems__(self, indices: Sequence[int]) -> list[dict[str, Any]]:
    return [self[i] for i in indices]

  def __repr__(self) -> str:
    return (f"AudioVisualPairs(split={self.split!r}, num_records={len(self)}, "
            f"test_speakers={self.test_speakers}, "
            f"num_samples={self.num_samples}, seed={self.seed})")


def load_audio_visual(split: str, settings: Any = None) -> AudioVisualPairs:
  """The ``split`` of the pairs from a config section (``None`` or missing
  fields take :data:`DEFAULTS`). Unknown fields are an error."""
  fields = {} if settings is None else dict(settings)
  unknown = sorted(set(fields) - set(DEFAULTS))
  if unknown:
    raise ValueError(
        f"config.data.audio_visual has unknown field(s) {unknown}; the "
        f"fields are {sorted(DEFAULTS)}.")
  return AudioVisualPairs(split, **{**DEFAULTS, **fields})


def correspondence_pairs(image_labels: np.ndarray, audio_labels: np.ndarray,
                         seed: int) -> tuple[np.ndarray, np.ndarray,
                                             np.ndarray]:
  """Balanced, seeded evaluation pairs of a split's records.

  Every record i gives a positive, its own image with its own recording
  (the same digit), and a negative, its image with a recording of another
  digit drawn uniformly (``RandomState(seed)``). Returns ``(image_rows,
  audio_rows, target)`` of length 2N, ``target`` 1 for the positives, 0
  for the negatives.
  """
  image_labels = np.asarray(image_labels)
  audio_labels = np.asarray(audio_labels)
  rng = np.random.RandomState(int(seed))
  n = len(image_labels)
  negatives = np.empty(n, np.int64)
  for i, label in enumerate(image_labels):
    others = np.flatnonzero(audio_labels != label)
    if not len(others):
      raise ValueError("correspondence_pairs: every recording shows the "
                       f"digit {label}; negatives need another digit.")
    negatives[i] = others[rng.randint(len(others))]
  rows = np.arange(n)
  return (np.concatenate([rows, rows]), np.concatenate([rows, negatives]),
          np.concatenate([np.ones(n, np.int32), np.zeros(n, np.int32)]))
