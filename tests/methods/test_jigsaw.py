"""Jigsaw: 8 devices == 1 (the step every context method shares), the tiles come shuffled by the labelled
permutation of the set the config names, and evaluation reads the 9 tile
features of the centred grid."""

import jax
import numpy as np
import optax
import pytest

from ssl_jax import augment
from ssl_jax import methods
from ssl_jax.methods import context

from tests.conftest import load_config
from tests.methods.common import assert_eight_devices_match_one
from tests.methods.common import tinted_digits_batch

BATCH = 16
SIZE = 15  # 5-px cells


@pytest.fixture(autouse=True)
def permutation_cache(tmp_path, monkeypatch):
  monkeypatch.setenv("SSL_JAX_CACHE_DIR", str(tmp_path))


def tiny_config(tile_size=4, **settings):
  config = load_config("jigsaw", "cifar10")
  config.model.depth = 10
  config.model.width_multiplier = 0.125
  config.augment.crop_size = SIZE
  config.jigsaw.update(tile_size=tile_size, num_permutations=12,
                       head_hidden_dim=16, **settings)
  config.train.batch_size = BATCH
  config.optim.warmup_steps = 1
  return config


def batch():
  """RGB images (tinted digits, enlarged 2x) and labels."""
  images, labels = tinted_digits_batch(BATCH)
  return images.repeat(2, axis=1).repeat(2, axis=2), labels


def test_eight_devices_match_one():
  # The BatchNorm variances of 9 x 16 standardised tiles agree to 1.1e-4.
  assert_eight_devices_match_one(tiny_config(), num_steps=2, batch=batch(),
                                 rtol=3e-4)


def test_tiles_are_shuffled_by_the_labelled_permutation():
  # Tiles as large as their cells leave no room for jitter, so the
  # unshuffled tiles are exactly the centred grid.
  method = methods.get_method(tiny_config(tile_size=5), 10, 10)
  images, _ = batch()
  keys = jax.random.split(jax.random.PRNGKey(1), BATCH)
  parts, targets = jax.jit(method.pretext_batch)(keys, images)
  assert parts.shape == (BATCH, 9, 5, 5, 3) and targets.shape == (BATCH, 1)
  views = augment.batch_views(context.split_keys(keys, 2)[:, 0], images,
                              method.view_recipes[0])
  grid = np.asarray(context.centred_tiles(views, 5, normalize_tiles=True))
  perms = method.permutations[np.asarray(targets[:, 0])]
  # Slot i holds the tile of cell perm[i]: inverting gives the grid back.
  unshuffled = np.stack([p[np.argsort(q)] for p, q in zip(np.asarray(parts),
                                                          perms)])
  np.testing.assert_allclose(unshuffled, grid, atol=1e-5)
  # Each tile is standardised on its own.
  np.testing.assert_allclose(grid.mean(axis=(2, 3)), 0.0, atol=1e-4)


def test_permutation_set_follows_the_config():
  config = tiny_config(selection="min")
  method = methods.get_method(config, 10, 10)
  expected = augment.max_hamming_permutations(12, selection="min")
  np.testing.assert_array_equal(method.permutations, expected)
  assert method.network.classifier.out_dim == 12
  assert (augment.hamming_stats(method.permutations)["mean"] <
          augment.hamming_stats(
              methods.get_method(tiny_config(), 10, 10).permutations)["mean"])


def test_evaluation_concatenates_the_centred_tiles():
  config = tiny_config()
  method = methods.get_method(config, 10, 10)
  images, _ = batch()
  state = method.init_state(jax.random.PRNGKey(0), images.shape[1:],
                            optax.sgd(0.1))
  variables = {"params": state.params, "batch_stats": state.batch_stats}
  features = np.asarray(jax.jit(method.encode)(variables, images))
  views = augment.batch_eval_views(images, method.view_recipes[0])
  tiles = context.centred_tiles(views, 4, normalize_tiles=True)
  one_tile = method.network.apply(variables, tiles[:, 4], method="encode")
  dim = one_tile.shape[-1]
  assert features.shape == (BATCH, 9 * dim)
  np.testing.assert_allclose(features[:, 4 * dim:5 * dim], one_tile,
                             rtol=1e-4, atol=1e-5)
