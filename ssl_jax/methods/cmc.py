r"""CMC: Contrastive Multiview Coding.

Tian, Krishnan, Isola (ECCV 2020), https://arxiv.org/abs/1906.05849

- Views: the channels of one augmented crop (``config.augment``: crop and
  flip) in CIE Lab (Sec. 4.1, "L and ab"): ``cmc.views='l_ab'`` gives two
  views, the lightness L (1 channel) and the colour ab (2 channels);
  ``'l_a_b'`` gives three, L, a and b, for the multi-view objectives. L is
  scaled to [-1, 1] ((L - 50) / 50), a and b by 1/110.
- Networks: one encoder per view (the ResNet of ``config.model``; the paper
  halves the width of each, ``config.model.width_multiplier`` sets it), each
  with a linear projection g_v to ``cmc.proj_dim`` followed by L2
  normalisation (inside the loss); an online linear probe on the
  concatenated features (the paper's evaluation: the features of all views
  concatenated, which ``encode`` returns).
- Loss (``cmc.objective``), with :math:`\mathcal{L}_{sym}` the symmetric
  two-view InfoNCE over the global batch (``losses.symmetric_info_nce``,
  the softmax form; the paper also uses NCE with a memory bank):

  * ``'core'``: the core-view paradigm, view 1 (L) against every other,
    :math:`\sum_{j>1} \mathcal{L}_{sym}(V_1, V_j)` (with two views, the
    two-view loss);
  * ``'full_graph'``: every pair, :math:`\sum_{i<j} \mathcal{L}_{sym}(V_i,
    V_j)` (``losses.cmc_full_graph``).

  Temperature ``cmc.temperature`` (0.07, the paper's). Plus the probe's
  cross-entropy.
- State updates: the optimizer step and BatchNorm statistics (over the
  global batch: no shuffling, the views share no BN statistics since each
  has its own encoder).
"""

import flax.linen as nn
import jax.numpy as jnp

from ssl_jax import augment
from ssl_jax import losses
from ssl_jax.methods import base
from ssl_jax.methods import colorization
from ssl_jax.train import probe as probe_lib

VIEW_SETS = {"l_ab": ((0,), (1, 2)), "l_a_b": ((0,), (1,), (2,))}
OBJECTIVES = ("core", "full_graph")
_LAB_SCALE = ((50.0, 50.0), (0.0, 110.0), (0.0, 110.0))  # (offset, scale)


class MultiviewNetwork(nn.Module):
  """One encoder and linear projection per view, and the online probe on
  the features of all views concatenated."""

  encoders: tuple
  projectors: tuple
  num_classes: int

  @nn.compact
  def __call__(self, views, train: bool):
    features = [e(v, train=train) for e, v in zip(self.encoders, views)]
    projections = [p(f) for p, f in zip(self.projectors, features)]
    probe_logits = probe_lib.OnlineProbe(
        self.num_classes, name="online_probe")(jnp.concatenate(features, -1))
    return {"features": features, "projections": projections,
            "probe_logits": probe_logits}

  def encode(self, views):
    return jnp.concatenate([e(v, train=False)
                            for e, v in zip(self.encoders, views)], -1)


class CMC(base.Method):
  """Contrastive multiview coding on Lab channels; see the module docstring."""

  name = "cmc"

  def __init__(self, config, num_classes, total_steps, axis_name=base.BATCH_AXIS):
    super().__init__(config, num_classes, total_steps, axis_name)
    settings = config.cmc
    if settings.views not in VIEW_SETS:
      raise ValueError(f"config.cmc.views={settings.views!r}; use one of "
                       f"{sorted(VIEW_SETS)}.")
    if settings.objective not in OBJECTIVES:
      raise ValueError(f"config.cmc.objective={settings.objective!r}; use "
                       f"one of {OBJECTIVES}.")
    if len(config.augment.mean) != 3:
      raise ValueError(
          "cmc splits RGB images into Lab channels; the data set has "
          f"{len(config.augment.mean)} channel(s) (config.augment.mean). Use "
          "a colour data set such as CIFAR-10.")
    self.view_recipes = (config.augment,)
    self.channels = VIEW_SETS[settings.views]
    self.objective = settings.objective
    self.temperature = settings.temperature
    self.network = MultiviewNetwork(
        encoders=tuple(base.build_backbone(config.model, bn_axis_name=axis_name)
                       for _ in self.channels),
        projectors=tuple(nn.Dense(settings.proj_dim)
                         for _ in self.channels),
        num_classes=num_classes)

  def init_inputs(self, image_shape):
    size = self.view_recipes[0].crop_size
    return self.split(jnp.zeros((2, size, size, 3), jnp.float32))

  def split(self, normalised_rgb):
    """The views (a list of ``(B, H, W, channels)``) of normalised RGB views."""
    recipe = self.view_recipes[0]
    lab = colorization.lab_of_views(normalised_rgb, recipe.mean, recipe.std)
    offset = jnp.asarray([o for o, _ in _LAB_SCALE], jnp.float32)
    scale = jnp.asarray([s for _, s in _LAB_SCALE], jnp.float32)
    lab = (lab - offset) / scale
    return [lab[..., list(c)] for c in self.channels]

  def loss_fn(self, params, state, keys, images, labels, axis_name):
    views = self.split(augment.batch_views(keys, images, self.view_recipes[0]))
    outputs, batch_stats = self.online_forward(params, state.batch_stats,
                                               views)
    z = outputs["projections"]
    if self.objective == "full_graph":
      contrastive_loss, aux = losses.cmc_full_graph(
          z, self.temperature, axis_name)
    else:
      pairs = [losses.symmetric_info_nce(z[0], other, self.temperature,
                                         axis_name) for other in z[1:]]
      contrastive_loss = sum(loss for loss, _ in pairs)
      aux = {key: sum(a[key] for _, a in pairs) / len(pairs)
             for key in ("contrastive_acc", "pos_sim", "neg_sim")}
    probe_loss, metrics = self.common_metrics(
        outputs["probe_logits"], labels, jnp.concatenate(z, -1), axis_name)
    metrics.update(contrastive_loss=contrastive_loss, **{
        k: aux[k] for k in ("contrastive_acc", "pos_sim", "neg_sim")})
    return contrastive_loss + probe_loss, ({"batch_stats": batch_stats},
                                           metrics)

  def encode(self, variables, images):
    views = self.split(augment.batch_eval_views(images, self.view_recipes[0]))
    return self.network.apply(variables, views, method="encode")
