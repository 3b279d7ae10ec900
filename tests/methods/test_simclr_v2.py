"""SimCLR v2: 8 devices == 1, the 3-layer head, fine-tuning features."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ssl_jax import augment
from ssl_jax import methods

from tests.conftest import load_config
from tests.methods.common import assert_eight_devices_match_one, digits_batch


def tiny_config():
  config = load_config("simclr_v2", "digits")
  config.model.width_multiplier = 0.125
  config.simclr.proj_hidden_dim = 16
  config.simclr.proj_dim = 8
  config.train.batch_size = 16
  return config


@pytest.fixture(scope="module")
def trained():
  return assert_eight_devices_match_one(tiny_config())


def test_head_has_three_layers_and_a_scaled_output_batchnorm(trained):
  _, state, _ = trained
  projector = state.params["projector"]
  assert sorted(projector) == ["bn1", "bn2", "bn_out", "dense1", "dense2",
                               "dense_out"]
  assert sorted(projector["bn_out"]) == ["scale"]  # scale, no shift
  assert "bias" not in projector["dense_out"]


def test_finetune_features_are_the_head_first_layer(trained):
  _, state, _ = trained
  method = methods.get_method(tiny_config(), num_classes=10, total_steps=10)
  variables = {"params": state.params, "batch_stats": state.batch_stats}
  images, _ = digits_batch(8)
  got = method.finetune_features(variables, images)
  # Independently: encoder features, then Dense -> BN (running stats) -> ReLU.
  h = method.encode(variables, images)
  dense = state.params["projector"]["dense1"]
  bn = state.params["projector"]["bn1"]
  stats = state.batch_stats["projector"]["bn1"]
  x = np.asarray(h) @ dense["kernel"] + dense.get("bias", 0.0)
  x = (x - stats["mean"]) / np.sqrt(stats["var"] + 1e-5) * bn["scale"] + bn["bias"]
  expected = np.maximum(x, 0.0)
  assert got.shape == (8, 16)
  np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)


def test_a_head_without_a_middle_layer_is_refused():
  config = tiny_config()
  config.simclr.proj_layers = 1
  with pytest.raises(ValueError, match="at least 2 layers"):
    methods.get_method(config, num_classes=10, total_steps=10)
