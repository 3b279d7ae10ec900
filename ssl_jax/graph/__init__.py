"""Graphs for self-supervised pre-training (GCC, Qiu et al. 2020).

``graphs``     host loaders (networkx's real graphs, seeded random-graph
               models, edge-list files) and the device CSR ``Graph``
``sampling``   random walk with restart subgraphs, pure JAX
``features``   GCC's node features: eigenvectors, degree one-hot, ego flag
``gin``        the GIN encoder (segment-sum message passing, layer readouts)
``train``      the graph training loop and node-classification evaluation

Submodules are imported on use: ``from ssl_jax.graph import sampling``.
"""

import json
import os

# config.method values trained by ``ssl_jax.graph.train`` instead of the
# image loop.
GRAPH_METHODS = ("gcc",)


def handles(config, workdir):
  """Whether ``ssl_jax.main`` hands this run to the graph loop: a graph
  method's config, or (``--mode=eval`` without ``--config``) a workdir whose
  saved run is one. Reads no more than ``<workdir>/config.json``."""
  if config.method:
    return config.method in GRAPH_METHODS
  path = os.path.join(workdir or "", "config.json")
  if not workdir or not os.path.exists(path):
    return False
  with open(path) as f:
    return json.load(f).get("method") in GRAPH_METHODS
