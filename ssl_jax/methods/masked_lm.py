r"""Masked language modelling (BERT).

Devlin, Chang, Lee, Toutanova, "BERT: Pre-training of Deep Bidirectional
Transformers for Language Understanding", NAACL 2019
(https://arxiv.org/abs/1810.04805), Sec. 3.1 "Task #1: Masked LM".

- Views: a paragraph's tokens (``text_tasks``, task ``'masked_lm'``); at
  every step each real, non-special token is selected with probability
  ``masked_lm.rate`` (15%); of the selected, 80% become [MASK], 10% a
  random token, 10% stay (``augment.text.mask_tokens``), drawn on device
  from the example's key, so every epoch masks anew (RoBERTa's dynamic
  masking; BERT fixed 10 maskings per sequence).
- Networks: the Transformer encoder (``text_base``) and BERT's output
  layer tied to the token embedding (only a bias of its own).
- Loss: the cross-entropy of the original token at the selected positions,

  .. math:: \mathcal{L} = -\frac{1}{|M|}\sum_{i \in M}
     \log p_\theta(x_i \mid \tilde x),

  over the selected positions M of the global batch (at most
  ``max_predictions`` per sequence are scored, as BERT's
  ``max_predictions_per_seq``), plus the online probe. Metrics:
  ``mlm_accuracy``, ``selected_fraction``.
- State updates: the optimizer step.
"""

import math

import jax
import jax.numpy as jnp

from ssl_jax.augment import text as text_augment
from ssl_jax.data import text as text_lib
from ssl_jax.methods import base
from ssl_jax.methods import text_base


class MaskedLM(text_base.TextMethod):
  """BERT's masked LM with an online probe; see the module docstring."""

  name = "masked_lm"
  task = "masked_lm"

  def __init__(self, config, num_classes, total_steps, axis_name=base.BATCH_AXIS):
    super().__init__(config, num_classes, total_steps, axis_name)
    self.rate = float(config.masked_lm.rate)
    if not 0.0 < self.rate < 1.0:
      raise ValueError(f"config.masked_lm.rate={self.rate} must lie in (0, 1).")
    # Enough for a Binomial(L, rate) draw but in ~1e-6 of sequences.
    self.max_predictions = min(self.max_length, math.ceil(
        self.max_length * self.rate + 5 * math.sqrt(
            self.max_length * self.rate * (1 - self.rate))))

  def init_inputs(self, image_shape):
    inputs = super().init_inputs(image_shape)
    inputs["mlm_positions"] = jnp.zeros((2, self.max_predictions), jnp.int32)
    return inputs

  def corrupt(self, keys, tokens):
    """``(inputs, targets, selected)`` of BERT's masking, per example key."""
    return jax.vmap(lambda k, t: text_augment.mask_tokens(
        k, t, t != text_lib.PAD_ID, mask_id=text_lib.MASK_ID,
        vocab_size=self.vocab_size, first_regular_id=text_lib.FIRST_REGULAR_ID,
        rate=self.rate))(keys, tokens)

  def loss_fn(self, params, state, keys, images, labels, axis_name):
    inputs, targets, selected = self.corrupt(keys, images)
    # The selected positions first (stable), then the rest, unscored.
    order = jnp.argsort(~selected, axis=1, stable=True)
    positions = order[:, :self.max_predictions].astype(jnp.int32)
    scored = jnp.take_along_axis(selected, positions, axis=1)
    wanted = jnp.take_along_axis(targets, positions, axis=1)
    outputs = self.forward(params, state, {"tokens": inputs,
                                           "mlm_positions": positions})
    nll, correct = text_base.token_cross_entropy(outputs["mlm_logits"], wanted,
                                                 scored)
    loss = text_base.global_token_mean(nll, scored, axis_name)
    count = jnp.maximum(jnp.sum(scored), 1)
    metrics = {"mlm_accuracy": jnp.sum(correct) / count,
               "selected_fraction": jnp.sum(selected) / jnp.maximum(
                   jnp.sum(images != text_lib.PAD_ID), 1)}
    return self.finish(loss, metrics, outputs, labels, axis_name)
