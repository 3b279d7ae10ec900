r"""Barlow Twins (Zbontar et al. 2021) configs, one preset per dataset.

    python -m ssl_jax.main --config=configs/barlow_twins.py:digits --workdir=runs/barlow_twins_digits
    python -m ssl_jax.main --config=configs/barlow_twins.py:cifar10 --workdir=runs/barlow_twins_cifar10
    python -m ssl_jax.main --config=configs/barlow_twins.py:imagenet --workdir=gs://bucket/barlow_twins

Presets:
  digits   (default) the 8x8 digits shipped with scikit-learn; ResNet-10 at
           width 1/4 with the CIFAR stem, projector 3 x 128, batch 256,
           30 epochs (150 steps), LARS base lr 0.6 (tuned here: the paper's
           0.2 learns too slowly in 150 steps), the paper's bias/weight
           learning-rate ratio (see imagenet), lambda 0.05: a row of C has
           D - 1 off-diagonal terms against one diagonal term, and with D =
           128 the paper's 0.0051 weighs them by lambda (D - 1) = 0.65 (41
           at D = 8192; 10 in solo-learn's CIFAR setting), too weak: the
           embedding collapsed to effective rank ~4 and kNN reached 0.77-0.84
           in our runs, against rank ~14 and kNN 0.89 at lambda 0.05
           (lambda (D - 1) = 6.4). Views: the digits recipe, the second with
           BYOL's solarize p=0.2 (blur is meaningless at 8x8).
  cifar10  CIFAR-10 from an npz folder (default ../shared/datasets/cifar10),
           ResNet-18 with the CIFAR stem, the hyperparameters of solo-learn's
           ``scripts/pretrain/cifar/barlow.yaml`` (da Costa et al. 2022,
           JMLR; 92.1% online linear accuracy after 1000 epochs): projector
           3 x 2048, lambda 0.0051, loss scaled by 0.1, LARS (eta 0.02)
           lr 0.3 at batch 256, weight decay 1e-4, 10 warmup epochs then
           cosine, 1000 epochs; its asymmetric CIFAR views (BYOL's jitter
           0.4/0.4/0.2/0.1 p=0.8, grayscale p=0.2, no blur, solarize p=0 /
           0.2). lambda stays 0.0051 with 2048 dimensions, as in solo-learn:
           the paper's ablation finds the accuracy insensitive to lambda
           over an order of magnitude around 5e-3 (Sec. 4), so the 4x fewer
           off-diagonal terms per row need no retuning. Not reproduced:
           solo-learn's LARS ``clip_lr`` (LARC clipping) and its separate
           SGD for the online classifier.
  imagenet ImageNet through tfds (imagenet2012), ResNet-50, the recipe of
           Sec. 2 ("Implementation Details"): projector 3 x 8192 (BN+ReLU
           after the first two layers), BYOL's asymmetric augmentations
           (BYOL appendix B), LARS with lr 0.2 x B/256 for the weights and
           0.0048 x B/256 for the biases and BN parameters, which are
           excluded from weight decay and LARS adaptation, weight decay
           1.5e-6, batch 2048, 10 warmup epochs then cosine, 1000 epochs,
           lambda 5e-3 (0.0051 in the released code). ``ssl_jax.train.optim``
           has one learning rate, so the second is not supported as such;
           it is reproduced exactly by scaling the loss by 0.0048 / 0.2 =
           0.024 and the weight decay by the same factor (config.optim.
           weight_decay = 3.6e-8): LARS steps of the weights are unchanged
           by that scaling, the biases and BN parameters' plain steps shrink
           by it (``_paper_bias_learning_rate``; override the two together).
           The cosine decays to 0 rather than to 1/1000 of the peak. Needs
           the prepared tfds dataset; builds and lowers on a tiny fake batch
           in the tests.

Any field can be overridden on the command line, e.g.
``--config.train.batch_size=1024 --config.barlow_twins.lambda_offdiag=0.005``.
"""

import ml_collections

from ssl_jax.augment import recipes
from ssl_jax.train import defaults

# Sec. 2, "Implementation Details": base learning rates (x B/256) of the
# weights and of the biases and BatchNorm parameters.
PAPER_WEIGHT_LR = 0.2
PAPER_BIAS_LR = 0.0048


def get_config(preset="digits"):
  """Returns the Barlow Twins config for ``preset`` (digits, cifar10 or imagenet)."""
  presets = {"digits": _digits, "cifar10": _cifar10, "imagenet": _imagenet}
  if preset not in presets:
    raise ValueError(
        f"unknown Barlow Twins preset {preset!r}; use one of {sorted(presets)}.")
  config = defaults.base_config("barlow_twins")
  config.barlow_twins = ml_collections.ConfigDict()
  config.barlow_twins.proj_layers = 3  # Dense-BN-ReLU-Dense-BN-ReLU-Dense
  config.barlow_twins.proj_hidden_dim = 8192
  config.barlow_twins.proj_dim = 8192
  config.barlow_twins.lambda_offdiag = 0.0051
  config.barlow_twins.loss_scale = 1.0
  presets[preset](config)
  return config


def solo_learn_cifar_views(crop_size=32):
  """solo-learn's asymmetric CIFAR views (``augmentations/asymmetric.yaml``).

  BYOL's colour jitter (0.4, 0.4, 0.2, 0.1) with p=0.8, grayscale p=0.2,
  crop scale (0.08, 1), flip p=0.5, no blur; solarize p=0 on the first view
  and p=0.2 on the second. CIFAR-10 mean/std; eval uses the full image.
  """
  view1 = recipes.simclr_cifar(crop_size)
  view1.saturation = 0.2
  view2 = ml_collections.ConfigDict(view1.to_dict())
  view2.solarize_prob = 0.2
  return view1, view2


def _digits(config):
  defaults.use_digits(config)
  config.augment_view2 = ml_collections.ConfigDict(config.augment.to_dict())
  config.augment_view2.solarize_prob = 0.2
  config.barlow_twins.proj_hidden_dim = 128
  config.barlow_twins.proj_dim = 128
  config.barlow_twins.lambda_offdiag = 0.05
  config.optim.base_lr = 0.6
  _paper_bias_learning_rate(config, 1.5e-6)
  config.train.num_epochs = 30.0


def _cifar10(config):
  defaults.use_cifar10(config)
  config.augment, config.augment_view2 = solo_learn_cifar_views(32)
  config.barlow_twins.proj_hidden_dim = 2048
  config.barlow_twins.proj_dim = 2048
  config.barlow_twins.loss_scale = 0.1
  config.train.batch_size = 256
  config.optim.base_lr = 0.3
  config.optim.weight_decay = 1e-4
  config.optim.trust_coefficient = 0.02
  config.train.num_epochs = 1000.0
  defaults.warmup_epochs(config, 10, defaults.CIFAR10_TRAIN_EXAMPLES)


def _imagenet(config):
  defaults.use_imagenet(config)
  config.augment = recipes.byol_view1(224)
  config.augment_view2 = recipes.byol_view2(224)
  config.train.batch_size = 2048
  config.optim.base_lr = 0.2
  _paper_bias_learning_rate(config, 1.5e-6)
  config.train.num_epochs = 1000.0
  defaults.warmup_epochs(config, 10, defaults.IMAGENET_TRAIN_EXAMPLES)


def _paper_bias_learning_rate(config, weight_decay):
  """The paper's two learning rates (weights 0.2, biases/BN 0.0048) with one.

  ``ssl_jax.train.optim`` has a single learning rate. A LARS step of a weight
  matrix is ``lr * eta * ||w|| * u / ||u||`` with ``u = g + wd * w``, so
  scaling the loss (g) and the weight decay by the same s leaves it unchanged,
  while the biases and BN parameters (plain ``lr * g`` steps) see ``s * lr``.
  With s = 0.0048 / 0.2 = 0.024 this is exactly the paper's optimizer.
  """
  config.barlow_twins.loss_scale = PAPER_BIAS_LR / PAPER_WEIGHT_LR
  config.optim.weight_decay = weight_decay * config.barlow_twins.loss_scale
