"""BYOL presets: the paper's values, and the ImageNet ResNet-50 state builds
(on abstract shapes) with its target network."""

import jax
import numpy as np
import pytest

from ssl_jax import methods
from ssl_jax.augment import recipes
from ssl_jax.train import optim

from tests.conftest import load_config


@pytest.mark.parametrize("preset", ["digits", "cifar10", "imagenet"])
def test_preset_is_consistent(preset):
  config = load_config("byol", preset)
  assert config.method == "byol"
  assert config.train.batch_size % 8 == 0
  assert config.byol.momentum_schedule == "cosine"
  assert (config.optim.name, config.optim.lr_scaling) == ("lars", "linear")
  # Asymmetric views of one size: only the second one solarizes.
  assert config.augment_view2.crop_size == config.augment.crop_size
  assert config.augment.solarize_prob == 0.0
  assert config.augment_view2.solarize_prob == 0.2
  method = methods.get_method(config, num_classes=10, total_steps=100)
  assert method.target_modules == ("encoder", "projector")


def test_unknown_preset_is_refused():
  with pytest.raises(ValueError, match="digits"):
    load_config("byol", "imagenet21k")


def test_imagenet_is_the_papers_recipe():
  config = load_config("byol", "imagenet")
  assert (config.model.depth, config.model.stem) == (50, "imagenet")
  assert config.train.batch_size == 4096
  assert config.train.num_epochs == 1000
  assert config.optim.warmup_steps == 10 * (1281167 // 4096)
  assert config.optim.base_lr == 0.2 and config.optim.weight_decay == 1.5e-6
  assert config.byol.base_momentum == 0.996
  assert (config.byol.proj_hidden_dim, config.byol.proj_dim,
          config.byol.pred_hidden_dim) == (4096, 256, 4096)
  view1, view2 = recipes.byol_pair(224)
  assert config.augment.to_dict() == view1.to_dict()
  assert config.augment_view2.to_dict() == view2.to_dict()
  assert (config.augment.blur_prob, config.augment_view2.blur_prob) == (1.0, 0.1)
  _, schedule = optim.make_optimizer(config.optim, 1000 * (1281167 // 4096),
                                     4096)
  np.testing.assert_allclose(schedule(config.optim.warmup_steps), 0.2 * 16,
                             rtol=1e-6)


def test_cifar10_views_are_cifar_sized_and_normalised():
  config = load_config("byol", "cifar10")
  assert (config.model.depth, config.model.stem) == (18, "cifar")
  for view in (config.augment, config.augment_view2):
    assert view.crop_size == 32 and view.blur_prob == 0.0
    assert tuple(view.mean) == recipes.CIFAR10_MEAN


def test_imagenet_state_has_the_papers_heads_and_a_target_without_predictor():
  config = load_config("byol", "imagenet")
  total_steps = 1000 * (1281167 // 4096)
  method = methods.get_method(config, num_classes=1000, total_steps=total_steps)
  tx, _ = optim.make_optimizer(config.optim, total_steps, 4096)
  state = jax.eval_shape(
      lambda: method.init_state(jax.random.PRNGKey(0), (256, 256, 3), tx))
  params = state.params
  shape = lambda p: tuple(p["kernel"].shape)  # noqa: E731
  assert shape(params["projector"]["dense1"]) == (2048, 4096)
  assert shape(params["projector"]["dense_out"]) == (4096, 256)
  assert shape(params["predictor"]["dense1"]) == (256, 4096)
  assert shape(params["predictor"]["dense_out"]) == (4096, 256)
  assert sorted(state.ema_params) == ["encoder", "projector"]
  assert jax.tree.structure(state.ema_params) == jax.tree.structure(
      {m: params[m] for m in ("encoder", "projector")})
  count = lambda tree: sum(int(np.prod(x.shape)) for x in jax.tree.leaves(tree))  # noqa: E731
  # ResNet-50 without its classifier has 23.5M parameters.
  assert 23.4e6 < count(params["encoder"]) < 23.6e6
