"""DeepCluster presets: the paper's optimizer and clustering settings, crop
and flip views, and the ImageNet state (ResNet-50 behind Sobel, 10,000
clusters, a pseudo-label per image) on abstract shapes."""

import jax
import pytest

from ssl_jax import methods
from ssl_jax.methods import deepcluster
from ssl_jax.train import defaults
from ssl_jax.train import optim

from tests.conftest import load_config


@pytest.mark.parametrize("preset", ["digits", "cifar10", "imagenet"])
def test_preset_is_consistent(preset):
  config = load_config("deepcluster", preset)
  settings = config.deepcluster
  assert config.method == "deepcluster" and config.train.batch_size % 8 == 0
  assert (config.optim.name, config.optim.base_lr, config.optim.lr_scaling,
          config.optim.momentum, config.optim.weight_decay) == (
              "sgd", 0.05, "none", 0.9, 1e-5)
  assert (settings.kmeans_iters, settings.kmeans_init,
          settings.max_cluster_examples) == (20, "random", 0)
  # Once per epoch; the digits' 5-step epochs every 4.
  assert settings.cluster_every_steps == (20 if preset == "digits" else 0)
  for field in ("jitter_prob", "grayscale_prob", "blur_prob", "solarize_prob"):
    assert config.augment[field] == 0.0, field
  # Fits the features it clusters (width 1/8 on CIFAR-10 gives 64).
  assert settings.pca_dim <= 64 or preset == "imagenet"


def test_imagenet_is_the_paper_recipe_on_a_resnet50():
  config = load_config("deepcluster", "imagenet")
  settings = config.deepcluster
  assert (settings.num_clusters, settings.pca_dim, settings.sobel,
          config.train.batch_size, config.train.num_epochs) == (
              10000, 256, True, 256, 500.0)
  assert (config.model.depth, config.model.stem) == (50, "imagenet")
  method = methods.get_method(config, num_classes=1000, total_steps=1000)
  tx, _ = optim.make_optimizer(config.optim, 1000, 256)
  num_examples = defaults.IMAGENET_TRAIN_EXAMPLES
  state = jax.eval_shape(lambda: method.init_state(
      jax.random.PRNGKey(0), (256, 256, 3), tx, num_examples=num_examples))
  assert state.params[deepcluster.CLASSIFIER]["kernel"].shape == (2048, 10000)
  assert state.extra["assignments"].shape == (num_examples,)
  assert state.extra["cluster_weights"].shape == (10000,)
  # The ResNet reads the two Sobel derivatives.
  stem = state.params["encoder"]["backbone"]["stem_conv"]["kernel"]
  assert stem.shape[2] == 2


def test_unknown_preset_is_refused():
  with pytest.raises(ValueError, match="cifar10"):
    load_config("deepcluster", "stl10")
