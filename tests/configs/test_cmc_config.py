"""CMC presets: the paper's temperature and projection, Lab views, halved
encoders, no colour distortion (the colour is a view), and the ImageNet
state on abstract shapes."""

import jax
import pytest

from ssl_jax import methods
from ssl_jax.train import optim

from tests.conftest import load_config


@pytest.mark.parametrize("preset", ["cifar10", "imagenet"])
def test_preset_is_consistent(preset):
  config = load_config("cmc", preset)
  assert config.method == "cmc" and config.train.batch_size % 8 == 0
  assert (config.cmc.views, config.cmc.objective, config.cmc.proj_dim,
          config.cmc.temperature) == ("l_ab", "core", 128, 0.07)
  assert config.model.width_multiplier == 0.5
  for field in ("jitter_prob", "grayscale_prob", "blur_prob", "solarize_prob"):
    assert config.augment[field] == 0.0, field


def test_imagenet_state_has_one_encoder_per_view():
  config = load_config("cmc", "imagenet")
  method = methods.get_method(config, num_classes=1000, total_steps=1000)
  config.optim.warmup_steps = 10
  tx, _ = optim.make_optimizer(config.optim, 1000, config.train.batch_size)
  state = jax.eval_shape(
      lambda: method.init_state(jax.random.PRNGKey(0), (256, 256, 3), tx))
  stems = [state.params[f"encoders_{i}"]["stem_conv"]["kernel"].shape[2]
           for i in range(2)]
  assert stems == [1, 2]  # L, then ab
  assert state.params["projectors_0"]["kernel"].shape == (1024, 128)
