"""Barlow Twins: 8 devices == 1, the logged loss is the paper's, it trains."""

import numpy as np
import pytest

from ssl_jax import losses
from ssl_jax import methods

from tests.conftest import load_config
from tests.methods.common import (assert_eight_devices_match_one,
                                  digits_batch, make_step_projections)


def tiny_config():
  config = load_config("barlow_twins", "digits")
  config.model.width_multiplier = 0.125
  config.barlow_twins.proj_hidden_dim = 16
  config.barlow_twins.proj_dim = 16
  config.train.batch_size = 16
  config.optim.warmup_steps = 0  # every step updates
  return config


@pytest.fixture(scope="module")
def trained():
  return assert_eight_devices_match_one(tiny_config(), num_steps=2)


@pytest.fixture(scope="module")
def step_projections():
  method = methods.get_method(tiny_config(), num_classes=10, total_steps=10)
  return make_step_projections(method)


def test_logged_loss_is_the_papers_loss_on_per_view_projections(
    trained, step_projections):
  init, _, history = trained
  config = tiny_config()
  images, _ = digits_batch(config.train.batch_size)
  z1, z2 = step_projections(init, images)
  expected, aux = losses.barlow_twins(z1, z2, lambda_offdiag=0.05)
  first = history[0]
  np.testing.assert_allclose(first["barlow_twins_loss"], expected, rtol=1e-4)
  np.testing.assert_allclose(first["off_diag"], aux["off_diag"], rtol=1e-4)
  # The optimised loss: scaled Barlow Twins loss plus the probe's.
  np.testing.assert_allclose(
      first["loss"],
      config.barlow_twins.loss_scale * expected + first["probe_loss"],
      rtol=1e-4)
  for name in ("probe_acc", "embedding_std", "effective_rank"):
    assert np.isfinite(first[name]), name


def test_training_lowers_the_loss_on_a_fixed_batch(trained, step_projections):
  init, final, _ = trained
  images, _ = digits_batch(16)
  # The views of the first step, before and after two steps of training.
  before = losses.barlow_twins(*step_projections(init, images), 0.05)[0]
  after = losses.barlow_twins(
      *step_projections(final.replace(step=init.step), images), 0.05)[0]
  assert after < 0.9 * before, (before, after)


def test_projector_is_three_layers_without_output_batchnorm(trained):
  _, state, _ = trained
  projector = state.params["projector"]
  assert sorted(projector) == ["bn1", "bn2", "dense1", "dense2", "dense_out"]
  assert projector["dense_out"]["kernel"].shape == (16, 16)
  assert state.ema_params is None and state.queue is None  # no target, no queue
