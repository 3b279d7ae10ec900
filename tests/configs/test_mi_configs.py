"""Deep InfoMax and CPC presets: the paper's local map and estimator, patch
grids that fit their views, Adam, no colour distortion; the ImageNet
states build on abstract shapes."""

import jax
import pytest

from ssl_jax import methods
from ssl_jax.train import optim

from tests.conftest import load_config

PRESETS = ("digits", "cifar10", "imagenet")


@pytest.mark.parametrize("preset", PRESETS)
def test_deep_infomax_presets(preset):
  config = load_config("deep_infomax", preset)
  assert config.deep_infomax.estimator == "jsd"
  assert config.optim.name == "adamw" and config.optim.lr_scaling == "none"
  assert config.deep_infomax.local_stage == (2 if preset == "digits" else 3)
  assert config.augment.jitter_prob == 0.0


@pytest.mark.parametrize("preset", PRESETS)
def test_cpc_presets(preset):
  config = load_config("cpc", preset)
  settings = config.cpc
  rows = (config.augment.crop_size - settings.patch_size) // (
      settings.patch_stride) + 1
  assert settings.patch_stride * 2 == settings.patch_size
  assert 1 <= settings.prediction_steps < rows
  methods.get_method(config, 10, 100)  # checks the grid


@pytest.mark.parametrize("name", ["deep_infomax", "cpc"])
def test_imagenet_state_builds(name):
  config = load_config(name, "imagenet")
  method = methods.get_method(config, num_classes=1000, total_steps=1000)
  tx, _ = optim.make_optimizer(config.optim, 1000, config.train.batch_size)
  size = config.augment.crop_size
  state = jax.eval_shape(
      lambda: method.init_state(jax.random.PRNGKey(0), (size, size, 3), tx))
  assert "encoder" in state.params
