"""The online linear probe that every method trains beside its objective.

A linear classifier on ``stop_gradient(h)``, the encoder's representation:
its cross-entropy is added to the method's loss, but the stop-gradient keeps
it from shaping the representation (SimCLR's code, BYOL Sec. 4 "online
evaluation"). Its accuracy on the augmented training batches tracks
representation quality during pretraining; it is reported as "online", apart
from the offline linear probe.
"""

import flax.linen as nn
from jax import lax
import jax.numpy as jnp
import optax


class OnlineProbe(nn.Module):
  """Logits of a linear classifier on stop-gradient features (float32)."""

  num_classes: int

  @nn.compact
  def __call__(self, features):
    features = lax.stop_gradient(features).astype(jnp.float32)
    return nn.Dense(self.num_classes)(features)


def probe_loss(logits, labels):
  """Mean cross-entropy of the probe and its metrics ``probe_loss``/``probe_acc``."""
  loss = optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()
  accuracy = jnp.mean(jnp.argmax(logits, -1) == labels)
  return loss, {"probe_loss": loss, "probe_acc": accuracy}
