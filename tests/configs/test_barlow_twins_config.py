"""Barlow Twins presets: the paper's / solo-learn's values, the paper's two
learning rates from one optimizer, and the ImageNet step traces and lowers."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ssl_jax import methods
from ssl_jax.train import optim
from ssl_jax.train import step as step_lib

from tests.conftest import load_config


@pytest.mark.parametrize("preset", ["digits", "cifar10", "imagenet"])
def test_preset_is_consistent(preset):
  config = load_config("barlow_twins", preset)
  assert config.method == "barlow_twins"
  assert config.train.batch_size % 8 == 0
  assert config.barlow_twins.proj_layers == 3
  assert config.barlow_twins.lambda_offdiag == (
      0.05 if preset == "digits" else 0.0051)  # see the config's docstring
  # Asymmetric views of the same size: the second view solarizes.
  assert config.augment_view2.crop_size == config.augment.crop_size
  assert config.augment.solarize_prob == 0.0
  assert config.augment_view2.solarize_prob == 0.2


def test_unknown_preset_is_refused():
  with pytest.raises(ValueError, match="digits"):
    load_config("barlow_twins", "imagenet21k")


def test_cifar10_is_solo_learns_recipe():
  config = load_config("barlow_twins", "cifar10")
  assert config.barlow_twins.proj_hidden_dim == config.barlow_twins.proj_dim == 2048
  assert config.barlow_twins.loss_scale == 0.1
  assert (config.train.batch_size, config.optim.base_lr) == (256, 0.3)
  assert (config.optim.weight_decay, config.optim.trust_coefficient) == (1e-4, 0.02)
  assert config.optim.warmup_steps == 10 * (50000 // 256)
  assert config.augment.blur_prob == config.augment_view2.blur_prob == 0.0


def test_imagenet_step_matches_the_papers_two_learning_rates():
  """One LARS step of the preset = the paper's: weights at 0.2 x B/256 with
  weight decay 1.5e-6, biases and BN parameters at 0.0048 x B/256, no decay.
  """
  config = load_config("barlow_twins", "imagenet")
  assert config.train.batch_size == 2048 and config.train.num_epochs == 1000
  assert config.optim.warmup_steps == 10 * (1281167 // 2048)
  config.optim.warmup_steps = 0  # step 0 at the peak rate
  tx, _ = optim.make_optimizer(config.optim, 100, 2048)
  rng = np.random.default_rng(0)
  params = {"w": jnp.asarray(rng.normal(size=(4, 3)), jnp.float32),
            "b": jnp.asarray(rng.normal(size=(3,)), jnp.float32)}
  grads = {k: jnp.asarray(rng.normal(size=v.shape), jnp.float32)
           for k, v in params.items()}  # of the unscaled loss
  scaled = jax.tree.map(lambda g: config.barlow_twins.loss_scale * g, grads)
  updates, _ = tx.update(scaled, tx.init(params), params)
  w, g = np.asarray(params["w"], np.float64), np.asarray(grads["w"], np.float64)
  u = g + 1.5e-6 * w
  expected_w = -0.2 * 8 * 0.001 * np.linalg.norm(w) / np.linalg.norm(u) * u
  expected_b = -0.0048 * 8 * np.asarray(grads["b"], np.float64)
  np.testing.assert_allclose(updates["w"], expected_w, rtol=1e-5)
  np.testing.assert_allclose(updates["b"], expected_b, rtol=1e-5)


def test_imagenet_projector_is_the_papers_and_the_step_lowers():
  config = load_config("barlow_twins", "imagenet")
  # A tiny fake batch: the parameters and the graph are the same.
  config.augment.crop_size = config.augment_view2.crop_size = 32
  mesh = step_lib.make_mesh()
  method = methods.get_method(config, num_classes=1000, total_steps=10)
  tx, _ = optim.make_optimizer(config.optim, 10 ** 6, config.train.batch_size)
  state = jax.eval_shape(
      lambda: method.init_state(jax.random.PRNGKey(0), (32, 32, 3), tx))
  projector = state.params["projector"]
  assert sorted(projector) == ["bn1", "bn2", "dense1", "dense2", "dense_out"]
  assert projector["dense1"]["kernel"].shape == (2048, 8192)
  assert projector["dense2"]["kernel"].shape == (8192, 8192)
  assert projector["dense_out"]["kernel"].shape == (8192, 8192)
  encoder_params = sum(
      np.prod(x.shape) for x in jax.tree.leaves(state.params["encoder"]))
  assert 23.4e6 < encoder_params < 23.6e6, encoder_params  # ResNet-50
  train_step = step_lib.make_train_step(method, tx, mesh)
  images = jax.ShapeDtypeStruct((8, 32, 32, 3), np.uint8)
  labels = jax.ShapeDtypeStruct((8,), np.int32)
  assert train_step.lower(state, images, labels) is not None
