r"""Visual-text correspondence (CLIP, Radford et al. 2021, arXiv 2103.00020;
ConVIRT, Zhang et al. 2020, arXiv 2010.00747) configs.

    python -m ssl_jax.main --config=configs/visual_text.py:digits --workdir=runs/visual_text
    python -m ssl_jax.main --config=configs/visual_text.py:digits --workdir=runs/visual_text_noisy30 \
        --config.data.image_text.noise_fraction=0.3
    python -m ssl_jax.main --config=configs/visual_text.py:pairs --workdir=runs/my_pairs \
        --config.data.image_text.path=/data/my_pairs --config.data.image_text.class_names=cat,dog

Every preset: one image view, the ResNet of ``config.model`` and a byte-level
text encoder, linear projections to a shared space, the symmetric InfoNCE
over the global batch with CLIP's learned temperature (initialised at 0.07,
logit scale clipped at 100; Sec. 2.5), AdamW with CLIP's betas (0.9, 0.98)
and decoupled weight decay (none on gains, biases and the temperature),
warmup then cosine (Sec. 2.5 and Appendix F, Table 19). Zero-shot accuracy,
retrieval and the noisy-pair AUC come with the image kNN / linear probe in
``eval.json``.

Presets:
  digits          the scikit-learn digits with captions of their class
                  (``ssl_jax.data.image_text``, no download); a fraction
                  ``data.image_text.noise_fraction`` of the training pairs
                  gets a wrong-class caption or an unrelated sentence of a
                  novel. ResNet-10 at width 1/4 (8x8 views, the digits
                  recipe without flips), a 3-block byte-level 1-D conv text
                  encoder of width 64 with mean pooling, 64-d embeddings,
                  batch 256, 60 epochs (300 steps). About 15 minutes on 2
                  busy CPU cores: image kNN 0.981 (random init 0.699),
                  linear 0.986 (0.911), zero-shot 0.972; at 30% noisy
                  captions 0.969 / 0.972 / 0.958
                  (experiments/results/digits_visual_text.md).
  digits_convirt  the same with ConVIRT's loss: fixed temperature 0.1,
                  image-to-text weight 0.75 (eq. 3, lambda), Dense-ReLU-Dense
                  projections.
  pairs           a user's image-text pairs (``data.image_text.path``: a
                  captions.jsonl, or a folder of images with one; see
                  ``ssl_jax.data.image_text``), 32x32 RGB, ResNet-18 at width
                  1/4 with the CIFAR stem, a 4-block Transformer text
                  encoder of width 128 on 64 byte tokens, pooled at END
                  (CLIP's [EOS]), 128-d embeddings, batch 256, 100 epochs.
                  Set ``data.image_text.class_names`` (comma-separated) for
                  the zero-shot rows.

Strings, not tuples, in ``data.image_text`` (``class_names`` comma-separated,
``prompts`` separated by ``|``): the data section is compared with the saved
one when a run resumes, and JSON has no tuples.
"""

import ml_collections

from ssl_jax.augment import recipes
from ssl_jax.train import defaults


def image_text_section(**overrides):
  """The ``data.image_text`` section (``ssl_jax.data.image_text.DEFAULTS``)."""
  section = ml_collections.ConfigDict(dict(
      kind="digits", max_length=40, noise_fraction=0.0,
      noise_unrelated_fraction=0.5, text_dir="../shared/datasets/text",
      seed=0, path="", image_size=32, channels=3, test_fraction=0.2,
      num_classes=0, class_names="", prompts="a photo of a {}.|{}"))
  section.update(overrides)
  return section


def get_config(preset="digits"):
  """Returns the visual-text config for ``preset`` (digits, digits_convirt
  or pairs)."""
  presets = {"digits": _digits, "digits_convirt": _digits_convirt,
             "pairs": _pairs}
  if preset not in presets:
    raise ValueError(f"unknown visual_text preset {preset!r}; use one of "
                     f"{sorted(presets)}.")
  config = defaults.base_config("visual_text")
  config.visual_text = ml_collections.ConfigDict()
  config.visual_text.embed_dim = 64
  config.visual_text.projection_hidden_dim = 0  # 0: linear (CLIP)
  config.visual_text.learn_temperature = True  # CLIP; False: fixed (ConVIRT)
  config.visual_text.temperature = 0.07  # the initial (or fixed) tau
  config.visual_text.max_logit_scale = 100.0
  config.visual_text.image_to_text_weight = 0.5  # lambda; ConVIRT 0.75
  config.visual_text.text = ml_collections.ConfigDict(dict(
      architecture="conv", width=64, depth=3, kernel_size=5, num_heads=4,
      pool="mean"))
  config.optim.name = "adamw"
  config.optim.b1 = 0.9
  config.optim.b2 = 0.98
  config.optim.lr_scaling = "none"
  presets[preset](config)
  return config


def _digits(config):
  defaults.use_digits(config)
  config.data.source = "image_text"
  config.data.image_text = image_text_section()
  config.augment = recipes.simclr_digits(crop_size=8)
  config.train.batch_size = 256
  config.train.num_epochs = 60.0
  config.train.checkpoint_every_steps = 110
  config.optim.base_lr = 2e-3
  config.optim.weight_decay = 0.1
  defaults.warmup_epochs(config, 5, 1438)


def _digits_convirt(config):
  _digits(config)
  config.visual_text.learn_temperature = False
  config.visual_text.temperature = 0.1
  config.visual_text.image_to_text_weight = 0.75
  config.visual_text.projection_hidden_dim = 128


def _pairs(config):
  config.data.source = "image_text"
  config.data.image_text = image_text_section(kind="pairs", max_length=64)
  config.model.depth = 18
  config.model.width_multiplier = 0.25
  config.model.stem = "cifar"
  config.augment = recipes.geometric_only(recipes.simclr_cifar(crop_size=32),
                                          crop_scale=(0.5, 1.0))
  config.augment.flip_prob = 0.0  # flipping changes what text may say
  config.visual_text.embed_dim = 128
  config.visual_text.text.update(architecture="transformer", width=128,
                                 depth=4, pool="end")
  config.train.batch_size = 256
  config.train.num_epochs = 100.0
  config.optim.base_lr = 1e-3
  config.optim.weight_decay = 0.1
  config.optim.warmup_steps = 50
