"""RotNet: Unsupervised Representation Learning by Predicting Image Rotations.

Gidaris, Singh, Komodakis (ICLR 2018), https://arxiv.org/abs/1803.07728

- Networks: encoder f (the ResNet of ``config.model``) on each rotated
  view; classifier c (an MLP over f's features, ``rotation.head_layers``)
  giving 4 logits; an online linear probe on the upright view's features.
- Views: one augmented view x of each image (``config.augment``), then all
  four of its rotations by 0, 90, 180 and 270 degrees
  (``augment.all_rotations``) in the same batch, as the paper found best:
  every image is seen at every rotation in each step.
- Loss: cross-entropy of the rotation, ``-(1/4) sum_k log p(k | rot_k(x))``
  (``losses.classification``), plus the probe's cross-entropy.
- State updates: the optimizer step and BatchNorm statistics (over the 4B
  rotated views).

Shared parts are in ``ssl_jax.methods.context``.
"""

import jax
import jax.numpy as jnp

from ssl_jax import augment
from ssl_jax.methods import context

NUM_ROTATIONS = 4


class Rotation(context.ContextMethod):
  """RotNet; see the module docstring."""

  name = "rotation"
  classify_each_part = True
  online_probe = True

  def num_pretext_classes(self):
    return NUM_ROTATIONS

  def pretext_batch(self, keys, images):
    views = augment.batch_views(keys, images, self.view_recipes[0])
    parts = jax.vmap(augment.all_rotations)(views)
    targets = jnp.broadcast_to(jnp.arange(NUM_ROTATIONS, dtype=jnp.int32),
                               parts.shape[:2])
    return parts, targets
