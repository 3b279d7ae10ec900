r"""Text pretext tasks over the eight novels of ../shared/datasets/text
(``ssl_jax.data.text_tasks``): one preset per task.

    python -m ssl_jax.main --config=configs/text_pretext.py:masked_lm --workdir=runs/text_mlm
    python experiments/text_pretext.py            # every task, the README table

Presets (each names its method): ``masked_lm`` (BERT, 15% with 80/10/10),
``sentence_order`` (ALBERT's SOP), ``sentence_permutation`` and
``document_rotation`` (BART's noising, predicted), ``gap_sentences``
(PEGASUS, encoder-decoder), ``punctuation`` (sentence-final marks as
DeepMoji-style free labels), ``word2vec`` (skip-gram, negative sampling),
``emoji`` (DeepMoji on a user's text that carries emoji: one .txt file per
author or source, one post per paragraph, ``--config.data.text.text_dir=
<folder>``; 16 of DeepMoji's emoji as classes, ``config.data.text.emoji``).

Every preset: paragraphs split 90/10 by paragraph with seed 0 (the 10%
never seen in pretraining), a byte-level BPE of 8,000 ids trained on the
training paragraphs (saved in the workdir as tokenizer.json), sequences of
128 tokens; a pre-LN Transformer encoder of width 128, 4 blocks, 4 heads,
rotary positions; AdamW at lr 5e-4 (warmup 50 steps, cosine decay, weight
decay 0.01), batch 64, 300 steps. word2vec instead reads words (at least 5
occurrences) with 100-d vectors, window 5, 5 negatives, sub-sampling
1e-3, Adam at lr 5e-3, 3,000 steps. Evaluation: author attribution of paragraphs (8
books) by kNN and a linear probe on the encoder's mean token state (the
mean word vector for word2vec), held-out paragraphs against the training
ones, against the random-init encoder.
"""

import ml_collections

from ssl_jax.data import text_tasks
from ssl_jax.train import defaults

PRESETS = ("masked_lm", "sentence_order", "sentence_permutation",
           "document_rotation", "gap_sentences", "punctuation", "word2vec",
           "emoji")
# DeepMoji's most frequent emoji (its Fig. 3 / Table 1, in part).
EMOJI = "😂 😒 😩 😭 😍 😊 👌 ❤ 😁 👍 🙏 😉 😔 💯 🔥 😎"


def get_config(preset="masked_lm"):
  """Returns the config of the text task ``preset``."""
  if preset not in PRESETS:
    raise ValueError(
        f"unknown text_pretext preset {preset!r}; use one of {PRESETS}.")
  config = defaults.base_config(preset)
  word2vec = preset == "word2vec"
  config.data.source = "text"
  config.data.text = ml_collections.ConfigDict(dict(text_tasks.DEFAULTS))
  config.data.text.task = preset
  config.data.text.tokens = "words" if word2vec else "bpe"
  if preset == "emoji":  # a user's posts: --config.data.text.text_dir=...
    config.data.text.prose_only = False
    config.data.text.min_words = 2
    config.data.text.emoji = EMOJI
  # Evaluation reads the same paragraphs and tokens (references: overriding
  # a config.data.text field on the command line changes both).
  config.eval.data.source = "text"
  config.eval.data.text = ml_collections.ConfigDict(
      {field: config.data.text.get_ref(field) for field in config.data.text
       if field not in ("task", "copies")})
  config.eval.data.text.task = "word2vec" if word2vec else "plain"
  config.eval.data.text.copies = 1
  config.eval.protocols = "knn,linear,collapse"
  config.eval.random_init_protocols = "knn,linear,collapse"
  config.eval.knn_k = 20  # ~1,600 training paragraphs per book
  # No image views: the records are token ids.
  config.augment = ml_collections.ConfigDict()

  config.model = ml_collections.ConfigDict()
  config.model.name = "transformer"
  config.model.width = 128
  config.model.depth = 4
  config.model.num_heads = 4
  config.model.mlp_ratio = 4.0
  config.model.position = "rotary"  # rotary | learned
  config.model.dropout_rate = 0.0
  config.model.dtype = "float32"

  config.masked_lm = ml_collections.ConfigDict(dict(rate=0.15))
  config.gap_sentences = ml_collections.ConfigDict(dict(decoder_depth=2))
  config.word2vec = ml_collections.ConfigDict(dict(
      dim=100, window=5, negatives=5, pairs_per_example=64, subsample=1e-3,
      noise_power=0.75))

  defaults.use_adam(config, base_lr=5e-3 if word2vec else 5e-4,
                    weight_decay=0.0 if word2vec else 0.01)
  config.optim.warmup_steps = 50
  config.train.batch_size = 64
  # word2vec's step is ~100x cheaper than a Transformer's; it needs more.
  config.train.num_steps = 3000 if word2vec else 300
  config.train.checkpoint_every_steps = 1000 if word2vec else 100
  return config
