"""Random walks with restart stay in the graph; their subgraphs are induced."""

import functools

import jax
import numpy as np
import pytest

from ssl_jax.graph import features
from ssl_jax.graph import graphs
from ssl_jax.graph import sampling

WALK = dict(walk_length=24, restart_prob=0.3, subgraph_size=10)


N = 34 + 30 + 4  # karate club, a BA graph, a path of 3 and an isolated node
ISOLATED = N - 1


@pytest.fixture(scope="module")
def union():
  """Three graphs in one CSR union (a walk must stay in its own graph), the
  last with an isolated node (its walk restarts in place)."""
  parts = [graphs.load_graph("karate_club"),
           graphs.load_graph("barabasi_albert:n=30,m=2,seed=0"),
           graphs.GraphData("path+isolated", 4,
                            np.array([[0, 1], [1, 2]], np.int32))]
  graph = graphs.to_device(parts)
  dense = np.zeros((N, N), bool)
  for g, off in zip(parts, (0, 34, 64)):
    dense[g.edges[:, 0] + off, g.edges[:, 1] + off] = True
  return graph, dense | dense.T


@pytest.fixture(scope="module")
def draws(union):
  """Every node as ego, twice (two draws), in one compiled call."""
  graph, _ = union
  egos = np.tile(np.arange(N, dtype=np.int32), 2)
  keys = jax.random.split(jax.random.PRNGKey(0), egos.shape[0])
  sample = jax.jit(functools.partial(sampling.batch_rwr_subgraphs, **WALK))
  return egos, jax.device_get(sample(keys, graph, egos))


def test_walks_follow_edges_or_restart(union, draws):
  _, dense = union
  egos, sub = draws
  for ego, trace in zip(egos, sub.trace):
    assert trace[0] == ego
    for a, b in zip(trace[:-1], trace[1:]):
      assert dense[a, b] or b == ego, (ego, a, b)
    # The walk never leaves the ego's graph.
    graph_of = lambda v: np.searchsorted([34, 64], v, side="right")
    assert np.all(graph_of(trace) == graph_of(ego))


def test_subgraph_nodes_are_first_visits(draws):
  egos, sub = draws
  for ego, trace, nodes, valid in zip(egos, sub.trace, sub.nodes, sub.valid):
    order = list(dict.fromkeys(trace.tolist()))[:WALK["subgraph_size"]]
    assert nodes[0] == ego and valid[0]
    assert nodes[valid].tolist() == order
    assert np.all(nodes[~valid] == -1)
    assert np.all((0 <= nodes[valid]) & (nodes[valid] < N))


def test_induced_adjacency_equals_the_graph(union, draws):
  _, dense = union
  _, sub = draws
  for nodes, valid, adj in zip(sub.nodes, sub.valid, sub.adj):
    real = nodes[valid]
    np.testing.assert_array_equal(adj[np.ix_(valid, valid)],
                                  dense[np.ix_(real, real)])
    assert not adj[~valid].any() and not adj[:, ~valid].any()


def test_isolated_ego_restarts_in_place(draws):
  egos, sub = draws
  for i in np.flatnonzero(egos == ISOLATED):
    assert np.all(sub.trace[i] == ISOLATED)
    assert sub.valid[i].sum() == 1 and not sub.adj[i].any()


def test_positive_pairs_differ(draws):
  """Two draws from one ego (the GCC positive pair) are not always equal."""
  egos, sub = draws
  first, second = sub.nodes[:N], sub.nodes[N:]
  assert np.any(first != second)
  np.testing.assert_array_equal(first[:, 0], second[:, 0])


def test_positional_embedding_matches_numpy(draws):
  """Eigenvectors of D^-1/2 A D^-1/2 (largest first), rows unit-norm."""
  _, sub = draws
  adj, valid = sub.adj[0], sub.valid[0]
  node_features = jax.jit(functools.partial(
      features.node_features, positional_dim=4, max_degree=5))
  x = np.asarray(node_features(adj, valid))
  emb = x[:, :4]
  n = int(valid.sum())
  a = adj[:n, :n].astype(np.float64)
  d = a.sum(1)
  w, v = np.linalg.eigh(a / np.sqrt(np.outer(d, d)))
  v = v[:, ::-1][:, :4]
  v = v / np.linalg.norm(v, axis=1, keepdims=True)
  # Up to the sign of each eigenvector (distinct eigenvalues assumed).
  assert np.allclose(np.abs(emb[:n]), np.abs(v), atol=1e-4), (w, emb, v)
  assert np.all(emb[n:] == 0)
  degrees = np.minimum(adj.sum(1), 5)
  np.testing.assert_array_equal(np.argmax(x[:n, 4:10], 1), degrees[:n])
  assert x[0, -1] == 1 and np.all(x[1:, -1] == 0)
