"""The config fields every method shares, and the dataset presets.

A method's config file (``configs/<method>.py``) starts from
``base_config(method)``, applies one dataset preset (``use_digits``,
``use_cifar10``, ``use_imagenet``: data source, backbone size, view recipe,
batch size) and then sets its own section and the hyperparameters of its
paper. Any field can be overridden on the command line
(``--config.train.batch_size=1024``).
"""

import ml_collections

from ssl_jax.augment import recipes

IMAGENET_TRAIN_EXAMPLES = 1281167
CIFAR10_TRAIN_EXAMPLES = 50000


def base_config(method):
  """Every section but the method's own, with SimCLR-like defaults."""
  config = ml_collections.ConfigDict()
  config.method = method
  config.seed = 0
  config.distributed = False  # call jax.distributed.initialize() (multi-host)

  config.data = ml_collections.ConfigDict()
  config.data.source = "digits"  # digits | npz | tfds | image_folder | ...
  config.data.name = ""  # tfds dataset name
  # npz folder, tfds data_dir, or image folder (<data_dir>/<split>/<class>/)
  config.data.data_dir = ""
  config.data.train_split = "train"
  config.data.test_split = "test"
  config.data.worker_count = 0  # grain worker processes for decoding
  # image_folder only: 0 keeps the files' size (one size for all); S > 0
  # centre-crops the square and resizes it to S x S.
  config.data.image_size = 0
  # image_folder only: an undecodable file is an error naming it ("error"),
  # or is left out, counted and logged ("skip").
  config.data.on_corrupt = "error"

  config.model = ml_collections.ConfigDict()
  config.model.name = "resnet"
  config.model.depth = 18
  config.model.width_multiplier = 1.0
  config.model.stem = "cifar"  # cifar | imagenet
  # auto (batch_chunked on CPU, xla on GPU/TPU) | xla | shifted_matmul |
  # matmul_wgrad | batch_chunked
  config.model.conv_impl = "auto"
  config.model.dtype = "float32"  # float32 | bfloat16

  config.augment = recipes.simclr_cifar(crop_size=32)
  # The second view's recipe, for methods with asymmetric views (BYOL);
  # None: both views use config.augment.
  config.augment_view2 = None

  config.optim = ml_collections.ConfigDict()
  config.optim.name = "lars"  # lars | sgd | adamw
  config.optim.base_lr = 1.0
  config.optim.lr_scaling = "linear"  # linear: base x B/256 | sqrt | none
  config.optim.warmup_steps = 0
  config.optim.weight_decay = 1e-6
  config.optim.momentum = 0.9
  config.optim.trust_coefficient = 0.001
  config.optim.fixed_lr_modules = ()  # modules that keep the peak lr

  config.train = ml_collections.ConfigDict()
  config.train.batch_size = 512  # global, over all devices and hosts
  config.train.num_epochs = 100.0
  config.train.num_steps = -1  # > 0 overrides num_epochs
  config.train.log_every_steps = 10
  config.train.checkpoint_every_steps = 500
  config.train.keep_checkpoints = 3
  config.train.progress_bar = True
  # A step with a non-finite loss, gradient norm or update never
  # changes the state. 'stop': end the run with a message naming the step
  # (the last checkpoint is kept); 'skip': go on, count it (state and
  # metrics 'nonfinite_steps') and warn.
  config.train.nonfinite = "stop"

  config.eval = ml_collections.ConfigDict()
  # Comma-separated, from ssl_jax.eval.protocols.PROTOCOLS: knn, linear,
  # collapse, finetune, semi_10pct, semi_1pct.
  config.eval.protocols = "knn,linear,collapse"
  config.eval.random_init_protocols = "knn,linear,collapse"  # the floor
  config.eval.knn_k = 200
  config.eval.knn_temperature = 0.1
  config.eval.batch_size = 512  # feature extraction
  config.eval.subset_seed = 0  # the 1% / 10% label subsets
  # > 0: evaluate on a class-balanced subset of about this many train / test
  # examples (seeded by subset_seed), for quick runs; the report says so.
  config.eval.max_train_examples = -1
  config.eval.max_test_examples = -1
  config.eval.subset_dir = ""  # their index files; "" = <workdir>/label_subsets
  # Transfer: evaluate on another dataset (fields as config.data); an empty
  # source evaluates on the pretraining dataset.
  config.eval.data = ml_collections.ConfigDict()
  config.eval.data.source = ""
  config.eval.data.name = ""
  config.eval.data.data_dir = ""
  config.eval.data.train_split = "train"
  config.eval.data.test_split = "test"
  config.eval.data.worker_count = 0
  config.eval.data.image_size = 0
  config.eval.data.on_corrupt = "error"
  # Fine-tuning (finetune, semi_*): SimCLR Appendix B.5 -- SGD momentum 0.9,
  # lr 0.05 x B/256, no weight decay, no warmup, crop+flip; 60 epochs on 1%
  # and 30 on 10% of the labels (30 on 100% is this library's default).
  config.eval.finetune = ml_collections.ConfigDict()
  config.eval.finetune.start = "auto"  # auto | encoder | projection_layer
  config.eval.finetune.batch_size = 256
  config.eval.finetune.epochs_full = 30.0
  config.eval.finetune.epochs_10pct = 30.0
  config.eval.finetune.epochs_1pct = 60.0
  config.eval.finetune.name = "sgd"
  config.eval.finetune.base_lr = 0.05
  config.eval.finetune.lr_scaling = "linear"
  config.eval.finetune.warmup_steps = 0
  config.eval.finetune.weight_decay = 0.0
  config.eval.finetune.momentum = 0.9
  config.eval.finetune.trust_coefficient = 0.001
  config.eval.finetune.fixed_lr_modules = ()
  return config


def warmup_epochs(config, epochs, num_train_examples):
  """Sets ``optim.warmup_steps`` to ``epochs`` epochs at the current batch size."""
  config.optim.warmup_steps = int(
      epochs * (num_train_examples // config.train.batch_size))


def use_sgd(config, base_lr, weight_decay, momentum=0.9):
  """Plain SGD with momentum at ``base_lr`` (not scaled by the batch size)."""
  config.optim.name = "sgd"
  config.optim.base_lr = base_lr
  config.optim.lr_scaling = "none"
  config.optim.weight_decay = weight_decay
  config.optim.momentum = momentum


def use_adam(config, base_lr, weight_decay=0.0):
  """Adam(W) at ``base_lr`` (not scaled by the batch size)."""
  config.optim.name = "adamw"
  config.optim.base_lr = base_lr
  config.optim.lr_scaling = "none"
  config.optim.weight_decay = weight_decay


def use_digits(config):
  """The scikit-learn digits (no download): ResNet-10 at width 1/4, 8x8 views."""
  config.data.source = "digits"
  config.model.depth = 10
  config.model.width_multiplier = 0.25
  config.augment = recipes.simclr_digits(crop_size=8)
  config.train.batch_size = 256
  config.train.num_epochs = 20.0
  config.optim.warmup_steps = 10
  config.train.checkpoint_every_steps = 50


def use_cifar10(config):
  """CIFAR-10 from ../shared/datasets/cifar10: ResNet-18 with the CIFAR stem."""
  config.data.source = "npz"
  config.data.data_dir = "../shared/datasets/cifar10"
  config.model.depth = 18
  config.model.stem = "cifar"
  config.augment = recipes.simclr_cifar(crop_size=32)
  config.train.batch_size = 512


def use_imagenet(config):
  """ImageNet through tfds (imagenet2012): ResNet-50, bfloat16, 224x224 views."""
  config.data.source = "tfds"
  config.data.name = "imagenet2012"
  config.data.test_split = "validation"
  config.data.worker_count = 16
  config.model.depth = 50
  config.model.stem = "imagenet"
  config.model.dtype = "bfloat16"
  config.augment = recipes.simclr_imagenet(crop_size=224)
  config.train.batch_size = 4096
  config.train.checkpoint_every_steps = 1000


def moving_digits_section(**overrides):
  """The ``video`` section of a moving-digits data config
  (``ssl_jax.data.video.MovingDigits``'s arguments)."""
  section = ml_collections.ConfigDict(dict(
      num_frames=20, frame_size=32, digit_size=16, num_digits=2, speed=2.0,
      seed=0, num_sequences_train=10000, num_sequences_test=1000))
  section.update(overrides)
  return section


def use_moving_digits(config):
  """Videos of coloured digits bouncing in a 32x32 frame
  (``ssl_jax.data.video``, no download): 20 frames, 2 digits, 10,000
  training sequences; ResNet-18 at width 1/8 with the CIFAR stem, as the
  frame encoder. The encoder is evaluated on still frames of one digit each
  (5,000 train / 1,000 test), labelled with the digit's class."""
  config.data.source = "moving_digits"
  config.data.video = moving_digits_section()
  config.eval.data.source = "moving_digits"
  config.eval.data.video = moving_digits_section(
      num_frames=1, num_digits=1, num_sequences_train=5000,
      num_sequences_test=1000)
  config.model.depth = 18
  config.model.width_multiplier = 0.125
  config.model.stem = "cifar"
  config.model.conv_impl = "auto"
  config.augment = recipes.geometric_only(recipes.simclr_cifar(crop_size=32))
  config.train.batch_size = 32
  config.train.checkpoint_every_steps = 100
