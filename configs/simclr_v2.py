r"""SimCLR v2 (Chen et al. 2020, arXiv 2006.10029) configs, one preset per scale.

    python -m ssl_jax.main --config=configs/simclr_v2.py:cifar10 --workdir=runs/simclr_v2_cifar10
    python -m ssl_jax.main --config=configs/simclr_v2.py:imagenet_r152x3 --workdir=gs://bucket/simclr_v2

Presets:
  digits           the scikit-learn digits; SimCLR's digits preset with the
                   v2 head (3 layers, BN on the output). Smoke runs and tests.
  cifar10          ResNet-18 (CIFAR stem), SimCLR's CIFAR-10 recipe
                   (Appendix B.9 of SimCLR v1: colour strength 0.5, no blur,
                   temperature 0.5, LARS 1.0 x B/256, batch 512, 500 epochs)
                   with v2's 3-layer head; the v2 paper has no CIFAR setting.
  imagenet         ResNet-50 (1x), the pretraining of the v2 paper's Sec. 3
                   ("Settings"): batch 4096, global BN, LARS with learning
                   rate 0.1 x sqrt(B) (6.4 at B=4096), weight decay 1e-4,
                   temperature 0.1, 3-layer head whose hidden width is the
                   encoder's output width, 128-d output, 800 epochs. Warmup:
                   10 epochs, as SimCLR v1 (Appendix B.1).
  imagenet_r152x3  the paper's largest encoder without selective kernels:
                   ResNet-152 at 3x width (6144-d features), same recipe.
                   Built and compiled on a tiny fake batch in the tests.

Not implemented: selective kernels, the 64K memory buffer, distillation.
"""

import ml_collections

from ssl_jax.train import defaults


def _feature_dim(depth, width_multiplier):
  """Output width of ssl_jax's ResNet: 512 (basic blocks) or 2048 (bottleneck), x width."""
  return int((512 if depth < 50 else 2048) * width_multiplier)


def get_config(preset="digits"):
  """Returns the SimCLR v2 config for ``preset``."""
  presets = {"digits": _digits, "cifar10": _cifar10, "imagenet": _imagenet,
             "imagenet_r152x3": _imagenet_r152x3}
  if preset not in presets:
    raise ValueError(
        f"unknown SimCLR v2 preset {preset!r}; use one of {sorted(presets)}.")
  config = defaults.base_config("simclr_v2")
  config.simclr = ml_collections.ConfigDict()
  config.simclr.proj_layers = 3  # (Dense-BN-ReLU) x 2, Dense-BN
  config.simclr.proj_hidden_dim = 512
  config.simclr.proj_dim = 128
  config.simclr.temperature = 0.5
  presets[preset](config)
  return config


def _digits(config):
  defaults.use_digits(config)
  config.simclr.proj_hidden_dim = 128
  config.simclr.proj_dim = 64
  config.simclr.temperature = 0.2


def _cifar10(config):
  defaults.use_cifar10(config)
  config.simclr.proj_hidden_dim = _feature_dim(18, 1.0)
  config.train.num_epochs = 500.0
  defaults.warmup_epochs(config, 10, defaults.CIFAR10_TRAIN_EXAMPLES)


def _imagenet(config):
  defaults.use_imagenet(config)
  config.simclr.proj_hidden_dim = _feature_dim(config.model.depth,
                                               config.model.width_multiplier)
  config.simclr.temperature = 0.1
  config.optim.base_lr = 0.1
  config.optim.lr_scaling = "sqrt"
  config.optim.weight_decay = 1e-4
  config.train.num_epochs = 800.0
  defaults.warmup_epochs(config, 10, defaults.IMAGENET_TRAIN_EXAMPLES)


def _imagenet_r152x3(config):
  _imagenet(config)
  config.model.depth = 152
  config.model.width_multiplier = 3.0
  config.simclr.proj_hidden_dim = _feature_dim(152, 3.0)
