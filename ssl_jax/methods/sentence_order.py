r"""Sentence-order prediction (ALBERT).

Lan et al., "ALBERT: A Lite BERT for Self-supervised Learning of Language
Representations", ICLR 2020 (https://arxiv.org/abs/1909.11942), Sec. 3.1:
two consecutive segments in their order (positive) or swapped (negative),
so that topic cannot tell them apart (unlike BERT's next-sentence
prediction, whose negatives come from other documents) and only
coherence can.

- Views: ``CLS a SEP b SEP`` of two consecutive sentences of a paragraph,
  swapped with probability 1/2 (``text_tasks``, task ``'sentence_order'``;
  drawn per record).
- Networks: the Transformer encoder (``text_base``) and a linear
  classifier on the CLS state (BERT's pooler omitted).
- Loss: the binary cross-entropy (as 2-way softmax) of "swapped", plus the
  online probe. Metric: ``order_accuracy``.
"""

import flax.linen as nn
import jax.numpy as jnp

from ssl_jax import losses
from ssl_jax.methods import text_base


class ClsClassifier(nn.Module):
  """A linear classifier on the encoder's ``cls`` (or ``pooled``) state."""

  num_classes: int
  read: str = "cls"

  @nn.compact
  def __call__(self, encoded, inputs):
    del inputs
    return nn.Dense(self.num_classes, name="classifier")(
        encoded[self.read].astype(jnp.float32))


class SentenceOrder(text_base.TextMethod):
  """ALBERT's sentence-order prediction; see the module docstring."""

  name = "sentence_order"
  task = "sentence_order"
  batch_fields = ("target",)

  def build_head(self):
    return ClsClassifier(2)

  def loss_fn(self, params, state, keys, images, labels, axis_name):
    del keys
    outputs = self.forward(params, state, {"tokens": images})
    loss, aux = losses.classification(outputs["head"], labels["target"])
    metrics = {"order_accuracy": aux["accuracy"]}
    return self.finish(loss, metrics, outputs, labels, axis_name)
