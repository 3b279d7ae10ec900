r"""BART's document-level noising as prediction tasks: sentence permutation
and document rotation.

Lewis et al., "BART: Denoising Sequence-to-Sequence Pre-training for
Natural Language Generation, Translation, and Comprehension", ACL 2020
(https://arxiv.org/abs/1910.13461), Sec. 2.2. BART reconstructs the whole
document with a decoder; here each noise is turned into the label it
defines, read off the encoder (the sentence-permutation and rotation
objectives of its Table 1 ablation, as classification):

- ``sentence_permutation``: the first ``max_sentences`` sentences of a
  paragraph, shuffled, ``CLS s SEP s SEP ...`` (``text_tasks``); for every
  shown sentence, a linear classifier on the state of its first token
  predicts its original position (``max_sentences`` classes); cross-entropy
  over the shown sentences of the global batch. Metric:
  ``position_accuracy``, ``order_exact`` (all of a paragraph's sentences
  right: the permutation inverted).
- ``document_rotation``: a paragraph's tokens rotated to start at a uniform
  token; a linear score per token, softmax over the real tokens, predicts
  where the original start is (the rotation point); cross-entropy.
  Metric: ``rotation_accuracy``.

Networks: the Transformer encoder (``text_base``) and the linear head; plus
the online probe.
"""

import flax.linen as nn
import jax.numpy as jnp

from ssl_jax.methods import text_base


class SentencePositionHead(nn.Module):
  """Logits ``(B, S, S)`` over original positions, from the states at the
  shown sentences' starts (``inputs["starts"]``, -1 for none)."""

  max_sentences: int

  @nn.compact
  def __call__(self, encoded, inputs):
    starts = jnp.maximum(inputs["starts"], 0)
    hidden = jnp.take_along_axis(encoded["tokens"], starts[..., None], axis=1)
    return nn.Dense(self.max_sentences, name="classifier")(
        hidden.astype(jnp.float32))


class RotationPointHead(nn.Module):
  """One logit per token ``(B, L)``, padding at -inf."""

  @nn.compact
  def __call__(self, encoded, inputs):
    del inputs
    logits = nn.Dense(1, name="scorer")(
        encoded["tokens"].astype(jnp.float32))[..., 0]
    return jnp.where(encoded["mask"], logits, -1e9)


class SentencePermutation(text_base.TextMethod):
  """Predict each shuffled sentence's original position."""

  name = "sentence_permutation"
  task = "sentence_permutation"
  batch_fields = ("starts", "target")

  def __init__(self, config, num_classes, total_steps,
               axis_name=text_base.base.BATCH_AXIS):
    self.max_sentences = int(config.data.text.max_sentences)
    super().__init__(config, num_classes, total_steps, axis_name)

  def build_head(self):
    return SentencePositionHead(self.max_sentences)

  def init_inputs(self, image_shape):
    inputs = super().init_inputs(image_shape)
    inputs["starts"] = jnp.zeros((2, self.max_sentences), jnp.int32)
    return inputs

  def loss_fn(self, params, state, keys, images, labels, axis_name):
    del keys
    outputs = self.forward(params, state, {"tokens": images,
                                           "starts": labels["starts"]})
    target = labels["target"]
    shown = target >= 0
    nll, correct = text_base.token_cross_entropy(outputs["head"], target,
                                                 shown)
    loss = text_base.global_token_mean(nll, shown, axis_name)
    metrics = {
        "position_accuracy": jnp.sum(correct) / jnp.maximum(jnp.sum(shown), 1),
        "order_exact": jnp.mean(jnp.all(correct | ~shown, axis=1)
                                .astype(jnp.float32))}
    return self.finish(loss, metrics, outputs, labels, axis_name)


class DocumentRotation(text_base.TextMethod):
  """Predict the rotation point of a rotated paragraph."""

  name = "document_rotation"
  task = "document_rotation"
  batch_fields = ("target",)

  def build_head(self):
    return RotationPointHead()

  def loss_fn(self, params, state, keys, images, labels, axis_name):
    del keys
    outputs = self.forward(params, state, {"tokens": images})
    nll, correct = text_base.token_cross_entropy(
        outputs["head"], labels["target"], jnp.ones_like(labels["target"],
                                                         bool))
    metrics = {"rotation_accuracy": jnp.mean(correct.astype(jnp.float32))}
    return self.finish(jnp.mean(nll), metrics, outputs, labels, axis_name)
