r"""Rotation prediction (RotNet; Gidaris, Singh, Komodakis 2018,
arXiv 1803.07728) configs.

    python -m ssl_jax.main --config=configs/rotation.py:digits --workdir=runs/rotation_digits
    python -m ssl_jax.main --config=configs/rotation.py:cifar10 --workdir=runs/rotation_cifar10

Every preset: each image's augmented view (crop and flip, no colour
distortion) at all four rotations in the same batch, the encoder on each,
a classifier MLP over 4 rotations, SGD with momentum 0.9 (the paper's).

Presets:
  digits   (default) the scikit-learn digits, 8x8: ResNet-10 at width 1/4,
           batch 256, 20 epochs.
  cifar10  CIFAR-10 from an npz folder: ResNet-18 with the CIFAR stem,
           batch 128, SGD lr 0.1, weight decay 5e-4, 100 epochs (the
           paper's CIFAR-10 schedule, Sec. 3.1; it uses a NIN).
  imagenet ImageNet through tfds (imagenet2012): ResNet-50 at 224 px,
           batch 192 (768 rotated views), SGD lr 0.1, weight decay 5e-4,
           35 epochs.
"""

import ml_collections

from ssl_jax.augment import recipes
from ssl_jax.train import defaults


def get_config(preset="digits"):
  """Returns the rotation config for ``preset`` (digits, cifar10, imagenet)."""
  presets = {"digits": _digits, "cifar10": _cifar10, "imagenet": _imagenet}
  if preset not in presets:
    raise ValueError(
        f"unknown rotation preset {preset!r}; use one of {sorted(presets)}.")
  config = defaults.base_config("rotation")
  config.rotation = ml_collections.ConfigDict()
  config.rotation.head_layers = 2  # Dense-BN-ReLU-Dense on f's features
  config.rotation.head_hidden_dim = 256
  defaults.use_sgd(config, base_lr=0.1, weight_decay=5e-4)
  presets[preset](config)
  config.augment = recipes.geometric_only(config.augment)
  return config


def _digits(config):
  defaults.use_digits(config)
  config.rotation.head_hidden_dim = 64


def _cifar10(config):
  defaults.use_cifar10(config)
  config.train.batch_size = 128
  config.train.num_epochs = 100.0


def _imagenet(config):
  defaults.use_imagenet(config)
  config.train.batch_size = 192
  config.train.num_epochs = 35.0
