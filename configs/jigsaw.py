r"""Jigsaw puzzles (Noroozi & Favaro 2016, arXiv 1603.09246) configs.

    python -m ssl_jax.main --config=configs/jigsaw.py:cifar10 --workdir=runs/jigsaw_cifar10
    python experiments/jigsaw_permutations.py   # the Hamming-distance table

Every preset: the augmented view (crop and flip, no colour distortion) cut
into a 3x3 grid of cells, one jittered tile per cell, each tile
standardised, shuffled by a permutation from a set chosen greedily for
maximal Hamming distance (``jigsaw.selection='max'``, the paper's
Algorithm 1; 'target' with ``jigsaw.target_distance``, 'min' and 'random'
make the ablation's sets); the shared tile encoder, a classifier MLP on the
9 features concatenated; SGD with momentum 0.9. The set is built once and
cached (``$SSL_JAX_CACHE_DIR`` or ``~/.cache/ssl_jax/permutations``).

Presets:
  cifar10  CIFAR-10: 10-px cells, 8-px tiles (gaps of 0-4 px), 100
           permutations; ResNet-18 with the CIFAR stem, batch 128, SGD lr
           0.1, weight decay 5e-4, 100 epochs.
  imagenet ImageNet through tfds: the paper's 64-px tiles in 85-px cells
           of a 255-px view, 1000 permutations, SGD lr 0.01, batch 256,
           ResNet-50 as the tile encoder (the paper's is an AlexNet).

There is no digits preset: the 8x8 digits make 2-px tiles.
"""

import ml_collections

from ssl_jax.augment import recipes
from ssl_jax.train import defaults


def get_config(preset="cifar10"):
  """Returns the jigsaw config for ``preset`` (cifar10 or imagenet)."""
  presets = {"cifar10": _cifar10, "imagenet": _imagenet}
  if preset == "digits":
    raise ValueError("jigsaw has no digits preset: an 8x8 digit makes 2-px "
                     "tiles; use configs/jigsaw.py:cifar10.")
  if preset not in presets:
    raise ValueError(f"unknown jigsaw preset {preset!r}; use one of "
                     f"{sorted(presets)}.")
  config = defaults.base_config("jigsaw")
  config.jigsaw = ml_collections.ConfigDict()
  config.jigsaw.tile_size = 8
  config.jigsaw.normalize_tiles = True
  config.jigsaw.num_permutations = 100
  config.jigsaw.selection = "max"  # max | target | min | random
  config.jigsaw.target_distance = 6.4  # read with selection='target' only
  config.jigsaw.permutation_seed = 0
  config.jigsaw.head_layers = 2  # on the 9 tile features concatenated
  config.jigsaw.head_hidden_dim = 512
  defaults.use_sgd(config, base_lr=0.1, weight_decay=5e-4)
  presets[preset](config)
  config.augment = recipes.geometric_only(config.augment)
  return config


def _cifar10(config):
  defaults.use_cifar10(config)
  config.train.batch_size = 128
  config.train.num_epochs = 100.0


def _imagenet(config):
  defaults.use_imagenet(config)
  config.augment = recipes.simclr_imagenet(crop_size=255)
  config.jigsaw.tile_size = 64
  config.jigsaw.num_permutations = 1000
  config.jigsaw.head_hidden_dim = 4096
  config.optim.base_lr = 0.01
  config.train.batch_size = 256
  config.train.num_epochs = 70.0
