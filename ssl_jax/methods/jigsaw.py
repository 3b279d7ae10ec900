"""Jigsaw puzzles: Unsupervised Learning of Visual Representations by Solving
Jigsaw Puzzles.

Noroozi & Favaro (ECCV 2016), https://arxiv.org/abs/1603.09246

- Networks: the context-free network: encoder f (the ResNet of
  ``config.model``) applied to each of the 9 tiles on its own, with shared
  weights; classifier c (an MLP, ``jigsaw.head_layers``) on the 9 feature
  vectors concatenated in the shuffled order, giving one logit per
  permutation of the set.
- Views: one augmented view of each image (``config.augment``), cut into a
  3x3 grid of cells; a ``tile_size`` tile at a random place inside each
  cell (random gaps between tiles, so edges cannot be matched), each tile
  standardised on its own (``normalize_tiles``, against low-level
  shortcuts); the tiles are shuffled by a permutation drawn uniformly from
  a fixed set of ``num_permutations`` (``augment.jigsaw``).
- Permutation set: chosen greedily by Hamming distance (the paper's
  Algorithm 1; ``augment.load_or_create_permutations``, cached on disk):
  ``jigsaw.selection`` 'max' (the paper's), 'target' with
  ``target_distance``, 'min' or 'random', so that sets of one size and
  different average distance can be compared (the paper's Table 1;
  ``experiments/jigsaw_permutations.py``).
- Loss: cross-entropy of the permutation's index (``losses.classification``).
- State updates: the optimizer step and BatchNorm statistics.

Evaluation encodes the 9 centred tiles of the test view in reading order
and concatenates their features, the input the classifier reads
(``context.ContextMethod``).
"""

import jax

from ssl_jax import augment
from ssl_jax.methods import base
from ssl_jax.methods import context

GRID = 3


def permutation_set(section):
  """The ``(P, 9)`` permutation set named by a ``jigsaw`` config section."""
  target = section.get("target_distance")
  return augment.load_or_create_permutations(
      section.num_permutations, seed=section.permutation_seed,
      num_tiles=GRID * GRID, selection=section.selection,
      target_distance=target if section.selection == "target" else None)


class Jigsaw(context.ContextMethod):
  """Noroozi & Favaro's jigsaw puzzles; see the module docstring."""

  name = "jigsaw"

  def __init__(self, config, num_classes, total_steps, axis_name=base.BATCH_AXIS):
    section = config.jigsaw
    self.tile_size = section.tile_size
    self.normalize_tiles = section.normalize_tiles
    self.permutations = permutation_set(section)
    super().__init__(config, num_classes, total_steps, axis_name)

  def num_pretext_classes(self):
    return len(self.permutations)

  def pretext_batch(self, keys, images):
    keys = context.split_keys(keys, 2)
    views = augment.batch_views(keys[:, 0], images, self.view_recipes[0])
    tiles, index = jax.vmap(lambda k, v: augment.jigsaw(
        k, v, self.permutations, self.tile_size, grid=GRID,
        normalize_tiles=self.normalize_tiles))(keys[:, 1], views)
    return tiles, index[:, None]

  def eval_parts(self, views):
    return context.centred_tiles(views, self.tile_size, self.normalize_tiles)
