r"""GCC: Graph Contrastive Coding for Graph Neural Network Pre-Training.

Qiu, Chen, Dong, Zhang, Yang, Ding, Wang, Tang (KDD 2020),
https://arxiv.org/abs/2006.09963, and its reference code (THUDM/GCC).

GCC pre-trains a graph encoder on structure alone, across graphs, so that it
transfers to graphs it has never seen: the pretext task is to tell whether
two subgraphs come from the same node's neighbourhood ("subgraph instance
discrimination", Sec. 3.2).

- Views (Sec. 3.2, "Define subgraph instances"): an instance is the
  r-ego network of a node; GCC's views of it are two random walks with
  restart from the ego (``ssl_jax.graph.sampling``, restart probability
  ``config.sampling.restart_prob``, ``walk_length`` steps, the first
  ``subgraph_size`` distinct nodes, ego first), each taken as its induced
  subgraph. Egos are drawn uniformly from the nodes of all pretraining
  graphs (one disjoint union, ``ssl_jax.graph.graphs.to_device``).
- Networks (Sec. 3.2, "Define graph encoders"): node features from the
  subgraph alone (``ssl_jax.graph.features``: top eigenvectors of the
  normalised adjacency with random sign flips, a one-hot of the clipped
  degree, the ego indicator), a GIN encoder (``ssl_jax.graph.gin``) whose
  per-layer mean readouts are concatenated and mapped linearly to the
  embedding. The query encoder f_q is trained; the key encoder f_k (the
  same GIN, ``ema_params``) follows it by the momentum update
  :math:`\theta_k \leftarrow m\theta_k + (1-m)\theta_q` (GCC-MoCo, Sec.
  3.2 "Define contrastive loss", m = ``config.gcc.momentum``, 0.999).
- Loss (eq. 1): InfoNCE of q = f_q(x_q) against its key k+ = f_k(x_k) and
  the K keys of a queue of past batches (:func:`gcc_loss`), temperature
  0.07.
- State updates: the key encoder's EMA (:meth:`GCC.after_update`), its and
  the query encoder's BatchNorm statistics, and the queue, a ring buffer of
  ``config.gcc.queue_size`` keys (``TrainState.queue``/``queue_ptr``,
  ``ssl_jax.train.queue``).

The step is one pure function ``(state, graph) -> (state, metrics)``
(``ssl_jax.graph.train.make_train_step``): the ego nodes, walks and sign
flips come from ``state.rng`` folded with ``state.step``, so a resumed run
draws what an uninterrupted one would. It runs on one device (the images'
data-parallel step does not apply: a graph batch is sampled on device, not
fed by a host pipeline).

Evaluation (:meth:`GCC.embed_nodes`): a node's representation is the mean
of the L2-normalised encoder outputs of ``config.eval.draws`` RWR
subgraphs around it (no sign flips), as GCC's ``generate.py`` averages the
embeddings of its two views.

Not here: GCC's E2E variant (negatives from the batch only), dropout
before the output (0.5 in GCC's GIN) and the graph-classification
downstream tasks.
"""

from __future__ import annotations

import json

import flax.linen as nn
import jax
import jax.numpy as jnp

from ssl_jax import losses
from ssl_jax.eval import collapse
from ssl_jax.graph import features as features_lib
from ssl_jax.graph import gin
from ssl_jax.graph import sampling
from ssl_jax.train import momentum as momentum_lib
from ssl_jax.train import queue as queue_lib
from ssl_jax.train import state as state_lib

# Compiled init and node embedding, by config (see GCC.__init__).
_COMPILED = {}

# PRNG streams folded into each step's key.
EGO_STREAM, VIEW_STREAM = 0, 1


def gcc_loss(q, k, queue, temperature=0.07):
  r"""GCC-MoCo's InfoNCE loss (Qiu et al. 2020, eq. 1; He et al. 2020, eq. 1).

  Query :math:`q_i` (query encoder on one RWR subgraph of ego i), its key
  :math:`k_i` (key encoder on another RWR subgraph of the same ego) and the
  K queued keys :math:`\{n_j\}` of earlier batches as negatives; all
  L2-normalised, so the products are cosine similarities:

  .. math::
     \mathcal{L} = -\frac{1}{N}\sum_{i=1}^{N} \log
       \frac{\exp(q_i^\top k_i/\tau)}
            {\exp(q_i^\top k_i/\tau) + \sum_{j=1}^{K}\exp(q_i^\top n_j/\tau)},
     \qquad \tau = 0.07.

  Keys and queue get no gradient. This is ``ssl_jax.losses.moco``.

  Returns:
    ``(loss, aux)`` with ``contrastive_acc``, ``pos_sim``, ``neg_sim``.
  """
  return losses.moco(q, k, queue, temperature)


class GCCNetwork(nn.Module):
  """The GCC encoder: a GIN over a batch of padded subgraphs.

  Its only submodule is ``encoder``, which the key encoder mirrors.
  """

  encoder: gin.GIN

  def __call__(self, view, train: bool):
    """``view``: ``{'x': (B, S, F), 'adj': (B, S, S), 'valid': (B, S)}``.

    Returns ``{'readout': (B, R), 'output': (B, out_dim)}``.
    """
    batch, size, dim = view["x"].shape
    senders, receivers, weight, node_mask, graph_ids = gin.dense_batch_edges(
        view["adj"], view["valid"])
    return self.encoder(view["x"].reshape(batch * size, dim), senders,
                        receivers, weight, node_mask, graph_ids,
                        num_graphs=batch, train=train)


class GCC:
  """GCC-MoCo; see the module docstring.

  Provides ``init_state(rng, tx)``, ``loss_fn(params, state, graph)``,
  ``after_update(state)``, ``encode(variables, view)`` and
  ``embed_nodes(variables, graph, nodes, key)``.
  """

  name = "gcc"
  target_modules = ("encoder",)

  def __init__(self, config, total_steps):
    self.config = config
    self.total_steps = total_steps
    g, s, m = config.gcc, config.sampling, config.model
    batch = config.train.batch_size
    problems = []
    if batch < 2:
      problems.append(f"config.train.batch_size={batch} must be >= 2")
    if g.queue_size <= 0 or g.queue_size % max(batch, 1):
      problems.append(
          f"config.gcc.queue_size={g.queue_size} must be a positive multiple "
          f"of config.train.batch_size={batch} (e.g. "
          f"{max(1, round(g.queue_size / max(batch, 1))) * batch})")
    if not g.temperature > 0:
      problems.append(f"config.gcc.temperature={g.temperature} must be > 0")
    if not 0 <= g.momentum <= 1:
      problems.append(f"config.gcc.momentum={g.momentum} must be in [0, 1]")
    if g.momentum_schedule not in momentum_lib.MOMENTUM_SCHEDULES:
      problems.append(f"config.gcc.momentum_schedule={g.momentum_schedule!r} "
                      f"must be one of {momentum_lib.MOMENTUM_SCHEDULES}")
    if not 0 <= s.restart_prob < 1:
      problems.append(
          f"config.sampling.restart_prob={s.restart_prob} must be in [0, 1)")
    if s.subgraph_size < 2 or s.walk_length < 1:
      problems.append(
          f"config.sampling.subgraph_size={s.subgraph_size} must be >= 2 and "
          f"walk_length={s.walk_length} >= 1")
    if m.positional_dim < 0 or m.max_degree < 1:
      problems.append("config.model.positional_dim must be >= 0 and "
                      "max_degree >= 1")
    if m.norm not in gin.NORMS:
      problems.append(f"config.model.norm={m.norm!r} must be one of {gin.NORMS}")
    if m.readout not in gin.READOUTS:
      problems.append(
          f"config.model.readout={m.readout!r} must be one of {gin.READOUTS}")
    if config.eval.features not in ("output", "readout"):
      problems.append(f"config.eval.features={config.eval.features!r} must be "
                      "'output' (GCC's embedding) or 'readout'")
    if config.eval.draws < 1:
      problems.append(f"config.eval.draws={config.eval.draws} must be >= 1")
    if problems:
      raise ValueError("; ".join(problems) + ".")
    self.batch_size = batch
    self.temperature = g.temperature
    self.queue_size = g.queue_size
    self.walk = dict(walk_length=int(s.walk_length),
                     restart_prob=float(s.restart_prob),
                     subgraph_size=int(s.subgraph_size))
    self.positional_dim = int(m.positional_dim)
    self.max_degree = int(m.max_degree)
    self.network = GCCNetwork(encoder=gin.GIN(
        num_layers=m.num_layers, hidden_dim=m.hidden_dim, out_dim=m.out_dim,
        readout=m.readout, norm=m.norm, learn_eps=m.learn_eps, name="encoder"))
    # Compiled once per network and sampling config (and graph shape), for
    # the trained encoder and its random-init floor alike, and shared by the
    # GCC objects of one process (a resumed run builds a new one).
    key = json.dumps([m.to_dict(), s.to_dict(), config.eval.draws,
                      config.eval.features], sort_keys=True, default=str)
    if key not in _COMPILED:
      _COMPILED[key] = (jax.jit(self.network.init, static_argnames="train"),
                        jax.jit(self.embed_nodes))
    self._init, self.embed_nodes_jit = _COMPILED[key]

  # --------------------------------------------------------------------------
  # Views: two RWR subgraphs of every ego, and their node features.
  # --------------------------------------------------------------------------
  def subgraph_view(self, key, graph, egos, flip_signs):
    """One RWR subgraph per ego with its features: the network's input.

    Args:
      key: PRNG key of the walks (and of the sign flips).
      graph: the :class:`ssl_jax.graph.graphs.Graph` to walk on.
      egos: int32 ``(B,)`` ego nodes.
      flip_signs: flip eigenvector signs at random (training) or not.

    Returns:
      ``{'x': (B, S, F), 'adj': (B, S, S), 'valid': (B, S), 'nodes': (B, S)}``.
    """
    walk_key, flip_key = jax.random.split(key)
    subgraphs = sampling.batch_rwr_subgraphs(
        jax.random.split(walk_key, egos.shape[0]), graph, egos, **self.walk)

    def features(adj, valid, k):
      return features_lib.node_features(
          adj, valid, self.positional_dim, self.max_degree,
          k if flip_signs else None)

    x = jax.vmap(features)(subgraphs.adj, subgraphs.valid,
                           jax.random.split(flip_key, egos.shape[0]))
    return {"x": x, "adj": subgraphs.adj, "valid": subgraphs.valid,
            "nodes": subgraphs.nodes}

  def views(self, key, graph, egos):
    """The query and key views: two independent RWR draws from each ego.

    Both views are sampled and featurised as one batch of 2B subgraphs, so
    the step holds a single batched ``eigh``: jaxlib 0.10.2's CPU LAPACK
    kernels block an XLA:CPU pool thread while their batch runs on the same
    pool, and two batched ``eigh`` calls in flight at once deadlock a
    two-thread pool (observed on a 2-core machine).
    """
    batch = egos.shape[0]
    both = self.subgraph_view(key, graph, jnp.concatenate([egos, egos]),
                              flip_signs=True)
    return (jax.tree.map(lambda x: x[:batch], both),
            jax.tree.map(lambda x: x[batch:], both))

  # --------------------------------------------------------------------------
  # Networks and state.
  # --------------------------------------------------------------------------
  def dummy_view(self, batch=2):
    size = self.walk["subgraph_size"]
    dim = features_lib.feature_dim(self.positional_dim, self.max_degree)
    return {"x": jnp.zeros((batch, size, dim), jnp.float32),
            "adj": jnp.zeros((batch, size, size), bool),
            "valid": jnp.ones((batch, size), bool)}

  def init_state(self, rng, tx):
    """Step-0 TrainState: query encoder, key encoder (a copy), random queue."""
    init_rng, state_rng = jax.random.split(rng)
    variables = self._init(init_rng, self.dummy_view(), train=False)
    ema_params, ema_batch_stats = momentum_lib.init_target(
        variables, self.target_modules)
    queue, queue_ptr = queue_lib.init_queue(
        jax.random.fold_in(init_rng, 1), self.queue_size,
        self.config.model.out_dim, self.batch_size)
    return state_lib.create_train_state(
        state_rng, variables, tx, ema_params=ema_params,
        ema_batch_stats=ema_batch_stats, queue=queue, queue_ptr=queue_ptr)

  def query_forward(self, params, batch_stats, view):
    """f_q in training mode: ``(outputs, new batch_stats)``."""
    outputs, new_vars = self.network.apply(
        {"params": params, "batch_stats": batch_stats}, view, train=True,
        mutable=["batch_stats"])
    return outputs, new_vars.get("batch_stats", {})

  def key_forward(self, state, view):
    """f_k (the momentum encoder), no gradient: ``(outputs, new stats)``."""
    return momentum_lib.target_forward(self.network, state, view, method=None,
                                       train=True)

  def momentum(self, step):
    return momentum_lib.momentum_at(step, self.config.gcc.momentum,
                                    self.total_steps,
                                    self.config.gcc.momentum_schedule)

  # --------------------------------------------------------------------------
  # Loss and state updates.
  # --------------------------------------------------------------------------
  def loss_fn(self, params, state, graph):
    """GCC-MoCo's loss on one batch of egos drawn from ``graph``.

    Returns:
      ``(loss, (state_updates, metrics))``: the new BatchNorm statistics of
      both encoders and the queue with this batch's keys enqueued.
    """
    key = jax.random.fold_in(state.rng, state.step)
    egos = sampling.sample_egos(jax.random.fold_in(key, EGO_STREAM), graph,
                                self.batch_size)
    view_q, view_k = self.views(jax.random.fold_in(key, VIEW_STREAM), graph,
                                egos)
    outputs_q, batch_stats = self.query_forward(params, state.batch_stats,
                                                view_q)
    outputs_k, ema_batch_stats = self.key_forward(state, view_k)
    q, k = outputs_q["output"], outputs_k["output"]
    # Negatives: the queue as it was before this batch's keys (Algorithm 1).
    loss, aux = gcc_loss(q, k, state.queue, self.temperature)
    enqueued = queue_lib.enqueue(state, k, axis_name=None)
    metrics = dict(aux, contrastive_loss=loss,
                   ema_momentum=self.momentum(state.step),
                   subgraph_nodes=jnp.mean(jnp.sum(view_q["valid"], axis=1)),
                   **collapse.collapse_metrics(q))
    updates = {"batch_stats": batch_stats, "ema_batch_stats": ema_batch_stats,
               "queue": enqueued.queue, "queue_ptr": enqueued.queue_ptr}
    return loss, (updates, metrics)

  def after_update(self, state):
    """The key encoder's momentum update after optimizer step ``state.step``."""
    return momentum_lib.update_target(state, self.momentum(state.step - 1))

  # --------------------------------------------------------------------------
  # Evaluation.
  # --------------------------------------------------------------------------
  def encode(self, variables, view):
    """The (query) encoder in evaluation mode: ``{'readout', 'output'}``."""
    return self.network.apply(variables, view, train=False)

  def embed_nodes(self, variables, graph, nodes, key):
    """Representations of ``nodes``: the mean over ``config.eval.draws`` RWR
    subgraphs of each node of the L2-normalised ``config.eval.features``
    (GCC's 'output', or the concatenated 'readout').

    Node ``v``'s draws use ``fold_in(key, v)``, so a node's embedding does
    not depend on the batch it is computed in. Returns float32 ``(n, D)``.
    """
    draws = int(self.config.eval.draws)
    which = self.config.eval.features

    def one_draw(d):
      keys = jax.vmap(lambda v: jax.random.fold_in(
          jax.random.fold_in(key, v), d))(nodes)
      subgraphs = jax.vmap(lambda k, e: sampling.rwr_subgraph(
          k, graph, e, **self.walk))(keys, nodes)
      x = jax.vmap(lambda a, m: features_lib.node_features(
          a, m, self.positional_dim, self.max_degree))(subgraphs.adj,
                                                       subgraphs.valid)
      z = self.encode(variables, {"x": x, "adj": subgraphs.adj,
                                  "valid": subgraphs.valid})[which]
      return z / jnp.maximum(jnp.linalg.norm(z, axis=-1, keepdims=True), 1e-12)

    return jnp.mean(jax.lax.map(one_draw, jnp.arange(draws)), axis=0)
