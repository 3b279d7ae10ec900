"""Temporal order: verification (Shuffle and Learn) and prediction (Order
Prediction Network).

Misra, Zitnick, Hebert, "Shuffle and Learn: Unsupervised Learning using
Temporal Order Verification" (ECCV 2016), https://arxiv.org/abs/1603.08561;
Lee, Huang, Singh, Yang, "Unsupervised Representation Learning by Sorting
Sequences" (ICCV 2017), https://arxiv.org/abs/1708.01246

- Networks: the frame encoder f (the ResNet of ``config.model``) applied to
  each frame of a tuple with shared weights; classifier c (an MLP,
  ``temporal_order.head_layers``) on the frames' features concatenated.
- Views: every training video (uint8 ``(T, H, W, C)``, e.g. the moving
  digits of ``ssl_jax.data.video``) gives a window of ``window`` frames at
  a uniform start, and from it (``temporal_order.task``):

  * ``'verification'`` (Shuffle and Learn): five distinct frames
    a < b < c < d < e of the window; with probability 1/2 the ordered
    triple (b, c, d) (label 1), else (b, a, d) or (b, e, d) (label 0, the
    middle frame from outside the interval, as the paper's negatives); the
    triple is presented backwards with probability 1/2, both directions
    counting as ordered (the paper's positives include (d, c, b)). 2
    classes.
  * ``'prediction'`` (OPN): four distinct frames in order, shown in one of
    the 4! orders; an order and its reverse are one class (a clip played
    backwards is as plausible), so 12 classes: the permutations whose
    first index is below its last (``ORDER_CLASSES``), each presented
    forwards or backwards with probability 1/2.

  The frames go through the test-time view of ``config.augment`` (resize
  and normalise; ``video_base``).
- Loss: cross-entropy of the label (``losses.classification``).
- State updates: the optimizer step and BatchNorm statistics.

The frame encoder is evaluated on still images (``config.eval.data``) like
every video method's.
"""

import itertools

import jax
import jax.numpy as jnp
import numpy as np

from ssl_jax.methods import base
from ssl_jax.methods import context
from ssl_jax.methods import video_base

TASKS = ("verification", "prediction")
VERIFICATION_FRAMES = 5  # a < b < c < d < e, three of them shown
PREDICTION_FRAMES = 4
# One representative per {order, reversed order}: the permutations of 4
# frames whose first index is below its last, lexicographic.
ORDER_CLASSES = np.asarray(
    [p for p in itertools.permutations(range(PREDICTION_FRAMES))
     if p[0] < p[-1]], np.int32)


def _sorted_frames(key, window, count):
  """``count`` distinct frame numbers in ``[0, window)``, increasing."""
  return jnp.sort(jax.random.choice(key, window, (count,), replace=False))


def verification_tuple(key, window):
  """Shuffle and Learn's triple: frame numbers ``(3,)`` within ``window``
  and the label (1: in order, forwards or backwards; 0: the middle frame
  lies outside the outer two)."""
  frame_key, kind_key, reverse_key = jax.random.split(key, 3)
  a, b, c, d, e = _sorted_frames(frame_key, window, VERIFICATION_FRAMES)
  kind = jax.random.randint(kind_key, (), 0, 4)  # 0, 1 ordered; 2, 3 not
  middle = jnp.select([kind < 2, kind == 2], [c, a], e)
  frames = jnp.stack([b, middle, d])
  frames = jnp.where(jax.random.bernoulli(reverse_key), frames[::-1], frames)
  return frames, (kind < 2).astype(jnp.int32)


def prediction_tuple(key, window):
  """OPN's sequence: four frame numbers ``(4,)`` within ``window`` in a
  shuffled order, and the order's class in ``ORDER_CLASSES`` (the order
  or its reverse)."""
  frame_key, class_key, reverse_key = jax.random.split(key, 3)
  frames = _sorted_frames(frame_key, window, PREDICTION_FRAMES)
  label = jax.random.randint(class_key, (), 0, len(ORDER_CLASSES))
  order = jnp.asarray(ORDER_CLASSES)[label]
  order = jnp.where(jax.random.bernoulli(reverse_key), order[::-1], order)
  return frames[order], label


class TemporalOrder(context.ContextMethod, video_base.VideoMethod):
  """Temporal order verification or prediction; see the module docstring."""

  name = "temporal_order"

  def __init__(self, config, num_classes, total_steps, axis_name=base.BATCH_AXIS):
    section = config.temporal_order
    if section.task not in TASKS:
      raise ValueError(
          f"config.temporal_order.task={section.task!r} is not a task; use "
          f"one of {TASKS}.")
    self.task = section.task
    self.window = section.window
    frames_needed = (VERIFICATION_FRAMES if self.task == "verification"
                     else PREDICTION_FRAMES)
    if self.window < frames_needed:
      raise ValueError(
          f"config.temporal_order.window={self.window} is too short: the "
          f"{self.task} task draws {frames_needed} distinct frames from it.")
    super().__init__(config, num_classes, total_steps, axis_name)

  def num_pretext_classes(self):
    return 2 if self.task == "verification" else len(ORDER_CLASSES)

  def min_frames(self):
    return self.window

  def init_inputs(self, image_shape):
    self.check_video_shape(image_shape)
    return super().init_inputs(image_shape)

  def pretext_batch(self, keys, images):
    keys = context.split_keys(keys, 2)
    starts = video_base.clip_starts(keys[:, 0], images.shape[1], self.window)
    draw = verification_tuple if self.task == "verification" else prediction_tuple
    offsets, labels = jax.vmap(lambda k: draw(k, self.window))(keys[:, 1])
    frames = video_base.take_frames(images, starts[:, None] + offsets)
    return self.frames(frames), labels[:, None]
