"""The text presets: each names its method and task, evaluates author
attribution on the plain paragraphs of the same split and tokens, and
builds its state."""

import os

import jax
import pytest

from ssl_jax import methods
from ssl_jax.train import optim

from tests.conftest import REPO_ROOT, load_config

TEXT_DIR = REPO_ROOT.parent / "shared" / "datasets" / "text"

PRESETS = ("masked_lm", "sentence_order", "sentence_permutation",
           "document_rotation", "gap_sentences", "punctuation", "word2vec",
           "emoji")


@pytest.mark.parametrize("preset", PRESETS)
def test_preset_is_consistent(preset):
  config = load_config("text_pretext", preset)
  assert config.method == config.data.text.task == preset
  assert config.data.source == config.eval.data.source == "text"
  evaluation = config.eval.data.text
  assert evaluation.task == ("word2vec" if preset == "word2vec" else "plain")
  for field in ("tokens", "seed", "test_fraction", "vocab_size", "max_length"):
    assert evaluation[field] == config.data.text[field], field
  assert config.model.name == "transformer"
  assert config.train.batch_size % 8 == 0


@pytest.mark.skipif(not os.path.isdir(TEXT_DIR),
                    reason="needs ../shared/datasets/text")
@pytest.mark.parametrize("preset", ["masked_lm", "gap_sentences", "word2vec"])
def test_state_builds(preset):
  config = load_config("text_pretext", preset)
  config.data.text.text_dir = str(TEXT_DIR)
  steps = config.train.num_steps
  method = methods.get_method(config, num_classes=8, total_steps=steps)
  tx, _ = optim.make_optimizer(config.optim, steps, config.train.batch_size)
  state = jax.eval_shape(
      lambda: method.init_state(jax.random.PRNGKey(0), (128,), tx))
  if preset == "word2vec":
    table = state.params["word2vec"]["center"]["embedding"]
    assert table.shape == (method.vocab_size, 100)
  else:
    encoder = (state.params["model"]["encoder"] if preset == "gap_sentences"
               else state.params["encoder"])
    assert encoder["embed"]["embedding"].shape == (method.vocab_size, 128)


def test_unknown_preset_is_refused():
  with pytest.raises(ValueError, match="preset"):
    load_config("text_pretext", "cifar10")
