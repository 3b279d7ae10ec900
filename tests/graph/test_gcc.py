"""GCC-MoCo: the loss against numpy InfoNCE, the queue and key-encoder
updates of one step, training lowers the loss, resume = no resume, and the
run's report."""

import json

import jax
import ml_collections
import numpy as np
import pytest

from ssl_jax import graph as graph_pkg
from ssl_jax.graph import sampling
from ssl_jax.graph import train as graph_train
from ssl_jax.methods import gcc

from tests.conftest import load_config

NUM_STEPS = 4  # checked steps; the run spans one more (no final plot)


def tiny_config():
  config = load_config("gcc", "tiny")
  config.train.num_steps = NUM_STEPS + 1
  config.train.checkpoint_every_steps = 2
  config.train.log_every_steps = 2
  config.gcc.queue_size = 32  # two batches: step 3 wraps around
  return config


def host_copy(tree):
  return jax.tree.map(np.array, jax.device_get(tree))


def device_copy(tree):
  """On the default device, committed, as the run's states are."""
  return jax.device_put(tree, jax.devices()[0])


@pytest.fixture(scope="module")
def run(tmp_path_factory):
  run = graph_train.GraphRun(tiny_config(), str(tmp_path_factory.mktemp("gcc")))
  yield run
  run.checkpointer.close()


@pytest.fixture(scope="module")
def step_fn(run):
  """The compiled step, shared with every GraphRun of this config."""
  return graph_train.compiled_step(run)


@pytest.fixture(scope="module")
def state0(run):
  return host_copy(run.initial_state())


def test_loss_equals_numpy_infonce():
  rng = np.random.default_rng(0)
  q, k = rng.normal(size=(2, 6, 8)).astype(np.float32)
  queue = rng.normal(size=(12, 8)).astype(np.float32)
  loss, aux = jax.jit(gcc.gcc_loss)(q, k, queue, 0.07)
  unit = lambda x: x / np.linalg.norm(x, axis=1, keepdims=True)
  q64, k64, n64 = (unit(x.astype(np.float64)) for x in (q, k, queue))
  logits = np.concatenate([np.sum(q64 * k64, 1, keepdims=True), q64 @ n64.T],
                          axis=1) / 0.07
  top = logits.max(1, keepdims=True)
  lse = np.log(np.exp(logits - top).sum(1)) + top[:, 0]
  np.testing.assert_allclose(loss, np.mean(lse - logits[:, 0]), rtol=1e-5)
  np.testing.assert_allclose(aux["contrastive_acc"],
                             np.mean(logits.argmax(1) == 0), rtol=1e-6)


def test_step_updates_queue_and_key_encoder(run, step_fn, state0):
  method, graph = run.method, run.pretrain_graph
  batch = method.batch_size
  # The keys this step must enqueue, recomputed from the step's key.
  @jax.jit
  def step_keys(state):
    key = jax.random.fold_in(state.rng, state.step)
    egos = sampling.sample_egos(jax.random.fold_in(key, gcc.EGO_STREAM),
                                graph, batch)
    _, view_k = method.views(jax.random.fold_in(key, gcc.VIEW_STREAM), graph,
                             egos)
    return method.key_forward(state, view_k)[0]["output"]

  keys_out = step_keys(device_copy(state0))
  state1, metrics = step_fn(device_copy(state0), graph)
  state1 = host_copy(state1)
  assert int(state1.step) == 1 and int(state1.queue_ptr) == batch
  np.testing.assert_allclose(state1.queue[:batch], keys_out,
                             rtol=1e-5, atol=1e-6)
  np.testing.assert_array_equal(state1.queue[batch:], state0.queue[batch:])
  # theta_k <- m theta_k + (1 - m) theta_q, with the updated theta_q.
  m = run.config.gcc.momentum
  expected = jax.tree.map(lambda t, o: m * t + (1 - m) * o, state0.ema_params,
                          state1.params)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5,
                                                       atol=1e-7),
               state1.ema_params, expected)
  assert np.isfinite(float(metrics["loss"]))
  assert 1 <= float(metrics["subgraph_nodes"]) <= run.config.sampling.subgraph_size


def test_training_lowers_the_loss(run, step_fn, state0):
  """The loss of one fixed batch (state0's egos, walks, key encoder and queue)
  drops after a few steps of training the query encoder. The step's loss is
  computed before its update, so a step from state0 with other params gives
  those params' loss on that batch."""
  graph = run.pretrain_graph
  state = device_copy(state0)
  for _ in range(8):
    state, _ = step_fn(state, graph)
  trained = host_copy(state)
  _, before = step_fn(device_copy(state0), graph)
  _, after = step_fn(device_copy(state0.replace(params=trained.params)), graph)
  before, after = float(before["loss"]), float(after["loss"])
  assert after < before - 0.1, (before, after)


def test_resume_equals_uninterrupted(run, step_fn, state0, tmp_path):
  """A run stopped after step 2 and resumed from its checkpoint ends where
  NUM_STEPS uninterrupted steps end."""
  expected = device_copy(state0)
  for _ in range(NUM_STEPS):
    expected, _ = step_fn(expected, run.pretrain_graph)
  config = tiny_config()
  workdir = tmp_path / "resumed"
  first = graph_train.GraphRun(config, str(workdir))
  try:
    graph_train.train(first, stop_after_step=2)
  finally:
    first.checkpointer.close()
  second = graph_train.GraphRun(config, str(workdir))
  try:
    assert second.checkpointer.latest_step == 2
    resumed, _ = graph_train.train(second, stop_after_step=NUM_STEPS)
  finally:
    second.checkpointer.close()
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6,
                                                       atol=1e-7),
               host_copy(expected), host_copy(resumed))
  steps = [json.loads(l)["step"] for l in
           (workdir / "metrics.jsonl").read_text().splitlines()]
  assert steps == [2, 4]
  assert step_fn._cache_size() == 1  # one compiled step for every state
  assert graph_pkg.handles(config, str(workdir))
  assert graph_pkg.handles(ml_collections.ConfigDict({"method": ""}), str(workdir))


def test_held_out_graph_must_not_be_pretrained(tmp_path):
  config = tiny_config()
  config.graph.evaluate = "karate_club"
  with pytest.raises(graph_train.ConfigError, match="also a pretraining graph"):
    graph_train.GraphRun(config, str(tmp_path))


def test_node_splits_are_stratified_and_fixed():
  labels = np.array([0] * 6 + [1] * 4)
  splits = graph_train.node_splits(labels, 0.5, 3, seed=0)
  again = graph_train.node_splits(labels, 0.5, 3, seed=0)
  for (train, test), (train2, test2) in zip(splits, again):
    np.testing.assert_array_equal(train, train2)
    assert np.bincount(labels[train]).tolist() == [3, 2]
    assert sorted(np.concatenate([train, test]).tolist()) == list(range(10))


def test_report_tables(tmp_path):
  result = lambda top1: {"top1": top1, "top1_std": 0.01, "per_split": [top1],
                         "protocol": "kNN ..."}
  rank = {"embedding_std_ratio": 0.5, "effective_rank": 3.0, "dim": 16}
  report = {
      "method": "gcc", "steps": 4, "features": "output", "draws": 2,
      "pretrain_graphs": [{"name": "karate_club", "nodes": 34, "edges": 78}],
      "subgraphs_per_sec": 10.0,
      "targets": {"sbm": {
          "nodes": 4, "edges": 3, "classes": 2, "class_counts": [2, 2],
          "class_names": ["0", "1"], "label": "block",
          "majority_class_top1": 0.5,
          "trained": {"knn": result(0.9)}, "random_init": {"knn": result(0.6)},
          "trained_collapse": rank, "random_init_collapse": rank}}}
  graph_train.write_report(report, str(tmp_path))
  markdown = (tmp_path / "eval.md").read_text()
  assert "### sbm" in markdown
  assert "| knn | 0.9000 +- 0.0100 | 0.6000 +- 0.0100 | kNN ... |" in markdown
  assert "| majority class | 0.5000 |" in markdown
  assert json.loads((tmp_path / "eval.json").read_text()) == report
