r"""MoCo v1 / v2 (He et al. 2020; Chen et al. 2020) configs, one preset per dataset.

    python -m ssl_jax.main --config=configs/moco.py:digits --workdir=runs/moco_digits
    python -m ssl_jax.main --config=configs/moco.py:cifar10 --workdir=runs/moco_cifar10
    python -m ssl_jax.main --config=configs/moco.py:imagenet --workdir=gs://bucket/mocov2

Presets:
  digits      (default) the 8x8 digits shipped with scikit-learn; ResNet-10 at
              width 1/4 with the CIFAR stem, MoCo v2 head (hidden 128, out
              64), batch 128, queue 256 (2 batches: the training set has
              only 1,438 images), m = 0.99, t = 0.2, SGD lr 0.15, 30 epochs
              (330 steps). A smoke run of about a minute of training: kNN
              0.950 / linear 0.978 (random init 0.733 / 0.889).
  cifar10     CIFAR-10 from an npz folder (default ../shared/datasets/cifar10),
              ResNet-18 with the CIFAR stem, MoCo v2 head (fc-ReLU-fc, hidden
              512 = the feature width). Hyperparameters of the MoCo authors'
              CIFAR-10 demo notebook (facebookresearch/moco,
              colab/moco_cifar10_demo.ipynb): K = 4096, m = 0.99, t = 0.1,
              SGD lr 0.06 at batch 512 (base 0.03 x B/256), momentum 0.9,
              weight decay 5e-4, 200 epochs, cosine schedule without warmup,
              8 BN groups ("bn_splits"), its views (crop scale (0.08, 1),
              jitter 0.4/0.4/0.4/0.1 p=0.8, grayscale p=0.2, flip, no blur =
              recipes.simclr_cifar).
  cifar10_v1  the demo notebook exactly: the same with its linear head to 128.
  imagenet    MoCo v2, ImageNet through tfds (imagenet2012), ResNet-50: v2
              paper Sec. 2 / Table 1 and its reference code (main_moco.py):
              MLP head hidden 2048 out 128, K = 65536, m = 0.999, t = 0.2,
              mocov2 augmentation (crop scale (0.2, 1), blur p=0.5), SGD lr
              0.03 x B/256 at batch 256, momentum 0.9, weight decay 1e-4,
              200 epochs, cosine schedule, 8 BN groups (its 8 GPUs).
  imagenet_v1 MoCo v1 (v1 paper Sec. 3.3 / 4.1): linear head to 128, t = 0.07,
              v1 views: crop scale (0.2, 1), colour jitter 0.4/0.4/0.4/0.4
              always applied, grayscale p=0.2, flip, no blur (v1's code jitters
              after grayscale; here grayscale comes last). lr 0.03 at batch
              256, weight decay 1e-4, 200 epochs; v1's step schedule (x0.1 at
              epochs 120 and 160) is replaced by cosine, the only schedule of
              ssl_jax.train.optim.

Weight decay here skips biases and BatchNorm parameters (the references decay
everything). The ImageNet presets need the prepared tfds dataset; the tests
build them and compile init on a tiny fake shape. Any field can be
overridden on the command line, e.g. ``--config.moco.queue_size=16384``.
"""

import ml_collections

from ssl_jax.augment import recipes
from ssl_jax.train import defaults


def get_config(preset="digits"):
  """Returns the MoCo config for ``preset`` (see the module docstring)."""
  presets = {"digits": _digits, "cifar10": _cifar10, "cifar10_v1": _cifar10_v1,
             "imagenet": _imagenet, "imagenet_v1": _imagenet_v1}
  if preset not in presets:
    raise ValueError(
        f"unknown MoCo preset {preset!r}; use one of {sorted(presets)}.")
  config = defaults.base_config("moco")
  config.moco = ml_collections.ConfigDict()
  config.moco.version = 2  # 1: linear head; 2: MLP head (fc-ReLU-fc)
  config.moco.dim = 128  # key / query dimension
  config.moco.proj_hidden_dim = 2048  # v2 head's hidden width (unused by v1)
  config.moco.queue_size = 65536  # K, a multiple of the global batch
  config.moco.momentum = 0.999  # m of the key encoder's EMA
  config.moco.momentum_schedule = "constant"  # constant | cosine
  config.moco.temperature = 0.2
  config.moco.bn_groups = 8  # shuffling-BN groups over the global batch
  config.optim.name = "sgd"
  config.optim.lr_scaling = "linear"
  config.optim.base_lr = 0.03
  config.optim.momentum = 0.9
  config.optim.weight_decay = 1e-4
  config.optim.warmup_steps = 0
  presets[preset](config)
  return config


def _digits(config):
  defaults.use_digits(config)
  config.moco.proj_hidden_dim = 128
  config.moco.dim = 64
  # 2 batches: a larger queue, over a training set of only 1,438 images,
  # would hold older keys of the queries' own images as negatives.
  config.train.batch_size = 128
  config.moco.queue_size = 256
  config.moco.momentum = 0.99
  config.moco.temperature = 0.2
  config.optim.base_lr = 0.3
  config.optim.weight_decay = 5e-4
  config.train.num_epochs = 30.0


def _cifar10(config):
  defaults.use_cifar10(config)
  config.moco.proj_hidden_dim = 512
  config.moco.queue_size = 4096
  config.moco.momentum = 0.99
  config.moco.temperature = 0.1
  config.optim.weight_decay = 5e-4
  config.optim.warmup_steps = 0
  config.train.num_epochs = 200.0


def _cifar10_v1(config):
  _cifar10(config)
  config.moco.version = 1


def _imagenet(config):
  defaults.use_imagenet(config)
  config.augment = recipes.mocov2(crop_size=224)
  config.train.batch_size = 256
  config.train.num_epochs = 200.0
  config.optim.warmup_steps = 0


def _imagenet_v1(config):
  _imagenet(config)
  config.moco.version = 1
  config.moco.temperature = 0.07
  augment = recipes.simclr_imagenet(crop_size=224)
  augment.blur_prob = 0.0
  augment.crop_scale = (0.2, 1.0)
  augment.jitter_prob = 1.0
  augment.brightness = augment.contrast = augment.saturation = 0.4
  augment.hue = 0.4
  config.augment = augment
