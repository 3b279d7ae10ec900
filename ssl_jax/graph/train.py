"""The graph training loop (GCC) and its node-classification evaluation.

``python -m ssl_jax.main --config=configs/gcc.py --workdir=DIR`` lands in
:func:`train_and_evaluate`: build the pretraining graphs' union, run the
compiled step ``(state, graph) -> (state, metrics)`` to
``config.train.num_steps`` with the library's checkpointer
(``ssl_jax.train.checkpoint``; rerunning with the same workdir resumes from
the latest checkpoint, a finished run goes straight to evaluation) and
metrics logger (``metrics.jsonl``, TensorBoard, ``training_curves.png``),
then :func:`evaluate`.

Evaluation, per held-out graph of ``config.graph.evaluate``: every node is
embedded (``GCC.embed_nodes``: the mean of ``config.eval.draws`` RWR
subgraphs' L2-normalised embeddings; all held-out graphs as one disjoint
union), once with the trained encoder and once with the same encoder at
its random initialisation (the floor), then
classified on ``config.eval.num_splits`` seeded class-stratified splits of
the nodes (``train_fraction`` of each class to train, the rest to test;
the same splits for both encoders) by

* kNN (``ssl_jax.eval.knn``: cosine, k = ``config.eval.knn_k``, votes
  weighted exp(sim / ``knn_temperature``)), and
* the linear probe (``ssl_jax.eval.linear_probe``: L2-regularised
  multinomial logistic regression by L-BFGS on standardised features, L2
  chosen on a held-out 10% of the train nodes).

Each number is the mean (and std) of the test-node accuracy over the splits;
the majority-class rate of the test nodes is given for reference. The
report goes to ``<workdir>/eval.json`` and ``eval.md``.
"""

from __future__ import annotations

import json
import os
import time

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from absl import logging

from ssl_jax import graph as graph_pkg
from ssl_jax.eval import collapse
from ssl_jax.eval import knn
from ssl_jax.eval import linear_probe as linear_probe_lib
from ssl_jax.eval import protocols as protocols_lib
from ssl_jax.graph import graphs as graphs_lib
from ssl_jax.methods import gcc as gcc_lib
from ssl_jax.train import checkpoint as checkpoint_lib
from ssl_jax.train import loop
from ssl_jax.train import metrics as metrics_lib
from ssl_jax.train import optim

METHODS = graph_pkg.GRAPH_METHODS
PROTOCOLS = ("knn", "linear")


ConfigError = loop.ConfigError


def make_train_step(method, tx):
  """The compiled pure step ``(state, graph) -> (state, metrics)``.

  Gradient of ``method.loss_fn`` -> optimizer update -> the state updates
  the forward pass produced (BatchNorm statistics, queue) -> the method's
  ``after_update`` (the key encoder's EMA). Donates its input state.
  """

  def step(state, graph):
    grads, (loss, (updates, metrics)) = jax.grad(
        lambda p: _with_value(method.loss_fn(p, state, graph)),
        has_aux=True)(state.params)
    param_updates, opt_state = tx.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, param_updates)
    state = state.replace(step=state.step + 1, params=params,
                          opt_state=opt_state, **updates)
    state = method.after_update(state)
    metrics = dict(metrics, loss=loss, grad_norm=optax.tree.norm(grads))
    return state, metrics

  return jax.jit(step, donate_argnums=0)


# Compiled steps by the config sections they depend on: runs of one config in
# one process (a resumed run, the tests) share one compiled step.
_STEPS = {}


def compiled_step(run):
  """``make_train_step(run.method, run.tx)``, built once per step config."""
  c = run.config
  key = json.dumps([c.model.to_dict(), c.sampling.to_dict(), c.gcc.to_dict(),
                    c.optim.to_dict(), c.train.batch_size, run.total_steps,
                    c.eval.features, c.eval.draws], sort_keys=True, default=str)
  if key not in _STEPS:
    _STEPS[key] = make_train_step(run.method, run.tx)
  return _STEPS[key]


def _with_value(loss_and_aux):
  loss, aux = loss_and_aux
  return loss, (loss, aux)


def _load(specs, what):
  specs = graphs_lib.parse_specs(specs)
  if not specs:
    raise ConfigError(f"config.graph.{what} names no graph; give specs "
                      "separated by ';', e.g. 'karate_club; "
                      "barabasi_albert:n=500,m=3,seed=1'.")
  try:
    return [graphs_lib.load_graph(s) for s in specs]
  except graphs_lib.GraphError as e:
    raise ConfigError(f"config.graph.{what}: {e}") from None


def _edge_set(g):
  return frozenset(map(tuple, g.edges.tolist()))


class GraphRun:
  """The pieces of one GCC run, built from a config (shared by train and eval)."""

  def __init__(self, config, workdir):
    if config.method not in METHODS:
      raise ConfigError(f"config.method={config.method!r} is not a graph "
                        f"method ({METHODS}).")
    self.config = config
    self.workdir = workdir
    self.pretrain_data = _load(config.graph.pretrain, "pretrain")
    self.eval_data = _load(config.graph.evaluate, "evaluate")
    pretrain_edges = {_edge_set(g): g.name for g in self.pretrain_data}
    for g in self.eval_data:
      if g.labels is None:
        raise ConfigError(
            f"config.graph.evaluate: graph {g.name!r} has no node labels; "
            "evaluate on a labelled graph (karate_club, davis_southern_women, "
            "sbm, ba_shapes, or edge_list with labels=...).")
      if len(set(g.labels.tolist())) < 2:
        raise ConfigError(f"config.graph.evaluate: graph {g.name!r} has a "
                          "single class; nothing to classify.")
      if _edge_set(g) in pretrain_edges:
        raise ConfigError(
            f"evaluation graph {g.name!r} is also a pretraining graph "
            f"({pretrain_edges[_edge_set(g)]!r}); GCC's transfer needs a "
            "held-out graph: remove it from config.graph.pretrain.")
    protocols = tuple(p.strip() for p in config.eval.protocols.split(",")
                      if p.strip())
    if not protocols or set(protocols) - set(PROTOCOLS):
      raise ConfigError(f"config.eval.protocols={config.eval.protocols!r}: "
                        f"use a comma-separated list of {PROTOCOLS}.")
    self.protocols = protocols
    if not 0 < config.eval.train_fraction < 1 or config.eval.num_splits < 1:
      raise ConfigError("config.eval.train_fraction must be in (0, 1) and "
                        "config.eval.num_splits >= 1.")
    self.pretrain_graph = graphs_lib.to_device(self.pretrain_data)
    self.total_steps = int(config.train.num_steps)
    if self.total_steps < 1:
      raise ConfigError(f"config.train.num_steps={self.total_steps} must be "
                        "positive.")
    if not 0 <= config.optim.warmup_steps < self.total_steps:
      raise ConfigError(
          f"config.optim.warmup_steps={config.optim.warmup_steps} must be in "
          f"[0, {self.total_steps}), the run's training steps; lower it.")
    try:
      self.method = gcc_lib.GCC(config, self.total_steps)
      self.tx, self.schedule = optim.make_optimizer(
          config.optim, self.total_steps, config.train.batch_size)
    except ValueError as e:
      raise ConfigError(str(e)) from e
    self.checkpointer = checkpoint_lib.Checkpointer(
        os.path.join(os.path.abspath(workdir), "checkpoints"),
        max_to_keep=config.train.keep_checkpoints,
        save_every_steps=config.train.checkpoint_every_steps)

  def initial_state(self):
    """The step-0 state, committed to the default device (as restored states
    are, so both compile to one step)."""
    return jax.device_put(
        self.method.init_state(jax.random.PRNGKey(self.config.seed), self.tx),
        jax.devices()[0])

  def restore_or_init(self):
    state = self.initial_state()
    if self.checkpointer.latest_step is None:
      return state
    logging.info("Resuming from checkpoint at step %d.",
                 self.checkpointer.latest_step)
    state, _ = self.checkpointer.restore(checkpoint_lib.abstract_like(state))
    return jax.device_put(state, jax.devices()[0])


def _check_workdir(config, workdir, write=True):
  """``loop.check_workdir`` with the pretraining graphs as the run's data."""
  return loop.check_workdir(
      config, workdir, write,
      data_record={"pretrain": list(graphs_lib.parse_specs(
          config.graph.pretrain))})


def train(run, stop_after_step=None):
  """Trains to ``config.train.num_steps``; returns the state and subgraphs/s.

  ``stop_after_step`` ends the run early, with a checkpoint, as a preempted
  run would (the schedule still spans ``config.train.num_steps``).
  """
  config = run.config
  _check_workdir(config, run.workdir)
  state = run.restore_or_init()
  start_step = int(jax.device_get(state.step))
  if start_step >= run.total_steps:
    return state, None
  train_step = compiled_step(run)
  logger = metrics_lib.MetricsLogger(run.workdir)
  progress = None
  if config.train.progress_bar:
    from tqdm import tqdm  # pylint: disable=g-import-not-at-top
    progress = tqdm(total=run.total_steps, initial=start_step, unit="step",
                    desc="gcc pretraining", dynamic_ncols=True)
  timed_from, timed_steps, rate = None, 0, None
  end_step = run.total_steps if stop_after_step is None else min(
      stop_after_step, run.total_steps)
  for step in range(start_step, end_step):
    state, metrics = train_step(state, run.pretrain_graph)
    done = step + 1
    if timed_from is None:  # the first step compiles: time from its end
      jax.block_until_ready(metrics)
      timed_from = time.perf_counter()
    else:
      timed_steps += 1
    if done % config.train.log_every_steps == 0 or done == end_step:
      metrics = jax.device_get(metrics)
      if not np.isfinite(metrics["loss"]):
        raise FloatingPointError(
            f"loss is {metrics['loss']} at step {done}; lower "
            "config.optim.base_lr. The last good checkpoint is kept.")
      if timed_steps:
        # Two views per ego.
        rate = (2 * timed_steps * config.train.batch_size
                / (time.perf_counter() - timed_from))
      scalars = dict(metrics, learning_rate=run.schedule(step))
      if rate:
        scalars["subgraphs_per_sec"] = rate
      logger.write(done, scalars)
      if progress is not None:
        progress.set_postfix(loss=f"{metrics['loss']:.3f}",
                             acc=f"{metrics['contrastive_acc']:.2f}")
    if progress is not None:
      progress.update(1)
    run.checkpointer.save(done, state, {"step": done}, force=done == end_step)
  run.checkpointer.wait()
  if progress is not None:
    progress.close()
  logger.close()
  if end_step == run.total_steps:
    metrics_lib.plot_training_curves(
        logger.path, os.path.join(run.workdir, "training_curves.png"),
        keys=("loss", "contrastive_acc", "effective_rank"))
  return state, rate


# ----------------------------------------------------------------------------
# Evaluation.
# ----------------------------------------------------------------------------
def node_splits(labels, train_fraction, num_splits, seed):
  """``num_splits`` seeded class-stratified ``(train, test)`` node index splits.

  In split s (``numpy.random.default_rng(seed + s)``) each class's nodes are
  shuffled and ``round(train_fraction * n_c)`` of them (at least 1, at most
  ``n_c - 1`` when ``n_c >= 2``) go to train, the rest to test.
  """
  labels = np.asarray(labels)
  splits = []
  for s in range(num_splits):
    rng = np.random.default_rng(seed + s)
    train, test = [], []
    for c in np.unique(labels):
      members = rng.permutation(np.flatnonzero(labels == c))
      n = len(members)
      k = int(round(train_fraction * n))
      k = min(max(k, 1), n - 1) if n >= 2 else n
      train.append(members[:k])
      test.append(members[k:])
    splits.append((np.sort(np.concatenate(train)), np.sort(np.concatenate(test))))
  return splits


def embed_graphs(method, variables, graph_data, eval_config):
  """Embeddings of every node of every graph in ``graph_data``.

  The graphs are embedded as one disjoint union (one compiled program for
  all of them) in batches of ``eval_config.batch_size`` nodes.

  Returns:
    a list of float32 ``(N_g, D)`` arrays, one per graph.
  """
  graph = graphs_lib.to_device(graph_data)
  offsets = np.asarray(graph.node_offsets)
  total = int(offsets[-1])
  key = jax.random.PRNGKey(eval_config.seed)
  batch = int(min(eval_config.batch_size, total))
  out = []
  for start in range(0, total, batch):
    nodes = np.arange(start, start + batch) % total  # the last batch wraps
    out.append(method.embed_nodes_jit(variables, graph,
                                      jnp.asarray(nodes, jnp.int32), key))
  features = np.concatenate([np.asarray(o) for o in out])[:total]
  return [features[a:b] for a, b in zip(offsets[:-1], offsets[1:])]


def _describe(protocol, eval_config, splits):
  where = (f"mean +- std of test-node top-1 over {splits} seeded stratified "
           f"{eval_config.train_fraction:g}/{1 - eval_config.train_fraction:g}"
           " node splits")
  if protocol == "knn":
    return (f"kNN: cosine similarity, k={eval_config.knn_k}, votes weighted "
            f"exp(sim/{eval_config.knn_temperature}), frozen node embeddings; "
            + where)
  return ("linear probe: multinomial logistic regression by L-BFGS on frozen "
          "standardised node embeddings, L2 chosen on a held-out 10% of the "
          "train nodes; " + where)


def classify(features, labels, num_classes, splits, protocol, eval_config, seed):
  """Test accuracy of ``protocol`` on every split: mean, std and the list."""
  accuracies, chosen = [], []
  for train, test in splits:
    if protocol == "knn":
      result = knn.knn_accuracy(
          features[train], labels[train], features[test], labels[test],
          num_classes, k=eval_config.knn_k,
          temperature=eval_config.knn_temperature)
    else:
      result = linear_probe_lib.linear_probe(
          features[train], labels[train], features[test], labels[test],
          num_classes, seed=seed)
      chosen.append(result["l2"])
    accuracies.append(float(result["top1"]))
  out = {"top1": float(np.mean(accuracies)), "top1_std": float(np.std(accuracies)),
         "per_split": accuracies,
         "protocol": _describe(protocol, eval_config, len(splits))}
  if chosen:
    out["chosen_l2"] = [float(v) for v in chosen]
  return out


def _collapse(features):
  m = jax.device_get(collapse.collapse_metrics(jnp.asarray(features)))
  return {"embedding_std_ratio": float(m["embedding_std_ratio"]),
          "effective_rank": float(m["effective_rank"]),
          "dim": int(features.shape[1])}


def evaluate(run, state, subgraphs_per_sec=None):
  """Node classification on every held-out graph, trained vs random init.

  Writes ``<workdir>/eval.json`` and ``eval.md`` (also printed); returns the
  report.
  """
  config, eval_config = run.config, run.config.eval
  host = lambda s: jax.tree.map(np.asarray, jax.device_get(
      {"params": s.params, "batch_stats": s.batch_stats}))
  encoders = {"trained": host(state), "random_init": host(run.initial_state())}
  features = {which: embed_graphs(run.method, variables, run.eval_data,
                                  eval_config)
              for which, variables in encoders.items()}
  targets = {}
  for index, g in enumerate(run.eval_data):
    splits = node_splits(g.labels, eval_config.train_fraction,
                         eval_config.num_splits, eval_config.split_seed)
    counts = np.bincount(g.labels, minlength=g.num_classes)
    majority = float(np.mean([np.mean(g.labels[test] == np.argmax(
        np.bincount(g.labels[train], minlength=g.num_classes)))
                              for train, test in splits]))
    entry = {"nodes": g.num_nodes, "edges": g.num_edges,
             "classes": g.num_classes, "class_counts": counts.tolist(),
             "class_names": list(g.label_names), "label": g.label_description,
             "majority_class_top1": majority}
    for which in encoders:
      x = features[which][index]
      entry[which] = {
          p: classify(x, g.labels, g.num_classes, splits, p, eval_config,
                      config.seed) for p in run.protocols}
      entry[which + "_collapse"] = _collapse(x)
    targets[g.name] = entry
  report = {
      "method": config.method,
      "steps": int(jax.device_get(state.step)),
      "pretrain_graphs": [{"name": g.name, "nodes": g.num_nodes,
                           "edges": g.num_edges} for g in run.pretrain_data],
      "features": eval_config.features,
      "draws": int(eval_config.draws),
      "targets": targets,
      "subgraphs_per_sec": subgraphs_per_sec,
  }
  previous = loop.read_json(os.path.join(run.workdir, "eval.json")) or {}
  if report["subgraphs_per_sec"] is None:
    report["subgraphs_per_sec"] = previous.get("subgraphs_per_sec")
  write_report(report, run.workdir)
  print(format_report(report))
  return report


def format_report(report):
  """The markdown of an ``eval.json`` report: one table per held-out graph."""
  pretrain = report["pretrain_graphs"]
  lines = [
      f"{report['method']}, {report['steps']} pretraining steps on "
      f"{len(pretrain)} graphs ({sum(g['nodes'] for g in pretrain)} nodes: "
      + ", ".join(g["name"] for g in pretrain) + "); node classification on "
      f"held-out graphs, node embedding = mean of {report['draws']} RWR "
      f"subgraph embeddings ('{report['features']}')", ""]
  for name, t in report["targets"].items():
    lines += [f"### {name}", "",
              f"{t['nodes']} nodes, {t['edges']} edges, {t['classes']} classes "
              f"{t['class_counts']}; label: {t['label']}", "",
              "| protocol | top-1 | random-init top-1 | what produced it |",
              "|---|---|---|---|"]
    for protocol, r in t["trained"].items():
      f = t["random_init"][protocol]
      lines.append(
          f"| {protocol} | {r['top1']:.4f} +- {r['top1_std']:.4f} | "
          f"{f['top1']:.4f} +- {f['top1_std']:.4f} | {r['protocol']} |")
    lines.append(f"| majority class | {t['majority_class_top1']:.4f} | | the "
                 "most frequent train class, on the same splits |")
    c, f = t["trained_collapse"], t["random_init_collapse"]
    lines += ["", f"embeddings: std x sqrt(d) = {c['embedding_std_ratio']:.3f},"
              f" effective rank {c['effective_rank']:.1f} of {c['dim']} "
              f"(random init: {f['embedding_std_ratio']:.3f}, "
              f"{f['effective_rank']:.1f})", ""]
  if report.get("subgraphs_per_sec"):
    lines.append(f"pretraining throughput: {report['subgraphs_per_sec']:.1f} "
                 "subgraphs/s")
  return "\n".join(lines).rstrip() + "\n"


def write_report(report, workdir):
  """Writes ``eval.json`` and ``eval.md`` into ``workdir`` (atomically)."""
  protocols_lib.write_report(report, workdir, format_fn=format_report)


# ----------------------------------------------------------------------------
# Entry points (ssl_jax.main).
# ----------------------------------------------------------------------------
def train_and_evaluate(config, workdir):
  """Pretrains (resuming if the workdir has a checkpoint), then evaluates."""
  run = GraphRun(config, workdir)
  try:
    state, rate = train(run)
    return evaluate(run, state, rate)
  finally:
    run.checkpointer.close()


def evaluate_checkpoint(config, workdir):
  """``--mode=eval``: evaluates the latest checkpoint of the run in ``workdir``
  with its saved config; ``config.eval`` and ``config.graph.evaluate`` come
  from ``config`` when it is a GCC config (``--config=configs/gcc.py``)."""
  saved = loop.read_json(os.path.join(workdir, "config.json"))
  if saved is None or "config" not in saved:
    raise ConfigError(f"no checkpoint in {workdir} (it holds no run's "
                      "config.json); train first with --mode=train.")
  run_config = ml_collections.ConfigDict(saved["config"])
  if config.method in METHODS:
    _check_workdir(config, workdir, write=False)
    run_config.eval = config.eval
    run_config.graph.evaluate = config.graph.evaluate
  run = GraphRun(run_config, workdir)
  try:
    if run.checkpointer.latest_step is None:
      raise ConfigError(f"no checkpoint in {workdir}/checkpoints; train first "
                        "with --mode=train.")
    state = run.restore_or_init()
    return evaluate(run, state)
  finally:
    run.checkpointer.close()
