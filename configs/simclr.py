r"""SimCLR (Chen et al. 2020) configs, one preset per dataset.

    python -m ssl_jax.main --config=configs/simclr.py:digits --workdir=runs/simclr_digits
    python -m ssl_jax.main --config=configs/simclr.py:cifar10 --workdir=runs/simclr_cifar10
    python -m ssl_jax.main --config=configs/simclr.py:imagenet --workdir=gs://bucket/simclr

Presets:
  digits   (default) the 8x8 digits shipped with scikit-learn; ResNet-10 at
           width 1/4 with the CIFAR stem, batch 256, 20 epochs (100 steps),
           temperature 0.2. The README's quickstart: under a minute of
           training on 2 CPU cores.
  cifar10  CIFAR-10 from an npz folder (default ../shared/datasets/cifar10),
           ResNet-18 with the CIFAR stem (3x3 conv, no max-pool), the
           CIFAR recipe of Appendix B.9: colour jitter strength 0.5, no blur,
           temperature 0.5, LARS, batch 512, 500 epochs.
  imagenet ImageNet through tfds (imagenet2012), ResNet-50, the recipe of
           Section 3 / Appendix B.1: batch 4096, LARS with lr 0.3 x B/256,
           weight decay 1e-6, 10 warmup epochs then cosine, temperature 0.1,
           100 epochs. Needs the prepared tfds dataset; builds and compiles
           on a tiny fake batch in the tests.

Any field can be overridden on the command line, e.g.
``--config.train.batch_size=1024 --config.optim.lr_scaling=sqrt``.
"""

import ml_collections

from ssl_jax.train import defaults


def get_config(preset="digits"):
  """Returns the SimCLR config for ``preset`` (digits, cifar10 or imagenet)."""
  presets = {"digits": _digits, "cifar10": _cifar10, "imagenet": _imagenet}
  if preset not in presets:
    raise ValueError(f"unknown SimCLR preset {preset!r}; use one of {sorted(presets)}.")
  config = defaults.base_config("simclr")
  config.simclr = ml_collections.ConfigDict()
  config.simclr.proj_layers = 2  # Dense-BN-ReLU-Dense
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
  config.train.num_epochs = 500.0
  defaults.warmup_epochs(config, 10, defaults.CIFAR10_TRAIN_EXAMPLES)


def _imagenet(config):
  defaults.use_imagenet(config)
  config.simclr.proj_hidden_dim = 2048
  config.simclr.temperature = 0.1
  config.optim.base_lr = 0.3
  config.train.num_epochs = 100.0
  defaults.warmup_epochs(config, 10, defaults.IMAGENET_TRAIN_EXAMPLES)
