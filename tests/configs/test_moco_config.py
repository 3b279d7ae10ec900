"""Every MoCo preset builds; the ImageNet ones build their method and state."""

import jax
import numpy as np
import pytest

from ssl_jax import methods
from ssl_jax.train import optim
from ssl_jax.train import step as step_lib

from tests.conftest import load_config

PRESETS = ["digits", "cifar10", "cifar10_v1", "imagenet", "imagenet_v1"]


@pytest.mark.parametrize("preset", PRESETS)
def test_preset_is_consistent(preset):
  config = load_config("moco", preset)
  assert config.method == "moco"
  batch = config.train.batch_size
  assert batch % 8 == 0
  assert batch % config.moco.bn_groups == 0
  assert config.moco.queue_size % batch == 0
  assert config.optim.name == "sgd" and config.optim.lr_scaling == "linear"
  assert config.moco.version == (1 if preset.endswith("_v1") else 2)
  # Every preset's method builds (its checks pass) without initialising.
  methods.get_method(config, num_classes=10, total_steps=100)


def test_paper_hyperparameters():
  v2 = load_config("moco", "imagenet")
  assert (v2.moco.queue_size, v2.moco.momentum, v2.moco.temperature) == (
      65536, 0.999, 0.2)
  assert v2.moco.proj_hidden_dim == 2048 and v2.moco.dim == 128
  assert optim.scaled_learning_rate(v2.optim.base_lr, v2.train.batch_size,
                                    "linear") == pytest.approx(0.03)
  assert v2.optim.weight_decay == 1e-4 and v2.train.num_epochs == 200
  assert v2.augment.crop_scale == (0.2, 1.0) and v2.augment.blur_prob == 0.5
  v1 = load_config("moco", "imagenet_v1")
  assert v1.moco.temperature == 0.07 and v1.augment.blur_prob == 0.0
  assert v1.augment.crop_scale == (0.2, 1.0)
  cifar = load_config("moco", "cifar10")
  assert (cifar.moco.queue_size, cifar.moco.momentum,
          cifar.moco.temperature) == (4096, 0.99, 0.1)
  assert optim.scaled_learning_rate(cifar.optim.base_lr,
                                    cifar.train.batch_size,
                                    "linear") == pytest.approx(0.06)
  assert cifar.optim.weight_decay == 5e-4 and cifar.optim.warmup_steps == 0


def test_unknown_preset_is_refused():
  with pytest.raises(ValueError, match="imagenet_v1"):
    load_config("moco", "imagenet21k")


@pytest.mark.parametrize("preset, head_params", [
    ("imagenet", 2048 * 2048 + 2048 + 2048 * 128 + 128),
    ("imagenet_v1", 2048 * 128 + 128),
])
def test_imagenet_resnet50_state_and_step_build(preset, head_params):
  config = load_config("moco", preset)
  method = methods.get_method(config, num_classes=1000, total_steps=10)
  tx, _ = optim.make_optimizer(config.optim, 10, config.train.batch_size)
  state = jax.eval_shape(
      lambda: method.init_state(jax.random.PRNGKey(0), (256, 256, 3), tx))
  count = lambda tree: sum(np.prod(x.shape) for x in jax.tree.leaves(tree))
  resnet50 = count(state.ema_params["encoder"])
  assert 23.4e6 < resnet50 < 23.6e6, resnet50
  assert count(state.ema_params["projector"]) == head_params
  assert count(state.params) == resnet50 + head_params + 2048 * 1000 + 1000
  assert state.queue.shape == (65536, 128) and state.queue_ptr.shape == ()
  if preset == "imagenet":
    # The whole data-parallel step traces on 8 devices (1 BN group each).
    train_step = step_lib.make_train_step(method, tx, step_lib.make_mesh())
    images = jax.ShapeDtypeStruct((8, 64, 64, 3), np.uint8)
    labels = jax.ShapeDtypeStruct((8,), np.int32)
    new_state, metrics = jax.eval_shape(train_step, state, images, labels)
    assert new_state.queue.shape == (65536, 128)
    assert metrics["contrastive_acc"].shape == ()
