r"""Super-resolution pretext task (SRCNN's task, Dong et al. 2014) configs.

    python -m ssl_jax.main --config=configs/super_resolution.py:digits --workdir=runs/sr_digits
    python -m ssl_jax.main --config=configs/super_resolution.py:cifar10 --workdir=runs/sr_cifar10
    python -m ssl_jax.main --config=configs/super_resolution.py:imagenet --workdir=gs://bucket/sr
    python experiments/reconstructions.py --workdir=runs/sr_digits

Every preset: the ResNet of ``config.model`` reading the interpolated
low-resolution image (box downsampling by ``factor``, bilinear back up), an
upsampling decoder without skip connections that predicts the residual to
the original (VDSR), the L2 loss over all pixels (SRCNN's;
``--config.super_resolution.loss=l1`` for L1), one view per image with crop
and flip and no colour distortion, and Adam (lr 1e-3 x B/256, no weight
decay).

Presets:
  digits   (default) the 8x8 digits shipped with scikit-learn: ResNet-10 at
           width 1/4 (CIFAR stem), x2 (4x4 inputs), batch 256, 60 epochs,
           lr 2e-3.
  cifar10  CIFAR-10 from an npz folder (default ../shared/datasets/cifar10):
           ResNet-18 with the CIFAR stem, x4 (8x8 inputs: the network has to
           know what it is looking at), batch 256, 100 epochs.
  imagenet ImageNet through tfds (imagenet2012): ResNet-50 at 224 px, x4,
           batch 256, 100 epochs.

Any field can be overridden on the command line, e.g.
``--config.super_resolution.factor=2``.
"""

import ml_collections

from ssl_jax.augment import recipes
from ssl_jax.train import defaults


def get_config(preset="digits"):
  """Returns the super-resolution config for ``preset`` (digits, cifar10 or imagenet)."""
  presets = {"digits": _digits, "cifar10": _cifar10, "imagenet": _imagenet}
  if preset not in presets:
    raise ValueError(
        f"unknown super-resolution preset {preset!r}; use one of "
        f"{sorted(presets)}.")
  config = defaults.base_config("super_resolution")
  config.super_resolution = ml_collections.ConfigDict()
  config.super_resolution.factor = 4  # 2 | 4 (any divisor of the crop)
  config.super_resolution.loss = "l2"  # l2 | l1
  config.super_resolution.upsample = "bilinear"  # bilinear | nearest
  config.super_resolution.residual = True
  config.optim.name = "adamw"
  config.optim.base_lr = 1e-3
  config.optim.lr_scaling = "linear"
  config.optim.weight_decay = 0.0
  presets[preset](config)
  return config


def _digits(config):
  defaults.use_digits(config)
  config.augment = recipes.geometric_only(config.augment)
  config.super_resolution.factor = 2
  config.optim.base_lr = 2e-3
  config.train.num_epochs = 60.0


def _cifar10(config):
  defaults.use_cifar10(config)
  config.augment = recipes.geometric_only(config.augment)
  config.train.batch_size = 256
  config.train.num_epochs = 100.0


def _imagenet(config):
  defaults.use_imagenet(config)
  config.augment = recipes.geometric_only(config.augment)
  config.train.batch_size = 256
  config.train.num_epochs = 100.0
