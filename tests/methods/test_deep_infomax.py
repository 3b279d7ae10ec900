"""Deep InfoMax: 8 devices == 1, the logged loss is the local DIM objective
of the network's own local map and global vector, the local map comes from
the configured stage, and bad settings are refused."""

import jax
import numpy as np
import optax
import pytest

from ssl_jax import augment
from ssl_jax import losses
from ssl_jax import methods
from ssl_jax.train import step as step_lib

from tests.conftest import load_config
from tests.methods.common import assert_eight_devices_match_one, digits_batch

BATCH = 16


def tiny_config(**settings):
  config = load_config("deep_infomax", "digits")
  config.model.width_multiplier = 0.125
  config.train.batch_size = BATCH
  config.deep_infomax.update(embed_dim=8, hidden_dim=16, **settings)
  return config


def test_eight_devices_match_one():
  assert_eight_devices_match_one(tiny_config(estimator="infonce"),
                                 num_steps=2)


@pytest.mark.parametrize("estimator", ["jsd", "dv"])
def test_loss_is_the_local_objective_of_the_stage_map(estimator):
  method = methods.get_method(tiny_config(estimator=estimator), 10, 10)
  images, labels = digits_batch(BATCH)
  state = method.init_state(jax.random.PRNGKey(0), images.shape[1:],
                            optax.sgd(0.1))
  keys = jax.random.split(jax.random.PRNGKey(1), BATCH)

  def logged_and_expected(images):
    _, (_, metrics) = method.loss_fn(state.params, state, keys, images,
                                     labels, None)
    views = augment.batch_views(keys, images, method.view_recipes[0])
    outputs = method.online_forward(state.params, state.batch_stats, views)[0]
    expected, _ = losses.dim_local_global(outputs["local"], outputs["global"],
                                          estimator)
    return metrics["mi_loss"], expected, outputs["local"].shape

  # vmap over a unit axis binds the BatchNorm's axis name.
  logged, expected, _ = jax.vmap(logged_and_expected,
                                 axis_name=step_lib.BATCH_AXIS)(images[None])
  np.testing.assert_allclose(logged, expected, rtol=1e-5)
  views = augment.batch_eval_views(images, method.view_recipes[0])
  outputs = method.network.apply(
      {"params": state.params, "batch_stats": state.batch_stats}, views,
      train=False)
  # Stage 2 of the CIFAR-stem ResNet-10 on 8x8 digits: a 4x4 local map.
  assert outputs["local"].shape == (BATCH, 4, 4, 8)
  assert outputs["global"].shape == (BATCH, 8)


def test_bad_settings_are_refused():
  with pytest.raises(ValueError, match="estimator"):
    methods.get_method(tiny_config(estimator="mine"), 10, 10)
  method = methods.get_method(tiny_config(local_stage=7), 10, 10)
  with pytest.raises(ValueError, match="map_stage"):
    method.init_state(jax.random.PRNGKey(0), (8, 8, 1), optax.sgd(0.1))
