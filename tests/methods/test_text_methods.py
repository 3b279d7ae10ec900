"""The text pretext methods: every one trains a step on real corpus records;
masked LM, gap sentences and word2vec (losses counted over the global batch)
give the same numbers on 8 devices as on 1; the masked-LM targets and the
word2vec pairs are what their papers define; settings are checked."""

import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ssl_jax import methods
from ssl_jax.data import text as text_lib
from ssl_jax.data import text_tasks
from ssl_jax.train import defaults

from tests.conftest import REPO_ROOT, load_config
from tests.methods.common import assert_eight_devices_match_one, run_steps

TEXT_DIR = REPO_ROOT.parent / "shared" / "datasets" / "text"
pytestmark = pytest.mark.skipif(not os.path.isdir(TEXT_DIR),
                                reason="needs ../shared/datasets/text")
BATCH = 16
LENGTH = 32


def tiny_config(task):
  config = load_config("text_pretext", task)
  for section in (config.data.text, config.eval.data.text):
    section.update(text_dir=str(TEXT_DIR), max_length=LENGTH, vocab_size=500,
                   target_length=12, max_sentences=4)
  config.model.update(width=32, depth=1, num_heads=2, mlp_ratio=2.0)
  config.gap_sentences.decoder_depth = 1
  config.word2vec.update(dim=16, pairs_per_example=16, negatives=3)
  config.train.batch_size = BATCH
  config.optim.warmup_steps = 1
  return config


def batch(config, size=BATCH):
  """``(tokens, labels)`` as the loop feeds the method."""
  source = text_tasks.load_text_task("train", config.data.text)
  records = source.read_batch(range(size))
  method = methods.get_method(config, num_classes=8, total_steps=10)
  if not method.batch_fields:
    return records["image"], records["label"]
  return records["image"], {"label": records["label"],
                            **{f: records[f] for f in method.batch_fields}}


@pytest.mark.parametrize("task", ["sentence_order", "sentence_permutation",
                                  "document_rotation", "punctuation"])
def test_each_task_trains_a_step(task):
  config = tiny_config(task)
  tokens, labels = batch(config)
  init, state, history = run_steps(config, jax.devices()[:1], tokens, labels,
                                   2)
  assert int(state.step) == 2
  metrics = history[-1]
  assert np.isfinite(metrics["loss"]) and np.isfinite(metrics["probe_acc"])
  moved = jax.tree.map(lambda a, b: float(np.max(np.abs(a - b))),
                       state.params["encoder"], init.params["encoder"])
  assert max(jax.tree.leaves(moved)) > 0


@pytest.mark.parametrize("task", ["masked_lm", "gap_sentences", "word2vec"])
def test_eight_devices_match_one(task):
  config = tiny_config(task)
  defaults.use_sgd(config, base_lr=0.05, weight_decay=0.0)
  _, _, history = assert_eight_devices_match_one(
      config, num_steps=2, batch=batch(config), rtol=1e-4)
  assert np.isfinite(history[-1]["pretext_loss"])


def test_masked_lm_targets_are_the_original_tokens():
  config = tiny_config("masked_lm")
  method = methods.get_method(config, num_classes=8, total_steps=10)
  tokens, _ = batch(config, 64)
  keys = jax.random.split(jax.random.PRNGKey(0), len(tokens))
  inputs, targets, selected = map(np.asarray, method.corrupt(keys, tokens))
  real = (tokens >= text_lib.FIRST_REGULAR_ID)
  assert not np.any(selected & ~real)  # CLS and PAD are never selected
  np.testing.assert_array_equal(targets[selected], tokens[selected])
  np.testing.assert_array_equal(inputs[~selected], tokens[~selected])
  assert 0.1 < selected.sum() / real.sum() < 0.2
  assert selected.sum(axis=1).max() <= method.max_predictions


def test_word2vec_pairs_stay_in_the_window_on_known_words():
  config = tiny_config("word2vec")
  method = methods.get_method(config, num_classes=8, total_steps=10)
  tokens, _ = batch(config, 64)
  keys = jax.random.split(jax.random.PRNGKey(1), len(tokens))
  center, context, negatives, scored = map(
      np.asarray, jax.vmap(method.pairs)(keys, jnp.asarray(tokens)))
  window = method.window
  distances = []
  for row in range(len(tokens)):
    positions = {int(w): np.flatnonzero(tokens[row] == w) for w in tokens[row]}
    for c, o, ok in zip(center[row], context[row], scored[row]):
      if not ok:
        continue
      assert c >= 2 and o >= 2  # known words only
      gap = np.abs(positions[int(c)][:, None] - positions[int(o)][None, :])
      assert np.any((gap >= 1) & (gap <= window))
      distances.append(int(gap[(gap >= 1) & (gap <= window)].min()))
  assert len(distances) > 200
  assert negatives.min() >= 2
  # Negatives follow the unigram^0.75 distribution (the commonest word here).
  noise = np.diff(np.concatenate([[0.0], np.asarray(method.noise_cdf)]))
  top = int(np.argmax(noise))
  tolerance = 4 * np.sqrt(noise[top] * (1 - noise[top]) / negatives.size)
  assert abs(np.mean(negatives == top) - noise[top]) < tolerance
  # Nearer distances are drawn more often (weights W - d + 1).
  counts = np.bincount(distances, minlength=window + 1)[1:]
  assert counts[0] > counts[-1]


def test_word2vec_reports_neighbours_and_analogies():
  config = tiny_config("word2vec")
  method = methods.get_method(config, num_classes=8, total_steps=10)
  source = text_tasks.load_text_task("train", config.data.text)
  variables = jax.jit(method.network.init, static_argnames="train")(
      jax.random.PRNGKey(0), method.init_inputs((LENGTH,)), train=False)

  class FakeRun:
    train_source = source

  rows = method.extra_evaluation(FakeRun(), jax.device_get(variables))
  assert 0.0 <= rows["analogies"]["top1"] <= 1.0
  assert len(rows["analogies"]["neighbours"]["she"]) == 5


def test_gap_sentences_generate_has_the_target_length():
  config = tiny_config("gap_sentences")
  method = methods.method_class("gap_sentences")(config, 8, 10, axis_name=None)
  tokens, _ = batch(config, 2)
  variables = method.network.init(jax.random.PRNGKey(0),
                                  method.init_inputs((LENGTH,)), train=False)
  out = np.asarray(method.generate(variables, tokens))
  assert out.shape == (2, 12) and out.dtype == np.int32


def test_settings_are_checked():
  config = tiny_config("masked_lm")
  config.data.text.task = "punctuation"
  with pytest.raises(ValueError, match="task='masked_lm'"):
    methods.get_method(config, 8, 10)
  config = tiny_config("masked_lm")
  config.masked_lm.rate = 1.5
  with pytest.raises(ValueError, match="rate"):
    methods.get_method(config, 8, 10)
  config = tiny_config("sentence_order")
  config.model.name = "resnet"
  with pytest.raises(ValueError, match="transformer"):
    methods.get_method(config, 8, 10)


def test_emoji_prediction_on_text_that_carries_emoji(tmp_path):
  rng = np.random.default_rng(0)
  emoji = ("😂", "😭", "🔥")
  words = "we so this that day night really love hate the game show".split()
  for author in ("ann", "bob"):
    posts = []
    for i in range(60):
      label = emoji[i % 3]
      text = " ".join(rng.choice(words, size=6))
      posts.append(f"{text} {label}{label if i % 2 else ''}")
    (tmp_path / f"{author}.txt").write_text("\n\n".join(posts) + "\n",
                                            encoding="utf-8")
  config = tiny_config("emoji")
  config.data.text.update(text_dir=str(tmp_path), emoji=" ".join(emoji),
                          test_fraction=0.25)
  assert config.eval.data.text.text_dir == str(tmp_path)  # a reference
  source = text_tasks.load_text_task("train", config.data.text)
  record = source[0]
  assert record["target"] in (0, 1, 2)
  shown = source.decode(record["image"])
  assert not any(e in shown for e in emoji)  # the label is not in the input
  tokens, labels = batch(config)
  _, state, history = run_steps(config, jax.devices()[:1], tokens, labels, 2)
  assert int(state.step) == 2 and np.isfinite(history[-1]["loss"])
  config.data.text.emoji = "😂"
  with pytest.raises(ValueError, match="at least 2 emoji"):
    methods.get_method(config, 2, 10)
