"""DeepCluster: loss weights, classifier reset, the 8-device step's loss
against one device, and a digits run through the loop that logs NMI and
resumes exactly mid-epoch."""

import json
import os
import shutil

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from ssl_jax import methods
from ssl_jax.methods import deepcluster
from ssl_jax.train import loop
from ssl_jax.train import optim
from ssl_jax.train import step as step_lib

from tests.conftest import load_config
from tests.methods.common import digits_batch, run_steps

NUM_CLUSTERS = 5
BATCH = 16
NUM_TRAIN = 1438  # the digits' training split


def tiny_config():
  config = load_config("deepcluster", "digits")
  config.model.width_multiplier = 0.125  # 64-d features
  config.deepcluster.num_clusters = NUM_CLUSTERS
  config.deepcluster.pca_dim = 8
  config.deepcluster.kmeans_iters = 5
  config.deepcluster.cluster_every_steps = 2
  config.deepcluster.max_cluster_examples = 300
  config.train.batch_size = BATCH
  # The loop test stops after 5 of 10 steps: the schedule, and so the
  # compiled step, is then that of the 8-device steps of ``trained``, which
  # the persistent compilation cache (tests/conftest.py) serves again.
  config.train.num_steps = 10
  config.train.log_every_steps = 1
  config.train.checkpoint_every_steps = 3
  config.train.progress_bar = False
  config.optim.warmup_steps = 1
  config.eval.knn_k = 20
  return config


def some_clusters(n):
  """A fixed labeling of ``n`` examples with uneven clusters (one empty)."""
  return np.resize(np.array([0, 0, 0, 1, 3, 3, 0, 1], np.int32), n)


def add_clusters(method, state, tx):
  """Pseudo-labels of the whole training split (the batch is its first
  records), so the step has the loop's shapes."""
  return method.with_clusters(state, some_clusters(NUM_TRAIN), tx,
                              jax.random.PRNGKey(7))


def tiny_batch():
  images, labels = digits_batch(BATCH)
  return images, {"label": labels, "index": np.arange(BATCH, dtype=np.int32)}


@pytest.fixture(scope="module")
def trained():
  """``(init, state, metrics)`` of two steps on 8 devices from fixed
  pseudo-labels."""
  assert jax.device_count() == 8, "tests/conftest.py sets 8 CPU devices"
  return run_steps(tiny_config(), jax.devices(), *tiny_batch(), num_steps=2,
                   prepare=add_clusters)


def test_weights_are_inverse_cluster_sizes():
  assignments = np.array([0, 0, 0, 1, 3, 3])  # k' = 3 non-empty of 5
  weights = deepcluster.uniform_cluster_weights(assignments, 5)
  np.testing.assert_allclose(weights, [6 / 9, 6 / 3, 0.0, 6 / 6, 0.0],
                             rtol=1e-6)
  # Uniform over clusters: every non-empty cluster weighs the same in total,
  # and the mean weight over the examples is 1.
  np.testing.assert_allclose(np.bincount(assignments, weights[assignments]),
                             [2.0, 2.0, 0.0, 2.0])
  np.testing.assert_allclose(np.mean(weights[assignments]), 1.0, rtol=1e-6)


def test_eight_device_step_loss_is_the_weighted_cross_entropy(trained):
  """Each replica looks its examples' pseudo-labels up by their record
  index: the loss of the 8-device step is the weighted cross-entropy of the
  whole batch computed on one device."""
  init, _, history = trained
  method = methods.get_method(tiny_config(), num_classes=10, total_steps=10)
  images, labels = tiny_batch()

  def forward(state, images):
    keys = step_lib.example_keys(jax.random.fold_in(state.rng, state.step),
                                 BATCH, step_lib.BATCH_AXIS)
    outputs, _ = method.online_forward(state.params, state.batch_stats,
                                       method.views(keys, images))
    return outputs["logits"]

  # vmap over a unit axis binds the BatchNorm's axis name.
  logits = jax.jit(jax.vmap(forward, in_axes=(None, 0),
                            axis_name=step_lib.BATCH_AXIS))(
                                init, jnp.asarray(images)[None])[0]
  targets = init.extra["assignments"][labels["index"]]
  weights = init.extra["cluster_weights"][targets]
  expected = np.mean(weights * optax.softmax_cross_entropy_with_integer_labels(
      logits, targets))
  np.testing.assert_allclose(history[0]["cluster_loss"], expected, rtol=1e-4)
  np.testing.assert_allclose(
      history[0]["cluster_acc"],
      np.mean(np.argmax(logits, -1) == targets), atol=1e-6)


def test_reclustering_resets_the_classifier_and_its_slots_only(trained):
  _, state, _ = trained  # after 2 SGD steps: the momentum slots are non-zero
  config = tiny_config()
  method = methods.get_method(config, num_classes=10, total_steps=10)
  tx, _ = optim.make_optimizer(config.optim, 10, BATCH)
  new_assignments = np.arange(BATCH, dtype=np.int32) % NUM_CLUSTERS
  key = jax.random.PRNGKey(3)
  new = method.with_clusters(state, new_assignments, tx, key)

  classifier = new.params[deepcluster.CLASSIFIER]
  fresh = deepcluster.classifier_layer(NUM_CLUSTERS).init(
      key, jnp.zeros((1, 64)))["params"]
  for name in ("kernel", "bias"):
    np.testing.assert_allclose(classifier[name], fresh[name], rtol=1e-6)
  assert not np.allclose(classifier["kernel"],
                         state.params[deepcluster.CLASSIFIER]["kernel"])
  np.testing.assert_array_equal(classifier["bias"], 0.0)
  assert 0.005 < np.std(classifier["kernel"]) < 0.02  # N(0, 0.01)
  for other in ("encoder", "online_probe"):
    for a, b in zip(jax.tree.leaves(new.params[other]),
                    jax.tree.leaves(state.params[other])):
      np.testing.assert_array_equal(a, b)

  def slots(opt_state, under):
    found = []
    jax.tree_util.tree_map_with_path(
        lambda path, x: found.append(np.asarray(x)) if any(
            getattr(k, "key", None) == under for k in path) else None,
        opt_state)
    return found

  old_classifier = slots(state.opt_state, deepcluster.CLASSIFIER)
  assert old_classifier and any(np.any(s != 0) for s in old_classifier)
  assert all(np.all(s == 0) for s in slots(new.opt_state,
                                           deepcluster.CLASSIFIER))
  old_encoder = slots(state.opt_state, "encoder")
  assert any(np.any(s != 0) for s in old_encoder)
  for a, b in zip(slots(new.opt_state, "encoder"), old_encoder):
    np.testing.assert_array_equal(a, b)
  # Everything else in the optimizer state (the schedule's count) is kept.
  assert jax.tree.structure(new.opt_state) == jax.tree.structure(
      state.opt_state)
  np.testing.assert_array_equal(new.extra["assignments"], new_assignments)
  np.testing.assert_allclose(new.extra["cluster_weights"],
                             BATCH / (NUM_CLUSTERS * np.array([4, 3, 3, 3, 3])),
                             rtol=1e-6)
  assert int(new.step) == int(state.step)


def _metrics(workdir):
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    return [json.loads(line) for line in f]


def test_loop_clusters_per_epoch_logs_nmi_and_resumes_exactly(tmp_path):
  config = tiny_config()
  straight_dir = str(tmp_path / "straight")
  run = loop.Run(config, straight_dir)
  straight, _ = loop.train(run, stop_after_step=5)  # checkpoints at 3 and 5
  run.checkpointer.close()

  # A run preempted after step 3, mid-"epoch" (clustering every 2 steps):
  # the same workdir without the later checkpoint and logs.
  resumed_dir = str(tmp_path / "resumed")
  shutil.copytree(straight_dir, resumed_dir)
  shutil.rmtree(os.path.join(resumed_dir, "checkpoints", "5"))
  os.remove(os.path.join(resumed_dir, "metrics.jsonl"))
  second = loop.Run(config, resumed_dir)
  assert second.checkpointer.latest_step == 3
  resumed, _ = loop.train(second, stop_after_step=5)
  second.checkpointer.close()

  straight, resumed = jax.device_get((straight, resumed))
  assert int(resumed.step) == 5
  for a, b in zip(jax.tree.leaves((resumed.params, resumed.extra)),
                  jax.tree.leaves((straight.params, straight.extra))):
    np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)

  # Clustered before steps 0, 2 and 4; the resumed run not at step 3.
  records = [r for r in _metrics(straight_dir) if "nmi_labels" in r]
  assert [r["step"] for r in records] == [0, 2, 4]
  assert "nmi_previous" not in records[0]
  for r in records:
    assert 0.0 <= r["nmi_labels"] <= 1.0
    assert r["clusters_nonempty"] <= NUM_CLUSTERS
  assert all(0.0 <= r["nmi_previous"] <= 1.0 for r in records[1:])
  after_resume = [r for r in _metrics(resumed_dir) if "nmi_labels" in r]
  assert [r["step"] for r in after_resume] == [4]
  assert after_resume[0]["nmi_labels"] == pytest.approx(
      records[2]["nmi_labels"])
  training = [r for r in _metrics(straight_dir) if "loss" in r]
  assert [r["step"] for r in training] == [1, 2, 3, 4, 5]
  assert all(np.isfinite(r["cluster_loss"]) for r in training)
  assignments = straight.extra["assignments"]
  assert assignments.shape == (NUM_TRAIN,) and assignments.min() >= 0
  assert assignments.max() < NUM_CLUSTERS
  np.testing.assert_allclose(
      straight.extra["cluster_weights"],
      deepcluster.uniform_cluster_weights(assignments, NUM_CLUSTERS),
      rtol=1e-6)


def test_bad_settings_are_refused():
  config = tiny_config()
  method = methods.get_method(config, num_classes=10, total_steps=10)
  tx, _ = optim.make_optimizer(config.optim, 10, BATCH)
  with pytest.raises(ValueError, match="num_clusters=5 is more than the 4"):
    method.init_state(jax.random.PRNGKey(0), (8, 8, 1), tx, num_examples=4)
  with pytest.raises(ValueError, match="num_examples="):
    method.init_state(jax.random.PRNGKey(0), (8, 8, 1), tx)
  config.deepcluster.pca_dim = 65
  method = methods.get_method(config, num_classes=10, total_steps=10)
  with pytest.raises(ValueError, match="pca_dim=65 is more than the 64"):
    jax.eval_shape(lambda: method.init_state(
        jax.random.PRNGKey(0), (8, 8, 1), tx, num_examples=100))
  config.deepcluster.kmeans_init = "forgy"
  with pytest.raises(ValueError, match="kmeans_init='forgy'"):
    methods.get_method(config, num_classes=10, total_steps=10)


def test_sobel_is_the_papers_filter():
  # A horizontal ramp in every channel: the gray image is the column index.
  ramp = jnp.broadcast_to(jnp.arange(6.0)[None, None, :, None], (1, 5, 6, 3))
  out = np.asarray(deepcluster.sobel(ramp))
  assert out.shape == (1, 5, 6, 2)
  # Interior: [[1, 0, -1], [2, 0, -2], [1, 0, -1]] gives (x - 1) - (x + 1)
  # times 1 + 2 + 1; its transpose sees no vertical change.
  np.testing.assert_allclose(out[0, 1:-1, 1:-1, 0], -8.0)
  np.testing.assert_allclose(out[0, 1:-1, 1:-1, 1], 0.0)


def test_head_feeds_relu_features_to_the_classifier_and_is_clustered():
  config = tiny_config()
  config.deepcluster.head_layers = 2
  config.deepcluster.head_hidden_dim = 12
  method = methods.get_method(config, num_classes=10, total_steps=10)
  tx, _ = optim.make_optimizer(config.optim, 10, BATCH)
  state = jax.eval_shape(lambda: method.init_state(
      jax.random.PRNGKey(0), (8, 8, 1), tx, num_examples=100))
  assert sorted(state.params["head"]) == ["bn1", "dense1", "dense_out"]
  assert state.params[deepcluster.CLASSIFIER]["kernel"].shape == (
      12, NUM_CLUSTERS)
  variables = {"params": state.params, "batch_stats": state.batch_stats}
  images = jax.ShapeDtypeStruct((4, 8, 8, 1), np.uint8)
  assert jax.eval_shape(method.cluster_features, variables, images).shape == (
      4, 12)
  assert jax.eval_shape(method.encode, variables, images).shape == (4, 64)
