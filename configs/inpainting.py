r"""Inpainting (Context Encoders, Pathak et al. 2016, arXiv 1604.07379) configs.

    python -m ssl_jax.main --config=configs/inpainting.py:digits --workdir=runs/inpainting_digits
    python -m ssl_jax.main --config=configs/inpainting.py:cifar10 --workdir=runs/inpainting_cifar10
    python -m ssl_jax.main --config=configs/inpainting.py:imagenet --workdir=gs://bucket/inpainting
    python experiments/reconstructions.py --workdir=runs/inpainting_digits

Every preset: the ResNet of ``config.model`` as the encoder, an upsampling
decoder without skip connections, random-block masks (Sec. 3.3: 4
possibly overlapping squares of side 1/4 of the image, up to a quarter of
its area; the paper learns its features with random masks, since a fixed
central hole lets the network latch onto the hole's boundary;
``--config.inpainting.mask=central`` for the central quarter, the paper's
pictures), the L2 loss on the removed pixels only (eq. 1; no adversarial term), one view
per image with crop and flip and no colour distortion, and Adam as in the
paper (lr 2e-4, beta1 0.5, the DCGAN setting it trains with; no weight
decay), without lr scaling.

Presets:
  digits   (default) the 8x8 digits shipped with scikit-learn: ResNet-10 at
           width 1/4 (CIFAR stem), 2x2 blocks, batch 256, 60 epochs, lr
           2e-3 (10x the paper's, for a short run). About 2 minutes on 2
           busy CPU cores: kNN 0.919 / linear 0.958 against 0.733 / 0.889
           at random init (the central 4x4 hole instead: 0.760 / 0.864).
  cifar10  CIFAR-10 from an npz folder (default ../shared/datasets/cifar10):
           ResNet-18 with the CIFAR stem, 8x8 blocks, batch 256, 100
           epochs, lr 1e-3.
  imagenet ImageNet through tfds (imagenet2012): ResNet-50 at 224 px (56x56
           blocks), batch 256, 100 epochs, the paper's lr 2e-4.

Any field can be overridden on the command line, e.g.
``--config.inpainting.mask=central --config.inpainting.loss=l1``.
"""

import ml_collections

from ssl_jax.augment import recipes
from ssl_jax.train import defaults


def get_config(preset="digits"):
  """Returns the inpainting config for ``preset`` (digits, cifar10 or imagenet)."""
  presets = {"digits": _digits, "cifar10": _cifar10, "imagenet": _imagenet}
  if preset not in presets:
    raise ValueError(
        f"unknown inpainting preset {preset!r}; use one of {sorted(presets)}.")
  config = defaults.base_config("inpainting")
  config.inpainting = ml_collections.ConfigDict()
  config.inpainting.mask = "random_blocks"  # random_blocks | central
  config.inpainting.area_fraction = 0.25  # of the central hole
  config.inpainting.num_blocks = 4  # random_blocks
  config.inpainting.block_fraction = 0.25  # side of a block / image side
  config.inpainting.loss = "l2"  # l2 | l1
  config.optim.name = "adamw"
  config.optim.base_lr = 2e-4
  config.optim.lr_scaling = "none"
  config.optim.b1 = 0.5
  config.optim.b2 = 0.999
  config.optim.weight_decay = 0.0
  presets[preset](config)
  return config


def _digits(config):
  defaults.use_digits(config)
  config.augment = recipes.geometric_only(config.augment)
  config.optim.base_lr = 2e-3
  config.train.num_epochs = 60.0


def _cifar10(config):
  defaults.use_cifar10(config)
  config.augment = recipes.geometric_only(config.augment)
  config.optim.base_lr = 1e-3
  config.train.batch_size = 256
  config.train.num_epochs = 100.0


def _imagenet(config):
  defaults.use_imagenet(config)
  config.augment = recipes.geometric_only(config.augment)
  config.train.batch_size = 256
  config.train.num_epochs = 100.0
