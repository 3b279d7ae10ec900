"""Barlow Twins: Self-Supervised Learning via Redundancy Reduction.

Zbontar, Jing, Misra, LeCun, Deny (ICML 2021), https://arxiv.org/abs/2103.03230

- Networks: encoder f (ResNet) gives the representation h = f(x); projector
  g (three Dense layers of 8192 units, BN+ReLU after the first two, no
  bias, BN or ReLU on the output) gives z = g(h), used by the loss only.
  The two branches share all weights: no predictor, no target network, no
  stop-gradient, no queue. An online linear probe on stop_gradient(h)
  tracks representation quality without shaping it.
- Views: BYOL's asymmetric pair, ``config.augment`` for the first view and
  ``config.augment_view2`` for the second (blur always / with p=0.1,
  solarize never / with p=0.2).
- Loss (eq. 1-2, Algorithm 1): each dimension of z^A, z^B standardised over
  the batch, C = z^A^T z^B / N their cross-correlation matrix, and
  L = sum_i (1 - C_ii)^2 + lambda sum_{i != j} C_ij^2, lambda =
  ``config.barlow_twins.lambda_offdiag``; N is the global batch (every
  replica's statistics are summed), so the loss does not depend on how the
  batch is split over devices. ``config.barlow_twins.loss_scale`` multiplies
  it: under LARS, with the weight decay scaled alike, this leaves the
  weights' steps unchanged and sets the biases' and BN parameters' learning
  rate relative to the weights' (the paper's 0.0048 / 0.2, see
  configs/barlow_twins.py). The loss logged as ``barlow_twins_loss`` is
  unscaled. Plus the probe's cross-entropy.
- State updates: none beyond the optimizer and the BatchNorm statistics.
  Each view goes through the network in its own pass, as in the authors'
  code, so BatchNorm normalises each view with that view's (global-batch)
  statistics.

Shared parts (views, online probe, collapse metrics, evaluation encoder) are
in ``ssl_jax.methods.base``.
"""

import jax.numpy as jnp

from ssl_jax import losses
from ssl_jax.methods import base


class BarlowTwins(base.Method):
  """Barlow Twins with its online probe; see the module docstring."""

  name = "barlow_twins"

  def __init__(self, config, num_classes, total_steps, axis_name=base.BATCH_AXIS):
    super().__init__(config, num_classes, total_steps, axis_name)
    section = config.barlow_twins
    self.lambda_offdiag = section.lambda_offdiag
    self.loss_scale = section.loss_scale
    self.network = base.SiameseNetwork(
        encoder=base.build_backbone(config.model, bn_axis_name=axis_name),
        projector=base.build_mlp(
            config.model, section.proj_layers, section.proj_hidden_dim,
            section.proj_dim, bn_axis_name=axis_name, out_bias=False),
        predictor=None,
        num_classes=num_classes)

  def loss_fn(self, params, state, keys, images, labels, axis_name):
    view1, view2 = self.views(keys, images)
    # One pass per view: BatchNorm statistics of each view on its own.
    out1, batch_stats = self.online_forward(params, state.batch_stats, view1)
    out2, batch_stats = self.online_forward(params, batch_stats, view2)
    z1, z2 = out1["projections"], out2["projections"]
    barlow_loss, aux = losses.barlow_twins(
        z1, z2, lambda_offdiag=self.lambda_offdiag, axis_name=axis_name)
    probe_loss, metrics = self.common_metrics(
        jnp.concatenate([out1["probe_logits"], out2["probe_logits"]]),
        jnp.concatenate([labels, labels]), z1, axis_name)
    metrics.update(
        barlow_twins_loss=barlow_loss,
        on_diag=aux["on_diag"],
        off_diag=aux["off_diag"],
        mean_diag_corr=aux["mean_diag_corr"],
        mean_abs_offdiag_corr=aux["mean_abs_offdiag_corr"])
    loss = self.loss_scale * base.global_loss_as_replica_mean(
        barlow_loss, axis_name) + probe_loss
    return loss, ({"batch_stats": batch_stats}, metrics)
