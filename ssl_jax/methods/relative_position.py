"""Context prediction: Unsupervised Visual Representation Learning by Context
Prediction.

Doersch, Gupta, Efros (ICCV 2015), https://arxiv.org/abs/1505.05192

- Networks: encoder f (the ResNet of ``config.model``), shared by the two
  patches (the paper's late-fusion pair of AlexNet towers with tied
  weights); classifier c (an MLP, ``relative_position.head_layers``) on the
  two feature vectors concatenated, giving 8 logits.
- Views: one augmented view of each image (``config.augment``); on it a
  3x3 grid of ``patch_size`` squares separated by ``gap`` pixels is placed
  at random, and the centre patch and one of its 8 neighbours, drawn
  uniformly, are cut out, each shifted by up to ``jitter`` pixels
  (``augment.relative_position_pair``). The gap and the jitter keep the
  network from matching low-level edges; with ``drop_colour`` two of the
  three colour channels of each patch are replaced by noise, against the
  chromatic-aberration shortcut the paper found.
- Loss: cross-entropy of the neighbour's position (``losses.classification``).
- State updates: the optimizer step and BatchNorm statistics.

Evaluation encodes the centred 3x3 grid of patches of the test view (no
jitter, no colour dropping) and concatenates their 9 feature vectors: the
encoder only ever sees ``patch_size`` patches (``context.ContextMethod``).
"""

import jax
import jax.numpy as jnp

from ssl_jax import augment
from ssl_jax.methods import base
from ssl_jax.methods import context

NUM_NEIGHBOURS = 8


class RelativePosition(context.ContextMethod):
  """Doersch et al.'s context prediction; see the module docstring."""

  name = "relative_position"

  def __init__(self, config, num_classes, total_steps, axis_name=base.BATCH_AXIS):
    section = config.relative_position
    self.patch_size = section.patch_size
    self.gap = section.gap
    self.jitter = section.jitter
    self.drop_colour = section.drop_colour
    self.noise_scale = section.noise_scale
    super().__init__(config, num_classes, total_steps, axis_name)

  def num_pretext_classes(self):
    return NUM_NEIGHBOURS

  def pretext_batch(self, keys, images):
    keys = context.split_keys(keys, 2)
    views = augment.batch_views(keys[:, 0], images, self.view_recipes[0])
    centre, neighbour, label = jax.vmap(
        lambda k, v: augment.relative_position_pair(
            k, v, self.patch_size, self.gap, self.jitter,
            drop_colour=self.drop_colour, noise_scale=self.noise_scale))(
                keys[:, 1], views)
    return jnp.stack([centre, neighbour], axis=1), label[:, None]

  def eval_parts(self, views):
    return context.centred_tiles(views, self.patch_size,
                                 normalize_tiles=False)
