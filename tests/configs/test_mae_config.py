"""MAE presets: Table 8's optimizer, ViT sizes and patch sizes, MAE's
crop-and-flip view, and the ImageNet ViT-B/16 state (abstract shapes)."""

import jax
import numpy as np
import pytest

from ssl_jax import methods
from ssl_jax.train import optim

from tests.conftest import load_config


@pytest.mark.parametrize("preset", ["digits", "cifar10", "imagenet"])
def test_preset_is_consistent(preset):
  config = load_config("mae", preset)
  assert config.method == "mae" and config.model.name == "vit"
  assert config.train.batch_size % 8 == 0
  assert config.mae.mask_ratio == 0.75
  # Appendix A.1, Table 8.
  assert (config.optim.name, config.optim.b1, config.optim.b2) == (
      "adamw", 0.9, 0.95)
  assert config.optim.weight_decay == 0.05
  assert config.optim.lr_scaling == "linear"
  # One view: crop and flip, no colour distortion.
  assert config.augment_view2 is None
  for field in ("jitter_prob", "grayscale_prob", "blur_prob", "solarize_prob"):
    assert config.augment[field] == 0.0, field
  assert config.augment.crop_size % config.model.patch_size == 0
  # No ResNet fields left to be overridden to no effect.
  assert "stem" not in config.model and "width_multiplier" not in config.model
  method = methods.get_method(config, num_classes=10, total_steps=100)
  assert method.num_kept == method.num_patches // 4
  assert len(method.view_recipes) == 1


def test_unknown_preset_is_refused():
  with pytest.raises(ValueError, match="digits"):
    load_config("mae", "imagenet21k")


def test_cifar10_is_vit_tiny_patch4_with_table8():
  config = load_config("mae", "cifar10")
  assert (config.model.size, config.model.patch_size) == ("tiny", 4)
  assert config.augment.crop_size == 32 and config.augment.flip_prob == 0.5
  assert tuple(config.augment.crop_scale) == (0.2, 1.0)
  assert config.mae.norm_pix_loss
  assert config.optim.base_lr == 1.5e-4
  assert config.optim.warmup_steps == 40 * (50000 // 512)
  method = methods.get_method(config, num_classes=10, total_steps=100)
  assert (method.num_patches, method.num_kept) == (64, 16)


def test_imagenet_is_the_papers_recipe():
  config = load_config("mae", "imagenet")
  assert (config.model.size, config.model.patch_size) == ("base", 16)
  assert config.model.dtype == "bfloat16"
  assert config.train.batch_size == 4096 and config.train.num_epochs == 800
  assert config.optim.warmup_steps == 40 * (1281167 // 4096)
  assert (config.mae.decoder_width, config.mae.decoder_depth,
          config.mae.decoder_heads) == (512, 8, 16)
  assert config.mae.norm_pix_loss
  assert tuple(config.augment.crop_scale) == (0.2, 1.0)
  assert config.augment.crop_size == 224
  total_steps = 800 * (1281167 // 4096)
  _, schedule = optim.make_optimizer(config.optim, total_steps, 4096)
  # lr = 1.5e-4 x 4096 / 256 at the end of warmup.
  np.testing.assert_allclose(schedule(config.optim.warmup_steps), 2.4e-3,
                             rtol=1e-6)


def test_imagenet_state_is_vit_b16_with_a_512d_decoder():
  config = load_config("mae", "imagenet")
  total_steps = 800 * (1281167 // 4096)
  method = methods.get_method(config, num_classes=1000,
                              total_steps=total_steps)
  assert (method.num_patches, method.num_kept) == (196, 49)
  tx, _ = optim.make_optimizer(config.optim, total_steps, 4096)
  state = jax.eval_shape(
      lambda: method.init_state(jax.random.PRNGKey(0), (256, 256, 3), tx))
  params = state.params
  count = lambda tree: sum(int(np.prod(x.shape)) for x in jax.tree.leaves(tree))  # noqa: E731
  assert count(params["encoder"]) == 85638144  # see tests/models/test_vit.py
  decoder = params["decoder"]
  assert decoder["embed"]["kernel"].shape == (768, 512)
  assert decoder["mask_token"].shape == (1, 1, 512)
  assert decoder["pred"]["kernel"].shape == (512, 16 * 16 * 3)
  assert len([k for k in decoder["transformer"] if k.startswith("block")]) == 8
  assert state.batch_stats == {} and state.ema_params is None
