"""Moving digits: seeded video sequences of real handwritten digits.

No video can be downloaded here, so :class:`MovingDigits` draws sequences in
the spirit of Moving MNIST (Srivastava et al., 2015): real digits (the
scikit-learn digits of :func:`ssl_jax.data.sources.load_digits`, padded by a
black pixel and enlarged bilinearly to ``digit_size``) move in straight lines
across a black frame and bounce off its edges. Unlike Moving MNIST every
digit has a colour, so the sequences serve video colorization as well as
prediction and the temporal tasks.

Sequence ``i`` of a split is a pure function of ``(seed, split, i)``: a
``numpy.random.default_rng`` seeded with those three draws, in this order,

* ``num_digits`` digit images from the split (train digits for 'train',
  test digits for 'test', so test sequences show unseen handwriting);
* a colour per digit: hues evenly spaced around the colour wheel from a
  uniform offset (so the digits of a sequence differ in colour), full
  saturation and value;
* per digit a start position (its top-left corner) uniform over the frame
  and a velocity of ``speed`` pixels per frame in a uniform direction.

A digit at ``p`` with velocity ``v`` moves to ``p + v``; a coordinate that
leaves ``[0, frame_size - digit_size]`` is reflected back into it and that
component of ``v`` changes sign (an elastic bounce). Frames draw the digits
at their rounded positions, which are the recorded ones. A digit's pixels are
its ink intensity times its colour; where digits overlap each channel takes
the maximum (Moving MNIST's rule), and the instance mask gives the pixel to
the digit with the most ink.

Records: ``{"image": uint8 (T, H, W, 3), "label": class of digit 0}``, so
the training pipeline batches them like images. :meth:`MovingDigits.sequence`
gives everything the generator knows: ``positions`` (T, num_digits, 2) as
(row, column) of each digit's top-left corner, ``colors`` (num_digits, 3) in
[0, 1], ``digit_labels`` (num_digits,) and ``masks`` (T, H, W) uint8, 0 for
background and ``k + 1`` where digit ``k`` has ink (at least ``INK``).

With ``num_frames=1`` the records are still images ``(H, W, 3)``: with
``num_digits=1`` these are frames of single digits labelled with their class,
the data set on which a frame encoder trained on the sequences is evaluated.
"""

from __future__ import annotations

import colorsys
import functools
from typing import Any, Sequence

import numpy as np
from scipy import ndimage

from ssl_jax.data import sources

__all__ = ["INK", "MovingDigits", "load_moving_digits"]

_SPLIT_IDS = {"train": 0, "test": 1}
INK = 0.5  # a pixel belongs to a digit's mask where its ink is at least this


@functools.lru_cache(maxsize=4)
def _glyphs(split: str, digit_size: int) -> tuple[np.ndarray, np.ndarray]:
  """The split's digits as ink in [0, 1], ``(N, size, size)``, and labels."""
  digits = sources.load_digits(split)
  ink = digits.images[..., 0].astype(np.float64) / 255.0
  padded = np.pad(ink, ((0, 0), (1, 1), (1, 1)))  # 10 x 10, black border
  zoom = digit_size / padded.shape[1]
  glyphs = ndimage.zoom(padded, (1, zoom, zoom), order=1, grid_mode=True,
                        mode="grid-constant")
  glyphs = np.clip(glyphs, 0.0, 1.0).astype(np.float32)
  glyphs.setflags(write=False)
  return glyphs, digits.labels


class MovingDigits:
  """Seeded sequences of coloured digits bouncing in a frame.

  A random-access source (``len``, ``[i]``, ``read_batch``) of
  ``num_sequences`` sequences; see the module docstring for the generator.

  Args:
    split: 'train' or 'test' (whose digit images the sequences use).
    num_sequences: number of sequences in the split.
    num_frames: frames per sequence (1 gives still images).
    frame_size: side of the square frame, in pixels.
    digit_size: side of a digit, in pixels (at most ``frame_size``).
    num_digits: digits per sequence.
    speed: pixels per frame.
    seed: the generator's seed.
  """

  num_classes = 10

  def __init__(self, split: str = "train", *, num_sequences: int = 10000,
               num_frames: int = 20, frame_size: int = 32,
               digit_size: int = 16, num_digits: int = 2, speed: float = 2.0,
               seed: int = 0):
    if split not in _SPLIT_IDS:
      raise ValueError(
          f"MovingDigits: unknown split {split!r}; use 'train' or 'test'.")
    for name, value in (("num_sequences", num_sequences),
                        ("num_frames", num_frames),
                        ("frame_size", frame_size), ("digit_size", digit_size),
                        ("num_digits", num_digits)):
      if isinstance(value, bool) or not isinstance(value, (int, np.integer)) \
          or value < 1:
        raise ValueError(
            f"MovingDigits: {name} must be a positive int, got {value!r}.")
    if digit_size > frame_size:
      raise ValueError(
          f"MovingDigits: digit_size={digit_size} is larger than "
          f"frame_size={frame_size}; a digit must fit in the frame.")
    if not np.isfinite(speed) or speed < 0:
      raise ValueError(f"MovingDigits: speed must be >= 0, got {speed!r}.")
    self.split = split
    self.num_sequences = int(num_sequences)
    self.num_frames = int(num_frames)
    self.frame_size = int(frame_size)
    self.digit_size = int(digit_size)
    self.num_digits = int(num_digits)
    self.speed = float(speed)
    self.seed = int(seed)
    frame = (self.frame_size, self.frame_size, 3)
    self.image_shape = frame if self.num_frames == 1 else (
        (self.num_frames,) + frame)
    self.name = f"moving_digits/{split}"

  def __len__(self) -> int:
    return self.num_sequences

  def _draws(self, index: int):
    """Digit indices, colours, start positions and velocities of one sequence."""
    glyphs, _ = _glyphs(self.split, self.digit_size)
    rng = np.random.default_rng((self.seed, _SPLIT_IDS[self.split], index))
    which = rng.integers(0, len(glyphs), size=self.num_digits)
    offset = rng.uniform()
    hues = (offset + np.arange(self.num_digits) / self.num_digits) % 1.0
    colors = np.array([colorsys.hsv_to_rgb(h, 1.0, 1.0) for h in hues],
                      np.float32)
    room = self.frame_size - self.digit_size
    start = rng.uniform(0.0, room, size=(self.num_digits, 2))
    angle = rng.uniform(0.0, 2.0 * np.pi, size=self.num_digits)
    velocity = self.speed * np.stack([np.sin(angle), np.cos(angle)], axis=-1)
    return which, colors, start, velocity

  def trajectories(self, start: np.ndarray, velocity: np.ndarray) -> np.ndarray:
    """Rounded top-left corners ``(T, num_digits, 2)`` of bouncing digits."""
    room = float(self.frame_size - self.digit_size)
    position = start.astype(np.float64).copy()
    velocity = velocity.astype(np.float64).copy()
    if room == 0.0:  # the digit fills the frame: it cannot move
      velocity[:] = 0.0
    out = np.empty((self.num_frames,) + position.shape, np.int32)
    for t in range(self.num_frames):
      out[t] = np.round(position)
      position += velocity
      # Reflect at the walls (repeatedly, for a speed above the room).
      while True:
        low, high = position < 0.0, position > room
        if not (low.any() or high.any()):
          break
        position = np.where(low, -position, np.where(high, 2 * room - position,
                                                     position))
        velocity = np.where(low | high, -velocity, velocity)
    return out

  def sequence(self, index: int) -> dict[str, Any]:
    """Sequence ``index`` with everything its generator knows."""
    if not 0 <= index < self.num_sequences:
      raise IndexError(
          f"{self.name}: index {index} out of range [0, {self.num_sequences}).")
    glyphs, labels = _glyphs(self.split, self.digit_size)
    which, colors, start, velocity = self._draws(index)
    positions = self.trajectories(start, velocity)
    size, s = self.frame_size, self.digit_size
    pixels = np.zeros((self.num_frames, size, size, 3), np.float32)
    ink = np.zeros((self.num_frames, self.num_digits, size, size), np.float32)
    for t in range(self.num_frames):
      for k in range(self.num_digits):
        r, c = positions[t, k]
        ink[t, k, r:r + s, c:c + s] = glyphs[which[k]]
        np.maximum(pixels[t, r:r + s, c:c + s],
                   glyphs[which[k]][..., None] * colors[k],
                   out=pixels[t, r:r + s, c:c + s])
    masks = np.where(ink.max(axis=1) >= INK, ink.argmax(axis=1) + 1, 0)
    return {
        "video": np.round(pixels * 255.0).astype(np.uint8),
        "positions": positions,
        "colors": colors,
        "digit_labels": labels[which].astype(np.int32),
        "masks": masks.astype(np.uint8),
    }

  def __getitem__(self, index: int) -> dict[str, Any]:
    seq = self.sequence(int(index))
    video = seq["video"][0] if self.num_frames == 1 else seq["video"]
    return {"image": video, "label": int(seq["digit_labels"][0])}

  def __getitems__(self, indices: Sequence[int]) -> list[dict[str, Any]]:
    return [self[i] for i in indices]

  def read_batch(self, indices: Sequence[int]) -> dict[str, np.ndarray]:
    records = self.__getitems__(indices)
    return {"image": np.stack([r["image"] for r in records]),
            "label": np.asarray([r["label"] for r in records], np.int32)}

  def __repr__(self) -> str:
    return (f"MovingDigits(split={self.split!r}, num_sequences="
            f"{self.num_sequences}, num_frames={self.num_frames}, frame_size="
            f"{self.frame_size}, digit_size={self.digit_size}, num_digits="
            f"{self.num_digits}, speed={self.speed}, seed={self.seed})")


def load_moving_digits(split: str, video_config: Any = None) -> MovingDigits:
  """A :class:`MovingDigits` split from a config section (any missing field
  takes the class default; ``num_sequences_<split>`` sets the length)."""
  fields = {} if video_config is None else dict(video_config)
  kwargs = {name: fields[name] for name in (
      "num_frames", "frame_size", "digit_size", "num_digits", "speed", "seed")
            if name in fields}
  count = fields.get(f"num_sequences_{split}")
  if count is not None:
    kwargs["num_sequences"] = count
  return MovingDigits(split, **kwargs)
