"""CMC: 8 devices == 1, the views are the Lab channels of the crop, the
logged loss is the symmetric InfoNCE of the projections (core view and full
graph), and evaluation concatenates every view's features."""

import jax
import numpy as np
import optax
import pytest

from ssl_jax import augment
from ssl_jax import losses
from ssl_jax import methods
from ssl_jax.train import step as step_lib

from tests.conftest import load_config
from tests.methods.common import (assert_eight_devices_match_one,
                                  tinted_digits_batch)

BATCH = 16


def tiny_config(**settings):
  config = load_config("cmc", "cifar10")
  config.model.depth = 10
  config.augment.crop_size = 8
  config.train.batch_size = BATCH
  config.optim.warmup_steps = 1
  config.cmc.update(proj_dim=8, **settings)
  return config


def test_eight_devices_match_one():
  config = tiny_config()
  config.model.width_multiplier = 0.125
  assert_eight_devices_match_one(config, num_steps=2,
                                 batch=tinted_digits_batch(BATCH))


def test_views_are_the_scaled_lab_channels():
  method = methods.get_method(tiny_config(views="l_a_b"), 10, 10)
  images, _ = tinted_digits_batch(4)
  views = augment.batch_eval_views(images, method.view_recipes[0])
  l, a, b = method.split(views)
  lab = np.asarray(augment.rgb_to_lab(images.astype(np.float32) / 255.0))
  np.testing.assert_allclose(l[..., 0], (lab[..., 0] - 50) / 50, atol=2e-3)
  np.testing.assert_allclose(a[..., 0], lab[..., 1] / 110, atol=2e-3)
  np.testing.assert_allclose(b[..., 0], lab[..., 2] / 110, atol=2e-3)
  l2, ab = methods.get_method(tiny_config(), 10, 10).split(views)
  assert ab.shape[-1] == 2
  np.testing.assert_allclose(l2, l)


@pytest.mark.parametrize("objective", ["core", "full_graph"])
def test_loss_is_the_papers_objective(objective):
  config = tiny_config(views="l_a_b", objective=objective)
  config.model.width_multiplier = 0.125
  method = methods.get_method(config, 10, 10)
  images, labels = tinted_digits_batch(BATCH)
  state = method.init_state(jax.random.PRNGKey(0), images.shape[1:],
                            optax.sgd(0.1))
  keys = jax.random.split(jax.random.PRNGKey(1), BATCH)
  pairs = ([(0, 1), (0, 2)] if objective == "core"
           else [(0, 1), (0, 2), (1, 2)])

  def logged_and_expected(images):
    _, (_, metrics) = method.loss_fn(state.params, state, keys, images,
                                     labels, None)
    views = method.split(augment.batch_views(keys, images,
                                             method.view_recipes[0]))
    z = method.online_forward(state.params, state.batch_stats,
                              views)[0]["projections"]
    expected = sum(losses.symmetric_info_nce(z[i], z[j], 0.07)[0]
                   for i, j in pairs)
    return metrics["contrastive_loss"], expected

  # vmap over a unit axis binds the BatchNorm's axis name.
  logged, expected = jax.vmap(logged_and_expected,
                              axis_name=step_lib.BATCH_AXIS)(images[None])
  np.testing.assert_allclose(logged, expected, rtol=1e-5)
  features = method.encode({"params": state.params,
                            "batch_stats": state.batch_stats}, images)
  assert features.shape == (BATCH, 3 * 64)  # 3 ResNet-10s at width 1/8


def test_grayscale_data_and_bad_settings_are_refused():
  config = tiny_config()
  config.augment = augment.simclr_digits(crop_size=8)
  with pytest.raises(ValueError, match="Lab"):
    methods.get_method(config, 10, 10)
  with pytest.raises(ValueError, match="objective"):
    methods.get_method(tiny_config(objective="ring"), 10, 10)
  with pytest.raises(ValueError, match="grayscale"):
    load_config("cmc", "digits")
