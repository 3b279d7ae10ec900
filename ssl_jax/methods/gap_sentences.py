r"""Gap-sentence generation (PEGASUS).

Zhang, Zhao, Saleh, Liu, "PEGASUS: Pre-training with Extracted
Gap-sentences for Abstractive Summarization", ICML 2020
(https://arxiv.org/abs/1912.08777), Sec. 3.1: whole sentences are removed
from a document and generated from the rest; the removed ones are the most
"important", the sentences with the highest ROUGE-1 F1 against the rest
of the document, each scored on its own ("Ind-Orig").

- Views: a paragraph with its gap sentences (``gap_ratio`` of them, at
  least one) replaced by the mask-sentence token, ``CLS ...``; the target:
  the gap sentences in order, then EOS (``text_tasks``, task
  ``'gap_sentences'``; the selection is deterministic).
- Networks: ``models.TextEncoderDecoder``: the Transformer encoder of
  ``config.model`` (the network evaluated afterwards) and a causal
  decoder with cross-attention (``gap_sentences.decoder_depth`` blocks),
  the output layer tied to the shared token embedding; the online probe on
  the encoder's pooled states.
- Loss: the teacher-forced cross-entropy of the target tokens (PAD
  excluded) over the global batch, plus the online probe. Metric:
  ``token_accuracy``.

``generate`` decodes greedily; ``experiments/text_pretext.py`` prints
generated gap sentences of held-out paragraphs beside the truth.
"""

import flax.linen as nn
import jax.numpy as jnp

from ssl_jax import models
from ssl_jax.data import text as text_lib
from ssl_jax.methods import base
from ssl_jax.methods import text_base
from ssl_jax.train import probe as probe_lib


class GapSentenceNetwork(nn.Module):
  """Encoder-decoder and online probe; ``encode`` gives the encoder's
  pooled states, ``generate`` greedy output tokens."""

  model: nn.Module
  num_classes: int

  def setup(self):
    self.online_probe = probe_lib.OnlineProbe(self.num_classes)

  def __call__(self, inputs, train: bool):
    encoded = self.model.encode(inputs["tokens"], train)
    hidden = self.model.decode_hidden(encoded, inputs["target_input"], train)
    return {"logits": self.model.encoder.mlm_logits(hidden),
            "pooled": encoded["pooled"],
            "probe_logits": self.online_probe(encoded["pooled"])}

  def encode(self, tokens):
    return self.model.encode(tokens)["pooled"]

  def generate(self, tokens, max_length):
    return self.model.generate(tokens, max_length, text_lib.BOS_ID,
                               text_lib.EOS_ID)


class GapSentences(text_base.TextMethod):
  """PEGASUS's gap-sentence generation; see the module docstring."""

  name = "gap_sentences"
  task = "gap_sentences"
  batch_fields = ("target_tokens",)

  def __init__(self, config, num_classes, total_steps, axis_name=base.BATCH_AXIS):
    self.target_length = int(config.data.text.target_length)
    self.decoder_depth = int(config.gap_sentences.decoder_depth)
    super().__init__(config, num_classes, total_steps, axis_name)

  def build_network(self, config, num_classes):
    encoder = text_base.build_text_encoder(config.model, self.vocab_size,
                                           self.max_length)
    model = models.TextEncoderDecoder(
        vocab_size=self.vocab_size, width=encoder.width, depth=encoder.depth,
        decoder_depth=self.decoder_depth, num_heads=encoder.num_heads,
        mlp_ratio=encoder.mlp_ratio,
        max_length=max(self.max_length, self.target_length),
        position=encoder.position, dropout_rate=encoder.dropout_rate,
        dtype=encoder.dtype)
    return GapSentenceNetwork(model, num_classes)

  def init_inputs(self, image_shape):
    inputs = super().init_inputs(image_shape)
    inputs["target_input"] = jnp.zeros((2, self.target_length), jnp.int32)
    return inputs

  def loss_fn(self, params, state, keys, images, labels, axis_name):
    del keys
    target = labels["target_tokens"]
    target_input = jnp.concatenate(
        [jnp.full_like(target[:, :1], text_lib.BOS_ID), target[:, :-1]], 1)
    outputs = self.forward(params, state, {"tokens": images,
                                           "target_input": target_input})
    real = target != text_lib.PAD_ID
    nll, correct = text_base.token_cross_entropy(outputs["logits"], target,
                                                 real)
    loss = text_base.global_token_mean(nll, real, axis_name)
    metrics = {"token_accuracy": jnp.sum(correct) / jnp.maximum(
        jnp.sum(real), 1)}
    return self.finish(loss, metrics, outputs, labels, axis_name)

  def generate(self, variables, tokens):
    """Greedy output tokens ``(B, target_length)`` for source tokens."""
    return self.network.apply(variables, jnp.asarray(tokens, jnp.int32),
                              self.target_length, method="generate")
