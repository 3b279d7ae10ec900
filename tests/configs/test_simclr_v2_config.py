"""Every SimCLR v2 preset builds; ResNet-152 3x compiles on a tiny fake batch."""

import jax
import numpy as np
import pytest

from ssl_jax import methods
from ssl_jax.train import optim
from ssl_jax.train import step as step_lib

from tests.conftest import load_config


@pytest.mark.parametrize("preset",
                         ["digits", "cifar10", "imagenet", "imagenet_r152x3"])
def test_preset_is_consistent(preset):
  config = load_config("simclr_v2", preset)
  assert config.method == "simclr_v2"
  assert config.simclr.proj_layers == 3
  assert config.train.batch_size % 8 == 0


def test_head_width_is_the_encoder_width():
  for preset, width in [("cifar10", 512), ("imagenet", 2048),
                        ("imagenet_r152x3", 6144)]:
    config = load_config("simclr_v2", preset)
    method = methods.get_method(config, num_classes=10, total_steps=10)
    assert method.network.encoder.feature_dim == width
    assert config.simclr.proj_hidden_dim == width


def test_imagenet_lr_is_square_root_scaled():
  config = load_config("simclr_v2", "imagenet")
  total = int(config.train.num_epochs) * (1281167 // 4096)
  _, schedule = optim.make_optimizer(config.optim, total, 4096)
  # 0.1 x sqrt(4096) = 6.4 (paper, Sec. 3), reached at the end of warmup.
  np.testing.assert_allclose(schedule(config.optim.warmup_steps), 6.4,
                             rtol=1e-6)


def test_resnet152x3_builds_lowers_and_its_encoder_compiles():
  """The whole step traces and lowers; the encoder's forward pass compiles.

  Compiling the whole step for ResNet-152 3x takes about 5 minutes on a
  2-core CPU, too long for the suite; ResNet-50's whole step compiles in
  tests/configs/test_simclr_config.py, and the step's code is the same.
  """
  config = load_config("simclr_v2", "imagenet_r152x3")
  config.augment.crop_size = 32  # a tiny fake batch: the graph is the same
  config.optim.warmup_steps = 1
  mesh = step_lib.make_mesh()
  method = methods.get_method(config, num_classes=1000, total_steps=10)
  tx, _ = optim.make_optimizer(config.optim, 10, config.train.batch_size)
  state = jax.eval_shape(
      lambda: method.init_state(jax.random.PRNGKey(0), (32, 32, 3), tx))
  encoder_params = sum(
      np.prod(x.shape) for x in jax.tree.leaves(state.params["encoder"]))
  # ResNet-152 has 58.1M parameters without its classifier; 3x width ~9x.
  assert 500e6 < encoder_params < 540e6, encoder_params
  train_step = step_lib.make_train_step(method, tx, mesh)
  images = jax.ShapeDtypeStruct((8, 32, 32, 3), np.uint8)
  labels = jax.ShapeDtypeStruct((8,), np.int32)
  assert train_step.lower(state, images, labels) is not None
  variables = {"params": state.params, "batch_stats": state.batch_stats}
  assert jax.jit(method.encode).lower(variables, images).compile() is not None
  features = jax.eval_shape(method.encode, variables, images)
  assert features.shape == (8, 6144)
