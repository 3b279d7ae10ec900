r"""Graph Isomorphism Network (Xu, Hu, Leskovec, Jegelka, ICLR 2019), in Flax.

Message passing over an edge list with ``jax.ops.segment_sum``. Layer k
(Xu et al. eq. 4.1):

.. math::
   h_v^{(k)} = \mathrm{ReLU}\Big(\mathrm{Norm}\Big(\mathrm{MLP}^{(k)}\big(
      (1 + \epsilon^{(k)})\, h_v^{(k-1)} + \sum_{u \in N(v)} w_{uv}\, h_u^{(k-1)}
      \big)\Big)\Big),

with the two-layer :math:`\mathrm{MLP}` = Dense - Norm - ReLU - Dense and the
outer Norm + ReLU of the reference implementation (``ApplyNodeFunc`` in GIN's
and GCC's code). :math:`\epsilon` is 0 (GIN-0, GCC's ``learn_eps=False``) or
learned. The sum runs over the edge list ``senders -> receivers`` with edge
weights :math:`w_{uv}` (1 for an edge; 0 switches a padded edge slot off), so
a batch of graphs is one edge list over concatenated nodes.

Readout (Xu et al. eq. 4.2): every layer's node states, the input included,
are pooled over the valid nodes of each graph (sum or mean; GCC uses the
mean, its ``readout='avg'``) and concatenated,

.. math:: h_G = \big[\, \mathrm{READOUT}(\{h_v^{(k)}\}) \,\big]_{k=0..K},

and a linear layer maps :math:`h_G` to the output (GCC sums one linear map
per layer, which is one linear map of the concatenation).

``Norm`` is BatchNorm over the valid nodes (as GIN and GCC; padded node
slots are masked out of the statistics), LayerNorm, or none.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

NORMS = ("batch", "layer", "none")
READOUTS = ("sum", "mean")


class MaskedNorm(nn.Module):
  """BatchNorm over the rows with ``node_mask``, LayerNorm, or identity."""

  kind: str = "batch"
  momentum: float = 0.9

  @nn.compact
  def __call__(self, x, node_mask, train: bool):
    if self.kind == "batch":
      mask = jnp.broadcast_to(node_mask[:, None], x.shape)
      return nn.BatchNorm(use_running_average=not train,
                          momentum=self.momentum)(x, mask=mask)
    if self.kind == "layer":
      return nn.LayerNorm()(x)
    if self.kind == "none":
      return x
    raise ValueError(f"GIN norm {self.kind!r} is not known; use one of {NORMS}.")


def aggregate(h, senders, receivers, edge_weight):
  r""":math:`\sum_{u \to v} w_{uv} h_u` for every node v, by segment sum."""
  messages = h[senders] * edge_weight[:, None].astype(h.dtype)
  return jax.ops.segment_sum(messages, receivers, num_segments=h.shape[0])


class GINLayer(nn.Module):
  """One GIN layer (module docstring); padded nodes come out as zeros."""

  features: int
  learn_eps: bool = False
  norm: str = "batch"

  @nn.compact
  def __call__(self, h, senders, receivers, edge_weight, node_mask, train: bool):
    eps = (self.param("eps", nn.initializers.zeros, ())
           if self.learn_eps else 0.0)
    z = (1.0 + eps) * h + aggregate(h, senders, receivers, edge_weight)
    mask = node_mask[:, None].astype(h.dtype)
    z = nn.Dense(self.features, name="mlp_0")(z)
    z = nn.relu(MaskedNorm(self.norm, name="mlp_norm")(z, node_mask, train))
    z = nn.Dense(self.features, name="mlp_1")(z)
    z = nn.relu(MaskedNorm(self.norm, name="norm")(z, node_mask, train))
    return z * mask


def readout(h, node_mask, graph_ids, num_graphs, kind):
  """Sum or mean of ``h`` over each graph's valid nodes: ``(num_graphs, D)``."""
  mask = node_mask[:, None].astype(h.dtype)
  total = jax.ops.segment_sum(h * mask, graph_ids, num_segments=num_graphs)
  if kind == "sum":
    return total
  if kind == "mean":
    count = jax.ops.segment_sum(mask, graph_ids, num_segments=num_graphs)
    return total / jnp.maximum(count, 1.0)
  raise ValueError(f"readout {kind!r} is not known; use one of {READOUTS}.")


class GIN(nn.Module):
  """GIN encoder of a batch of graphs given as one edge list.

  Attributes:
    num_layers: K message-passing layers.
    hidden_dim: width of every layer.
    out_dim: width of the output (the linear map of the readout).
    readout: 'sum' or 'mean' over each graph's valid nodes.
    norm: 'batch', 'layer' or 'none'.
    learn_eps: learn epsilon (GIN-eps) or keep it 0 (GIN-0).
  """

  num_layers: int = 4
  hidden_dim: int = 64
  out_dim: int = 64
  readout: str = "mean"
  norm: str = "batch"
  learn_eps: bool = False

  @nn.compact
  def __call__(self, x, senders, receivers, edge_weight, node_mask,
               graph_ids, num_graphs: int, train: bool):
    """Encodes ``num_graphs`` graphs.

    Args:
      x: ``(N, F)`` node input features (all graphs' nodes concatenated).
      senders, receivers: int32 ``(E,)`` edge list (both directions of an
        undirected edge), node ids into ``x``.
      edge_weight: ``(E,)`` 1 for an edge, 0 for a padded slot.
      node_mask: bool ``(N,)`` real nodes.
      graph_ids: int32 ``(N,)`` the graph of each node.
      num_graphs: number of graphs (static).
      train: BatchNorm in training mode (batch statistics) or not.

    Returns:
      ``{'readout': (G, F + K * hidden_dim) concatenated per-layer readouts,
      'output': (G, out_dim)}``.
    """
    mask = node_mask[:, None].astype(x.dtype)
    h = x * mask
    pooled = [readout(h, node_mask, graph_ids, num_graphs, self.readout)]
    for k in range(self.num_layers):
      h = GINLayer(self.hidden_dim, self.learn_eps, self.norm,
                   name=f"layer_{k}")(h, senders, receivers, edge_weight,
                                      node_mask, train)
      pooled.append(readout(h, node_mask, graph_ids, num_graphs, self.readout))
    features = jnp.concatenate(pooled, axis=-1)
    return {"readout": features,
            "output": nn.Dense(self.out_dim, name="output")(features)}


def dense_batch_edges(adj, valid):
  """The edge list of a batch of padded subgraphs with dense adjacency.

  Node i of subgraph b becomes node ``b * S + i``. Every ordered pair
  ``(j -> i)`` of a subgraph is one edge slot whose weight is ``adj[b, i,
  j]``, so the list has the fixed length ``B * S * S`` and non-edges weigh 0.

  Args:
    adj: bool ``(B, S, S)``.
    valid: bool ``(B, S)``.

  Returns:
    ``(senders, receivers, edge_weight, node_mask, graph_ids)``.
  """
  batch, size = valid.shape
  base = (jnp.arange(batch, dtype=jnp.int32) * size)[:, None, None]
  idx = jnp.arange(size, dtype=jnp.int32)
  receivers = jnp.broadcast_to(base + idx[None, :, None], adj.shape).reshape(-1)
  senders = jnp.broadcast_to(base + idx[None, None, :], adj.shape).reshape(-1)
  graph_ids = jnp.repeat(jnp.arange(batch, dtype=jnp.int32), size)
  return (senders, receivers, adj.reshape(-1).astype(jnp.float32),
          valid.reshape(-1), graph_ids)
