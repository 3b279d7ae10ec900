r"""Synthetic scenes with exact dense labels, with and without domain
alignment to real images (Ren & Lee 2018, arXiv 1711.09082) configs.

    python -m ssl_jax.main --config=configs/synthetic_scenes.py:cifar10 --workdir=runs/scenes_aligned
    python -m ssl_jax.main --config=configs/synthetic_scenes.py:cifar10_no_alignment --workdir=runs/scenes
    python experiments/synthetic_scenes.py   # the PNG of scenes and labels

Every preset: 32x32 scenes from ``ssl_jax.data.synthetic_scenes`` (2 to 4
textured discs, squares and triangles at depths 2..8 over a background at
depth 10, textures cut from CIFAR-10 training images, a panning camera and
moving, turning objects), the four dense tasks (log depth, 4-class
segmentation, occlusion edges, flow from frame t to t + 1) at weight 1,
ResNet-18 with the CIFAR stem at width 1/8 and an upsampling decoder, Adam
at lr 1e-3, batch 64. The encoder is evaluated on real CIFAR-10 (kNN and
linear on class-balanced 10,000 train / 2,000 test images) against its
random init.

Presets:
  cifar10               each record also carries a real CIFAR-10 training
                        image; a domain classifier (MLP, 256 hidden) on the
                        pooled features learns synthetic vs real behind a
                        gradient reversal layer of scale 0.3, ramped by
                        Ganin's schedule.
  cifar10_no_alignment  the same batch (real images share the BatchNorm
                        batch, the classifier still trains and reports its
                        accuracy) with reversal scale 0: the ablation.
  synthetic_only        no real image at all (domain.enabled=False).
"""

import ml_collections

from ssl_jax.augment import recipes
from ssl_jax.train import defaults

CIFAR10_DIR = "../shared/datasets/cifar10"


def get_config(preset="cifar10"):
  """Returns the synthetic-scenes config for ``preset``."""
  presets = ("cifar10", "cifar10_no_alignment", "synthetic_only")
  if preset not in presets:
    raise ValueError(
        f"unknown synthetic_scenes preset {preset!r}; use one of {presets}.")
  config = defaults.base_config("synthetic_scenes")
  config.data.source = "synthetic_scenes"
  config.data.scenes = ml_collections.ConfigDict(dict(
      num_scenes_train=50000, num_scenes_test=2000, frame_size=32,
      textures="cifar10", texture_dir=CIFAR10_DIR,
      real_dir="" if preset == "synthetic_only" else CIFAR10_DIR, seed=0))
  config.eval.data.source = "npz"
  config.eval.data.data_dir = CIFAR10_DIR
  config.eval.max_train_examples = 10000
  config.eval.max_test_examples = 2000
  config.model.depth = 18
  config.model.width_multiplier = 0.125
  config.model.stem = "cifar"
  config.augment = recipes.geometric_only(recipes.simclr_cifar(crop_size=32))

  settings = config.synthetic_scenes = ml_collections.ConfigDict()
  settings.depth_weight = 1.0
  settings.depth_scale_invariance = 0.5  # Eigen et al.'s lambda
  settings.segmentation_weight = 1.0
  settings.edges_weight = 1.0
  settings.flow_weight = 1.0  # > 0: the network reads frames t and t + 1
  settings.domain = ml_collections.ConfigDict()
  settings.domain.enabled = preset != "synthetic_only"
  settings.domain.reversal_scale = 0.0 if preset == "cifar10_no_alignment" else 0.3
  settings.domain.ramp = True  # Ganin's 2 / (1 + exp(-10 p)) - 1
  settings.domain.hidden_dim = 256

  defaults.use_adam(config, base_lr=1e-3)
  config.optim.warmup_steps = 50
  config.train.batch_size = 64
  config.train.num_steps = 1000
  config.train.checkpoint_every_steps = 250
  return config
