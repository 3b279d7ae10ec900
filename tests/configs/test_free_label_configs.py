"""The free-label presets: synthetic scenes (with and without domain
alignment) evaluated on real CIFAR-10, and the annotators on CIFAR-10 and on
the moving digits; the state each builds."""

import os

import jax
import pytest

from ssl_jax import data
from ssl_jax import methods
from ssl_jax.train import optim

from tests.conftest import REPO_ROOT, load_config

CIFAR = REPO_ROOT.parent / "shared" / "datasets" / "cifar10"


def abstract_state(config, image_shape, num_classes):
  steps = config.train.num_steps
  method = methods.get_method(config, num_classes=num_classes,
                              total_steps=steps)
  tx, _ = optim.make_optimizer(config.optim, steps, config.train.batch_size)
  return method, jax.eval_shape(
      lambda: method.init_state(jax.random.PRNGKey(0), image_shape, tx))


@pytest.mark.parametrize("preset,scale,real", [
    ("cifar10", 0.3, True), ("cifar10_no_alignment", 0.0, True),
    ("synthetic_only", 0.3, False)])
def test_synthetic_scenes_presets(preset, scale, real):
  config = load_config("synthetic_scenes", preset)
  assert config.data.source == "synthetic_scenes"
  assert config.data.scenes.textures == "cifar10"
  assert bool(config.data.scenes.real_dir) == real
  assert config.eval.data.source == "npz"
  assert config.synthetic_scenes.domain.enabled == real
  assert config.synthetic_scenes.domain.reversal_scale == scale
  assert config.augment.crop_size == config.data.scenes.frame_size == 32
  method, state = abstract_state(config, (32, 32, 3), 3)
  assert method.num_frames == 2
  assert ("discriminator" in state.params) == real
  # Log depth 1 + 4 classes + edges 1 + flow 2 channels.
  assert state.params["decoder"]["out_conv"]["kernel"].shape[-1] == 8


@pytest.mark.skipif(not os.path.exists(CIFAR / "test.npz"),
                    reason="needs ../shared/datasets/cifar10")
def test_synthetic_scenes_records_carry_real_images():
  config = load_config("synthetic_scenes", "cifar10")
  config.data.scenes.texture_dir = str(CIFAR)
  config.data.scenes.real_dir = str(CIFAR)
  source = data.get_source(config.data, "test")
  record = source[0]
  assert record["image"].shape == record["real_image"].shape == (32, 32, 3)


def test_annotator_presets():
  config = load_config("annotators", "cifar10")
  method, state = abstract_state(config, (32, 32, 3), 10)
  assert [task.name for task in method.tasks] == ["sobel", "canny", "saliency"]
  assert state.params["decoder"]["out_conv"]["kernel"].shape[-1] == 3
  config = load_config("annotators", "moving_digits")
  method, state = abstract_state(config, (20, 32, 32, 3), 10)
  assert method.num_frames == 2
  assert [task.name for task in method.tasks] == [
      "sobel", "canny", "saliency", "motion", "flow"]


@pytest.mark.parametrize("name", ["synthetic_scenes", "annotators"])
def test_unknown_preset_is_refused(name):
  with pytest.raises(ValueError, match="preset"):
    load_config(name, "imagenet")
