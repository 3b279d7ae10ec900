r"""Auxiliary automatic annotators: classical algorithms' dense maps of real
images as pretext tasks, configs.

    python -m ssl_jax.main --config=configs/annotators.py:cifar10 --workdir=runs/annotators
    python -m ssl_jax.main --config=configs/annotators.py:moving_digits --workdir=runs/annotators_video

Presets:
  cifar10        CIFAR-10 (npz, ../shared/datasets/cifar10): from one crop-
                 and-flip view, predict its Sobel gradient magnitude, its
                 Canny edges (thresholds 50 / 150 grey levels, L2 gradient)
                 and its spectral-residual saliency, all computed on device
                 from the view's pixels. ResNet-18 (CIFAR stem) at width 1/8,
                 upsampling decoder, Adam at lr 1e-3, batch 64, 1,000 steps;
                 kNN / linear on class-balanced 10,000 / 2,000 images.
  moving_digits  the moving digits videos: from frames t and t + 1, predict
                 the moving foreground by frame differencing (any channel
                 changes by more than 0.1, one 3x3 dilation) and
                 Horn--Schunck flow, besides frame t's edges and saliency;
                 evaluated on still frames of single digits.
"""

import ml_collections

from ssl_jax.augment import recipes
from ssl_jax.train import defaults


def get_config(preset="cifar10"):
  """Returns the annotators config for ``preset`` (cifar10, moving_digits)."""
  if preset not in ("cifar10", "moving_digits"):
    raise ValueError(
        f"unknown annotators preset {preset!r}; use 'cifar10' or "
        "'moving_digits'.")
  config = defaults.base_config("annotators")
  settings = config.annotators = ml_collections.ConfigDict()
  settings.sobel_weight = 1.0
  settings.canny_weight = 1.0
  settings.saliency_weight = 1.0
  settings.motion_weight = 0.0  # videos only
  settings.flow_weight = 0.0  # videos only
  settings.canny_low = 50.0  # grey levels 0..255, as cv2.Canny
  settings.canny_high = 150.0
  settings.motion_threshold = 0.1  # change of a channel in [0, 1]
  settings.motion_dilate = 1
  # Horn--Schunck (ssl_jax.augment.flow), as configs/rgb_flow.py.
  settings.flow_alpha = 0.3
  settings.flow_iters = 10
  settings.flow_scales = 1
  settings.flow_warps = 3
  if preset == "cifar10":
    defaults.use_cifar10(config)
    config.model.width_multiplier = 0.125
    config.augment = recipes.geometric_only(recipes.simclr_cifar(crop_size=32))
    config.eval.max_train_examples = 10000
    config.eval.max_test_examples = 2000
  else:
    defaults.use_moving_digits(config)
    settings.motion_weight = 1.0
    settings.flow_weight = 1.0
  defaults.use_adam(config, base_lr=1e-3)
  config.optim.warmup_steps = 50
  config.train.batch_size = 64
  config.train.num_steps = 1000
  config.train.checkpoint_every_steps = 250
  return config
