r"""Video prediction (Srivastava et al. 2015, arXiv 1502.04681, with the
ConvLSTM of Shi et al. 2015, arXiv 1506.04214) configs.

    python -m ssl_jax.main --config=configs/video_prediction.py --workdir=runs/video_prediction
    python experiments/video_pictures.py --workdir=runs/video_prediction

Preset ``moving_digits`` (the only one; ``ssl_jax.data.video``): 20-frame
videos of two coloured digits bouncing in 32x32 frames; observe 10 frames,
predict the next 10 (the paper's Moving MNIST setting). ResNet-18 at width
1/8 with the CIFAR stem as the frame encoder, a ConvLSTM of the encoder's
width (64) on its 4x4 map, the upsampling decoder; MSE on the predicted
frames; Adam at lr 1e-3 (the paper trains with RMSProp; Adam is the usual
choice of later Moving MNIST work), batch 32, 2,000 steps. The encoder is
evaluated on still frames of single digits (kNN, linear) against its random
init.

Real videos: ``--config.data.source=npz --config.data.data_dir=DIR`` with
``DIR/train.npz`` and ``DIR/test.npz`` holding ``image`` uint8
(N, T, H, W, C) and ``label``; set ``config.augment`` to the frame size and
``config.eval.data`` to the still images the encoder should be evaluated on.
"""

import ml_collections

from ssl_jax.train import defaults


def get_config(preset="moving_digits"):
  """Returns the video-prediction config for ``preset`` (moving_digits)."""
  if preset != "moving_digits":
    raise ValueError(
        f"unknown video_prediction preset {preset!r}; use 'moving_digits'.")
  config = defaults.base_config("video_prediction")
  defaults.use_moving_digits(config)
  config.video_prediction = ml_collections.ConfigDict()
  config.video_prediction.num_observed = 10
  config.video_prediction.num_predicted = 10
  config.video_prediction.lstm_features = 64
  config.optim.name = "adamw"
  config.optim.base_lr = 1e-3
  config.optim.lr_scaling = "none"
  config.optim.b1 = 0.9
  config.optim.b2 = 0.999
  config.optim.weight_decay = 0.0
  config.optim.warmup_steps = 100
  config.train.num_steps = 2000
  return config
