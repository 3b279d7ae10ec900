"""CPC for images: 8 devices == 1, the patch grid, the context network sees
only the rows above, and the logged loss is InfoNCE over the grid's columns."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from ssl_jax import augment
from ssl_jax import losses
from ssl_jax import methods
from ssl_jax.methods import cpc
from ssl_jax.train import step as step_lib

from tests.conftest import load_config
from tests.methods.common import assert_eight_devices_match_one, digits_batch

BATCH = 16


def tiny_config(**settings):
  config = load_config("cpc", "digits")
  config.model.width_multiplier = 0.125
  config.train.batch_size = BATCH
  config.cpc.update(context_dim=8, **settings)
  return config


def test_eight_devices_match_one():
  # Adam turns the context biases' small gradients (their rounding differs
  # between 1 and 8 devices by 1e-6 relative, as SGD shows) into steps of
  # lr: 1.2e-4 relative after 2 steps.
  assert_eight_devices_match_one(tiny_config(), num_steps=2, rtol=5e-4)


def test_patch_grid_takes_overlapping_patches():
  images = np.random.default_rng(0).normal(size=(2, 10, 12, 3)).astype(np.float32)
  grid = np.asarray(cpc.patch_grid(jnp.asarray(images), 4, 3))
  assert grid.shape == (2, 3, 3, 4, 4, 3)
  for i in range(3):
    for j in range(3):
      np.testing.assert_array_equal(
          grid[:, i, j], images[:, 3 * i:3 * i + 4, 3 * j:3 * j + 4])


def test_context_at_a_row_ignores_the_rows_below():
  network = cpc.ContextNetwork(hidden_dim=6, num_blocks=2)
  latents = jax.random.normal(jax.random.PRNGKey(0), (2, 5, 5, 4))
  params = network.init(jax.random.PRNGKey(1), latents)
  context = network.apply(params, latents)
  changed = latents.at[:, 3:].set(7.0)  # rows 3 and 4
  context_changed = network.apply(params, changed)
  np.testing.assert_allclose(context_changed[:, :3], context[:, :3])
  assert not np.allclose(context_changed[:, 3], context[:, 3])


@pytest.mark.parametrize("normalize,temperature", [(False, 1.0), (True, 0.1)])
def test_loss_is_infonce_down_the_columns(normalize, temperature):
  config = tiny_config(patch_size=4, patch_stride=1, prediction_steps=2)
  config.cpc.normalize = normalize
  config.cpc.temperature = temperature
  method = methods.get_method(config, 10, 10)
  images, labels = digits_batch(BATCH)
  state = method.init_state(jax.random.PRNGKey(0), images.shape[1:],
                            optax.sgd(0.1))
  keys = jax.random.split(jax.random.PRNGKey(1), BATCH)

  def forward(images):
    _, (_, metrics) = method.loss_fn(state.params, state, keys, images,
                                     labels, None)
    views = augment.batch_views(keys, images, method.view_recipes[0])
    outputs = method.online_forward(state.params, state.batch_stats, views)[0]
    return metrics["cpc_loss"], outputs["predictions"], outputs["latents"]

  # vmap over a unit axis binds the BatchNorm's axis name.
  logged, predictions, latents = jax.vmap(
      forward, axis_name=step_lib.BATCH_AXIS)(images[None])
  predictions, latents = np.asarray(predictions[0]), np.asarray(latents[0])
  assert predictions.shape[1:4] == (5, 5, 2)  # 5x5 grid, K=2
  # Column j of image b is one sequence: rows top to bottom.
  if normalize:  # cosine scores
    predictions = predictions / np.linalg.norm(predictions, axis=-1,
                                               keepdims=True)
    latents = latents / np.linalg.norm(latents, axis=-1, keepdims=True)
  sequences = [(predictions[b, :, j], latents[b, :, j])
               for b in range(BATCH) for j in range(5)]
  expected, _ = losses.cpc(np.stack([p for p, _ in sequences]),
                           np.stack([z for _, z in sequences]), temperature)
  np.testing.assert_allclose(logged[0], expected, rtol=1e-5)


def test_bad_grids_are_refused():
  with pytest.raises(ValueError, match="prediction_steps"):
    methods.get_method(tiny_config(prediction_steps=3), 10, 10)
  with pytest.raises(ValueError, match="patch_size"):
    methods.get_method(tiny_config(patch_size=9), 10, 10)
