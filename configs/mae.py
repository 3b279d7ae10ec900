r"""MAE (He et al. 2021, arXiv 2111.06377) configs, one preset per dataset.

    python -m ssl_jax.main --config=configs/mae.py:digits --workdir=runs/mae_digits
    python -m ssl_jax.main --config=configs/mae.py:cifar10 --workdir=runs/mae_cifar10
    python -m ssl_jax.main --config=configs/mae.py:imagenet --workdir=gs://bucket/mae
    python experiments/reconstructions.py --workdir=runs/mae_digits

Every preset: a ViT encoder (``config.model.name='vit'``; ``size`` tiny |
small | base | large | huge | custom, ``patch_size``, and ``width``,
``depth``, ``num_heads`` overriding the size when set), mask ratio 0.75,
``norm_pix_loss`` (per-patch normalised targets, Table 1d and the main
results), one view per image of RandomResizedCrop + horizontal flip (no
colour distortion, Table 1e), and the pre-training setting of Appendix
A.1, Table 8: AdamW with betas (0.9, 0.95) and weight decay 0.05, base lr
1.5e-4 scaled by B/256 (``lr = base_lr x B / 256``), cosine decay after 40
warmup epochs (digits: shorter, below). As in MAE's code
(timm's ``add_weight_decay``) biases and LayerNorm parameters have no
weight decay; the class and mask tokens do.

Presets:
  digits   (default) the 8x8 digits shipped with scikit-learn; a custom ViT
           with patch 2 (16 patches, 4 visible), width 64, depth 4, 4 heads;
           decoder width 32, depth 2, 4 heads; batch 256, 150 epochs (750
           steps) after 10 warmup epochs, base lr 3e-3 (20x Table 8's
           1.5e-4, which is tuned for 800 epochs of ImageNet), the rest of
           Table 8. Views: the digits crop (scale 0.3-1, no flips). About
           2.5 minutes on 2 busy CPU cores, compilation and evaluation
           included; kNN 0.766 / linear 0.928 against 0.429 / 0.928 for
           the same encoder at random init (random ViT features are nearly
           parallel, which cosine kNN suffers from and a linear probe on
           standardised features does not).
  cifar10  CIFAR-10 from an npz folder (default ../shared/datasets/cifar10),
           ViT-Tiny (192 wide, 12 blocks, 3 heads) with patch 4 on 32x32
           (64 patches, 16 visible); decoder 128 wide, 4 blocks, 4 heads
           (the paper has no CIFAR decoder; a lightweight one narrower
           than the encoder, as its 512-d decoder for ViT-L); Table 8's
           optimizer at batch 512 (lr 3e-4), 800 epochs (the paper's
           default length) after 40 warmup epochs; crop scale (0.2, 1) and
           flip at 32 px, CIFAR-10 mean/std.
  imagenet ImageNet through tfds (imagenet2012), ViT-B/16 at 224 px (196
           patches, 49 visible), class token, bfloat16; decoder 512 wide, 8
           blocks (the default of Table 1a/b), 16 heads (MAE's code);
           Table 8: batch 4096 (lr 2.4e-3), AdamW (0.9, 0.95), wd 0.05, 40
           warmup epochs, 800 epochs (Table 1's default length; the main
           results use 1600: ``--config.train.num_epochs=1600``); views
           RandomResizedCrop(224, scale (0.2, 1)) + flip
           (bilinear here, bicubic in MAE's code), 0.875 central crop for
           evaluation. Needs the prepared tfds dataset; its state builds
           on abstract shapes in the tests.

Any field can be overridden on the command line, e.g.
``--config.mae.mask_ratio=0.5 --config.model.size=small``.
"""

import ml_collections
from ml_collections import config_dict

from ssl_jax.augment import recipes
from ssl_jax.train import defaults


def get_config(preset="digits"):
  """Returns the MAE config for ``preset`` (digits, cifar10 or imagenet)."""
  presets = {"digits": _digits, "cifar10": _cifar10, "imagenet": _imagenet}
  if preset not in presets:
    raise ValueError(
        f"unknown MAE preset {preset!r}; use one of {sorted(presets)}.")
  config = defaults.base_config("mae")
  config.mae = ml_collections.ConfigDict()
  config.mae.mask_ratio = 0.75
  config.mae.norm_pix_loss = True
  config.mae.decoder_width = 512
  config.mae.decoder_depth = 8
  config.mae.decoder_heads = 16
  config.mae.decoder_mlp_ratio = 4.0
  # Appendix A.1, Table 8 (pre-training setting).
  config.optim.name = "adamw"
  config.optim.base_lr = 1.5e-4
  config.optim.lr_scaling = "linear"
  config.optim.weight_decay = 0.05
  config.optim.b1 = 0.9
  config.optim.b2 = 0.95
  presets[preset](config)
  return config


def _vit(config, size, patch_size, dtype="float32"):
  """Replaces the ResNet fields of ``config.model`` by a ViT's."""
  config.model = ml_collections.ConfigDict(dict(
      name="vit",
      size=size,  # tiny | small | base | large | huge | custom
      patch_size=patch_size,
      # Set to override the size's value (all three for size='custom').
      width=config_dict.placeholder(int),
      depth=config_dict.placeholder(int),
      num_heads=config_dict.placeholder(int),
      mlp_ratio=4.0,
      class_token=True,
      pool="mean",  # evaluation features: mean of patch tokens | token
      dtype=dtype,
  ))


def _digits(config):
  defaults.use_digits(config)
  _vit(config, "custom", patch_size=2)
  config.model.width = 64
  config.model.depth = 4
  config.model.num_heads = 4
  config.mae.decoder_width = 32
  config.mae.decoder_depth = 2
  config.mae.decoder_heads = 4
  # simclr_digits: crop scale (0.3, 1), no flips (mirrored digits differ).
  config.augment = recipes.geometric_only(recipes.simclr_digits(crop_size=8),
                                         crop_scale=(0.3, 1.0))
  config.optim.base_lr = 3e-3
  config.train.num_epochs = 150.0
  config.optim.warmup_steps = 50  # 10 epochs of 5 steps
  config.train.checkpoint_every_steps = 250
  config.train.log_every_steps = 50


def _cifar10(config):
  defaults.use_cifar10(config)
  _vit(config, "tiny", patch_size=4)
  config.mae.decoder_width = 128
  config.mae.decoder_depth = 4
  config.mae.decoder_heads = 4
  config.augment = recipes.geometric_only(recipes.simclr_cifar(crop_size=32),
                                         crop_scale=(0.2, 1.0))
  config.train.batch_size = 512
  config.train.num_epochs = 800.0
  defaults.warmup_epochs(config, 40, defaults.CIFAR10_TRAIN_EXAMPLES)


def _imagenet(config):
  defaults.use_imagenet(config)
  _vit(config, "base", patch_size=16, dtype="bfloat16")
  config.augment = recipes.geometric_only(
      recipes.simclr_imagenet(crop_size=224), crop_scale=(0.2, 1.0))
  config.augment.eval_crop_fraction = 0.875
  config.train.batch_size = 4096
  config.train.num_epochs = 800.0
  defaults.warmup_epochs(config, 40, defaults.IMAGENET_TRAIN_EXAMPLES)
