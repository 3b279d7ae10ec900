r"""GCC's node input features, computed from a subgraph's structure alone.

Qiu et al. 2020 (GCC, Sec. 3.2 "Define graph encoders"): the features of a
node of a sampled subgraph are

1. its *generalized positional embedding*: the node's row of the top
   eigenvectors of the subgraph's normalised adjacency
   :math:`\tilde A = D^{-1/2} A D^{-1/2}` (the eigenvectors of the
   *smallest* eigenvalues of the normalised Laplacian
   :math:`L = I - \tilde A`, i.e. the smoothest ones), as GCC's
   ``_add_undirected_graph_positional_embedding`` computes them (``eigsh``
   of ``norm * adj * norm``, ``which='LA'``), each node's row then
   L2-normalised and zero-padded to ``dim`` columns. Eigenvectors have no
   canonical sign, so training flips each column's sign at random (a
   Rademacher sign per eigenvector and draw) and the encoder learns to
   ignore it;
2. a one-hot of the node's degree *in the subgraph*, clipped to
   ``max_degree`` (GCC's learned degree embedding is this one-hot times the
   first layer's weights);
3. an indicator of the ego node (GCC's ``seed`` feature).

Padded node slots (``valid`` False) get all-zero features. Everything is
traceable: ``jnp.linalg.eigh`` of the ``(S, S)`` matrix, with padded slots
given the eigenvalue -3 (outside :math:`\tilde A`'s spectrum [-1, 1]) so
their eigenvectors, supported on padded slots only, rank last and are
masked out.
"""

from __future__ import annotations

import jax
from jax import lax
import jax.numpy as jnp

_PAD_EIGENVALUE = -3.0


def positional_embedding(adj, valid, dim, flip_key=None):
  r"""The top-``dim`` eigenvectors of :math:`D^{-1/2} A D^{-1/2}`, by row.

  Args:
    adj: bool or float ``(S, S)`` symmetric adjacency, zero on padded slots.
    valid: bool ``(S,)`` real-node mask.
    dim: number of eigenvectors (columns); beyond the number of real nodes
      the columns are zero.
    flip_key: PRNG key of random column sign flips (training), or None.

  Returns:
    float32 ``(S, dim)``, each valid row of unit L2 norm, padded rows zero.
  """
  size = adj.shape[-1]
  a = adj.astype(jnp.float32)
  degree = jnp.sum(a, axis=-1)
  inv_sqrt = jnp.where(degree > 0, lax.rsqrt(jnp.maximum(degree, 1.0)), 0.0)
  normalized = inv_sqrt[:, None] * a * inv_sqrt[None, :]
  normalized += jnp.diag(jnp.where(valid, 0.0, _PAD_EIGENVALUE))
  eigenvalues, eigenvectors = jnp.linalg.eigh(normalized)  # ascending
  take = min(dim, size)
  eigenvalues = eigenvalues[::-1][:take]
  eigenvectors = eigenvectors[:, ::-1][:, :take]
  real = eigenvalues > _PAD_EIGENVALUE / 2
  eigenvectors = eigenvectors * real[None, :] * valid[:, None]
  if flip_key is not None:
    signs = jax.random.rademacher(flip_key, (take,), jnp.float32)
    eigenvectors = eigenvectors * signs[None, :]
  norm = jnp.linalg.norm(eigenvectors, axis=-1, keepdims=True)
  eigenvectors = eigenvectors / jnp.maximum(norm, 1e-12)
  if take < dim:
    eigenvectors = jnp.pad(eigenvectors, ((0, 0), (0, dim - take)))
  return eigenvectors


def degree_one_hot(adj, valid, max_degree):
  """One-hot of each node's degree in the subgraph, clipped to ``max_degree``:
  float32 ``(S, max_degree + 1)``, zero rows for padded slots."""
  degree = jnp.sum(adj.astype(jnp.int32), axis=-1)
  one_hot = jax.nn.one_hot(jnp.minimum(degree, max_degree), max_degree + 1)
  return one_hot * valid[:, None]


def ego_indicator(valid):
  """float32 ``(S, 1)``: 1 for the ego (slot 0), 0 elsewhere."""
  return ((jnp.arange(valid.shape[0]) == 0) & valid).astype(jnp.float32)[:, None]


def node_features(adj, valid, positional_dim, max_degree, flip_key=None):
  """GCC's input features of one subgraph:
  ``[positional embedding | degree one-hot | ego indicator]``,
  float32 ``(S, positional_dim + max_degree + 2)``."""
  return jnp.concatenate([
      positional_embedding(adj, valid, positional_dim, flip_key),
      degree_one_hot(adj, valid, max_degree),
      ego_indicator(valid)], axis=-1)


def feature_dim(positional_dim, max_degree):
  return positional_dim + max_degree + 2
