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

from ssl_jax.augment import recipes


def get_config(preset="digits"):
  """Returns the SimCLR config for ``preset`` (digits, cifar10 or imagenet)."""
  presets = {"digits": _digits, "cifar10": _cifar10, "imagenet": _imagenet}
  if preset not in presets:
    raise ValueError(f"unknown SimCLR preset {preset!r}; use one of {sorted(presets)}.")
  config = _base()
  presets[preset](config)
  return config


def _base():
  config = ml_collections.ConfigDict()
  config.method = "simclr"
  config.seed = 0
  config.distributed = False  # call jax.distributed.initialize() (multi-host)

  config.data = ml_collections.ConfigDict()
  config.data.source = "digits"  # digits | npz | tfds
  config.data.name = ""  # tfds dataset name
  config.data.data_dir = ""  # npz folder, or tfds data_dir
  config.data.train_split = "train"
  config.data.test_split = "test"
  config.data.worker_count = 0  # grain worker processes for decoding

  config.model = ml_collections.ConfigDict()
  config.model.name = "resnet"
  config.model.depth = 18
  config.model.width_multiplier = 1.0
  config.model.stem = "cifar"  # cifar | imagenet
  config.model.conv_impl = "xla"  # xla | shifted_matmul | matmul_wgrad (faster on CPU)
  config.model.dtype = "float32"  # float32 | bfloat16

  config.simclr = ml_collections.ConfigDict()
  config.simclr.proj_layers = 2  # Dense-BN-ReLU-Dense
  config.simclr.proj_hidden_dim = 512
  config.simclr.proj_dim = 128
  config.simclr.temperature = 0.5

  config.augment = recipes.simclr_cifar(crop_size=32)

  config.optim = ml_collections.ConfigDict()
  config.optim.name = "lars"  # lars | sgd | adamw
  config.optim.base_lr = 1.0
  config.optim.lr_scaling = "linear"  # linear: base x B/256 | sqrt | none
  config.optim.warmup_steps = 0
  config.optim.weight_decay = 1e-6
  config.optim.momentum = 0.9
  config.optim.trust_coefficient = 0.001

  config.train = ml_collections.ConfigDict()
  config.train.batch_size = 512  # global, over all devices and hosts
  config.train.num_epochs = 100.0
  config.train.num_steps = -1  # > 0 overrides num_epochs
  config.train.log_every_steps = 10
  config.train.checkpoint_every_steps = 500
  config.train.keep_checkpoints = 3
  config.train.progress_bar = True

  config.eval = ml_collections.ConfigDict()
  config.eval.knn_k = 200
  config.eval.knn_temperature = 0.1
  config.eval.batch_size = 512
  return config


def _digits(config):
  config.data.source = "digits"
  config.model.depth = 10
  config.model.width_multiplier = 0.25
  config.simclr.proj_hidden_dim = 128
  config.simclr.proj_dim = 64
  config.simclr.temperature = 0.2
  config.augment = recipes.simclr_digits(crop_size=8)
  config.train.batch_size = 256
  config.train.num_epochs = 20.0
  config.optim.warmup_steps = 10
  config.train.checkpoint_every_steps = 50


def _cifar10(config):
  config.data.source = "npz"
  config.data.data_dir = "../shared/datasets/cifar10"
  config.augment = recipes.simclr_cifar(crop_size=32)
  config.train.batch_size = 512
  config.train.num_epochs = 500.0
  config.optim.warmup_steps = 10 * (50000 // 512)  # 10 epochs


def _imagenet(config):
  config.data.source = "tfds"
  config.data.name = "imagenet2012"
  config.data.test_split = "validation"
  config.data.worker_count = 16
  config.model.depth = 50
  config.model.stem = "imagenet"
  config.model.dtype = "bfloat16"
  config.simclr.proj_hidden_dim = 2048
  config.simclr.temperature = 0.1
  config.augment = recipes.simclr_imagenet(crop_size=224)
  config.optim.base_lr = 0.3
  config.train.batch_size = 4096
  config.train.num_epochs = 100.0
  config.optim.warmup_steps = 10 * (1281167 // 4096)  # 10 epochs
  config.train.checkpoint_every_steps = 1000
