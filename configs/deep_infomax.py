r"""Deep InfoMax, local objective (Hjelm et al. 2019, arXiv 1808.06670)
configs.

    python -m ssl_jax.main --config=configs/deep_infomax.py:digits --workdir=runs/dim_digits
    python -m ssl_jax.main --config=configs/deep_infomax.py:cifar10 --workdir=runs/dim_cifar10 \
        --config.deep_infomax.estimator=infonce

Every preset: one crop-and-flip view per image, local features from an
intermediate stage of the ResNet, global and local networks to 64
dimensions (the paper's encode-and-dot-product critic), the JSD estimator
(``deep_infomax.estimator``: jsd | infonce | dv), Adam (the paper's, lr
1e-4; 1e-3 here for short runs, as in its public code's CIFAR default).

Presets:
  digits   (default) the scikit-learn digits, 8x8: ResNet-10 at width 1/4,
           local map of stage 2 (4x4), batch 256, 20 epochs.
  cifar10  CIFAR-10 from an npz folder: ResNet-18 with the CIFAR stem, local
           map of stage 3 (8x8, the paper's), batch 128, 100 epochs.
  imagenet ImageNet through tfds: ResNet-50 at 224 px, local map of stage 3
           (14x14), batch 256, 100 epochs.
"""

import ml_collections

from ssl_jax.augment import recipes
from ssl_jax.train import defaults


def get_config(preset="digits"):
  """Returns the Deep InfoMax config for ``preset`` (digits, cifar10, imagenet)."""
  presets = {"digits": _digits, "cifar10": _cifar10, "imagenet": _imagenet}
  if preset not in presets:
    raise ValueError(f"unknown deep_infomax preset {preset!r}; use one of "
                     f"{sorted(presets)}.")
  config = defaults.base_config("deep_infomax")
  config.deep_infomax = ml_collections.ConfigDict()
  config.deep_infomax.estimator = "jsd"  # jsd | infonce | dv
  config.deep_infomax.local_stage = 3  # 1-based ResNet stage of the local map
  config.deep_infomax.embed_dim = 64
  config.deep_infomax.hidden_dim = 512
  presets[preset](config)
  defaults.use_adam(config, base_lr=1e-3)
  config.augment = recipes.geometric_only(config.augment)
  return config


def _digits(config):
  defaults.use_digits(config)
  config.deep_infomax.local_stage = 2
  config.deep_infomax.hidden_dim = 64


def _cifar10(config):
  defaults.use_cifar10(config)
  config.train.batch_size = 128
  config.train.num_epochs = 100.0


def _imagenet(config):
  defaults.use_imagenet(config)
  config.train.batch_size = 256
  config.train.num_epochs = 100.0
