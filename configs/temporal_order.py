r"""Temporal order configs: verification (Shuffle and Learn; Misra et al.
2016, arXiv 1603.08561) and prediction (OPN; Lee et al. 2017,
arXiv 1708.01246).

    python -m ssl_jax.main --config=configs/temporal_order.py:verification --workdir=runs/temporal_verification
    python -m ssl_jax.main --config=configs/temporal_order.py:prediction --workdir=runs/temporal_prediction

Both presets train on the moving digits (``ssl_jax.data.video``: 20-frame
videos of two coloured digits bouncing in 32x32 frames), draw the frames
from a window of 10, and evaluate the frame encoder (ResNet-18 at width 1/8
with the CIFAR stem) on still frames of single digits. Adam at lr 1e-3,
batch 64, 2,000 steps.

Presets:
  verification  (default) is this triple of frames in order? 2 classes.
  prediction    which of the 12 orders (an order and its reverse are one
                class) are these 4 frames in?

Real videos: ``--config.data.source=npz --config.data.data_dir=DIR`` (see
configs/video_prediction.py).
"""

import ml_collections

from ssl_jax.train import defaults


def get_config(preset="verification"):
  """Returns the temporal-order config for ``preset`` (verification or
  prediction)."""
  if preset not in ("verification", "prediction"):
    raise ValueError(f"unknown temporal_order preset {preset!r}; use "
                     "'verification' or 'prediction'.")
  config = defaults.base_config("temporal_order")
  defaults.use_moving_digits(config)
  config.temporal_order = ml_collections.ConfigDict()
  config.temporal_order.task = preset
  config.temporal_order.window = 10  # frames the tuple is drawn from
  config.temporal_order.head_layers = 2  # on the frames' features concatenated
  config.temporal_order.head_hidden_dim = 256
  config.optim.name = "adamw"
  config.optim.base_lr = 1e-3
  config.optim.lr_scaling = "none"
  config.optim.weight_decay = 0.0
  config.optim.warmup_steps = 100
  config.train.batch_size = 64
  config.train.num_steps = 2000
  return config
