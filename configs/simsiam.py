r"""SimSiam (Chen & He 2021, arXiv 2011.10566) configs, one preset per dataset.

    python -m ssl_jax.main --config=configs/simsiam.py:digits --workdir=runs/simsiam_digits
    python -m ssl_jax.main --config=configs/simsiam.py:cifar10 --workdir=runs/simsiam_cifar10
    python -m ssl_jax.main --config=configs/simsiam.py:imagenet --workdir=gs://bucket/simsiam

``configs/simsiam_no_stopgrad.py`` is the same with the stop-gradient
removed (Sec. 4.1), which collapses.

Presets:
  digits   (default) the 8x8 digits shipped with scikit-learn; ResNet-10 at
           width 1/4 with the CIFAR stem, projector 2 x 256 (BN on the
           output), predictor 256 -> 64 -> 256, batch 256, SGD with lr
           0.2 x B/256 (a short run: 40 epochs, 200 steps), the digits
           recipe for both views. A smoke run and the tests' model: about
           4 minutes on 2 busy CPU cores, kNN 0.86 / linear 0.95 against
           0.73 / 0.89 at random init.
  cifar10  CIFAR-10 from an npz folder (default ../shared/datasets/cifar10),
           the CIFAR setting of Appendix D: ResNet-18 with the CIFAR stem,
           a 2-layer projector (2048, BN on the output), the predictor
           2048 -> 512 -> 2048, SGD with lr 0.03 x B/256, weight decay
           5e-4, momentum 0.9, batch 512, cosine decay over 800 epochs.
           Views: SimCLR's CIFAR recipe (colour jitter 0.4/0.4/0.4/0.1
           with p=0.8, grayscale p=0.2, no blur) with crops of scale
           (0.2, 1) as on ImageNet.
  imagenet ImageNet through tfds (imagenet2012), ResNet-50, the baseline of
           Sec. 3 ("Baseline settings") behind Table 4's 100-epoch row:
           projector 3 x 2048 with BN on every layer, predictor
           2048 -> 512 -> 2048, SGD with lr 0.05 x B/256, weight decay
           1e-4, momentum 0.9, batch 512, cosine decay, no warmup, 100
           epochs; MoCo v2's views (Appendix A). Needs the prepared tfds
           dataset; its state builds on abstract shapes in the tests.

Every preset keeps the predictor at the peak learning rate (not decayed,
Sec. 4.2 / Table 1c; ``--fix-pred-lr`` of the released code) through
``config.optim.fixed_lr_modules``. Weight decay skips biases and BatchNorm
parameters (the library's convention; the released code decays all).

Any field can be overridden on the command line, e.g.
``--config.simsiam.stop_gradient=False --config.train.batch_size=256``.
"""

import ml_collections

from ssl_jax.augment import recipes
from ssl_jax.train import defaults


def get_config(preset="digits"):
  """Returns the SimSiam config for ``preset`` (digits, cifar10 or imagenet)."""
  presets = {"digits": _digits, "cifar10": _cifar10, "imagenet": _imagenet}
  if preset not in presets:
    raise ValueError(
        f"unknown SimSiam preset {preset!r}; use one of {sorted(presets)}.")
  config = defaults.base_config("simsiam")
  config.simsiam = ml_collections.ConfigDict()
  config.simsiam.proj_layers = 3  # (Dense-BN-ReLU) x 2, Dense-BN
  config.simsiam.proj_hidden_dim = 2048
  config.simsiam.proj_dim = 2048  # z and p
  config.simsiam.pred_hidden_dim = 512  # the bottleneck of h
  config.simsiam.stop_gradient = True
  config.optim.name = "sgd"
  config.optim.base_lr = 0.05
  config.optim.lr_scaling = "linear"
  config.optim.weight_decay = 1e-4
  config.optim.momentum = 0.9
  config.optim.warmup_steps = 0
  config.optim.fixed_lr_modules = ("predictor",)
  presets[preset](config)
  return config


def _digits(config):
  defaults.use_digits(config)
  config.simsiam.proj_layers = 2
  config.simsiam.proj_hidden_dim = 256
  config.simsiam.proj_dim = 256
  config.simsiam.pred_hidden_dim = 64
  config.optim.base_lr = 0.2
  config.optim.warmup_steps = 0
  config.train.num_epochs = 40.0


def _cifar10(config):
  defaults.use_cifar10(config)
  config.augment.crop_scale = (0.2, 1.0)
  config.simsiam.proj_layers = 2
  config.optim.base_lr = 0.03
  config.optim.weight_decay = 5e-4
  config.train.batch_size = 512
  config.train.num_epochs = 800.0


def _imagenet(config):
  defaults.use_imagenet(config)
  config.augment = recipes.mocov2(crop_size=224)
  config.train.batch_size = 512
  config.train.num_epochs = 100.0
