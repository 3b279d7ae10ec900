r"""Colorization (Zhang, Isola, Efros 2016, arXiv 1603.08511) configs.

    python -m ssl_jax.main --config=configs/colorization.py:cifar10 --workdir=runs/colorization_cifar10
    python -m ssl_jax.main --config=configs/colorization.py:imagenet --workdir=gs://bucket/colorization
    python experiments/reconstructions.py --workdir=runs/colorization_cifar10

Every preset: the ResNet of ``config.model`` reading the L channel only,
an upsampling decoder without skip connections, the class-rebalanced
cross-entropy over quantised ab bins (grid 10, soft-encoded on the 5
nearest bins with sigma 5, lambda 1/2, annealed-mean decoding at T = 0.38;
Sec. 2), one view per image with crop and flip and no colour distortion
(the colours are the labels). ``--config.colorization.loss=regression`` is
the plain L2 baseline on ab. There is no digits preset: the digits have
one channel and no colour.

Presets:
  cifar10  CIFAR-10 from an npz folder (default ../shared/datasets/cifar10):
           ResNet-18 with the CIFAR stem, colour predicted at 16x16
           (output stride 2), batch 256, 100 epochs, Adam (beta2 0.99,
           weight decay 1e-3 as the paper) at lr 1e-3 without scaling
           (the paper's 3e-5 is for batch 40 over 450k iterations).
  imagenet ImageNet through tfds (imagenet2012): ResNet-50 at 224 px,
           colour at 56x56 (a quarter, as the paper), the paper's Adam
           (lr 3e-5, betas 0.9 / 0.99, weight decay 1e-3) at batch 40,
           450k steps.

Any field can be overridden on the command line, e.g.
``--config.colorization.rebalance=False``.
"""

import ml_collections

from ssl_jax.augment import recipes
from ssl_jax.train import defaults


def get_config(preset="cifar10"):
  """Returns the colorization config for ``preset`` (cifar10 or imagenet)."""
  presets = {"cifar10": _cifar10, "imagenet": _imagenet}
  if preset == "digits":
    raise ValueError(
        "colorization has no digits preset: the digits are grayscale; use "
        "configs/colorization.py:cifar10.")
  if preset not in presets:
    raise ValueError(
        f"unknown colorization preset {preset!r}; use one of "
        f"{sorted(presets)}.")
  config = defaults.base_config("colorization")
  config.colorization = ml_collections.ConfigDict()
  config.colorization.loss = "classification"  # classification | regression
  config.colorization.grid = 10.0  # ab bin spacing
  config.colorization.sigma = 5.0  # soft encoding and prior smoothing
  config.colorization.num_neighbours = 5  # soft encoding
  config.colorization.rebalance = True
  config.colorization.rebalance_lambda = 0.5
  config.colorization.temperature = 0.38  # annealed-mean decoding
  config.colorization.output_stride = 2
  config.optim.name = "adamw"
  config.optim.lr_scaling = "none"
  config.optim.b1 = 0.9
  config.optim.b2 = 0.99
  config.optim.weight_decay = 1e-3
  presets[preset](config)
  return config


def _cifar10(config):
  defaults.use_cifar10(config)
  config.augment = recipes.geometric_only(config.augment)
  config.optim.base_lr = 1e-3
  config.train.batch_size = 256
  config.train.num_epochs = 100.0


def _imagenet(config):
  defaults.use_imagenet(config)
  config.augment = recipes.geometric_only(config.augment)
  config.colorization.output_stride = 4
  config.optim.base_lr = 3e-5
  config.train.batch_size = 40
  config.train.num_steps = 450_000
