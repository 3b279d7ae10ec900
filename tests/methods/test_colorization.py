"""Colorization: 8 devices == 1 (running ab prior included), the encoder sees
only L, the running prior against a numpy histogram, the loss with and
without rebalancing, the regression variant, decoding back to RGB, and the
settings' errors."""

import types

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ssl_jax import augment
from ssl_jax import losses
from ssl_jax import methods
from ssl_jax.methods import colorization

from tests.conftest import load_config
from tests.methods.common import (assert_eight_devices_match_one,
                                  tinted_digits_batch)

BATCH = 16


def tiny_config(**settings):
  config = load_config("colorization", "cifar10")
  config.model.depth = 10
  config.model.width_multiplier = 0.125
  config.augment.crop_size = 8
  config.train.batch_size = BATCH
  config.optim.warmup_steps = 1
  config.colorization.update(settings)
  return config


def get_method(**settings):
  return methods.get_method(tiny_config(**settings), num_classes=10,
                            total_steps=10)


@pytest.fixture(scope="module")
def batch():
  return tinted_digits_batch(BATCH)


@pytest.fixture(scope="module")
def trained(batch):
  # rtol 1e-3: the output layer starts at zero, and Adam's first steps move
  # each of its entries by about the learning rate whatever the gradient's
  # size, so entries with near-zero gradients (rare colour bins) carry the
  # rounding differences of 8 devices vs 1 (about 2e-7 of 1e-3 here).
  return assert_eight_devices_match_one(tiny_config(), num_steps=2,
                                        batch=batch, rtol=1e-3)


def test_eight_devices_match_one_with_the_prior(trained):
  init, state, history = trained
  q = losses.pretext.ab_bins().shape[0]
  np.testing.assert_allclose(init.batch_stats[colorization.PRIOR], 1.0 / q)
  prior = np.asarray(state.batch_stats[colorization.PRIOR])
  np.testing.assert_allclose(prior.sum(), 1.0, rtol=1e-5)
  assert np.isfinite(history[-1]["ab_rmse"])


def views_of(method, images):
  return augment.batch_eval_views(images, method.view_recipes[0])


def test_encoder_sees_only_lightness(trained, batch):
  method = get_method()
  state = trained[1]
  variables = {"params": state.params, "batch_stats": state.batch_stats}
  views = views_of(method, batch[0])
  lab = method.lab(views)
  grey_rgb = augment.lab_to_rgb(jnp.concatenate(
      [lab[..., :1], jnp.zeros_like(lab[..., 1:])], axis=-1))
  recipe = method.view_recipes[0]
  grey_views = (grey_rgb - jnp.asarray(recipe.mean)) / jnp.asarray(recipe.std)
  encode = lambda v: method.network.apply(variables, v,
                                          method=method.network.encode)
  np.testing.assert_allclose(encode(grey_views), encode(views), rtol=1e-3,
                             atol=1e-4)
  assert np.abs(np.asarray(grey_views - views)).max() > 0.1  # colours differ


def nearest_bin_histogram(ab, bins):
  d2 = ((ab.reshape(-1, 1, 2) - bins[None]) ** 2).sum(-1)
  return np.bincount(d2.argmin(1), minlength=len(bins)) / len(d2)


def test_prior_is_the_running_mean_of_batch_histograms(batch):
  method = get_method()
  views = views_of(method, batch[0])
  _, info = method.corrupt(None, views)
  bins = np.asarray(method.bins)
  # Target: the view's ab averaged over output_stride (2) blocks.
  lab = np.asarray(method.lab(views), np.float64)
  ab = lab[..., 1:].reshape(BATCH, 4, 2, 4, 2, 2).mean(axis=(2, 4))
  np.testing.assert_allclose(info["ab"], ab, atol=1e-3)
  histogram = nearest_bin_histogram(ab, bins)
  output = jnp.zeros(ab.shape[:-1] + (len(bins),))
  old = np.random.default_rng(0).dirichlet(np.ones(len(bins)))
  for step, expected in [(0, histogram), (3, old + (histogram - old) / 4)]:
    state = types.SimpleNamespace(step=jnp.int32(step),
                                  batch_stats={colorization.PRIOR: old})
    loss, statistics, _ = method.pretext_loss(output, views, info, state,
                                              None)
    np.testing.assert_allclose(statistics[colorization.PRIOR], expected,
                               atol=1e-6)
  # Uniform logits: the rebalanced cross-entropy is log Q times the mean
  # weight of the pixels' nearest bins.
  weights = np.asarray(losses.pretext.rebalancing_weights(
      expected, 0.5, 5.0, ab_bins=bins))
  nearest = ((ab.reshape(-1, 1, 2) - bins[None]) ** 2).sum(-1).argmin(1)
  np.testing.assert_allclose(loss, np.log(len(bins)) * weights[nearest].mean(),
                             rtol=1e-4)
  unweighted = get_method(rebalance=False)
  loss, _, _ = unweighted.pretext_loss(output, views, info, state, None)
  np.testing.assert_allclose(loss, np.log(len(bins)), rtol=1e-5)


def test_regression_variant(batch):
  method = get_method(loss="regression")
  assert method.output_channels(method.config) == 2
  views = views_of(method, batch[0])
  _, info = method.corrupt(None, views)
  output = jnp.zeros(info["ab"].shape)
  loss, statistics, metrics = method.pretext_loss(output, views, info, None,
                                                  None)
  assert statistics == {}
  ab = np.asarray(info["ab"])
  np.testing.assert_allclose(loss, np.mean((ab / 100.0) ** 2), rtol=1e-5)
  np.testing.assert_allclose(metrics["ab_rmse"], np.sqrt(np.mean(ab ** 2)),
                             rtol=1e-5)


def test_pictures_keep_lightness_and_decode_colour(trained, batch):
  method = get_method()
  state = trained[1]
  variables = {"params": state.params, "batch_stats": state.batch_stats}
  grey, coloured, true = jax.device_get(
      method.reconstruct(variables, batch[0][:4], jax.random.PRNGKey(0)))
  views = views_of(method, batch[0][:4])
  lab_true = np.asarray(method.lab(views))
  for pixels in (grey, coloured, true):
    assert pixels.shape == (4, 8, 8, 3)
  np.testing.assert_allclose(true, np.clip(
      colorization.image_to_image.denormalize(views, method.view_recipes[0]),
      0, 1), atol=1e-6)
  # Grey panel: R = G = B with the true lightness.
  np.testing.assert_allclose(grey[..., 0], grey[..., 2], atol=1e-4)
  lab_grey = np.asarray(augment.rgb_to_lab(jnp.asarray(grey)))
  np.testing.assert_allclose(lab_grey[..., 0], lab_true[..., 0], atol=0.05)
  # Decoded colour: the annealed mean of the logits, enlarged, with true L.
  outputs = method.network.apply(variables, views, train=False)["output"]
  ab = np.asarray(losses.pretext.decode_annealed_mean(
      outputs, method.bins, 0.38))
  ab = np.asarray(jax.image.resize(ab, (4, 8, 8, 2), "bilinear"))
  expected = np.asarray(augment.lab_to_rgb(
      jnp.concatenate([lab_true[..., :1], ab], -1)))
  np.testing.assert_allclose(coloured, expected, atol=1e-4)


def test_settings_are_checked():
  with pytest.raises(ValueError, match="config.colorization.loss"):
    get_method(loss="gan")
  with pytest.raises(ValueError, match="grayscale"):
    load_config("colorization", "digits")
  config = tiny_config()
  config.augment = load_config("simclr", "digits").augment
  with pytest.raises(ValueError, match="3 channels"):
    methods.get_method(config, num_classes=10, total_steps=10)
