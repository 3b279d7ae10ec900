"""Relative position: the neighbour's label is uniform over the 8 positions
and names where the neighbour patch lies relative to the centre patch;
evaluation reads the 9 patches of the centred grid."""

import jax
import numpy as np

from ssl_jax import augment
from ssl_jax import methods
from ssl_jax.augment.pretext import NEIGHBOUR_OFFSETS
from ssl_jax.methods import context

from tests.conftest import load_config

SIZE = 16


def tiny_config(**settings):
  config = load_config("relative_position", "cifar10")
  config.model.depth = 10
  config.model.width_multiplier = 0.125
  config.augment.crop_size = SIZE
  config.relative_position.update(patch_size=4, gap=1, jitter=1,
                                  head_hidden_dim=16)
  config.relative_position.update(settings)
  return config


def noise_images(count, seed=0):
  return np.random.default_rng(seed).integers(
      0, 256, (count, SIZE, SIZE, 3), dtype=np.uint8)


def test_labels_cover_the_8_positions_uniformly():
  method = methods.get_method(tiny_config(), 10, 10)
  count = 4000
  keys = jax.random.split(jax.random.PRNGKey(0), count)
  images = np.zeros((count, SIZE, SIZE, 3), np.uint8)
  _, targets = jax.jit(method.pretext_batch)(keys, images)
  counts = np.bincount(np.asarray(targets[:, 0]), minlength=8)
  assert counts.shape == (8,)
  # Chi-square with 7 degrees of freedom: 24.3 is its 0.999 quantile.
  expected = count / 8
  assert np.sum((counts - expected) ** 2 / expected) < 24.3, counts


def locate(patch, view):
  """Top-left corners where ``patch`` occurs exactly in ``view``."""
  p = patch.shape[0]
  return [(t, l) for t in range(view.shape[0] - p + 1)
          for l in range(view.shape[1] - p + 1)
          if np.array_equal(view[t:t + p, l:l + p], patch)]


def test_neighbour_lies_where_its_label_says():
  method = methods.get_method(
      tiny_config(jitter=0, drop_colour=False), 10, 10)
  images = noise_images(32)
  keys = jax.random.split(jax.random.PRNGKey(1), len(images))
  parts, targets = jax.jit(method.pretext_batch)(keys, images)
  views = np.asarray(augment.batch_views(context.split_keys(keys, 2)[:, 0],
                                         images, method.view_recipes[0]))
  step = 4 + 1
  for view, (centre, neighbour), label in zip(
      views, np.asarray(parts), np.asarray(targets[:, 0])):
    (c_top, c_left), = locate(centre, view)
    (n_top, n_left), = locate(neighbour, view)
    assert (n_top - c_top, n_left - c_left) == tuple(
        step * np.asarray(NEIGHBOUR_OFFSETS[label])), label


def test_colour_dropping_keeps_one_channel_per_patch():
  method = methods.get_method(tiny_config(jitter=0), 10, 10)
  images = noise_images(8)
  keys = jax.random.split(jax.random.PRNGKey(2), len(images))
  parts, _ = jax.jit(method.pretext_batch)(keys, images)
  # The dropped channels are low-variance noise around the kept one's mean.
  stds = np.asarray(parts).std(axis=(2, 3))  # (B, 2, C)
  ordered = np.sort(stds, axis=-1)
  assert np.all(ordered[..., 1] < 0.05 * ordered[..., 2])


def test_evaluation_reads_the_centred_grid_of_patches():
  method = methods.get_method(tiny_config(), 10, 10)
  variables = jax.jit(method.network.init, static_argnames="train")(
      jax.random.PRNGKey(0), method.init_inputs((SIZE, SIZE, 3)), train=False)
  features = jax.jit(method.encode)(variables, noise_images(4))
  # 9 patches x the 64 features of ResNet-10 at width 1/8.
  assert features.shape == (4, 9 * 64)
