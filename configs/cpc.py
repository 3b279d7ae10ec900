r"""CPC for images (van den Oord et al. 2018, arXiv 1807.03748; CPC v2,
Hénaff et al. 2020, arXiv 1905.09272) configs.

    python -m ssl_jax.main --config=configs/cpc.py:digits --workdir=runs/cpc_digits
    python -m ssl_jax.main --config=configs/cpc.py:cifar10 --workdir=runs/cpc_cifar10

Every preset: one crop-and-flip view per image cut into a grid of
overlapping patches at half-patch stride (the papers' layout), the ResNet on
every patch, a row-causal context network of 2 residual blocks, linear
predictions of the latents 1..K rows below, InfoNCE against every patch of
the global batch at temperature 1 (the papers' raw dot products), Adam
(CPC v2's optimiser) at lr 1e-3.

Presets:
  digits   (default) the scikit-learn digits, 8x8: 4 px patches every 2 px
           (3x3 grid), K=1, ResNet-10 at width 1/4, batch 256, 20 epochs.
  cifar10  CIFAR-10 from an npz folder: 8 px patches every 4 px (7x7 grid),
           K=3, ResNet-18 with the CIFAR stem, batch 128, 100 epochs;
           cosine scores at temperature 0.1 (``cpc.normalize``): with raw
           dot products the first 40 steps' loss sat above chance (37 to
           10.9 against log 6272 = 8.7), with cosine scores below it
           from step 5.
  imagenet ImageNet through tfds: 240 px views, 64 px patches every 32 px
           (6x6 grid), K=3, ResNet-50, batch 256, 100 epochs.
"""

import ml_collections

from ssl_jax.augment import recipes
from ssl_jax.train import defaults


def get_config(preset="digits"):
  """Returns the CPC config for ``preset`` (digits, cifar10, imagenet)."""
  presets = {"digits": _digits, "cifar10": _cifar10, "imagenet": _imagenet}
  if preset not in presets:
    raise ValueError(
        f"unknown cpc preset {preset!r}; use one of {sorted(presets)}.")
  config = defaults.base_config("cpc")
  config.cpc = ml_collections.ConfigDict()
  config.cpc.patch_size = 8
  config.cpc.patch_stride = 4
  config.cpc.prediction_steps = 3
  config.cpc.context_dim = 128
  config.cpc.context_blocks = 2
  config.cpc.temperature = 1.0
  config.cpc.normalize = False  # True: cosine scores / temperature
  presets[preset](config)
  defaults.use_adam(config, base_lr=1e-3)
  config.augment = recipes.geometric_only(config.augment)
  return config


def _digits(config):
  defaults.use_digits(config)
  config.cpc.patch_size = 4
  config.cpc.patch_stride = 2
  config.cpc.prediction_steps = 1
  config.cpc.context_dim = 32


def _cifar10(config):
  defaults.use_cifar10(config)
  config.cpc.normalize = True
  config.cpc.temperature = 0.1
  config.train.batch_size = 128
  config.train.num_epochs = 100.0


def _imagenet(config):
  defaults.use_imagenet(config)
  config.augment.crop_size = 240
  config.cpc.patch_size = 64
  config.cpc.patch_stride = 32
  config.train.batch_size = 256
  config.train.num_epochs = 100.0
