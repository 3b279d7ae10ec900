"""Audio-visual presets: the pairs of digits and held-out-speaker FSDD,
L3 or AVE-Net heads, a 4x4 localisation map on the 8x8 digits, a 32x32
log-mel input, a schedule that fits the run, and a data section that
survives the workdir's JSON round trip (a resumed run compares it)."""

import json

import jax
import ml_collections
import pytest

from ssl_jax import methods
from ssl_jax.train import loop
from ssl_jax.train import optim

from tests.conftest import load_config


@pytest.mark.parametrize("preset", ["l3", "avenet"])
def test_preset_is_consistent(preset):
  config = load_config("audio_visual", preset)
  assert config.method == "audio_visual"
  assert config.audio_visual.variant == preset
  assert config.data.source == "audio_visual"
  assert config.data.audio_visual.test_speakers == "theo"
  assert config.eval.data.source == "digits"
  assert config.train.batch_size % 8 == 0
  steps = loop.total_steps(config, 2500)
  assert 0 <= config.optim.warmup_steps < steps
  assert 0 < config.audio_visual.hard_negative_fraction < 1
  # What a resumed run reads back from config.json must equal the config.
  saved = ml_collections.ConfigDict(json.loads(config.to_json()))
  assert saved.data.to_dict() == config.data.to_dict()


def test_map_and_spectrogram_shapes():
  config = load_config("audio_visual", "l3")
  method = methods.get_method(config, num_classes=10, total_steps=100)
  assert method.spectrogram_shape == (32, 32, 1)
  tx, _ = optim.make_optimizer(config.optim, 100, config.train.batch_size)
  state = jax.eval_shape(
      lambda: method.init_state(jax.random.PRNGKey(0), (8, 8, 1), tx))
  assert state.params["cell_embedding"]["kernel"].shape == (128, 128)
  assert state.params["fuse_image"]["kernel"].shape == (128, 128)
  maps = jax.eval_shape(
      method.correspond,
      {"params": state.params, "batch_stats": state.batch_stats},
      jax.ShapeDtypeStruct((2, 8, 8, 1), "uint8"),
      jax.ShapeDtypeStruct((2, 8000), "float32"))[2]
  assert maps.shape == (2, 4, 4)


def test_unknown_preset_is_refused():
  with pytest.raises(ValueError, match="avenet"):
    load_config("audio_visual", "digits")
