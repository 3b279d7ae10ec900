r"""SimSiam: Exploring Simple Siamese Representation Learning.

Chen, He (CVPR 2021), https://arxiv.org/abs/2011.10566

- Networks: one encoder f shared by both views, a backbone (ResNet) giving
  the representation followed by a projection MLP giving z (Sec. 3
  "Baseline settings": 3 layers of 2048, BN on every layer including the
  output, no ReLU on the output; the CIFAR variant of Appendix D has 2
  layers), and a prediction MLP (the paper's h) giving p from z
  (Dense(512)-BN-ReLU-Dense(2048), a bottleneck, no BN on its output). No
  momentum encoder, no negatives, no target network. An online linear
  probe on the stop-gradient representation tracks its quality.
- Views: two independent draws of one recipe (MoCo v2's augmentations on
  ImageNet, Appendix A).
- Loss (eq. 3-4): with the negative cosine similarity
  :math:`\mathcal{D}(p, z) = -\bar p \cdot \bar z`,
  :math:`\mathcal{L} = \tfrac12 \mathcal{D}(p_1, \mathrm{sg}(z_2)) +
  \tfrac12 \mathcal{D}(p_2, \mathrm{sg}(z_1))`, where sg is the
  stop-gradient; ``config.simsiam.stop_gradient = False`` removes it (the
  "w/o stop-grad" ablation of Sec. 4.1, Fig. 2, which collapses). Plus the
  probe's cross-entropy (its gradient reaches only the probe).
- State updates: none beyond the optimizer and BatchNorm statistics (the
  encoder runs once per view, so statistics are per view, as in the
  authors' code). The predictor keeps a fixed learning rate while the rest
  follows the cosine schedule (Sec. 4.2, Table 1c): that is the optimizer's
  ``config.optim.fixed_lr_modules = ("predictor",)``.

Collapse diagnostics (``common_metrics``) are taken on the predictions p of
the first view over the global batch, not on z. The projector ends in a
BatchNorm without affine parameters, so every dimension of z has batch mean
0 and variance 1 whatever the weights: z cannot become constant. Without
the stop-gradient, z degenerates instead to one direction, most examples of
a batch at one point and a few on the other side carrying the variance
that BatchNorm imposes: its effective rank falls to 1, but the std of its
L2-normalised rows stays at 2 sqrt(k (n - k)) / n x 1/sqrt(d) with k of the
n examples on the minority side (0.48 / sqrt(d) for 1 of 16; at the
paper's batch of 512 this lies at the bottom of Fig. 2's axis). The
predictor has no output BN, and p collapses to one constant direction:
both its std ratio (to about 0) and its effective rank (to 1) show it, see
``configs/simsiam_no_stopgrad.py``. The paper's own quantity, the std of
the L2-normalised z, is logged as ``z_std``.

Shared parts (views, online probe, collapse metrics, evaluation encoder)
are in ``ssl_jax.methods.base``.
"""

import jax.numpy as jnp

from ssl_jax import losses
from ssl_jax.methods import base


def with_exact_predictor_mean(batch_stats):
  """``batch_stats`` with the running mean of the predictor's first BN at 0.

  That BatchNorm normalises W z, where z leaves the projector's output
  BatchNorm (no shift: every dimension has batch mean 0) and the Dense has
  no bias, so its batch mean, and hence its running mean, is exactly zero.
  It is kept at that exact value rather than accumulating rounding noise,
  which differs between 1 and 8 devices. (Those statistics are never read:
  the predictor runs only in training mode.)
  """
  bn = batch_stats["predictor"]["bn1"]
  bn = {**bn, "mean": jnp.zeros_like(bn["mean"])}
  return {**batch_stats,
          "predictor": {**batch_stats["predictor"], "bn1": bn}}


class SimSiam(base.Method):
  """SimSiam with its online probe; see the module docstring."""

  name = "simsiam"

  def __init__(self, config, num_classes, total_steps, axis_name=base.BATCH_AXIS):
    super().__init__(config, num_classes, total_steps, axis_name)
    simsiam = config.simsiam
    self.stop_gradient = simsiam.stop_gradient
    self.network = base.SiameseNetwork(
        encoder=base.build_backbone(config.model, bn_axis_name=axis_name),
        projector=base.build_mlp(
            config.model, simsiam.proj_layers, simsiam.proj_hidden_dim,
            simsiam.proj_dim, bn_axis_name=axis_name, last_bn=True),
        predictor=base.build_mlp(
            config.model, 2, simsiam.pred_hidden_dim, simsiam.proj_dim,
            bn_axis_name=axis_name),
        num_classes=num_classes)

  def loss_fn(self, params, state, keys, images, labels, axis_name):
    view1, view2 = self.views(keys, images)
    # The shared encoder f and predictor h, one view per call.
    out1, batch_stats = self.online_forward(params, state.batch_stats, view1)
    out2, batch_stats = self.online_forward(params, batch_stats, view2)
    batch_stats = with_exact_predictor_mean(batch_stats)
    z1, z2 = out1["projections"], out2["projections"]
    p1, p2 = out1["predictions"], out2["predictions"]
    d12, aux12 = losses.simsiam(p1, z2, axis_name,
                                stop_gradient=self.stop_gradient)
    d21, aux21 = losses.simsiam(p2, z1, axis_name,
                                stop_gradient=self.stop_gradient)
    simsiam_loss = 0.5 * d12 + 0.5 * d21
    probe_loss, metrics = self.common_metrics(
        jnp.concatenate([out1["probe_logits"], out2["probe_logits"]]),
        jnp.concatenate([labels, labels]), p1, axis_name)
    metrics.update(
        simsiam_loss=simsiam_loss,
        cos_sim=0.5 * (aux12["cos_sim"] + aux21["cos_sim"]),
        z_std=0.5 * (aux12["z_std"] + aux21["z_std"]))
    return simsiam_loss + probe_loss, ({"batch_stats": batch_stats}, metrics)
