"""Inpainting presets: random blocks up to a quarter, the paper's Adam, pixel-only
views, and the ImageNet ResNet-50 state on abstract shapes."""

import jax
import pytest

from ssl_jax import methods
from ssl_jax.train import optim

from tests.conftest import load_config


@pytest.mark.parametrize("preset", ["digits", "cifar10", "imagenet"])
def test_preset_is_consistent(preset):
  config = load_config("inpainting", preset)
  assert config.method == "inpainting" and config.model.name == "resnet"
  assert config.train.batch_size % 8 == 0
  settings = config.inpainting
  assert (settings.mask, settings.num_blocks, settings.block_fraction,
          settings.loss) == ("random_blocks", 4, 0.25, "l2")
  assert settings.area_fraction == 0.25  # of the central hole
  assert (config.optim.name, config.optim.b1) == ("adamw", 0.5)
  assert config.augment_view2 is None
  for field in ("jitter_prob", "grayscale_prob", "blur_prob", "solarize_prob"):
    assert config.augment[field] == 0.0, field
  method = methods.get_method(config, num_classes=10, total_steps=100)
  assert method.panel_captions[-1] == "inpainted"


def test_imagenet_state_builds_on_abstract_shapes():
  config = load_config("inpainting", "imagenet")
  assert config.optim.base_lr == 2e-4 and config.optim.lr_scaling == "none"
  method = methods.get_method(config, num_classes=1000, total_steps=1000)
  tx, _ = optim.make_optimizer(config.optim, 1000, 256)
  state = jax.eval_shape(
      lambda: method.init_state(jax.random.PRNGKey(0), (256, 256, 3), tx))
  # ResNet-50's 7x7 map doubled five times back to 224 px, RGB out.
  assert state.params["decoder"]["out_conv"]["kernel"].shape[-1] == 3
  assert state.params["decoder"]["up5_conv"]["kernel"].shape == (3, 3, 64, 64)


def test_unknown_preset_is_refused():
  with pytest.raises(ValueError, match="digits"):
    load_config("inpainting", "mnist")
