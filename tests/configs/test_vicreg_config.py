"""VICReg presets: the paper's / solo-learn's values; the ImageNet method
builds the paper's expander (the step is lowered for Barlow Twins, whose
step differs only in the loss, in test_barlow_twins_config.py)."""

import jax
import pytest

from ssl_jax import methods
from ssl_jax.train import optim

from tests.conftest import load_config


@pytest.mark.parametrize("preset", ["digits", "cifar10", "imagenet"])
def test_preset_is_consistent(preset):
  config = load_config("vicreg", preset)
  assert config.method == "vicreg"
  assert config.train.batch_size % 8 == 0
  assert config.vicreg.expander_layers == 3
  coefficients = (config.vicreg.sim_coeff, config.vicreg.std_coeff,
                  config.vicreg.cov_coeff)
  assert coefficients == (25.0, 25.0, 1.0)


def test_unknown_preset_is_refused():
  with pytest.raises(ValueError, match="digits"):
    load_config("vicreg", "imagenet21k")


def test_cifar10_is_solo_learns_recipe():
  config = load_config("vicreg", "cifar10")
  assert config.vicreg.expander_hidden_dim == config.vicreg.expander_dim == 2048
  assert (config.train.batch_size, config.optim.base_lr) == (256, 0.3)
  assert (config.optim.weight_decay, config.optim.trust_coefficient) == (1e-4, 0.02)
  assert config.optim.warmup_steps == 10 * (50000 // 256)
  # solo-learn's VICReg views: one recipe for both.
  assert config.augment_view2 is None
  assert tuple(config.augment.crop_scale) == (0.2, 1.0)
  assert config.augment.solarize_prob == 0.1 and config.augment.blur_prob == 0.0


def test_imagenet_is_the_papers_recipe():
  config = load_config("vicreg", "imagenet")
  assert (config.train.batch_size, config.train.num_epochs) == (2048, 1000)
  assert config.optim.name == "lars" and config.optim.lr_scaling == "linear"
  assert (config.optim.base_lr, config.optim.weight_decay) == (0.2, 1e-6)
  assert config.optim.warmup_steps == 10 * (1281167 // 2048)
  # BYOL's asymmetric views.
  assert (config.augment.blur_prob, config.augment.solarize_prob) == (1.0, 0.0)
  assert (config.augment_view2.blur_prob,
          config.augment_view2.solarize_prob) == (0.1, 0.2)


def test_imagenet_expander_is_the_papers():
  config = load_config("vicreg", "imagenet")
  config.augment.crop_size = config.augment_view2.crop_size = 32  # same params
  method = methods.get_method(config, num_classes=1000, total_steps=10)
  tx, _ = optim.make_optimizer(config.optim, 10 ** 6, config.train.batch_size)
  state = jax.eval_shape(
      lambda: method.init_state(jax.random.PRNGKey(0), (32, 32, 3), tx))
  expander = state.params["projector"]
  assert sorted(expander) == ["bn1", "bn2", "dense1", "dense2", "dense_out"]
  assert expander["dense1"]["kernel"].shape == (2048, 8192)
  assert expander["dense2"]["kernel"].shape == (8192, 8192)
  assert expander["dense_out"]["kernel"].shape == (8192, 8192)
