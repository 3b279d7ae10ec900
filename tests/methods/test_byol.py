"""BYOL: 8 devices == 1, the EMA target follows the cosine schedule exactly,
the predictor has no target copy, and the loss is the symmetric L + L~."""

import math

import jax
import numpy as np
import pytest

from ssl_jax import methods

from tests.conftest import load_config
from tests.methods.common import (assert_eight_devices_match_one,
                                  digits_batch, run_steps)

TOTAL_STEPS = 10  # what run_steps gives the method and the optimizer
BASE_MOMENTUM = 0.5  # far from 1, so a wrong step in the schedule shows


def tiny_config():
  config = load_config("byol", "digits")
  config.model.width_multiplier = 0.125
  config.byol.proj_hidden_dim = 16
  config.byol.proj_dim = 8
  config.byol.pred_hidden_dim = 16
  config.byol.base_momentum = BASE_MOMENTUM
  config.train.batch_size = 16
  config.optim.warmup_steps = 1
  return config


def cosine_momentum(k):
  """BYOL Sec. 3, "Implementation details": tau_k = 1 - (1 - tau_base) (cos(pi k / K) + 1) / 2."""
  return 1 - (1 - BASE_MOMENTUM) * (math.cos(math.pi * k / TOTAL_STEPS) + 1) / 2


@pytest.fixture(scope="module")
def trained():
  return assert_eight_devices_match_one(tiny_config(), num_steps=2)


@pytest.fixture(scope="module")
def after_one_step():
  """The 1-device state after one step (the same program: a cache hit)."""
  images, labels = digits_batch(16)
  _, state, _ = run_steps(tiny_config(), jax.devices()[:1], images, labels, 1)
  return state


def _target_part(params):
  return {m: params[m] for m in ("encoder", "projector")}


def _max_abs_difference(a, b):
  return max(jax.tree.leaves(jax.tree.map(
      lambda x, y: float(np.max(np.abs(np.asarray(x, np.float64) - y))),
      a, b)))


def test_ema_is_exactly_the_cosine_momentum_average(trained, after_one_step):
  init, two, history = trained
  one = after_one_step
  # Step 0: the target starts as a copy of the online encoder and projector.
  np.testing.assert_allclose(history[0]["target_momentum"], BASE_MOMENTUM,
                             rtol=1e-6)
  np.testing.assert_allclose(history[1]["target_momentum"], cosine_momentum(1),
                             rtol=1e-6)

  def expected(ema, params, k):
    m = cosine_momentum(k)
    return jax.tree.map(lambda e, p: m * np.asarray(e, np.float64) + (1 - m) * p,
                        ema, _target_part(params))

  # xi_1 = tau_0 xi_0 + (1 - tau_0) theta_1, xi_0 = theta_0.
  assert _max_abs_difference(
      one.ema_params, expected(_target_part(init.params), one.params, 0)) < 1e-6
  # xi_2 = tau_1 xi_1 + (1 - tau_1) theta_2, with tau at step 1 of the cosine.
  exact = _max_abs_difference(
      two.ema_params, expected(one.ema_params, two.params, 1))
  assert exact < 1e-6, exact
  # The check can tell the schedule's steps apart.
  for wrong_k in (0, 2):
    wrong = _max_abs_difference(
        two.ema_params, expected(one.ema_params, two.params, wrong_k))
    assert wrong > 100 * max(exact, 1e-8), (wrong_k, wrong, exact)


def test_the_predictor_and_probe_have_no_target_copy(trained):
  init, state, _ = trained
  assert sorted(state.params) == [
      "encoder", "online_probe", "predictor", "projector"]
  assert sorted(state.ema_params) == ["encoder", "projector"]
  assert sorted(state.ema_batch_stats) == ["encoder", "projector"]
  assert jax.tree.structure(state.ema_params) == jax.tree.structure(
      _target_part(state.params))
  # The target moved (EMA) but lags the online network, which trained.
  assert _max_abs_difference(state.ema_params, _target_part(init.params)) > 0
  assert _max_abs_difference(state.ema_params, _target_part(state.params)) > 0
  # Training-mode BatchNorm in the target updated its own statistics.
  assert _max_abs_difference(state.ema_batch_stats,
                             _target_part(init.batch_stats)) > 1e-5


def test_projector_and_predictor_are_mlps_without_output_batchnorm(trained):
  _, state, _ = trained
  for head in ("projector", "predictor"):
    assert sorted(state.params[head]) == ["bn1", "dense1", "dense_out"], head
    assert state.params[head]["dense_out"]["kernel"].shape == (16, 8)
  assert state.params["predictor"]["dense1"]["kernel"].shape == (8, 16)


def test_logged_loss_is_the_symmetric_sum_and_metrics_are_logged(trained):
  _, _, history = trained
  for metrics in history:
    # L + L~ = (2 - 2 cos_12) + (2 - 2 cos_21) = 4 - 4 mean cos.
    np.testing.assert_allclose(metrics["byol_loss"],
                               4 - 4 * metrics["cos_sim"], rtol=1e-5)
    assert 0.0 <= metrics["byol_loss"] <= 8.0
    np.testing.assert_allclose(metrics["loss"],
                               metrics["byol_loss"] + metrics["probe_loss"],
                               rtol=1e-5)
    for name in ("probe_acc", "embedding_std", "embedding_std_ratio",
                 "effective_rank", "target_std"):
      assert np.isfinite(metrics[name]), name
    assert metrics["effective_rank"] > 1.0


def test_views_are_asymmetric():
  method = methods.get_method(tiny_config(), num_classes=10, total_steps=10)
  first, second = method.view_recipes
  assert first.solarize_prob == 0.0 and second.solarize_prob == 0.2
