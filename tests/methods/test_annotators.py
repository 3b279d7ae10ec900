"""Auxiliary annotators: 8 devices == 1 on still images, the targets are the
annotators of the very view the network sees, the video tasks (motion mask,
Horn--Schunck flow) train on frames t and t + 1, and bad settings fail
clearly."""

import jax
import numpy as np
import pytest

from ssl_jax import augment
from ssl_jax import methods
from ssl_jax.augment import annotators as annotators_lib
from ssl_jax.methods import annotators
from ssl_jax.methods import image_to_image
from ssl_jax.train import defaults

from tests.conftest import load_config
from tests.methods.common import (assert_eight_devices_match_one, run_steps,
                                  tinted_digits_batch)
from tests.methods.video_common import tiny_video_config, tiny_videos

BATCH = 16


def tiny_config(**settings):
  config = load_config("annotators", "cifar10")
  config.model.depth = 10
  config.augment.crop_size = 8
  config.train.batch_size = BATCH
  config.optim.warmup_steps = 1
  config.annotators.update(settings)
  return config


def test_eight_devices_match_one_on_still_images():
  config = tiny_config()
  # Plain SGD: Adam's first steps move every parameter by about lr, so
  # near-zero gradients would carry float noise.
  defaults.use_sgd(config, base_lr=0.01, weight_decay=0.0)
  _, _, history = assert_eight_devices_match_one(
      config, num_steps=2, batch=tinted_digits_batch(BATCH), rtol=1e-4)
  metrics = history[-1]
  for name in ("sobel_loss", "canny_loss", "saliency_loss", "canny_f1",
               "sobel_mean_mae", "saliency_mae", "probe_acc"):
    assert np.isfinite(metrics[name]), name


def test_targets_are_the_annotators_of_the_view():
  method = methods.get_method(tiny_config(), num_classes=10, total_steps=10)
  images, _ = tinted_digits_batch(4)
  keys = jax.random.split(jax.random.PRNGKey(3), 4)
  inputs, targets = jax.jit(
      lambda k, x: method.inputs_and_targets(k, x, None))(keys, images)
  views = augment.batch_views(keys, images, method.view_recipes[0])
  np.testing.assert_array_equal(inputs["frames"][:, 0], views)
  pixels = np.clip(image_to_image.denormalize(views, method.view_recipes[0]),
                   0, 1)
  sobel, canny = jax.jit(jax.vmap(lambda x: (
      annotators_lib.gradient_magnitude(x) / annotators.SOBEL_MAX,
      annotators_lib.canny(x, 50.0, 150.0))))(pixels)
  np.testing.assert_allclose(targets["sobel"], sobel, atol=1e-6)
  np.testing.assert_array_equal(targets["canny"], canny)
  assert targets["saliency"].shape == (4, 8, 8)
  assert [task.name for task in method.tasks] == ["sobel", "canny", "saliency"]


def test_video_tasks_train_on_two_frames():
  config = tiny_video_config("annotators")
  config.annotators.update(sobel_weight=0.0, saliency_weight=0.0)
  videos, labels = tiny_videos()
  method = methods.get_method(config, num_classes=10, total_steps=10)
  assert method.num_frames == 2
  keys = jax.random.split(jax.random.PRNGKey(0), len(videos))
  inputs, targets = jax.jit(
      lambda k, x: method.inputs_and_targets(k, x, None))(keys, videos)
  frames = image_to_image.denormalize(inputs["frames"], method.view_recipes[0])
  # The motion target is frame differencing of the two frames shown.
  expected = np.abs(np.asarray(frames[:, 0]) - np.asarray(frames[:, 1])).max(-1) > 0.1
  assert np.all(np.asarray(targets["motion"]) >= expected)  # dilation adds
  assert np.asarray(targets["motion"]).mean() > expected.mean() > 0
  assert targets["flow"].shape == frames.shape[:2][:1] + frames.shape[2:4] + (2,)
  _, state, history = run_steps(config, jax.devices()[:1], videos, labels, 2)
  assert int(state.step) == 2
  for name in ("motion_loss", "flow_loss", "flow_zero_epe", "canny_loss"):
    assert np.isfinite(history[-1][name]), name


def test_bad_settings_are_refused():
  with pytest.raises(ValueError, match="canny_low"):
    methods.get_method(tiny_config(canny_low=200.0), 10, 10)
  with pytest.raises(ValueError, match="no task has a positive weight"):
    methods.get_method(tiny_config(sobel_weight=0.0, canny_weight=0.0,
                                   saliency_weight=0.0), 10, 10)
  method = methods.get_method(tiny_config(flow_weight=1.0), 10, 10)
  with pytest.raises(ValueError, match="need videos"):
    method.init_inputs((8, 8, 3))
