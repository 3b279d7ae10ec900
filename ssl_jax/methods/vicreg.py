"""VICReg: Variance-Invariance-Covariance Regularization for Self-Supervised Learning.

Bardes, Ponce, LeCun (ICLR 2022), https://arxiv.org/abs/2105.04906

- Networks: encoder f (ResNet) gives the representation y = f(x); expander
  h (three Dense layers of 8192 units, BN+ReLU after the first two, no
  bias, BN or ReLU on the output) gives the embedding z = h(y), used by the
  loss only. The two branches share all weights: no predictor, no target
  network, no stop-gradient, no queue. An online linear probe on
  stop_gradient(y) tracks representation quality without shaping it.
- Views: BYOL's asymmetric pair, ``config.augment`` for the first view and
  ``config.augment_view2`` for the second (Sec. 4.1 / Appendix C).
- Loss (eq. 1-6): with Z, Z' the N x D embeddings of the two views,
  l = lambda s(Z, Z') + mu [v(Z) + v(Z')] + nu [c(Z) + c(Z')]: invariance s
  (mean squared distance), variance v (hinge on each dimension's std, target
  gamma = 1) and covariance c (squared off-diagonal covariances / D), with
  lambda, mu, nu = ``config.vicreg.sim_coeff, std_coeff, cov_coeff`` (25, 25,
  1). Variances and covariances are over the global batch (every replica's
  sums are reduced), so the loss does not depend on how the batch is split
  over devices. The three unweighted terms are logged. Plus the probe's
  cross-entropy.
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


class VICReg(base.Method):
  """VICReg with its online probe; see the module docstring."""

  name = "vicreg"

  def __init__(self, config, num_classes, total_steps, axis_name=base.BATCH_AXIS):
    super().__init__(config, num_classes, total_steps, axis_name)
    section = config.vicreg
    self.coefficients = dict(
        sim_coeff=section.sim_coeff, std_coeff=section.std_coeff,
        cov_coeff=section.cov_coeff)
    self.network = base.SiameseNetwork(
        encoder=base.build_backbone(config.model, bn_axis_name=axis_name),
        projector=base.build_mlp(
            config.model, section.expander_layers, section.expander_hidden_dim,
            section.expander_dim, bn_axis_name=axis_name, out_bias=False),
        predictor=None,
        num_classes=num_classes)

  def loss_fn(self, params, state, keys, images, labels, axis_name):
    view1, view2 = self.views(keys, images)
    # One pass per view: BatchNorm statistics of each view on its own.
    out1, batch_stats = self.online_forward(params, state.batch_stats, view1)
    out2, batch_stats = self.online_forward(params, batch_stats, view2)
    z1, z2 = out1["projections"], out2["projections"]
    vicreg_loss, aux = losses.vicreg(
        z1, z2, axis_name=axis_name, **self.coefficients)
    probe_loss, metrics = self.common_metrics(
        jnp.concatenate([out1["probe_logits"], out2["probe_logits"]]),
        jnp.concatenate([labels, labels]), z1, axis_name)
    metrics.update(
        vicreg_loss=vicreg_loss,
        invariance=aux["invariance"],
        variance=aux["variance"],
        covariance=aux["covariance"],
        expander_std=aux["std"])
    loss = base.global_loss_as_replica_mean(vicreg_loss, axis_name) + probe_loss
    return loss, ({"batch_stats": batch_stats}, metrics)
