r"""Deep InfoMax (local DIM): Learning deep representations by mutual
information estimation and maximization.

Hjelm, Fedorov, Lavoie-Marchildon, Grewal, Bachman, Trischler, Bengio
(ICLR 2019), https://arxiv.org/abs/1808.06670

- Views: one augmented view x of each image (``config.augment``; the
  presets use crop and flip only, as DIM's CIFAR experiments do).
- Networks: the encoder E (the ResNet of ``config.model``) gives the local
  feature map C(x) of stage ``deep_infomax.local_stage`` (an M x M map;
  stage 3 of the CIFAR ResNet-18 is 8 x 8, the paper's local map) and the
  global feature E(x), its last stage average-pooled. DIM's
  encode-and-dot-product critic: a global network g (MLP) maps E(x) to
  :math:`g \in \mathbb{R}^D`, a local network l (1x1 convolutions, ReLU
  between, plus a linear 1x1 shortcut) maps every cell of C(x) to
  :math:`l_n \in \mathbb{R}^D` (``deep_infomax.embed_dim``); the score of a
  pair is :math:`T(l_n, g) = l_n^\top g`. An online linear probe reads the
  stop-gradient of E(x).
- Loss: the local objective, the MI estimate averaged over the M^2 cells,
  maximised with the estimator ``deep_infomax.estimator`` (``'jsd'``, the
  paper's default; ``'infonce'``; ``'dv'``), negatives the cells of the
  other images of the global batch (``losses.dim_local_global``, whose
  docstring gives the three bounds), plus the probe's cross-entropy. DIM's
  optional prior-matching term is not used (the paper's best CIFAR
  numbers come from the local objective alone, its Table 1).
- State updates: the optimizer step and BatchNorm statistics.
"""

import flax.linen as nn
import jax.numpy as jnp

from ssl_jax import augment
from ssl_jax import losses
from ssl_jax.losses import mutual_info
from ssl_jax.methods import base
from ssl_jax.train import probe as probe_lib


class LocalEmbedding(nn.Module):
  """DIM's local network: two 1x1 convolutions with a ReLU between, plus a
  linear 1x1 shortcut, on every cell of a feature map. ``output_bias``:
  the output's bias, which only the JSD bound can use: a shift b of every
  local vector adds b^T g to all the scores of a global vector g, which the
  InfoNCE and DV bounds cancel (a zero gradient that Adam would turn into
  steps of rounding noise)."""

  hidden_dim: int
  embed_dim: int
  output_bias: bool = True

  @nn.compact
  def __call__(self, feature_map):
    hidden = nn.relu(nn.Dense(self.hidden_dim, name="hidden")(feature_map))
    return (nn.Dense(self.embed_dim, use_bias=self.output_bias,
                     name="out")(hidden)
            + nn.Dense(self.embed_dim, use_bias=self.output_bias,
                       name="shortcut")(feature_map))


class DeepInfoMaxNetwork(nn.Module):
  """Encoder E with its local map, global network g, local network l, and
  the online probe on E(x)."""

  encoder: nn.Module
  global_embedding: nn.Module
  local_embedding: nn.Module
  local_stage: int
  num_classes: int

  @nn.compact
  def __call__(self, images, train: bool):
    features, local_map = self.encoder(images, train=train, return_map=True,
                                       map_stage=self.local_stage)
    return {
        "features": features,
        "global": self.global_embedding(features, train=train),
        "local": self.local_embedding(local_map),
        "probe_logits": probe_lib.OnlineProbe(
            self.num_classes, name="online_probe")(features),
    }

  def encode(self, images):
    return self.encoder(images, train=False)


class DeepInfoMax(base.Method):
  """Local Deep InfoMax; see the module docstring."""

  name = "deep_infomax"

  def __init__(self, config, num_classes, total_steps, axis_name=base.BATCH_AXIS):
    super().__init__(config, num_classes, total_steps, axis_name)
    settings = config.deep_infomax
    if settings.estimator not in mutual_info.ESTIMATORS:
      raise ValueError(
          f"config.deep_infomax.estimator={settings.estimator!r}; use one of "
          f"{mutual_info.ESTIMATORS}.")
    if config.model.name != "resnet":
      raise ValueError(
          "deep_infomax reads an intermediate feature map of a ResNet; set "
          f"config.model.name='resnet' (got {config.model.name!r}).")
    self.view_recipes = (config.augment,)
    self.estimator = settings.estimator
    self.network = DeepInfoMaxNetwork(
        encoder=base.build_backbone(config.model, bn_axis_name=axis_name),
        global_embedding=base.build_mlp(
            config.model, 2, settings.hidden_dim, settings.embed_dim,
            bn_axis_name=axis_name),
        local_embedding=LocalEmbedding(
            settings.hidden_dim, settings.embed_dim,
            output_bias=settings.estimator == "jsd"),
        local_stage=settings.local_stage,
        num_classes=num_classes)

  def loss_fn(self, params, state, keys, images, labels, axis_name):
    views = augment.batch_views(keys, images, self.view_recipes[0])
    outputs, batch_stats = self.online_forward(params, state.batch_stats,
                                               views)
    local = outputs["local"].astype(jnp.float32)
    global_ = outputs["global"].astype(jnp.float32)
    mi_loss, aux = losses.dim_local_global(local, global_, self.estimator,
                                           axis_name)
    probe_loss, metrics = self.common_metrics(
        outputs["probe_logits"], labels, global_, axis_name)
    metrics.update(mi_loss=mi_loss, **aux)
    return mi_loss + probe_loss, ({"batch_stats": batch_stats}, metrics)

  def encode(self, variables, images):
    inputs = augment.batch_eval_views(images, self.view_recipes[0])
    return self.network.apply(variables, inputs, method="encode")
