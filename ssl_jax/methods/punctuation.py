r"""Sentence-final punctuation, and emoji, as free labels (DeepMoji).

Felbo et al., "Using millions of emoji occurrences to learn any-domain
representations for detecting sentiment, emotion and sarcasm", EMNLP 2017
(https://arxiv.org/abs/1708.00524): the emoji a writer adds to a text is a
noisy label of its tone, removed from the input and predicted from it. The
novels carry no emoji; their writers' own marks of tone at the end of a
sentence, ``.``, ``!`` and ``?``, play that part here
(``text_pretext.punctuation_label``; user text with emoji takes
``text_pretext.emoji_label`` the same way).

- Views: one sentence without its final mark, ``CLS s`` (``text_tasks``,
  task ``'punctuation'``; every sentence of the training paragraphs that
  ends in one of the marks: about 85% '.', 8% '?', 8% '!').
- Networks: the Transformer encoder (``text_base``) and a linear
  classifier on the mean of its token states.
- Loss: the cross-entropy of the mark, plus the online probe. Metrics:
  ``mark_accuracy`` and ``mark_balanced_accuracy`` (the mean of the
  per-class recalls: the majority class alone scores 1/3).
"""

import jax.numpy as jnp

from ssl_jax import losses
from ssl_jax.data import text_pretext
from ssl_jax.methods import sentence_order
from ssl_jax.methods import text_base


class Punctuation(text_base.TextMethod):
  """Predict a sentence's final mark; see the module docstring."""

  name = "punctuation"
  task = "punctuation"
  batch_fields = ("target",)

  def num_labels(self):
    return len(text_pretext.PUNCTUATION_CLASSES)

  def build_head(self):
    return sentence_order.ClsClassifier(self.num_labels(), read="pooled")

  def loss_fn(self, params, state, keys, images, labels, axis_name):
    del keys
    outputs = self.forward(params, state, {"tokens": images})
    target = labels["target"]
    loss, aux = losses.classification(outputs["head"], target)
    predicted = jnp.argmax(outputs["head"], axis=-1)
    recalls = []
    for c in range(self.num_labels()):
      is_c = target == c
      recalls.append(jnp.sum((predicted == c) & is_c)
                     / jnp.maximum(jnp.sum(is_c), 1))
    metrics = {"mark_accuracy": aux["accuracy"],
               "mark_balanced_accuracy": jnp.mean(jnp.stack(recalls))}
    return self.finish(loss, metrics, outputs, labels, axis_name)


class EmojiPrediction(Punctuation):
  """Predict which emoji of ``config.data.text.emoji`` a text carried."""

  name = "emoji"
  task = "emoji"

  def __init__(self, config, num_classes, total_steps,
               axis_name=text_base.base.BATCH_AXIS):
    self.emoji_set = tuple(str(config.data.text.emoji).split())
    if len(self.emoji_set) < 2:
      raise ValueError(
          "config.data.text.emoji must name at least 2 emoji (separated by "
          f"spaces) to predict, got {config.data.text.emoji!r}.")
    super().__init__(config, num_classes, total_steps, axis_name)

  def num_labels(self):
    return len(self.emoji_set)
