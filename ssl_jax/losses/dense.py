r"""Dense-prediction losses and the domain-adversarial pieces.

Pure functions returning ``(scalar loss, aux dict)``; aux values carry no
gradient. They score per-pixel predictions against labels that come for
free: a renderer's exact depth, segmentation, edges and optical flow
(``ssl_jax.data.synthetic_scenes``), or classical annotators' pseudo-labels
on real images (``ssl_jax.augment.annotators``).

Every loss is a mean over the pixels of the local batch, so that with equal
local batches the mean over replicas is the global loss (the training
step's convention), except where a statistic of the whole batch enters the
loss (the edge loss's class balance, the scale-invariant depth loss's
per-image mean): those take ``axis_name`` and reduce over it.

* :func:`depth_log_loss` -- Eigen, Puhrsch, Fergus 2014's scale-invariant
  log-depth error.
* :func:`segmentation_loss` -- per-pixel softmax cross-entropy.
* :func:`edge_loss` -- HED's class-balanced sigmoid cross-entropy (Xie &
  Tu 2015).
* :func:`flow_loss` -- average end-point error (FlowNet, Dosovitskiy et al.
  2015).
* :func:`dense_regression` -- L1 on a per-pixel map (annotators' gradient
  magnitude, saliency).
* :func:`gradient_reversal` and :func:`domain_adversarial` -- Ganin &
  Lempitsky 2015's gradient reversal layer and domain classifier, the
  feature-level domain adaptation of Ren & Lee 2018.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax
import optax

__all__ = [
    "depth_log_loss",
    "segmentation_loss",
    "edge_loss",
    "flow_loss",
    "dense_regression",
    "gradient_reversal",
    "domain_adversarial",
    "reversal_schedule",
]


def _check_same(name_a, a, name_b, b):
  if a.shape != b.shape:
    raise ValueError(
        f"{name_a} and {name_b} must have the same shape; got {a.shape} and "
        f"{b.shape}.")


def _global_mean(x, axis_name):
  """Mean of ``x`` over every element of every replica (equal shapes)."""
  mean = jnp.mean(x)
  return mean if axis_name is None else lax.pmean(mean, axis_name)


def depth_log_loss(pred_log_depth, depth, scale_invariance=0.5):
  r"""Scale-invariant log-depth error (Eigen, Puhrsch, Fergus, "Depth Map
  Prediction from a Single Image using a Multi-Scale Deep Network", NIPS
  2014, eq. 4).

  With :math:`d_p = \hat y_p - \log z_p` per pixel p of an image of n
  pixels,

  .. math::
     \mathcal{L} = \frac{1}{n}\sum_p d_p^2
       - \frac{\lambda}{n^2}\Big(\sum_p d_p\Big)^2,

  averaged over images. :math:`\lambda = 0` is the L2 error of log depth;
  :math:`\lambda = 1` ignores a global scale per image; the paper trains
  with 0.5.

  Args:
    pred_log_depth: ``(B, H, W)`` predicted log depth.
    depth: ``(B, H, W)`` true depth, > 0.
    scale_invariance: :math:`\lambda` in [0, 1].

  Returns:
    ``(loss, aux)``: aux ``abs_rel`` (mean :math:`|\hat z - z| / z`) and
    ``delta1`` (the fraction of pixels with
    :math:`\max(\hat z / z, z / \hat z) < 1.25`), Eigen et al.'s metrics.
  """
  _check_same("pred_log_depth", pred_log_depth, "depth", depth)
  if not 0.0 <= scale_invariance <= 1.0:
    raise ValueError(
        f"scale_invariance={scale_invariance} must lie in [0, 1].")
  pred = pred_log_depth.astype(jnp.float32)
  log_depth = jnp.log(lax.stop_gradient(depth).astype(jnp.float32))
  d = (pred - log_depth).reshape(pred.shape[0], -1)
  per_image = (jnp.mean(jnp.square(d), axis=1)
               - scale_invariance * jnp.square(jnp.mean(d, axis=1)))
  ratio = jnp.exp(lax.stop_gradient(d))
  aux = {"abs_rel": jnp.mean(jnp.abs(ratio - 1.0)),
         "delta1": jnp.mean((jnp.maximum(ratio, 1.0 / ratio) < 1.25)
                            .astype(jnp.float32))}
  return jnp.mean(per_image), aux


def segmentation_loss(logits, labels, num_classes=None):
  r"""Per-pixel softmax cross-entropy,
  :math:`\mathcal{L} = -\frac{1}{n}\sum_p \log \mathrm{softmax}(s_p)_{y_p}`.

  Args:
    logits: ``(..., C)``.
    labels: int ``(...)`` in [0, C).
    num_classes: C, for the intersection-over-union; default the logits'.

  Returns:
    ``(loss, aux)``: aux ``pixel_acc`` and ``mean_iou`` (over the classes
    present in the labels or the predictions of this batch).
  """
  if logits.shape[:-1] != labels.shape:
    raise ValueError(
        f"logits {logits.shape} must be labels {labels.shape} plus a class "
        "axis.")
  num_classes = num_classes or logits.shape[-1]
  logits = logits.astype(jnp.float32)
  loss = optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()
  predicted = jnp.argmax(logits, axis=-1)
  classes = jnp.arange(num_classes)
  pred_1h = (predicted[..., None] == classes).reshape(-1, num_classes)
  true_1h = (labels[..., None] == classes).reshape(-1, num_classes)
  intersection = jnp.sum(pred_1h & true_1h, axis=0)
  union = jnp.sum(pred_1h | true_1h, axis=0)
  present = union > 0
  iou = jnp.where(present, intersection / jnp.maximum(union, 1), 0.0)
  aux = {"pixel_acc": jnp.mean((predicted == labels).astype(jnp.float32)),
         "mean_iou": jnp.sum(iou) / jnp.maximum(jnp.sum(present), 1)}
  return loss, aux


def edge_loss(logits, edges, axis_name=None):
  r"""Class-balanced sigmoid cross-entropy of an edge map (Xie & Tu,
  "Holistically-Nested Edge Detection", ICCV 2015, eq. 2).

  Edges are rare, so the positives are weighted by
  :math:`\beta = |Y_-| / |Y|` and the negatives by :math:`1 - \beta`,
  counted over the global batch:

  .. math::
     \mathcal{L} = -\frac{1}{n}\sum_p \big[\beta\, y_p \log\sigma(s_p)
       + (1 - \beta)(1 - y_p)\log(1 - \sigma(s_p))\big].

  Args:
    logits: ``(B, H, W)``.
    edges: ``(B, H, W)`` in {0, 1}.
    axis_name: the replicas' axis, over which :math:`\beta` is counted.

  Returns:
    ``(loss, aux)``: aux ``edge_precision``, ``edge_recall``, ``edge_f1`` at
    threshold 0.5 on this replica's pixels, and ``edge_fraction``.
  """
  _check_same("logits", logits, "edges", edges)
  logits = logits.astype(jnp.float32)
  y = lax.stop_gradient(edges).astype(jnp.float32)
  positive_fraction = _global_mean(y, axis_name)
  beta = 1.0 - positive_fraction
  log_p = jax.nn.log_sigmoid(logits)
  log_not_p = jax.nn.log_sigmoid(-logits)
  loss = -jnp.mean(beta * y * log_p + (1.0 - beta) * (1.0 - y) * log_not_p)
  predicted = (logits > 0).astype(jnp.float32)
  true_positive = jnp.sum(predicted * y)
  precision = true_positive / jnp.maximum(jnp.sum(predicted), 1.0)
  recall = true_positive / jnp.maximum(jnp.sum(y), 1.0)
  f1 = 2 * precision * recall / jnp.maximum(precision + recall, 1e-12)
  aux = {"edge_precision": precision, "edge_recall": recall, "edge_f1": f1,
         "edge_fraction": positive_fraction}
  return loss, aux


def flow_loss(pred_flow, flow):
  r"""Average end-point error, :math:`\frac{1}{n}\sum_p \lVert \hat w_p -
  w_p \rVert_2` (Dosovitskiy et al., "FlowNet", ICCV 2015).

  Args:
    pred_flow, flow: ``(..., 2)`` flow vectors in pixels.

  Returns:
    ``(loss, aux)``: aux ``epe`` (the loss) and ``zero_epe``, the error of
    predicting no motion (the floor a flow estimate must beat).
  """
  _check_same("pred_flow", pred_flow, "flow", flow)
  target = lax.stop_gradient(flow).astype(jnp.float32)
  diff = pred_flow.astype(jnp.float32) - target
  # sqrt(x + tiny) keeps the gradient finite where the error is exactly 0.
  epe = jnp.mean(jnp.sqrt(jnp.sum(jnp.square(diff), axis=-1) + 1e-12))
  zero = jnp.mean(jnp.linalg.norm(target, axis=-1))
  return epe, {"epe": lax.stop_gradient(epe), "zero_epe": zero}


def dense_regression(pred, target):
  r"""Mean absolute error :math:`\frac{1}{n}\sum_p |\hat y_p - y_p|` of a
  per-pixel map.

  Returns:
    ``(loss, aux)``: aux ``mae`` (the loss) and ``mean_mae``, the error of
    predicting the batch's mean everywhere.
  """
  _check_same("pred", pred, "target", target)
  target = lax.stop_gradient(target).astype(jnp.float32)
  loss = jnp.mean(jnp.abs(pred.astype(jnp.float32) - target))
  return loss, {"mae": lax.stop_gradient(loss),
                "mean_mae": jnp.mean(jnp.abs(target - jnp.mean(target)))}


@jax.custom_vjp
def gradient_reversal(x, scale):
  r"""Identity forward; the gradient multiplied by :math:`-\lambda` backward.

  Ganin & Lempitsky, "Unsupervised Domain Adaptation by Backpropagation",
  ICML 2015, Sec. 3.2: :math:`R_\lambda(x) = x`,
  :math:`\partial R_\lambda / \partial x = -\lambda I`. Put between the
  features and a domain classifier, one gradient step trains the
  classifier to tell the domains apart and the feature extractor to make
  them indistinguishable. ``scale`` (:math:`\lambda`, may be traced) gets no
  gradient.
  """
  del scale
  return x


def _reversal_forward(x, scale):
  return x, scale


def _reversal_backward(scale, g):
  return (jax.tree.map(lambda t: (-scale * t).astype(t.dtype), g),
          jnp.zeros_like(scale))


gradient_reversal.defvjp(_reversal_forward, _reversal_backward)


def reversal_schedule(progress, gamma=10.0):
  r"""Ganin & Lempitsky's ramp of :math:`\lambda` from 0 to 1,
  :math:`\lambda_p = 2 / (1 + e^{-\gamma p}) - 1` at training progress
  :math:`p \in [0, 1]`, which keeps the early, noisy domain classifier from
  steering the features."""
  return 2.0 / (1.0 + jnp.exp(-gamma * progress)) - 1.0


def domain_adversarial(source_logits, target_logits):
  r"""The domain classifier's sigmoid cross-entropy, source = 0, target = 1:

  .. math::
     \mathcal{L}_D = -\frac{1}{2}\Big[\frac{1}{n_s}\sum_{i \in S}
       \log(1 - \sigma(D_i)) + \frac{1}{n_t}\sum_{j \in T}
       \log \sigma(D_j)\Big].

  The classifier minimises it; behind :func:`gradient_reversal` the
  features maximise it (Ganin & Lempitsky 2015, eq. 9-10; Ren & Lee,
  "Cross-Domain Self-supervised Multi-task Feature Learning using Synthetic
  Imagery", CVPR 2018, Sec. 3.3, with synthetic images as the source and
  real ones as the target).

  Args:
    source_logits: ``(n_s,)`` the classifier's logits on source features.
    target_logits: ``(n_t,)`` on target features.

  Returns:
    ``(loss, aux)``: aux ``domain_acc``, the classifier's accuracy (0.5 when
    the domains are indistinguishable).
  """
  source_logits = source_logits.astype(jnp.float32)
  target_logits = target_logits.astype(jnp.float32)
  loss = -0.5 * (jnp.mean(jax.nn.log_sigmoid(-source_logits))
                 + jnp.mean(jax.nn.log_sigmoid(target_logits)))
  accuracy = 0.5 * (jnp.mean((source_logits < 0).astype(jnp.float32))
                    + jnp.mean((target_logits > 0).astype(jnp.float32)))
  return loss, {"domain_acc": accuracy}
