r"""BYOL (Grill et al. 2020, arXiv 2006.07733) configs, one preset per dataset.

    python -m ssl_jax.main --config=configs/byol.py:digits --workdir=runs/byol_digits
    python -m ssl_jax.main --config=configs/byol.py:cifar10 --workdir=runs/byol_cifar10
    python -m ssl_jax.main --config=configs/byol.py:imagenet --workdir=gs://bucket/byol

Presets:
  digits   (default) the 8x8 digits shipped with scikit-learn; ResNet-10 at
           width 1/4 with the CIFAR stem, projector and predictor
           Dense(256)-BN-ReLU-Dense(64), batch 256, LARS, 40 epochs. Views:
           the digits recipe (no flips, no colour), the second one solarized
           with p=0.2 as BYOL's t' (blur is meaningless at 8x8 pixels). The
           target momentum starts at 0.99: at 0.996 the target barely moves
           in a run this short. A smoke run and the tests' model: about 2
           minutes on 2 busy CPU cores, kNN 0.85 / linear 0.96 against
           0.73 / 0.89 at random init.
  cifar10  CIFAR-10 from an npz folder (default ../shared/datasets/cifar10),
           ResNet-18 with the CIFAR stem. The paper has no CIFAR-10
           pretraining recipe; this is its ImageNet recipe (below: heads
           4096 -> 256, tau_base 0.996 with the cosine schedule, LARS
           0.2 x B/256, weight decay 1.5e-6, 10 warmup epochs) at batch 512
           for 1000 epochs, with its asymmetric views at 32 px, CIFAR-10
           mean/std and no blur (at 32 px, as SimCLR's CIFAR recipe,
           Appendix B.9 of arXiv 2002.05709).
  imagenet ImageNet through tfds (imagenet2012), ResNet-50, the recipe of
           "Implementation details" of Sec. 3 (Appendix A of the NeurIPS
           version) behind Table 1: projector and predictor
           Dense(4096)-BN-ReLU-Dense(256); views of Appendix B, Table 6;
           LARS with lr 0.2 x B/256, global weight decay 1.5e-6 (biases
           and BatchNorm excluded from decay and the trust ratio), batch
           4096, cosine decay over 1000 epochs after 10 warmup epochs;
           target decay tau_base = 0.996 raised to 1 along a cosine. The
           ablations of Sec. 5 use 300 epochs:
           ``--config.train.num_epochs=300``. Needs the prepared tfds
           dataset; its state builds on abstract shapes in the tests.

Any field can be overridden on the command line, e.g.
``--config.byol.base_momentum=0.99 --config.train.batch_size=1024``.
"""

import ml_collections

from ssl_jax.augment import recipes
from ssl_jax.train import defaults


def get_config(preset="digits"):
  """Returns the BYOL config for ``preset`` (digits, cifar10 or imagenet)."""
  presets = {"digits": _digits, "cifar10": _cifar10, "imagenet": _imagenet}
  if preset not in presets:
    raise ValueError(
        f"unknown BYOL preset {preset!r}; use one of {sorted(presets)}.")
  config = defaults.base_config("byol")
  config.byol = ml_collections.ConfigDict()
  config.byol.proj_layers = 2  # Dense-BN-ReLU-Dense, no BN on the output
  config.byol.proj_hidden_dim = 4096
  config.byol.proj_dim = 256  # also the predictor's output
  config.byol.pred_layers = 2
  config.byol.pred_hidden_dim = 4096
  config.byol.base_momentum = 0.996  # tau_base
  config.byol.momentum_schedule = "cosine"  # cosine | constant
  config.optim.name = "lars"
  config.optim.base_lr = 0.2
  config.optim.lr_scaling = "linear"
  config.optim.weight_decay = 1.5e-6
  presets[preset](config)
  return config


def _digits(config):
  defaults.use_digits(config)
  view1 = recipes.simclr_digits(crop_size=8)
  view2 = recipes.simclr_digits(crop_size=8)
  view2.solarize_prob = 0.2
  config.augment = view1
  config.augment_view2 = view2
  config.byol.proj_hidden_dim = 256
  config.byol.proj_dim = 64
  config.byol.pred_hidden_dim = 256
  config.byol.base_momentum = 0.99
  config.optim.base_lr = 1.0
  config.train.num_epochs = 40.0


def _asymmetric_views(config, crop_size):
  config.augment = recipes.byol_view1(crop_size=crop_size)
  config.augment_view2 = recipes.byol_view2(crop_size=crop_size)


def _cifar10(config):
  defaults.use_cifar10(config)
  _asymmetric_views(config, 32)
  for view in (config.augment, config.augment_view2):
    view.blur_prob = 0.0
    view.mean = recipes.CIFAR10_MEAN
    view.std = recipes.CIFAR10_STD
    view.eval_crop_fraction = 1.0
  config.train.num_epochs = 1000.0
  defaults.warmup_epochs(config, 10, defaults.CIFAR10_TRAIN_EXAMPLES)


def _imagenet(config):
  defaults.use_imagenet(config)
  _asymmetric_views(config, 224)
  config.train.batch_size = 4096
  config.train.num_epochs = 1000.0
  defaults.warmup_epochs(config, 10, defaults.IMAGENET_TRAIN_EXAMPLES)
