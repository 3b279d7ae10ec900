"""Colorization presets: the paper's loss settings, colour predicted at a
half (CIFAR-10) or a quarter (ImageNet) of the resolution, and the ImageNet
state, with its ab prior, on abstract shapes."""

import jax
import pytest

from ssl_jax import methods
from ssl_jax.methods import colorization
from ssl_jax.train import optim

from tests.conftest import load_config


@pytest.mark.parametrize("preset,stride", [("cifar10", 2), ("imagenet", 4)])
def test_preset_is_consistent(preset, stride):
  config = load_config("colorization", preset)
  settings = config.colorization
  assert config.method == "colorization" and config.train.batch_size % 8 == 0
  assert (settings.loss, settings.grid, settings.sigma,
          settings.num_neighbours, settings.rebalance_lambda,
          settings.temperature) == ("classification", 10.0, 5.0, 5, 0.5, 0.38)
  assert settings.output_stride == stride
  assert (config.optim.b1, config.optim.b2, config.optim.weight_decay) == (
      0.9, 0.99, 1e-3)
  for field in ("jitter_prob", "grayscale_prob", "blur_prob", "solarize_prob"):
    assert config.augment[field] == 0.0, field


def test_imagenet_state_builds_on_abstract_shapes():
  config = load_config("colorization", "imagenet")
  assert (config.optim.base_lr, config.train.batch_size) == (3e-5, 40)
  method = methods.get_method(config, num_classes=1000, total_steps=1000)
  tx, _ = optim.make_optimizer(config.optim, 1000, 40)
  state = jax.eval_shape(
      lambda: method.init_state(jax.random.PRNGKey(0), (256, 256, 3), tx))
  q = method.bins.shape[0]
  assert state.batch_stats[colorization.PRIOR].shape == (q,)
  # 7x7 -> 56x56 (a quarter of 224): three doublings, Q logits out.
  assert state.params["decoder"]["out_conv"]["kernel"].shape[-1] == q
  assert "up4_conv" not in state.params["decoder"]
  # The ResNet reads one channel: L.
  stem = state.params["encoder"]["backbone"]["stem_conv"]["kernel"]
  assert stem.shape[2] == 1


def test_unknown_preset_is_refused():
  with pytest.raises(ValueError, match="grayscale"):
    load_config("colorization", "digits")
  with pytest.raises(ValueError, match="cifar10"):
    load_config("colorization", "stl10")
