"""The online probe: its gradient stays out of the features, and its loss is
the softmax cross-entropy."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from ssl_jax.methods import base
from ssl_jax.train import probe as probe_lib


def test_probe_loss_and_accuracy_match_numpy():
  rng = np.random.default_rng(0)
  logits = rng.normal(scale=3.0, size=(12, 5)).astype(np.float32)
  labels = rng.integers(0, 5, size=12)
  loss, metrics = probe_lib.probe_loss(jnp.asarray(logits), jnp.asarray(labels))
  x = logits.astype(np.float64)
  log_softmax = x - x.max(1, keepdims=True)
  log_softmax -= np.log(np.exp(log_softmax).sum(1, keepdims=True))
  expected = -log_softmax[np.arange(12), labels].mean()
  np.testing.assert_allclose(loss, expected, rtol=1e-6)
  np.testing.assert_allclose(metrics["probe_loss"], expected, rtol=1e-6)
  np.testing.assert_allclose(metrics["probe_acc"],
                             np.mean(x.argmax(1) == labels))


def test_probe_gradient_does_not_reach_the_features():
  features = jax.random.normal(jax.random.PRNGKey(0), (6, 4), jnp.bfloat16)
  labels = jnp.array([0, 1, 2, 0, 1, 2])
  probe = probe_lib.OnlineProbe(num_classes=3)
  params = probe.init(jax.random.PRNGKey(1), features)

  def loss(features, params):
    logits = probe.apply(params, features)
    assert logits.dtype == jnp.float32
    return probe_lib.probe_loss(logits, labels)[0]

  grad_features, grad_params = jax.grad(loss, argnums=(0, 1))(features, params)
  assert not np.any(np.asarray(grad_features, np.float32))
  assert np.all(np.abs(np.asarray(grad_params["params"]["Dense_0"]["kernel"])) > 0)


class _Layer(nn.Module):
  """A stand-in for the encoder and the projector (they take ``train``)."""

  @nn.compact
  def __call__(self, x, train):
    del train
    return nn.tanh(nn.Dense(4)(x))


def test_in_a_siamese_network_the_probe_trains_only_itself():
  network = base.SiameseNetwork(encoder=_Layer(), projector=_Layer(),
                                predictor=None, num_classes=3)
  images = jax.random.normal(jax.random.PRNGKey(0), (6, 5))
  labels = jnp.array([0, 1, 2, 0, 1, 2])
  params = network.init(jax.random.PRNGKey(1), images, train=True)["params"]

  def probe_only(params):
    logits = network.apply({"params": params}, images, train=True)["probe_logits"]
    return probe_lib.probe_loss(logits, labels)[0]

  grads = jax.grad(probe_only)(params)
  for name in ("encoder", "projector"):
    assert not any(np.any(g) for g in jax.tree.leaves(grads[name])), name
  assert any(np.any(g) for g in jax.tree.leaves(grads["online_probe"]))
