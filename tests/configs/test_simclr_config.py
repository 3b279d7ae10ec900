"""Every SimCLR preset builds; the ImageNet one compiles on a tiny fake batch."""

import jax
import numpy as np
import pytest

from ssl_jax import methods
from ssl_jax.train import optim
from ssl_jax.train import step as step_lib

from tests.conftest import load_config


@pytest.mark.parametrize("preset", ["digits", "cifar10", "imagenet"])
def test_preset_is_consistent(preset):
  config = load_config("simclr", preset)
  assert config.method == "simclr"
  assert config.train.batch_size % 8 == 0
  assert config.augment.crop_size > 0


def test_unknown_preset_is_refused():
  with pytest.raises(ValueError, match="digits"):
    load_config("simclr", "imagenet21k")


def test_imagenet_resnet50_step_compiles_on_a_tiny_fake_batch():
  config = load_config("simclr", "imagenet")
  mesh = step_lib.make_mesh()
  method = methods.get_method(config, num_classes=1000, total_steps=10)
  total_steps = int(config.train.num_epochs) * (1281167 // config.train.batch_size)
  tx, _ = optim.make_optimizer(config.optim, total_steps, config.train.batch_size)
  state = jax.eval_shape(
      lambda: method.init_state(jax.random.PRNGKey(0), (256, 256, 3), tx))
  num_params = sum(np.prod(x.shape) for x in jax.tree.leaves(state.params))
  # ResNet-50 (23.5M without its classifier) + 2-layer 2048-d head + probe.
  assert 29.9e6 < num_params < 30.1e6, num_params
  train_step = step_lib.make_train_step(method, tx, mesh)
  images = jax.ShapeDtypeStruct((8, 256, 256, 3), np.uint8)
  labels = jax.ShapeDtypeStruct((8,), np.int32)
  compiled = train_step.lower(state, images, labels).compile()
  assert compiled is not None
