"""SimCLR: A Simple Framework for Contrastive Learning of Visual Representations.

Chen, Kornblith, Norouzi, Hinton (ICML 2020), https://arxiv.org/abs/2002.05709

- Networks: encoder f (ResNet) gives the representation h = f(x); projection
  head g (MLP: Dense-BN-ReLU-Dense) gives z = g(h), used by the loss only; an
  online linear probe on stop_gradient(h) tracks representation quality
  during pretraining without shaping it.
- Views: two independent draws t, t' of the augmentation recipe
  (``config.augment``) per image, made on device.
- Loss: NT-Xent over the 2N views of the global batch (2N - 2 negatives per
  anchor, from every replica), temperature ``config.simclr.temperature``;
  plus the probe's cross-entropy (its gradient reaches only the probe).
- State updates: none beyond the optimizer (no momentum encoder, no queue).

Shared parts (views, online probe, collapse metrics, evaluation encoder) are
in ``ssl_jax.methods.base``.
"""

import jax.numpy as jnp

from ssl_jax import losses
from ssl_jax.methods import base


class SimCLR(base.Method):
  """SimCLR with its online probe; see the module docstring."""

  name = "simclr"

  network_class = base.SiameseNetwork
  proj_last_bn = False  # SimCLR v2's head ends in BatchNorm

  def __init__(self, config, num_classes, total_steps, axis_name=base.BATCH_AXIS):
    super().__init__(config, num_classes, total_steps, axis_name)
    self.temperature = config.simclr.temperature
    self.network = self.network_class(
        encoder=base.build_backbone(config.model, bn_axis_name=axis_name),
        projector=base.build_mlp(
            config.model, config.simclr.proj_layers,
            config.simclr.proj_hidden_dim, config.simclr.proj_dim,
            bn_axis_name=axis_name, last_bn=self.proj_last_bn,
            last_bn_scale=self.proj_last_bn),
        predictor=None,
        num_classes=num_classes)

  def loss_fn(self, params, state, keys, images, labels, axis_name):
    view1, view2 = self.views(keys, images)
    batch_size = images.shape[0]
    # Both views in one pass: BatchNorm statistics over all 2N views.
    outputs, batch_stats = self.online_forward(
        params, state.batch_stats, jnp.concatenate([view1, view2]))
    projections = outputs["projections"]
    z1, z2 = projections[:batch_size], projections[batch_size:]
    contrastive_loss, aux = losses.nt_xent(
        z1, z2, temperature=self.temperature, axis_name=axis_name)
    probe_loss, metrics = self.common_metrics(
        outputs["probe_logits"], jnp.concatenate([labels, labels]), z1,
        axis_name)
    metrics.update(
        contrastive_loss=contrastive_loss,
        contrastive_acc=aux["contrastive_acc"],
        pos_sim=aux["pos_sim"],
        neg_sim=aux["neg_sim"])
    state_updates = {"batch_stats": batch_stats}
    return contrastive_loss + probe_loss, (state_updates, metrics)
