r"""RGB-flow correspondence (CMC's frame / optical-flow views of its video
experiments, Tian et al. 2020, arXiv 1906.05849) config.

    python -m ssl_jax.main --config=configs/rgb_flow.py --workdir=runs/rgb_flow

Preset ``moving_digits`` (the only one; ``ssl_jax.data.video``): 20-frame
videos of two coloured digits bouncing in 32x32 frames at 2 px per frame.
Per video a frame t and the optical flow from t to t + 1, computed on
device by Horn--Schunck (``ssl_jax.augment.flow``: colour data term,
smoothness alpha 0.3 on intensities in [0, 1], one scale, 3 warps of 10
Jacobi iterations each) and fed to the flow encoder as (u, v, |w|) / 4 px.
On these videos the mean flow over a digit points along its true
displacement (median cosine 0.99) at about 0.8 of its length; stopped
after 10 iterations, the flow fills in little of the black background
(HS's fill-in spreads it about a pixel per iteration; 50 would smear it
over most of the frame), so the flow image shows the moving digits'
shapes. Two ResNet-18 at width 1/8 with the CIFAR
stem (the video presets' frame encoder), one per modality, each with a
linear projection to 128 dimensions (CMC's); symmetric InfoNCE over the
global batch at temperature 0.07 (CMC's). Adam at lr 1e-3 (the video
presets'), batch 64, 1,500 steps. The RGB encoder is evaluated on still
frames of single digits (kNN, linear) against its random init.

On the 2-core CPU (shared), 500 steps at batch 32 (warmup 50; evaluation on
5,000 / 1,000 still frames) took 26 min and gave linear 0.364 against 0.147
at random init, kNN 0.175 against 0.165, and 68% cross-modal retrieval
among 512 held-out videos (experiments/results/moving_digits_rgb_flow.md).
"""

import ml_collections

from ssl_jax.train import defaults


def get_config(preset="moving_digits"):
  """Returns the RGB-flow config for ``preset`` (moving_digits)."""
  if preset != "moving_digits":
    raise ValueError(
        f"unknown rgb_flow preset {preset!r}; use 'moving_digits' (the method "
        "needs videos).")
  config = defaults.base_config("rgb_flow")
  defaults.use_moving_digits(config)
  config.rgb_flow = ml_collections.ConfigDict()
  config.rgb_flow.proj_dim = 128
  config.rgb_flow.proj_layers = 1  # 1: CMC's linear projection; 2+: an MLP
  config.rgb_flow.proj_hidden_dim = 128
  config.rgb_flow.temperature = 0.07
  # Optical flow (ssl_jax.augment.flow.horn_schunck), on pixels in [0, 1].
  config.rgb_flow.flow_alpha = 0.3
  config.rgb_flow.flow_iters = 10  # per warp; more fills in the background
  config.rgb_flow.flow_scales = 1
  config.rgb_flow.flow_warps = 3
  config.rgb_flow.max_flow = 4.0  # pixels; the flow encoder sees flow / 4
  config.optim.name = "adamw"
  config.optim.base_lr = 1e-3
  config.optim.lr_scaling = "none"
  config.optim.b1 = 0.9
  config.optim.b2 = 0.999
  config.optim.weight_decay = 0.0
  config.optim.warmup_steps = 100
  config.train.batch_size = 64
  config.train.num_steps = 1500
  return config
