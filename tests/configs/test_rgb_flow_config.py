"""The RGB-flow preset: moving-digits videos for training, still frames of
single digits for evaluation, CMC's temperature and projection, a flow
computed on 32-px frames, and a state with one encoder per modality."""

import jax
import pytest

from ssl_jax import data
from ssl_jax import methods
from ssl_jax.train import optim

from tests.conftest import load_config


def test_preset_trains_on_videos_and_evaluates_on_still_frames():
  config = load_config("rgb_flow", "moving_digits")
  assert config.method == "rgb_flow"
  train = data.get_source(config.data, "train")
  assert train.image_shape == (20, 32, 32, 3) and len(train) == 10000
  still = data.get_source(config.eval.data, "test")
  assert still.image_shape == (32, 32, 3) and still.num_digits == 1
  assert config.augment.crop_size == 32 and config.augment.jitter_prob == 0.0
  settings = config.rgb_flow
  assert (settings.temperature, settings.proj_dim, settings.proj_layers) == (
      0.07, 128, 1)
  assert config.optim.name == "adamw" and config.train.batch_size % 8 == 0


def test_state_has_an_rgb_and_a_flow_encoder():
  config = load_config("rgb_flow", "moving_digits")
  steps = config.train.num_steps
  method = methods.get_method(config, num_classes=10, total_steps=steps)
  tx, _ = optim.make_optimizer(config.optim, steps, config.train.batch_size)
  state = jax.eval_shape(
      lambda: method.init_state(jax.random.PRNGKey(0), (20, 32, 32, 3), tx))
  for name in ("rgb_encoder", "flow_encoder"):
    assert state.params[name]["stem_conv"]["kernel"].shape[2] == 3, name
  # Linear projections (CMC's) from the 64-d features of ResNet-18 at 1/8.
  assert state.params["rgb_projector"]["dense_out"]["kernel"].shape == (64, 128)
  assert "online_probe" in state.params


def test_unknown_preset_is_refused():
  with pytest.raises(ValueError, match="moving_digits"):
    load_config("rgb_flow", "cifar10")
