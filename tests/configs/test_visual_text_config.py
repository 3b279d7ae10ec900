"""Visual-text presets: CLIP's loss and optimizer (ConVIRT's in
digits_convirt), a data section the pairs loader reads and a resumed run
can compare, and the networks' shapes on abstract arrays (the initial
temperature is checked by tests/methods/test_visual_text.py)."""

import json

import jax
import pytest

from ssl_jax import methods
from ssl_jax.data import image_text
from ssl_jax.train import optim

from tests.conftest import load_config


@pytest.mark.parametrize("preset", ["digits", "digits_convirt", "pairs"])
def test_preset_is_consistent(preset):
  config = load_config("visual_text", preset)
  settings = config.visual_text
  assert config.method == "visual_text" and config.train.batch_size % 8 == 0
  assert config.data.source == "image_text"
  # Every field is one the loader reads, and the section survives JSON
  # unchanged (a resumed run compares it with the saved config.json).
  section = config.data.image_text.to_dict()
  assert set(section) == set(image_text.DEFAULTS)
  assert json.loads(json.dumps(config.data.to_dict())) == config.data.to_dict()
  assert (config.optim.name, config.optim.b1, config.optim.b2) == (
      "adamw", 0.9, 0.98)
  if preset == "digits_convirt":
    assert (settings.learn_temperature, settings.temperature,
            settings.image_to_text_weight) == (False, 0.1, 0.75)
    assert settings.projection_hidden_dim > 0
  else:
    assert (settings.learn_temperature, settings.temperature,
            settings.image_to_text_weight, settings.max_logit_scale) == (
                True, 0.07, 0.5, 100.0)
  assert config.augment.flip_prob == 0.0


@pytest.mark.parametrize("preset, image_shape", [("digits", (8, 8, 1)),
                                                 ("pairs", (32, 32, 3))])
def test_state_shapes(preset, image_shape):
  config = load_config("visual_text", preset)
  method = methods.get_method(config, num_classes=10, total_steps=100)
  tx, _ = optim.make_optimizer(config.optim, 100, config.train.batch_size)
  state = jax.eval_shape(
      lambda: method.init_state(jax.random.PRNGKey(0), image_shape, tx))
  params = state.params
  text = params["text_encoder"]
  width = config.visual_text.text.width
  assert text["byte_embedding"]["embedding"].shape == (258, width)
  embed_dim = config.visual_text.embed_dim
  assert params["text_projection"]["out"]["kernel"].shape == (width,
                                                              embed_dim)
  assert params["log_logit_scale"].shape == ()
  if preset == "pairs":  # the Transformer has a position per token
    assert text["position_embedding"].shape == (64, width)
  assert method.batch_fields == ("text",)


def test_unknown_preset_names_the_presets():
  with pytest.raises(ValueError, match="digits_convirt"):
    load_config("visual_text", "cifar10")
