r"""Random walk with restart (RWR) subgraph sampling, GCC's graph "views".

Qiu et al. 2020, "GCC: Graph Contrastive Coding for Graph Neural Network
Pre-Training" (KDD, arXiv 2006.09963), Sec. 3.2 "Define subgraph instances"
and "Define (dis)similar instances": an instance is the subgraph around an
ego node; two subgraphs drawn from the same ego by random walks with restart
(Tong et al. 2006) are a similar (positive) pair, subgraphs of other egos
are dissimilar.

The walk starts at the ego :math:`v_0 = e`. At each of ``walk_length``
steps it returns to the ego with probability :math:`\alpha`
(``restart_prob``) and otherwise moves to a uniformly chosen neighbour of
the current node (a node with no neighbour also returns to the ego):

.. math::
   v_{t+1} = \begin{cases} e & \text{w.p. } \alpha \text{ or if } d(v_t)=0\\
   u \sim \mathrm{Uniform}(N(v_t)) & \text{otherwise.}\end{cases}

The subgraph's nodes are the distinct visited nodes in order of first visit,
the first ``subgraph_size`` of them (the ego is always node 0), and its
edges are all edges of the graph between them (the induced subgraph, as
GCC's ``_rwr_trace_to_dgl_graph`` takes ``g.subgraph(visited)``). Because
every node enters the walk from an already visited neighbour, the truncated
node set is connected.

Everything is pure JAX with explicit keys and fixed shapes: the walk is a
``lax.scan`` of ``walk_length`` steps, the first-visit order a comparison of
the trace with itself, the adjacency an ``(S, S)`` mask from
:func:`ssl_jax.graph.graphs.has_edge`; ``jax.vmap`` batches egos and draws.
"""

from __future__ import annotations

import flax
import jax
from jax import lax
import jax.numpy as jnp

from ssl_jax.graph import graphs as graphs_lib


@flax.struct.dataclass
class Subgraph:
  """An RWR subgraph (batched with leading axes under ``vmap``).

  Attributes:
    nodes: int32 ``(S,)`` global node ids in first-visit order (ego at 0),
      -1 past the last visited node.
    valid: bool ``(S,)``, ``nodes >= 0``.
    adj: bool ``(S, S)`` induced adjacency (symmetric, zero diagonal, zero
      on invalid rows and columns).
    trace: int32 ``(walk_length + 1,)`` the walk itself, ``trace[0]`` = ego.
  """

  nodes: jax.Array
  valid: jax.Array
  adj: jax.Array
  trace: jax.Array


def random_walk_with_restart(key, graph, ego, walk_length, restart_prob):
  """The RWR trace from ``ego``: int32 ``(walk_length + 1,)``, ego first.

  Args:
    key: PRNG key of this walk.
    graph: a :class:`ssl_jax.graph.graphs.Graph`.
    ego: int32 scalar node id.
    walk_length: number of steps (static).
    restart_prob: probability :math:`\alpha` of returning to the ego at each
      step (may be traced).
  """
  ego = jnp.asarray(ego, jnp.int32)
  last = graph.col.shape[0] - 1

  def step(current, draws):
    restart_draw, move_draw = draws[0], draws[1]
    degree = graph.degree[current]
    pick = jnp.floor(move_draw * degree).astype(jnp.int32)
    pick = jnp.minimum(pick, jnp.maximum(degree - 1, 0))
    neighbour = jnp.take(graph.col, jnp.clip(graph.row_ptr[current] + pick, 0, last))
    restart = (restart_draw < restart_prob) | (degree == 0)
    following = jnp.where(restart, ego, neighbour)
    return following, following

  # Two uniforms per step: restart or not, and which neighbour.
  draws = jax.random.uniform(key, (walk_length, 2))
  _, visited = lax.scan(step, ego, draws)
  return jnp.concatenate([ego[None], visited])


def first_visits(trace, subgraph_size):
  """The first ``subgraph_size`` distinct nodes of ``trace`` in visit order.

  Returns:
    ``(nodes, valid)``: int32 ``(S,)`` padded with -1, bool ``(S,)``.
  """
  length = trace.shape[0]
  earlier = jnp.tril(jnp.ones((length, length), bool), k=-1)
  seen_before = jnp.any((trace[:, None] == trace[None, :]) & earlier, axis=1)
  new = ~seen_before
  rank = jnp.cumsum(new) - 1
  slot = jnp.where(new & (rank < subgraph_size), rank, subgraph_size)
  nodes = jnp.full((subgraph_size,), -1, jnp.int32).at[slot].set(
      trace, mode="drop")
  return nodes, nodes >= 0


def induced_adjacency(graph, nodes, valid):
  """bool ``(S, S)``: ``adj[i, j]`` iff nodes i and j are valid, different and
  joined by an edge of ``graph``."""
  adj = graphs_lib.has_edge(graph, nodes[:, None], nodes[None, :])
  off_diagonal = ~jnp.eye(nodes.shape[0], dtype=bool)
  return adj & valid[:, None] & valid[None, :] & off_diagonal


def rwr_subgraph(key, graph, ego, *, walk_length, restart_prob, subgraph_size):
  """One GCC view of ``ego``: the induced subgraph of an RWR's first visits.

  Args:
    key: PRNG key of the walk.
    graph: a :class:`ssl_jax.graph.graphs.Graph`.
    ego: int32 scalar node id.
    walk_length: RWR steps (static).
    restart_prob: restart probability :math:`\alpha`.
    subgraph_size: S, the most nodes kept (static).

  Returns:
    a :class:`Subgraph`.
  """
  trace = random_walk_with_restart(key, graph, ego, walk_length, restart_prob)
  nodes, valid = first_visits(trace, subgraph_size)
  return Subgraph(nodes=nodes, valid=valid,
                  adj=induced_adjacency(graph, nodes, valid), trace=trace)


def batch_rwr_subgraphs(keys, graph, egos, **kwargs):
  """:func:`rwr_subgraph` of every ``egos[i]`` with ``keys[i]`` (vmapped)."""
  return jax.vmap(lambda k, e: rwr_subgraph(k, graph, e, **kwargs))(keys, egos)


def sample_egos(key, graph, batch_size):
  """``batch_size`` ego nodes drawn uniformly from all nodes of ``graph`` (of
  every graph in the union: every node is one instance, as in GCC's
  instance discrimination)."""
  return jax.random.randint(key, (batch_size,), 0, graph.num_nodes, jnp.int32)
