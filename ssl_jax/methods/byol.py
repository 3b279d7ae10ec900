r"""BYOL: Bootstrap Your Own Latent, a new approach to self-supervised learning.

Grill, Strub, Altché, Tallec, Richemond, Buchatskaya, Doersch, Pires, Guo,
Azar, Piot, Kavukcuoglu, Munos, Valko (NeurIPS 2020),
https://arxiv.org/abs/2006.07733

- Networks: the online network (parameters :math:`\theta`) is an encoder f
  (ResNet) giving the representation y = f(x), a projector g (MLP:
  Dense(4096)-BN-ReLU-Dense(256), no BN on its output) giving z = g(y), and
  a predictor q of the same shape giving q(z). The target network
  (parameters :math:`\xi`) is f and g only: ``target_modules = ("encoder",
  "projector")``; the predictor and the online probe have no target copy.
  An online linear probe on stop_gradient(y) tracks the representation.
- Views: two views from two *different* distributions (Sec. 3
  "Implementation details", Appendix B Table 6): ``config.augment`` (t,
  always blurred, never solarized) and ``config.augment_view2`` (t', blur
  p=0.1, solarize p=0.2).
- Loss (Sec. 3.1, eq. 2): the normalised squared distance between the
  online prediction of one view and the target projection of the other,
  :math:`\lVert \bar q_\theta(z_\theta) - \bar z'_\xi \rVert_2^2 = 2 - 2
  \cos(q_\theta(z_\theta), z'_\xi)`, symmetrised as :math:`\mathcal{L} +
  \tilde{\mathcal{L}}` (views swapped), with no gradient into the target;
  plus the probe's cross-entropy (its gradient reaches only the probe).
- State updates: the online network runs once per view (two calls, so
  BatchNorm statistics are per view, as in the authors' code), its running
  averages in ``batch_stats``; the target runs on both views in training
  mode (batch statistics), its running averages in ``ema_batch_stats``.
  After every optimizer step k the target follows the online weights,
  :math:`\xi \leftarrow \tau_k \xi + (1 - \tau_k) \theta`, with
  :math:`\tau_k = 1 - (1 - \tau_{base})(\cos(\pi k / K) + 1) / 2` rising
  from :math:`\tau_{base}` = 0.996 to 1 over the K steps of the run (Sec. 3
  "Implementation details"; ``ssl_jax.train.momentum``, and the update
  itself is ``base.Method``'s ``after_update``).

The projector's output layer has no bias (``out_bias=False``): in the
online network it would feed the predictor's Dense-BN, which removes any
constant shift, so such a bias would have no effect and only drift with
rounding noise (differently on 1 and 8 devices).

Collapse diagnostics (``common_metrics``) are taken on the online
projections z of the first view over the global batch: BYOL's projector has
no output BatchNorm, so a collapse of the representation shows there.

Shared parts (views, online probe, collapse metrics, EMA update,
evaluation encoder) are in ``ssl_jax.methods.base``.
"""

import jax.numpy as jnp

from ssl_jax import losses
from ssl_jax.methods import base


class BYOL(base.Method):
  """BYOL with its EMA target network and online probe; see the module docstring."""

  name = "byol"
  target_modules = ("encoder", "projector")

  def __init__(self, config, num_classes, total_steps, axis_name=base.BATCH_AXIS):
    super().__init__(config, num_classes, total_steps, axis_name)
    byol = config.byol
    self.base_momentum = byol.base_momentum
    self.momentum_schedule = byol.momentum_schedule
    self.network = base.SiameseNetwork(
        encoder=base.build_backbone(config.model, bn_axis_name=axis_name),
        projector=base.build_mlp(
            config.model, byol.proj_layers, byol.proj_hidden_dim,
            byol.proj_dim, bn_axis_name=axis_name, out_bias=False),
        predictor=base.build_mlp(
            config.model, byol.pred_layers, byol.pred_hidden_dim,
            byol.proj_dim, bn_axis_name=axis_name),
        num_classes=num_classes)

  def loss_fn(self, params, state, keys, images, labels, axis_name):
    view1, view2 = self.views(keys, images)
    # Online network, one view per call: BatchNorm statistics per view.
    online1, batch_stats = self.online_forward(params, state.batch_stats, view1)
    online2, batch_stats = self.online_forward(params, batch_stats, view2)
    # Target network g_xi(f_xi(.)) on both views, under stop-gradient.
    target1, ema_batch_stats = self.target_forward(state, view1)
    target2, ema_batch_stats = self.target_forward(
        state.replace(ema_batch_stats=ema_batch_stats), view2)
    # L: view 1 predicts view 2's target; L~: the views swapped.
    loss12, aux12 = losses.byol(online1["predictions"], target2, axis_name)
    loss21, aux21 = losses.byol(online2["predictions"], target1, axis_name)
    byol_loss = loss12 + loss21
    probe_loss, metrics = self.common_metrics(
        jnp.concatenate([online1["probe_logits"], online2["probe_logits"]]),
        jnp.concatenate([labels, labels]), online1["projections"], axis_name)
    metrics.update(
        byol_loss=byol_loss,
        cos_sim=0.5 * (aux12["cos_sim"] + aux21["cos_sim"]),
        target_std=0.5 * (aux12["target_std"] + aux21["target_std"]),
        target_momentum=self.momentum(state.step))
    state_updates = {"batch_stats": batch_stats,
                     "ema_batch_stats": ema_batch_stats}
    return byol_loss + probe_loss, (state_updates, metrics)
