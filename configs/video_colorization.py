r"""Video colorization with emergent tracking (Vondrick et al. 2018,
arXiv 1806.09594) configs.

    python -m ssl_jax.main --config=configs/video_colorization.py --workdir=runs/video_colorization
    python experiments/video_tracking.py --workdir=runs/video_colorization

Preset ``moving_digits`` (the only one; ``ssl_jax.data.video``): 20-frame
videos of two coloured digits bouncing in 32x32 frames. The frame encoder
is ResNet-18 at width 1/8 with the CIFAR stem, its feature map capped at
stride 4 (8x8 locations; the paper caps ResNet-18 at stride 8 on 256x256
frames), fed the lightness only; 64-dimensional embeddings (the paper's);
reference and target frames 1 to 4 frames apart; colours on a grid of 10
ab units; attention temperature 1 (the paper's); Adam at lr 1e-3 (the
paper: 1e-3 with Adam), batch 32, 2,000 steps. The encoder is evaluated on
still frames of single digits (kNN, linear) against its random init, and
``experiments/video_tracking.py`` scores and draws the tracker.
"""

import ml_collections

from ssl_jax.train import defaults


def get_config(preset="moving_digits"):
  """Returns the video-colorization config for ``preset`` (moving_digits)."""
  if preset != "moving_digits":
    raise ValueError(
        f"unknown video_colorization preset {preset!r}; use 'moving_digits'.")
  config = defaults.base_config("video_colorization")
  defaults.use_moving_digits(config)
  config.model.output_stride = 4
  config.video_colorization = ml_collections.ConfigDict()
  config.video_colorization.max_gap = 4
  config.video_colorization.embed_dim = 64
  config.video_colorization.temperature = 1.0
  config.video_colorization.grid = 10.0
  config.optim.name = "adamw"
  config.optim.base_lr = 1e-3
  config.optim.lr_scaling = "none"
  config.optim.b1 = 0.9
  config.optim.b2 = 0.999
  config.optim.weight_decay = 0.0
  config.optim.warmup_steps = 100
  config.train.num_steps = 2000
  return config
