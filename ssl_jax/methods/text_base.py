r"""What the text pretext methods share: token records in, a Transformer
encoder, a task head, and the encoder's pooled features out.

The records come from ``ssl_jax.data.text_tasks`` (``config.data.source=
'text'``): int32 token ids ``(L,)`` as the batch's "image", the paragraph's
book as its label (the online probe's and the evaluation's: author
attribution, 8 classes), and the task's own fields (``batch_fields``).

- Encoder: ``models.TextEncoder`` (pre-LN Transformer with padding masks,
  rotary or learned positions) of ``config.model`` (``name='transformer'``,
  ``width``, ``depth``, ``num_heads``, ``mlp_ratio``, ``position``,
  ``dropout_rate``) over ``config.data.text``'s vocabulary.
- Evaluation features: the encoder's mean over the real tokens of a
  paragraph (``encode``), kNN and linear probe for its author against the
  random-init encoder.
- Losses whose terms are counted per token (masked positions, pointer
  targets, generated tokens) are means over the global batch:
  :func:`global_token_mean` sums numerator and count over the replicas, so
  8 devices give the numbers of 1.
"""

from typing import Optional

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import lax

from ssl_jax import models
from ssl_jax.data import text_tasks
from ssl_jax.methods import base
from ssl_jax.train import probe as probe_lib

POSITIONS = ("rotary", "learned")


def build_text_encoder(model_config, vocab_size, max_length):
  """The ``TextEncoder`` named by ``config.model``."""
  if model_config.name != "transformer":
    raise ValueError(
        f"the text methods need config.model.name='transformer', got "
        f"{model_config.name!r}.")
  if model_config.position not in POSITIONS:
    raise ValueError(
        f"config.model.position={model_config.position!r}; use one of "
        f"{POSITIONS}.")
  return models.TextEncoder(
      vocab_size=vocab_size, width=int(model_config.width),
      depth=int(model_config.depth), num_heads=int(model_config.num_heads),
      mlp_ratio=float(model_config.mlp_ratio), max_length=max_length,
      position=model_config.position,
      dropout_rate=float(model_config.dropout_rate),
      dtype=base.compute_dtype(model_config.dtype))


def global_token_mean(values, weights, axis_name):
  r"""``sum(w v) / sum(w)`` over every replica's tokens, as the step's
  per-replica loss (``base.global_loss_as_replica_mean``)."""
  values = values.astype(jnp.float32)
  weights = weights.astype(jnp.float32)
  total, count = jnp.sum(values * weights), jnp.sum(weights)
  if axis_name is not None:
    total, count = lax.psum(total, axis_name), lax.psum(count, axis_name)
  return base.global_loss_as_replica_mean(total / jnp.maximum(count, 1.0),
                                          axis_name)


def token_cross_entropy(logits, targets, valid):
  """Per-position cross-entropy ``(...)`` and correctness, with ``targets``
  clipped to a valid class where ``valid`` is False."""
  logits = logits.astype(jnp.float32)
  safe = jnp.where(valid, targets, 0)
  log_p = jax.nn.log_softmax(logits, axis=-1)
  nll = -jnp.take_along_axis(log_p, safe[..., None], axis=-1)[..., 0]
  correct = (jnp.argmax(logits, axis=-1) == safe) & valid
  return nll, correct


class TextTaskNetwork(nn.Module):
  """The encoder, the task's ``head`` and the online probe.

  ``__call__(inputs, train)``: ``inputs["tokens"]`` ``(B, L)``; gives the
  encoder's outputs (``tokens``, ``pooled``, ``cls``, ``mask``),
  ``probe_logits`` on stop-gradient pooled features, ``head`` (the head's
  output on the encoder's outputs and the inputs; None without a head) and,
  with ``inputs["mlm_positions"]`` ``(B, K)``, ``mlm_logits`` ``(B, K, V)``
  at those positions (the output layer tied to the token embedding).
  """

  encoder: nn.Module
  head: Optional[nn.Module]
  num_classes: int

  @nn.compact
  def __call__(self, inputs, train: bool):
    encoded = self.encoder(inputs["tokens"], train=train)
    outputs = dict(encoded)
    outputs["probe_logits"] = probe_lib.OnlineProbe(
        self.num_classes, name="online_probe")(encoded["pooled"])
    outputs["head"] = (None if self.head is None
                       else self.head(encoded, inputs))
    if "mlm_positions" in inputs:
      hidden = jnp.take_along_axis(
          encoded["tokens"], inputs["mlm_positions"][..., None], axis=1)
      outputs["mlm_logits"] = self.encoder.mlm_logits(hidden)
    return outputs

  def encode(self, tokens):
    return self.encoder(tokens, train=False)["pooled"]


class TextMethod(base.Method):
  """A text pretext method: subclasses set ``name``, ``batch_fields`` and
  ``task``, build ``self.network`` (default: :class:`TextTaskNetwork` with
  ``self.build_head()``) and write ``loss_fn``."""

  task = None

  def __init__(self, config, num_classes, total_steps, axis_name=base.BATCH_AXIS):
    super().__init__(config, num_classes, total_steps, axis_name)
    settings = config.data.get("text")
    if config.data.source != "text" or settings is None:
      raise ValueError(
          f"{self.name} trains on text: set config.data.source='text' and a "
          "config.data.text section (see ssl_jax.data.text_tasks); got "
          f"config.data.source={config.data.source!r}.")
    if settings.task != self.task:
      raise ValueError(
          f"{self.name} reads the records of config.data.text.task="
          f"{self.task!r}, got {settings.task!r}.")
    self.max_length = int(settings.max_length)
    self.vocab_size = text_tasks.vocab_size(settings)
    self.network = self.build_network(config, num_classes)

  def build_network(self, config, num_classes):
    return TextTaskNetwork(
        encoder=build_text_encoder(config.model, self.vocab_size,
                                   self.max_length),
        head=self.build_head(), num_classes=num_classes)

  def build_head(self):
    """The task's head module, or None."""
    return None

  def init_inputs(self, image_shape):
    if tuple(image_shape) != (self.max_length,):
      raise ValueError(
          f"{self.name} reads token records of shape ({self.max_length},); "
          f"the data set gives {tuple(image_shape)}. Use config.data.source="
          "'text'.")
    return {"tokens": jnp.zeros((2, self.max_length), jnp.int32)}

  def forward(self, params, state, inputs):
    """The network in training mode: ``(outputs, {})`` (no BatchNorm)."""
    outputs = self.network.apply(
        {"params": params, "batch_stats": state.batch_stats}, inputs,
        train=True, rngs={"dropout": jax.random.fold_in(state.rng, state.step)})
    return outputs

  def finish(self, loss, metrics, outputs, labels, axis_name):
    """Adds the online probe and the common metrics; the step's return."""
    class_labels = labels["label"] if isinstance(labels, dict) else labels
    probe_loss, common = self.common_metrics(
        outputs["probe_logits"], class_labels, outputs["pooled"], axis_name)
    metrics.update(common, pretext_loss=loss)
    return loss + probe_loss, ({}, metrics)

  def encode(self, variables, tokens):
    """Pooled encoder features of token records ``(B, L)``."""
    return self.network.apply(variables, jnp.asarray(tokens, jnp.int32),
                              method="encode")
