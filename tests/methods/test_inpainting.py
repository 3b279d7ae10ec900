"""Inpainting (Context Encoders): 8 devices == 1, the central hole and random
blocks, a loss that reads only the removed region, evaluation features of
the uncorrupted image, pictures, and steps that lower the loss."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ssl_jax import augment
from ssl_jax import methods

from tests.conftest import load_config
from tests.methods.common import (assert_eight_devices_match_one,
                                  digits_batch, run_steps)

BATCH = 16


def tiny_config(**inpainting):
  """The digits preset, tiny, with the central hole unless told otherwise."""
  config = load_config("inpainting", "digits")
  config.inpainting.mask = "central"
  config.model.width_multiplier = 0.125
  config.train.batch_size = BATCH
  config.optim.warmup_steps = 1
  config.inpainting.update(inpainting)
  return config


def get_method(**inpainting):
  return methods.get_method(tiny_config(**inpainting), num_classes=10,
                            total_steps=10)


@pytest.fixture(scope="module")
def trained():
  # Random blocks (the presets' masks): removed areas differ per example and
  # per device, and the loss is still the global batch's masked mean.
  return assert_eight_devices_match_one(tiny_config(mask="random_blocks"),
                                        num_steps=2)


def test_eight_devices_match_one(trained):
  _, _, history = trained
  assert np.isfinite(history[-1]["masked_l2"])
  assert 4 / 64 <= history[0]["masked_fraction"] <= 0.25


def views_of(method):
  images, _ = digits_batch(BATCH)
  return augment.batch_eval_views(images, method.view_recipes[0])


def test_central_hole_is_a_quarter_and_filled_with_the_mean():
  method = get_method()
  views = views_of(method)
  inputs, info = method.corrupt(jax.random.split(jax.random.PRNGKey(0), BATCH),
                                views)
  mask = np.asarray(info["mask"])
  assert mask.shape == (BATCH, 8, 8, 1)
  np.testing.assert_array_equal(mask[:, 2:6, 2:6], 1.0)  # the 4x4 centre
  assert mask.sum() == BATCH * 16
  inputs, views = np.asarray(inputs), np.asarray(views)
  np.testing.assert_array_equal(inputs[mask[..., 0] > 0], 0.0)
  np.testing.assert_array_equal(inputs[mask[..., 0] == 0],
                                views[mask[..., 0] == 0])


def test_random_blocks_are_per_example_and_reproducible():
  method = get_method(mask="random_blocks", num_blocks=2, block_fraction=0.25)
  keys = jax.random.split(jax.random.PRNGKey(3), BATCH)
  masks = np.asarray(method.masks(keys, BATCH, 8, 8))
  np.testing.assert_array_equal(masks,
                                np.asarray(method.masks(keys, BATCH, 8, 8)))
  areas = masks.sum(axis=(1, 2, 3))
  assert np.all((areas >= 4) & (areas <= 8))  # two 2x2 blocks, may overlap
  assert len({m.tobytes() for m in masks}) > 1


def test_loss_reads_only_the_removed_region():
  method = get_method()
  views = views_of(method)
  _, info = method.corrupt(None, views)
  output = jax.random.normal(jax.random.PRNGKey(0), views.shape)
  loss, _, _ = method.pretext_loss(output, views, info, None, None)
  visible = 1.0 - info["mask"]
  changed = output + 5.0 * visible
  loss_changed, _, _ = method.pretext_loss(changed, views, info, None, None)
  np.testing.assert_allclose(loss_changed, loss, rtol=1e-6)
  mask = np.asarray(info["mask"])[..., 0] > 0
  expected = np.mean((np.asarray(output) - np.asarray(views))[mask] ** 2)
  np.testing.assert_allclose(loss, expected, rtol=1e-5)


def test_evaluation_sees_the_whole_image(trained):
  method = get_method()
  state = trained[1]
  variables = {"params": state.params, "batch_stats": state.batch_stats}
  images, _ = digits_batch(BATCH)
  features = method.encode(variables, images)
  views = views_of(method)
  expected = method.network.apply(variables, views,
                                  method=method.network.encode)
  np.testing.assert_allclose(features, expected, rtol=1e-5, atol=1e-6)
  holed = method.network.apply(variables, method.corrupt(None, views)[0],
                               method=method.network.encode)
  assert np.abs(np.asarray(holed) - np.asarray(features)).max() > 1e-4


def test_pictures_paste_the_prediction_into_the_hole(trained):
  method = get_method()
  state = trained[1]
  variables = {"params": state.params, "batch_stats": state.batch_stats}
  images, _ = digits_batch(4)
  pictures = jax.device_get(
      method.reconstruct(variables, images, jax.random.PRNGKey(0)))
  panels = dict(zip(method.panel_captions, pictures))
  assert list(panels) == ["original", "masked input", "prediction",
                          "inpainted"]
  for pixels in panels.values():
    assert pixels.shape == (4, 8, 8, 1)
    assert pixels.min() >= 0.0 and pixels.max() <= 1.0
  outside = np.ones((8, 8), bool)
  outside[2:6, 2:6] = False
  np.testing.assert_allclose(panels["inpainted"][:, outside],
                             panels["original"][:, outside], atol=1e-6)
  np.testing.assert_allclose(panels["inpainted"][:, ~outside],
                             panels["prediction"][:, ~outside], atol=1e-6)


def test_steps_lower_the_loss():
  images, labels = digits_batch(BATCH)
  _, _, history = run_steps(tiny_config(), jax.devices()[:1], images, labels,
                            num_steps=8)
  losses = [h["pretext_loss"] for h in history]
  assert losses[-1] < 0.8 * losses[0], losses


def test_settings_are_checked():
  with pytest.raises(ValueError, match="config.inpainting.mask"):
    get_method(mask="ring")
  with pytest.raises(ValueError, match="config.inpainting.loss"):
    get_method(loss="huber")
  config = tiny_config()
  config.model = load_config("mae", "digits").model
  with pytest.raises(ValueError, match="convolutional encoder"):
    methods.get_method(config, num_classes=10, total_steps=10)
