"""GIN's segment-sum message passing against a dense-adjacency numpy reference."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ssl_jax.graph import gin

RNG = np.random.default_rng(0)


def _random_batch(batch=3, size=6):
  """Padded subgraphs: random symmetric adjacency on the valid nodes."""
  valid = np.zeros((batch, size), bool)
  adj = np.zeros((batch, size, size), bool)
  for b, n in enumerate((size, 4, 1)[:batch]):
    valid[b, :n] = True
    upper = np.triu(RNG.random((n, n)) < 0.5, 1)
    adj[b, :n, :n] = upper | upper.T
  x = RNG.normal(size=(batch, size, 5)).astype(np.float32)
  return x, adj, valid


def _numpy_gin(params, x, adj, valid, eps, readout):
  """The same network on dense adjacency: h' = MLP(A h + (1 + eps) h)."""
  batch, size, _ = x.shape
  a = np.zeros((batch * size, batch * size), np.float32)
  for b in range(batch):
    a[b * size:(b + 1) * size, b * size:(b + 1) * size] = adj[b]
  mask = valid.reshape(-1, 1).astype(np.float32)
  h = x.reshape(batch * size, -1) * mask
  relu = lambda z: np.maximum(z, 0)
  dense = lambda p, z: z @ np.asarray(p["kernel"]) + np.asarray(p["bias"])
  hs = [h]
  for k in range(len(eps)):
    p = params[f"layer_{k}"]
    z = a @ h + (1 + eps[k]) * h
    z = relu(dense(p["mlp_1"], relu(dense(p["mlp_0"], z))))
    h = z * mask
    hs.append(h)
  pooled = []
  for h in hs:
    per_graph = (h * mask).reshape(batch, size, -1).sum(1)
    if readout == "mean":
      per_graph /= np.maximum(valid.sum(1, keepdims=True), 1)
    pooled.append(per_graph)
  features = np.concatenate(pooled, -1)
  return features, dense(params["output"], features)


@pytest.mark.parametrize("readout", ["sum", "mean"])
def test_gin_equals_dense_reference(readout):
  x, adj, valid = _random_batch()
  model = gin.GIN(num_layers=2, hidden_dim=8, out_dim=4, readout=readout,
                  norm="none", learn_eps=True)
  edges = gin.dense_batch_edges(jnp.asarray(adj), jnp.asarray(valid))
  senders, receivers, weight, node_mask, graph_ids = edges
  flat_x = jnp.asarray(x.reshape(-1, 5))
  params = jax.jit(model.init, static_argnums=(7,), static_argnames="train")(
      jax.random.PRNGKey(0), flat_x, *edges, 3, train=False)["params"]
  eps = [0.3, -0.2]
  params = {**params, **{f"layer_{k}": {**params[f"layer_{k}"],
                                         "eps": jnp.float32(e)}
                         for k, e in enumerate(eps)}}
  out = jax.jit(model.apply, static_argnums=(7,), static_argnames="train")(
      {"params": params}, flat_x, senders, receivers, weight, node_mask,
      graph_ids, 3, train=False)
  features, output = _numpy_gin(params, x, adj, valid, eps, readout)
  np.testing.assert_allclose(out["readout"], features, rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(out["output"], output, rtol=1e-5, atol=1e-5)


def test_aggregate_is_adjacency_product():
  x, adj, valid = _random_batch()
  senders, receivers, weight, _, _ = gin.dense_batch_edges(adj, valid)
  h = x.reshape(-1, 5)
  got = gin.aggregate(jnp.asarray(h), senders, receivers, weight)
  block = np.zeros((18, 18), np.float32)
  for b in range(3):
    block[b * 6:(b + 1) * 6, b * 6:(b + 1) * 6] = adj[b]
  np.testing.assert_allclose(got, block @ h, rtol=1e-5, atol=1e-5)


def test_padded_nodes_do_not_touch_batch_norm():
  """Valid nodes' outputs ignore whatever sits in padded slots (training-mode
  BatchNorm statistics are taken over valid nodes only)."""
  x, adj, valid = _random_batch()
  model = gin.GIN(num_layers=2, hidden_dim=8, out_dim=4, norm="batch")
  edges = gin.dense_batch_edges(jnp.asarray(adj), jnp.asarray(valid))
  variables = jax.jit(model.init, static_argnums=(7,),
                      static_argnames="train")(
      jax.random.PRNGKey(1), jnp.asarray(x.reshape(-1, 5)), *edges, 3,
      train=False)
  junk = np.where(valid[..., None], x, 100.0 * RNG.normal(size=x.shape))

  @jax.jit
  def forward(inputs):
    out, _ = model.apply(variables, inputs, *edges, 3, train=True,
                         mutable=["batch_stats"])
    return out["output"]

  run = lambda inputs: forward(jnp.asarray(inputs.reshape(-1, 5)))

  np.testing.assert_allclose(run(x), run(junk.astype(np.float32)), rtol=1e-5,
                             atol=1e-5)
