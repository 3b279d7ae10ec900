"""Temporal order: verification triples and prediction orders are labelled
as drawn (undoing the order gives the frames back in time order), both
tasks use every class, and the batch takes those frames of each video.
(8 devices == 1 for the context methods' shared step: test_jigsaw.py and
test_rotation.py.)"""

import jax
import numpy as np
import pytest

from ssl_jax import methods
from ssl_jax.methods import temporal_order

from tests.methods.video_common import FRAMES, SIZE, tiny_video_config

DRAWS = 2000


def draws(fn, window):
  keys = jax.random.split(jax.random.PRNGKey(0), DRAWS)
  frames, labels = jax.jit(jax.vmap(lambda k: fn(k, window)))(keys)
  return np.asarray(frames), np.asarray(labels)


def test_verification_triples_are_labelled_by_order():
  frames, labels = draws(temporal_order.verification_tuple, 7)
  assert frames.shape == (DRAWS, 3) and frames.min() >= 0 and frames.max() < 7
  assert 0.45 < labels.mean() < 0.55
  ordered = ((frames[:, 0] < frames[:, 1]) & (frames[:, 1] < frames[:, 2]) |
             (frames[:, 0] > frames[:, 1]) & (frames[:, 1] > frames[:, 2]))
  np.testing.assert_array_equal(ordered, labels == 1)
  # Both directions, and negatives with the odd frame before and after.
  assert np.any(frames[labels == 1, 0] > frames[labels == 1, 2])
  outer = np.sort(frames[:, [0, 2]], axis=1)
  negatives = labels == 0
  assert np.any(frames[negatives, 1] < outer[negatives, 0])
  assert np.any(frames[negatives, 1] > outer[negatives, 1])


def test_prediction_orders_invert_to_time_order():
  frames, labels = draws(temporal_order.prediction_tuple, 6)
  assert set(np.unique(labels)) == set(range(12))
  assert len(temporal_order.ORDER_CLASSES) == 12
  for shown, label in zip(frames, labels):
    order = np.argsort(np.argsort(shown))  # rank of each shown frame
    canonical = order if order[0] < order[-1] else order[::-1]
    np.testing.assert_array_equal(canonical,
                                  temporal_order.ORDER_CLASSES[label])


@pytest.mark.parametrize("task", ["verification", "prediction"])
def test_batch_takes_the_drawn_frames_of_each_video(task):
  config = tiny_video_config("temporal_order", task)
  config.temporal_order.window = FRAMES
  method = methods.get_method(config, 10, 10)
  # Frame t of video b is filled with 10 t + b: the pixels name the frame.
  batch = 4
  values = 10 * np.arange(FRAMES)[None, :] + np.arange(batch)[:, None]
  videos = np.broadcast_to(values[:, :, None, None, None],
                           (batch, FRAMES, SIZE, SIZE, 3)).astype(np.uint8)
  keys = jax.random.split(jax.random.PRNGKey(5), batch)
  parts, targets = jax.jit(method.pretext_batch)(keys, videos)
  recipe = method.view_recipes[0]
  pixels = (np.asarray(parts)[:, :, 0, 0, 0] * recipe.std[0]
            + recipe.mean[0]) * 255.0
  shown = np.rint(pixels).astype(int)
  np.testing.assert_array_equal(shown % 10, np.arange(batch)[:, None]
                                + 0 * shown)
  draw = (temporal_order.verification_tuple if task == "verification"
          else temporal_order.prediction_tuple)
  keys2 = jax.vmap(lambda k: jax.random.split(k, 2))(keys)[:, 1]
  expected, labels = jax.vmap(lambda k: draw(k, FRAMES))(keys2)
  np.testing.assert_array_equal(shown // 10, expected)
  np.testing.assert_array_equal(targets[:, 0], labels)


def test_window_and_task_are_checked():
  config = tiny_video_config("temporal_order", "verification")
  config.temporal_order.window = 4
  with pytest.raises(ValueError, match="window=4 is too short"):
    methods.get_method(config, 10, 10)
  config.temporal_order.update(window=6, task="odd_one_out")
  with pytest.raises(ValueError, match="not a task"):
    methods.get_method(config, 10, 10)
