"""Dense losses against numpy, their invariances, the gradient reversal
layer's exact sign flip, and the domain classifier's loss."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ssl_jax import losses
from ssl_jax.losses import dense


def _rng(seed=0):
  return np.random.default_rng(seed)


def test_depth_log_loss_matches_numpy_and_ignores_scale_at_one():
  rng = _rng()
  depth = rng.uniform(1.0, 10.0, size=(3, 4, 5)).astype(np.float32)
  pred = rng.normal(size=(3, 4, 5)).astype(np.float32)
  d = (pred - np.log(depth)).reshape(3, -1)
  for lam in (0.0, 0.5, 1.0):
    expected = np.mean(np.mean(d ** 2, 1) - lam * np.mean(d, 1) ** 2)
    loss, _ = dense.depth_log_loss(pred, depth, lam)
    np.testing.assert_allclose(loss, expected, rtol=1e-5)
  # lambda = 1: a per-image global scale (a shift of log depth) costs nothing.
  shift = np.array([0.3, -1.0, 2.0], np.float32)[:, None, None]
  exact, aux = dense.depth_log_loss(np.log(depth) + shift, depth, 1.0)
  assert float(exact) == pytest.approx(0.0, abs=1e-5)
  np.testing.assert_allclose(
      aux["abs_rel"], np.mean(np.abs(np.exp(np.broadcast_to(shift, depth.shape)) - 1)),
      rtol=1e-5)
  perfect = dense.depth_log_loss(np.log(depth), depth, 0.5)[1]
  assert float(perfect["delta1"]) == 1.0
  with pytest.raises(ValueError, match="scale_invariance"):
    dense.depth_log_loss(pred, depth, 1.5)


def test_segmentation_loss_matches_numpy_and_iou_on_a_crafted_map():
  rng = _rng(1)
  logits = rng.normal(size=(2, 3, 3, 4)).astype(np.float32)
  labels = rng.integers(0, 4, size=(2, 3, 3))
  log_p = logits - np.log(np.sum(np.exp(logits), -1, keepdims=True))
  expected = -np.mean(np.take_along_axis(log_p, labels[..., None], -1))
  loss, _ = dense.segmentation_loss(logits, labels)
  np.testing.assert_allclose(loss, expected, rtol=1e-5)
  # Predicted [0, 0, 1, 1] against true [0, 1, 1, 1]: IoU 1/2 for class 0,
  # 2/3 for class 1; classes 2, 3 absent.
  pred = np.array([0, 0, 1, 1])
  one_hot = np.eye(4, dtype=np.float32)[pred] * 10
  _, aux = dense.segmentation_loss(one_hot, np.array([0, 1, 1, 1]))
  np.testing.assert_allclose(aux["mean_iou"], (1 / 2 + 2 / 3) / 2, rtol=1e-6)
  np.testing.assert_allclose(aux["pixel_acc"], 0.75)


def test_edge_loss_is_class_balanced_and_global_over_replicas():
  rng = _rng(2)
  logits = rng.normal(size=(8, 4, 4)).astype(np.float32)
  edges = (rng.uniform(size=(8, 4, 4)) < 0.2).astype(np.uint8)
  y = edges.astype(np.float64)
  beta = 1 - y.mean()
  sig = 1 / (1 + np.exp(-logits.astype(np.float64)))
  expected = -np.mean(beta * y * np.log(sig) + (1 - beta) * (1 - y) * np.log(1 - sig))
  loss, aux = dense.edge_loss(logits, edges)
  np.testing.assert_allclose(loss, expected, rtol=1e-5)
  np.testing.assert_allclose(aux["edge_fraction"], y.mean(), rtol=1e-6)
  # Split over 4 replicas: beta counted over all of them, the mean of the
  # replicas' losses is the single-batch loss.
  per_replica = jax.vmap(lambda l, e: dense.edge_loss(l, e, "r")[0],
                         axis_name="r")(logits.reshape(4, 2, 4, 4),
                                        edges.reshape(4, 2, 4, 4))
  np.testing.assert_allclose(np.mean(per_replica), expected, rtol=1e-5)


def test_flow_loss_is_the_end_point_error():
  flow = np.zeros((2, 3, 3, 2), np.float32)
  flow[..., 0] = 3.0
  pred = np.zeros_like(flow)
  pred[..., 1] = 4.0
  loss, aux = dense.flow_loss(pred, flow)
  np.testing.assert_allclose(loss, 5.0, rtol=1e-6)
  np.testing.assert_allclose(aux["zero_epe"], 3.0, rtol=1e-6)
  grad = jax.grad(lambda p: dense.flow_loss(p, flow)[0])(flow)
  assert np.all(np.isfinite(grad))  # exact prediction: finite gradient


def test_dense_regression_is_l1_with_its_mean_floor():
  target = np.array([[0.0, 1.0], [2.0, 3.0]], np.float32)
  loss, aux = dense.dense_regression(np.zeros_like(target), target)
  np.testing.assert_allclose(loss, 1.5)
  np.testing.assert_allclose(aux["mean_mae"], 1.0)


@pytest.mark.parametrize("scale", [1.0, 0.25, 0.0])
def test_gradient_reversal_flips_the_gradient_exactly(scale):
  x = jnp.asarray(_rng(3).normal(size=(5, 3)), jnp.float32)
  w = jnp.asarray(_rng(4).normal(size=(3,)), jnp.float32)

  def head(features):
    return jnp.sum(jnp.tanh(features @ w) ** 2)

  plain = jax.grad(head)(x)
  reversed_, scale_grad = jax.grad(
      lambda f, s: head(losses.gradient_reversal(f, s)), argnums=(0, 1))(
          x, jnp.float32(scale))
  np.testing.assert_array_equal(reversed_, -scale * plain)
  assert float(scale_grad) == 0.0
  np.testing.assert_array_equal(losses.gradient_reversal(x, scale), x)


def test_reversal_schedule_ramps_from_zero_to_one():
  values = dense.reversal_schedule(jnp.array([0.0, 0.5, 1.0]))
  assert float(values[0]) == 0.0
  assert 0.98 < float(values[1]) < float(values[2]) < 1.0


def test_domain_adversarial_values():
  loss, aux = dense.domain_adversarial(jnp.zeros(4), jnp.zeros(6))
  np.testing.assert_allclose(loss, np.log(2.0), rtol=1e-6)
  # Calling everything real: right on the target half only.
  _, aux = dense.domain_adversarial(jnp.ones(4), jnp.ones(6))
  np.testing.assert_allclose(aux["domain_acc"], 0.5)
  # A perfect classifier: source negative, target positive.
  loss, aux = dense.domain_adversarial(-20 * jnp.ones(3), 20 * jnp.ones(3))
  assert float(loss) < 1e-8
  assert float(aux["domain_acc"]) == 1.0
