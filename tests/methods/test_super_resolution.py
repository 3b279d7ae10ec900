"""Super-resolution: 8 devices == 1, the input is the interpolated
downsampled view, the first prediction is that interpolation (zero residual),
the loss against numpy, pictures, and steps that lower the loss."""

import jax
import numpy as np
import pytest

from ssl_jax import augment
from ssl_jax import methods

from tests.conftest import load_config
from tests.methods.common import (assert_eight_devices_match_one,
                                  digits_batch, run_steps)

BATCH = 16


def tiny_config(**settings):
  config = load_config("super_resolution", "digits")
  config.model.width_multiplier = 0.125
  config.train.batch_size = BATCH
  config.optim.warmup_steps = 1
  config.super_resolution.update(settings)
  return config


def get_method(**settings):
  return methods.get_method(tiny_config(**settings), num_classes=10,
                            total_steps=10)


@pytest.fixture(scope="module")
def trained():
  return assert_eight_devices_match_one(tiny_config(), num_steps=2)


def test_eight_devices_match_one_and_start_from_the_interpolation(trained):
  _, _, history = trained
  # Zero-initialised output convolution: step 0 predicts the interpolation.
  np.testing.assert_allclose(history[0]["l2"], history[0]["interpolation_l2"],
                             rtol=1e-6)


def views_of(method):
  images, _ = digits_batch(BATCH)
  return np.asarray(augment.batch_eval_views(images, method.view_recipes[0]))


@pytest.mark.parametrize("factor", [2, 4])
def test_input_is_box_downsampled_then_bilinear(factor):
  method = get_method(factor=factor)
  views = views_of(method)
  inputs, _ = method.corrupt(None, views)
  low = views.reshape(BATCH, 8 // factor, factor, 8 // factor, factor,
                      1).mean(axis=(2, 4))
  expected = np.stack([np.asarray(augment.upsample(x, factor)) for x in low])
  np.testing.assert_allclose(inputs, expected, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("kind", ["l1", "l2"])
def test_loss_against_numpy(kind):
  method = get_method(loss=kind)
  views = views_of(method)
  inputs, info = method.corrupt(None, views)
  output = np.asarray(jax.random.normal(jax.random.PRNGKey(0), views.shape))
  loss, _, metrics = method.pretext_loss(output, views, info, None, None)
  error = output + np.asarray(inputs) - views  # residual prediction
  expected = np.mean(np.abs(error)) if kind == "l1" else np.mean(error ** 2)
  np.testing.assert_allclose(loss, expected, rtol=1e-5)
  np.testing.assert_allclose(metrics["interpolation_l2"],
                             np.mean((np.asarray(inputs) - views) ** 2),
                             rtol=1e-5)


def test_pictures(trained):
  method = get_method()
  state = trained[1]
  variables = {"params": state.params, "batch_stats": state.batch_stats}
  images, _ = digits_batch(4)
  pictures = jax.device_get(
      method.reconstruct(variables, images, jax.random.PRNGKey(0)))
  assert len(pictures) == len(method.panel_captions) == 4
  low, _, _, original = pictures
  for pixels in pictures:
    assert pixels.shape == (4, 8, 8, 1)
  # The low-res panel is constant on 2x2 blocks, at the blocks' means.
  blocks = low.reshape(4, 4, 2, 4, 2)
  np.testing.assert_allclose(blocks, blocks[:, :, :1, :, :1] + 0 * blocks,
                             atol=1e-6)
  np.testing.assert_allclose(blocks[:, :, 0, :, 0],
                             original.reshape(4, 4, 2, 4, 2).mean((2, 4)),
                             atol=1e-5)


def test_steps_lower_the_loss():
  images, labels = digits_batch(BATCH)
  _, _, history = run_steps(tiny_config(), jax.devices()[:1], images, labels,
                            num_steps=8)
  losses = [h["l2"] for h in history]
  assert min(losses[1:]) < losses[0], losses


def test_settings_are_checked():
  with pytest.raises(ValueError, match="factor"):
    get_method(factor=3)
  with pytest.raises(ValueError, match="config.super_resolution.loss"):
    get_method(loss="ssim")
  with pytest.raises(ValueError, match="config.super_resolution.upsample"):
    get_method(upsample="bicubic")
