r"""Audio-visual correspondence configs: L3-Net (Arandjelovic & Zisserman,
ICCV 2017, arXiv 1705.08168) and AVE-Net with AVOL-Net's localisation
("Objects that Sound", ECCV 2018, arXiv 1712.06651), on real data: the
scikit-learn digit images paired with the Free Spoken Digit Dataset.

    python -m ssl_jax.main --config=configs/audio_visual.py --workdir=runs/audio_visual_l3
    python -m ssl_jax.main --config=configs/audio_visual.py:avenet --workdir=runs/audio_visual_avenet
    python experiments/audio_visual_localisation.py --workdir=runs/audio_visual_l3

Data (``config.data.audio_visual``, ``ssl_jax.data.audio_visual``): every
recording of the training speakers (2,500; the held-out speaker ``theo``'s
500 are the test split) with a digit image of the same class from the
digits' fixed train (test) split; 1 s at 8 kHz. The image encoder's kNN and
linear probe run on the digits themselves (``config.eval.data``: 1,438
train / 359 test images, each once); the correspondence and spoken-digit
rows come from the method's own evaluation.

Every preset: the ResNet-10 at width 1/4 of the digits presets with the
CIFAR stem and output stride 2 (a 4x4 feature map on the 8x8 digits, for
the localisation map); crops of the digit (area 0.5-1) without colour
distortion; log-mel spectrograms (256-sample FFT = 32 ms, hop 128 = 16 ms,
40 mel bands up to 4 kHz: 63 frames x 40 bands) into L3's audio ConvNet
(4 blocks of two 3x3 conv-BN-ReLU, widths 16-32-64-128, 2x2 max-pool
between, global max-pool); waveforms shifted by a random delay with
probability 0.8; half positives; a quarter of the negatives mined as hard
negatives in the batch; localisation head at weight 1. Adam (the papers':
L3 trains with Adam at lr 1e-4 and weight decay 1e-5 at batch 256; on
these small networks lr 1e-3 with warmup and cosine decay), batch 64, 30
epochs (1,170 steps; the correspondence task leaves chance only after a
few hundred steps).

Presets:
  l3      (default) L3-Net: fusion fc(128) - ReLU - fc(2) on [v; a].
  avenet  AVE-Net: 128-d L2-normalised embeddings, their distance into
          fc(1 -> 2).
"""

import ml_collections

from ssl_jax.augment import recipes
from ssl_jax.data import audio_visual
from ssl_jax.train import defaults


def get_config(preset="l3"):
  """Returns the audio-visual config for ``preset`` (l3 or avenet)."""
  if preset not in ("l3", "avenet"):
    raise ValueError(f"unknown audio_visual preset {preset!r}; use 'l3' "
                     "(L3-Net) or 'avenet' (AVE-Net).")
  config = defaults.base_config("audio_visual")
  config.data.source = "audio_visual"
  config.data.audio_visual = ml_collections.ConfigDict(
      dict(audio_visual.DEFAULTS))
  # The image encoder is evaluated on the digits themselves.
  config.eval.data.source = "digits"

  config.model.depth = 10
  config.model.width_multiplier = 0.25
  config.model.stem = "cifar"
  config.model.output_stride = 2
  config.augment = recipes.geometric_only(recipes.simclr_digits(crop_size=8),
                                          crop_scale=(0.5, 1.0))

  config.audio_visual = ml_collections.ConfigDict()
  av = config.audio_visual
  av.variant = preset  # l3 | avenet
  av.fusion_hidden_dim = 128  # L3's fc1 (its 1024 -> 128)
  av.embed_dim = 128  # AVE-Net's embeddings
  av.loc_dim = 128  # AVOL-Net's per-cell / audio embeddings
  av.localisation_weight = 1.0  # 0: plain L3 / AVE-Net
  av.hard_negative_fraction = 0.25  # of the negatives; 0: L3's random only
  av.shift_prob = 0.8  # random delay of the utterance in its 1 s window
  av.sample_rate = 8000  # FSDD's
  av.fft_size = 512
  av.hop_length = 256
  av.num_mels = 32
  av.fmin = 0.0
  av.fmax = 4000.0
  av.audio_widths = (16, 32, 64, 128)
  av.audio_convs_per_block = 1  # L3 has 2; 1 keeps a CPU run to minutes

  config.optim.name = "adamw"
  config.optim.base_lr = 1e-3
  config.optim.lr_scaling = "none"
  config.optim.weight_decay = 1e-5
  config.optim.b1 = 0.9
  config.optim.b2 = 0.999
  config.train.batch_size = 64
  config.train.num_epochs = 30.0
  config.optim.warmup_steps = 20
  config.train.checkpoint_every_steps = 100
  return config
