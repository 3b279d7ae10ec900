"""The video methods' presets (video prediction, video colorization,
temporal order): moving-digits videos for training, still frames of single
digits for evaluation, Adam, and states that build."""

import jax
import pytest

from ssl_jax import data
from ssl_jax import methods
from ssl_jax.train import optim

from tests.conftest import load_config


@pytest.mark.parametrize("name,preset", [
    ("video_prediction", "moving_digits"),
    ("video_colorization", "moving_digits"),
    ("temporal_order", "verification"),
    ("temporal_order", "prediction")])
def test_preset_trains_on_videos_and_evaluates_on_still_frames(name, preset):
  config = load_config(name, preset)
  assert config.method == name
  train = data.get_source(config.data, "train")
  assert train.image_shape == (20, 32, 32, 3) and len(train) == 10000
  still = data.get_source(config.eval.data, "test")
  assert still.image_shape == (32, 32, 3) and still.num_digits == 1
  assert config.augment.crop_size == 32 and config.augment.jitter_prob == 0.0
  assert config.optim.name == "adamw" and config.train.batch_size % 8 == 0
  steps = config.train.num_steps
  method = methods.get_method(config, num_classes=10, total_steps=steps)
  tx, _ = optim.make_optimizer(config.optim, steps, config.train.batch_size)
  state = jax.eval_shape(
      lambda: method.init_state(jax.random.PRNGKey(0), train.image_shape, tx))
  # Temporal order has no online probe: its frames hold two digits.
  assert ("online_probe" in state.params) == (name != "temporal_order")


def test_prediction_observes_ten_and_predicts_ten():
  config = load_config("video_prediction", "moving_digits")
  settings = config.video_prediction
  assert (settings.num_observed, settings.num_predicted) == (10, 10)


def test_colorization_tracks_on_a_stride_4_map():
  config = load_config("video_colorization", "moving_digits")
  method = methods.get_method(config, num_classes=10, total_steps=100)
  assert method.stride == 4 and config.video_colorization.embed_dim == 64


@pytest.mark.parametrize("name", ["video_prediction", "video_colorization"])
def test_unknown_preset_is_refused(name):
  with pytest.raises(ValueError, match="moving_digits"):
    load_config(name, "cifar10")
