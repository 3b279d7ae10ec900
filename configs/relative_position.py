r"""Relative patch position (context prediction; Doersch, Gupta, Efros 2015,
arXiv 1505.05192) configs.

    python -m ssl_jax.main --config=configs/relative_position.py:cifar10 --workdir=runs/relative_position_cifar10

Every preset: a 3x3 grid of patches separated by gaps at a random place in
the augmented view (crop and flip, no colour distortion), the centre patch
and one of its 8 neighbours, each jittered, two colour channels of each
replaced by noise (colour dropping); the shared encoder on both patches, a
classifier MLP on their concatenated features; SGD with momentum 0.9.

Presets:
  cifar10  CIFAR-10: 8-px patches, 2-px gaps, 1-px jitter (a 30-px grid in
           the 32-px view); ResNet-18 with the CIFAR stem, batch 128, SGD
           lr 0.1, weight decay 5e-4, 100 epochs.
  imagenet ImageNet through tfds: the paper's 96-px patches, 48-px gaps and
           up to 7 px of jitter, which need 398-px views (the paper resizes
           images to 150k-450k pixels); ResNet-50, batch 256.

There is no digits preset: an 8x8 digit has no room for a grid of patches
with gaps.
"""

import ml_collections

from ssl_jax.augment import recipes
from ssl_jax.train import defaults


def get_config(preset="cifar10"):
  """Returns the relative-position config for ``preset`` (cifar10, imagenet)."""
  presets = {"cifar10": _cifar10, "imagenet": _imagenet}
  if preset == "digits":
    raise ValueError(
        "relative_position has no digits preset: an 8x8 digit has no room for "
        "a 3x3 grid of patches with gaps; use configs/relative_position.py:"
        "cifar10.")
  if preset not in presets:
    raise ValueError(f"unknown relative_position preset {preset!r}; use one "
                     f"of {sorted(presets)}.")
  config = defaults.base_config("relative_position")
  config.relative_position = ml_collections.ConfigDict()
  config.relative_position.patch_size = 8
  config.relative_position.gap = 2
  config.relative_position.jitter = 1
  config.relative_position.drop_colour = True
  config.relative_position.noise_scale = 0.01  # of the kept channel's std
  config.relative_position.head_layers = 2  # on the 2 features concatenated
  config.relative_position.head_hidden_dim = 256
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
  config.augment = recipes.simclr_imagenet(crop_size=398)
  config.relative_position.patch_size = 96
  config.relative_position.gap = 48
  config.relative_position.jitter = 7
  config.relative_position.head_hidden_dim = 4096
  config.train.batch_size = 256
  config.train.num_epochs = 30.0
