"""Rotation prediction: every view at its four labelled rotations, and
steps that learn the rotations of the digits. (8 devices == 1 for the
context methods' shared step: test_jigsaw.py.)"""

import jax
import numpy as np

from ssl_jax import augment
from ssl_jax import methods

from tests.conftest import load_config
from tests.methods.common import digits_batch, run_steps

BATCH = 16


def tiny_config():
  config = load_config("rotation", "digits")
  config.model.width_multiplier = 0.125
  config.rotation.head_hidden_dim = 16
  config.train.batch_size = BATCH
  config.optim.warmup_steps = 1
  return config


def test_parts_are_the_view_at_each_labelled_rotation():
  method = methods.get_method(tiny_config(), num_classes=10, total_steps=10)
  images, _ = digits_batch(BATCH)
  keys = jax.random.split(jax.random.PRNGKey(3), BATCH)
  parts, targets = jax.jit(method.pretext_batch)(keys, images)
  views = augment.batch_views(keys, images, method.view_recipes[0])
  assert parts.shape == (BATCH, 4) + views.shape[1:]
  np.testing.assert_array_equal(targets, np.tile(np.arange(4), (BATCH, 1)))
  for k in range(4):
    # Undo a counter-clockwise rotation by k quarter turns.
    undone = np.rot90(np.asarray(parts[:, k]), -k, axes=(1, 2))
    np.testing.assert_allclose(undone, views, atol=1e-6)
  # The four rotations of a digit differ (so the labels carry information).
  assert np.abs(np.asarray(parts[:, 1]) - np.asarray(parts[:, 0])).max() > 0.5


def test_steps_learn_the_rotations():
  config = tiny_config()
  config.optim.base_lr = 0.05
  images, labels = digits_batch(32)
  config.train.batch_size = 32
  _, _, history = run_steps(config, jax.devices()[:1], images, labels,
                            num_steps=25, total_steps=25)
  first = np.mean([h["pretext_loss"] for h in history[:3]])
  last = np.mean([h["pretext_loss"] for h in history[-3:]])
  assert last < first - 0.3, (first, last)
  assert np.mean([h["pretext_acc"] for h in history[-3:]]) > 0.5
  assert "probe_acc" in history[-1]
