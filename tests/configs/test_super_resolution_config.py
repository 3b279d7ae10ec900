"""Super-resolution presets: x2 on digits, x4 on CIFAR-10 and ImageNet,
residual L2, pixel-only views, and the ImageNet state on abstract shapes."""

import jax
import pytest

from ssl_jax import methods
from ssl_jax.train import optim

from tests.conftest import load_config


@pytest.mark.parametrize("preset,factor", [("digits", 2), ("cifar10", 4),
                                           ("imagenet", 4)])
def test_preset_is_consistent(preset, factor):
  config = load_config("super_resolution", preset)
  assert config.method == "super_resolution"
  assert config.train.batch_size % 8 == 0
  assert config.super_resolution.factor == factor
  assert config.augment.crop_size % factor == 0
  assert (config.super_resolution.loss, config.super_resolution.residual) == (
      "l2", True)
  for field in ("jitter_prob", "grayscale_prob", "blur_prob", "solarize_prob"):
    assert config.augment[field] == 0.0, field
  method = methods.get_method(config, num_classes=10, total_steps=100)
  assert method.factor == factor


def test_imagenet_state_builds_on_abstract_shapes():
  config = load_config("super_resolution", "imagenet")
  method = methods.get_method(config, num_classes=1000, total_steps=1000)
  tx, _ = optim.make_optimizer(config.optim, 1000, 256)
  state = jax.eval_shape(
      lambda: method.init_state(jax.random.PRNGKey(0), (256, 256, 3), tx))
  assert state.params["decoder"]["out_conv"]["kernel"].shape == (3, 3, 64, 3)


def test_unknown_preset_is_refused():
  with pytest.raises(ValueError, match="digits"):
    load_config("super_resolution", "div2k")
