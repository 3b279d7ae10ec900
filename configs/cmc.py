r"""CMC (Tian, Krishnan, Isola 2020, arXiv 1906.05849) configs.

    python -m ssl_jax.main --config=configs/cmc.py:cifar10 --workdir=runs/cmc_cifar10
    python -m ssl_jax.main --config=configs/cmc.py:cifar10 --workdir=runs/cmc_lab3 \
        --config.cmc.views=l_a_b --config.cmc.objective=full_graph

Every preset: one crop and flip per image split into the Lab views L and ab
(``cmc.views='l_a_b'``: L, a, b), one ResNet per view at half the width of
the preset's (the paper's halving, so the pair costs about one encoder),
a linear projection to 128 dimensions, the softmax InfoNCE over the global
batch at temperature 0.07 (the paper's), the core-view objective
(``cmc.objective='full_graph'``: every pair of views). Optimiser:
SimCLR's LARS with warmup and cosine (the paper's SGD at lr 0.03 goes with
its NCE memory bank of 16,384 negatives; here the negatives are the
batch's).

Presets:
  cifar10  CIFAR-10: two ResNet-18 at width 1/2, CIFAR stem, batch 512,
           200 epochs.
  imagenet ImageNet through tfds: two ResNet-50 at width 1/2, 224 px,
           batch 1024, 200 epochs.

There is no digits preset: the digits are grayscale and have no ab.
"""

import ml_collections

from ssl_jax.augment import recipes
from ssl_jax.train import defaults


def get_config(preset="cifar10"):
  """Returns the CMC config for ``preset`` (cifar10 or imagenet)."""
  presets = {"cifar10": _cifar10, "imagenet": _imagenet}
  if preset == "digits":
    raise ValueError("cmc has no digits preset: the digits are grayscale and "
                     "have no ab channels; use configs/cmc.py:cifar10.")
  if preset not in presets:
    raise ValueError(f"unknown cmc preset {preset!r}; use one of "
                     f"{sorted(presets)}.")
  config = defaults.base_config("cmc")
  config.cmc = ml_collections.ConfigDict()
  config.cmc.views = "l_ab"  # l_ab | l_a_b
  config.cmc.objective = "core"  # core | full_graph
  config.cmc.proj_dim = 128
  config.cmc.temperature = 0.07
  presets[preset](config)
  config.augment = recipes.geometric_only(config.augment)
  config.model.width_multiplier = 0.5
  return config


def _cifar10(config):
  defaults.use_cifar10(config)
  config.train.num_epochs = 200.0
  defaults.warmup_epochs(config, 10, defaults.CIFAR10_TRAIN_EXAMPLES)


def _imagenet(config):
  defaults.use_imagenet(config)
  config.train.batch_size = 1024
  config.train.num_epochs = 200.0
  defaults.warmup_epochs(config, 10, defaults.IMAGENET_TRAIN_EXAMPLES)
