"""The context methods' image presets (rotation, relative position,
jigsaw): the papers' settings, no colour distortion, SGD, ImageNet states
that build on abstract shapes, and the digits refused where a grid of
patches does not fit."""

import jax
import pytest

from ssl_jax import methods
from ssl_jax.train import optim

from tests.conftest import load_config


@pytest.fixture(autouse=True)
def permutation_cache(tmp_path, monkeypatch):
  monkeypatch.setenv("SSL_JAX_CACHE_DIR", str(tmp_path))


@pytest.mark.parametrize("name", ["rotation", "relative_position", "jigsaw"])
@pytest.mark.parametrize("preset", ["cifar10", "imagenet"])
def test_preset_is_consistent(name, preset):
  config = load_config(name, preset)
  assert config.method == name and config.train.batch_size % 8 == 0
  assert (config.optim.name, config.optim.momentum) == ("sgd", 0.9)
  for field in ("jitter_prob", "grayscale_prob", "blur_prob", "solarize_prob"):
    assert config.augment[field] == 0.0, field


def test_relative_position_imagenet_grid_fits_the_view():
  config = load_config("relative_position", "imagenet")
  section = config.relative_position
  assert (section.patch_size, section.gap, section.jitter) == (96, 48, 7)
  span = 3 * section.patch_size + 2 * section.gap + 2 * section.jitter
  assert span <= config.augment.crop_size


def test_jigsaw_imagenet_state_builds_on_abstract_shapes():
  config = load_config("jigsaw", "imagenet")
  config.jigsaw.num_permutations = 30  # the paper's 1000 take ~3 s to build
  assert (config.jigsaw.tile_size, config.augment.crop_size) == (64, 255)
  method = methods.get_method(config, num_classes=1000, total_steps=1000)
  tx, _ = optim.make_optimizer(config.optim, 1000, config.train.batch_size)
  state = jax.eval_shape(
      lambda: method.init_state(jax.random.PRNGKey(0), (256, 256, 3), tx))
  classifier = state.params["classifier"]
  out_layer = classifier[sorted(classifier)[-1]]
  assert out_layer["kernel"].shape[-1] == 30


@pytest.mark.parametrize("name", ["relative_position", "jigsaw"])
def test_digits_are_refused_with_the_reason(name):
  with pytest.raises(ValueError, match="8x8"):
    load_config(name, "digits")
