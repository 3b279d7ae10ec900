"""VICReg: 8 devices == 1, the logged loss and terms are the paper's, it trains."""

import numpy as np
import pytest

from ssl_jax import losses
from ssl_jax import methods

from tests.conftest import load_config
from tests.methods.common import assert_eight_devices_match_one, digits_batch
from tests.methods.common import make_step_projections


def tiny_config():
  config = load_config("vicreg", "digits")
  config.model.width_multiplier = 0.125
  config.vicreg.expander_hidden_dim = 16
  config.vicreg.expander_dim = 16
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


def test_logged_loss_and_terms_are_the_papers_on_per_view_embeddings(
    trained, step_projections):
  init, _, history = trained
  images, _ = digits_batch(16)
  z1, z2 = step_projections(init, images)
  expected, aux = losses.vicreg(z1, z2, sim_coeff=25.0, std_coeff=25.0,
                                cov_coeff=1.0)
  first = history[0]
  np.testing.assert_allclose(first["vicreg_loss"], expected, rtol=1e-4)
  for term in ("invariance", "variance", "covariance"):
    np.testing.assert_allclose(first[term], aux[term], rtol=1e-4, atol=1e-7)
  np.testing.assert_allclose(
      first["vicreg_loss"],
      25 * first["invariance"] + 25 * first["variance"]
      + first["covariance"], rtol=1e-5)
  np.testing.assert_allclose(first["loss"], expected + first["probe_loss"],
                             rtol=1e-4)
  for name in ("probe_acc", "embedding_std", "effective_rank"):
    assert np.isfinite(first[name]), name


def test_training_lowers_the_loss_on_a_fixed_batch(trained, step_projections):
  init, final, _ = trained
  images, _ = digits_batch(16)
  before = losses.vicreg(*step_projections(init, images))[0]
  after = losses.vicreg(
      *step_projections(final.replace(step=init.step), images))[0]
  assert after < before, (before, after)


def test_expander_is_three_layers_and_nothing_else_is_trained(trained):
  _, state, _ = trained
  assert sorted(state.params) == ["encoder", "online_probe", "projector"]
  assert sorted(state.params["projector"]) == [
      "bn1", "bn2", "dense1", "dense2", "dense_out"]
  assert state.ema_params is None and state.queue is None
