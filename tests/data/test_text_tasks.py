"""The text task source: records of every task have fixed shapes and int32
ids, are deterministic, come from the split's paragraphs only, and carry
labels that invert their noise exactly (permutation, rotation); the
tokenizer is saved with a run; bad settings are refused."""

import json
import os

import numpy as np
import pytest

from ssl_jax import data
from ssl_jax.data import text as text_lib
from ssl_jax.data import text_pretext
from ssl_jax.data import text_tasks

from tests.conftest import REPO_ROOT

TEXT_DIR = str(REPO_ROOT.parent / "shared" / "datasets" / "text")
pytestmark = pytest.mark.skipif(not os.path.isdir(TEXT_DIR),
                                reason="needs ../shared/datasets/text")
SETTINGS = dict(text_dir=TEXT_DIR, vocab_size=500, max_length=48,
                target_length=16, max_sentences=4)


def source(task, split="train", **overrides):
  tokens = "words" if task == "word2vec" else "bpe"
  return text_tasks.TextTaskSource(split, task=task, tokens=tokens,
                                   **dict(SETTINGS, **overrides))


# 'emoji' needs text that carries emoji (tests/methods/test_text_methods.py).
@pytest.mark.parametrize("task", [t for t in text_tasks.TASKS if t != "emoji"])
def test_records_have_fixed_shapes_and_are_deterministic(task):
  src = source(task)
  batch = src.read_batch(range(8))
  assert batch["image"].shape == (8, 48) and batch["image"].dtype == np.int32
  assert np.all((batch["label"] >= 0) & (batch["label"] < 8))
  assert batch["image"].max() < src.vocab_size
  again = source(task).read_batch(range(8))
  for key in batch:
    np.testing.assert_array_equal(batch[key], again[key])
  assert src.image_shape == (48,) and src.num_classes == 8


def test_held_out_paragraphs_are_never_training_records():
  train, test = source("plain"), source("plain", "test")
  train_texts = {p.text for p in train.paragraphs}
  assert not any(p.text in train_texts for p in test.paragraphs)
  assert len(test) / (len(train) + len(test)) == pytest.approx(0.1, abs=0.01)
  # The plain record is CLS and the paragraph's first tokens.
  record = test[0]
  ids = [t for t in record["image"][1:] if t != text_lib.PAD_ID]
  assert record["image"][0] == text_lib.CLS_ID
  assert test.paragraphs[0].text.startswith(test.decode(ids))


def test_rotation_record_unrotates_to_the_paragraph():
  rotation = source("document_rotation")
  for i in range(20):
    record = rotation[i]
    tokens = record["image"][record["image"] != text_lib.PAD_ID]
    original = rotation.encode(rotation.paragraphs[i].text)  # no CLS
    np.testing.assert_array_equal(
        text_pretext.unrotate(tokens, int(record["target"])),
        original[:len(tokens)])


def test_permutation_record_inverts_to_the_original_order():
  src = source("sentence_permutation", max_length=256)
  for i in range(20):
    record = src[i]
    paragraph, _ = src._examples[i]  # pylint: disable=protected-access
    sentences = src._sentences[paragraph][:4]  # pylint: disable=protected-access
    shown = len(sentences)
    starts = record["starts"][:shown]
    assert np.all(record["starts"][shown:] == -1)
    assert np.all(record["image"][starts - 1] != text_lib.PAD_ID)
    pieces = np.split(record["image"], list(starts) + [len(record["image"])])
    decoded = [src.decode([t for t in piece if t != text_lib.SEP_ID])
               for piece in pieces[1:-1]]
    restored = text_pretext.apply_permutation(
        decoded, text_pretext.invert_permutation(record["target"][:shown]))
    # Each sentence is cut to fit its share of the sequence.
    for piece, sentence in zip(restored, sentences):
      assert piece and sentence.startswith(piece)


def test_sentence_order_gap_and_punctuation_records():
  order = source("sentence_order")
  targets = order.read_batch(range(200))["target"]
  assert 0.35 < targets.mean() < 0.65
  gaps = source("gap_sentences", target_length=64, max_length=256)
  record = gaps[0]
  shown, truth = gaps.gap_example(gaps._examples[0][0])  # pylint: disable=protected-access
  assert text_lib.MASK_SENTENCE_ID in record["image"]
  target = record["target_tokens"]
  assert text_lib.EOS_ID in target
  generated = target[:list(target).index(text_lib.EOS_ID)]
  assert truth.startswith(gaps.decode(generated))  # cut at target_length
  assert len(generated) == min(len(gaps.encode(truth)), 63)
  assert truth not in shown
  marks = source("punctuation")
  assert set(marks.read_batch(range(500))["target"]) == {0, 1, 2}


def test_tokenizer_is_saved_with_the_run(tmp_path):
  src = source("masked_lm")
  path = src.save_with_run(str(tmp_path))
  loaded = text_lib.TextTokenizer.load(path)
  text = src.paragraphs[3].text
  assert loaded.encode(text) == src.encode(text)
  words = source("word2vec")
  with open(words.save_with_run(str(tmp_path))) as f:
    saved = json.load(f)
  assert len(saved) == words.vocab_size
  assert words.encode("the")[0] == saved.index("the")


def test_get_source_and_bad_settings():
  config = {"source": "text", "text": dict(SETTINGS, task="punctuation")}

  class Section(dict):
    __getattr__ = dict.get

  built = data.get_source(Section(config), "test")
  assert built.task == "punctuation"
  with pytest.raises(ValueError, match="task"):
    text_tasks.TextTaskSource("train", task="cloze")
  with pytest.raises(ValueError, match="tokens='words'"):
    text_tasks.TextTaskSource("train", task="word2vec", text_dir=TEXT_DIR)
  with pytest.raises(ValueError, match="unknown setting"):
    text_tasks.TextTaskSource("train", vocab=5)
  with pytest.raises(ValueError, match="needs its label set"):
    text_tasks.TextTaskSource("train", task="emoji", text_dir=TEXT_DIR)
  with pytest.raises(ValueError, match="carries an emoji"):
    text_tasks.TextTaskSource("train", task="emoji", emoji="😂 😭",
                              **SETTINGS)
