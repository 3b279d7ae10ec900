"""Reliability in one process: the same seed gives the same run, a corrupt
latest checkpoint falls back to the previous one, a config that fits no
checkpoint moves nothing, and non-finite steps never reach the state.
``test_preemption.py`` kills and preempts the CLI.
"""

import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ssl_jax.train import loop
from ssl_jax.train import step as step_lib


def _assert_same(a, b):
  assert len(a) == len(b)
  for x, y in zip(a, b):
    np.testing.assert_array_equal(x, y)


def _params(state):
  return jax.tree.leaves(jax.device_get(state.params))


def test_same_seed_same_run_and_a_corrupt_latest_checkpoint_falls_back(
    tiny_config, tmp_path):
  runs = {}
  for name in ("a", "b"):
    run = loop.Run(tiny_config, str(tmp_path / name))
    runs[name], _ = loop.train(run)
    run.checkpointer.close()
  _assert_same(_params(runs["a"]), _params(runs["b"]))  # determinism

  # Corrupt every file of the latest checkpoint (step 4) of run "b".
  workdir = str(tmp_path / "b")
  latest = os.path.join(workdir, "checkpoints", "4")
  for root, _, files in os.walk(os.path.join(latest, "state")):
    for name in files:
      with open(os.path.join(root, name), "wb") as f:
        f.write(b"\x00garbage")
  # An unfinished save (orbax's temporary directory) is not a checkpoint.
  os.makedirs(os.path.join(workdir, "checkpoints",
                           "6.orbax-checkpoint-tmp-1234", "state"))
  run = loop.Run(tiny_config, workdir)
  assert run.checkpointer.all_steps() == [1, 2, 4]  # orbax keeps the first
  state, _ = run.restore_or_init()
  assert int(jax.device_get(state.step)) == 2
  assert run.checkpointer.all_steps() == [1, 2]
  assert os.path.isdir(os.path.join(workdir, "corrupt_checkpoints", "4"))
  # Training from it redoes steps 3-4 and writes a good step 4.
  resumed, _ = loop.train(run)
  run.checkpointer.close()
  assert run.checkpointer.all_steps() == [1, 2, 4]
  _assert_same(_params(resumed), _params(runs["a"]))


def test_a_config_that_fits_no_checkpoint_moves_nothing(tiny_config,
                                                        tmp_path):
  run = loop.Run(tiny_config, str(tmp_path))
  loop.train(run, stop_after_step=2)
  run.checkpointer.close()
  wider = tiny_config.copy_and_resolve_references()
  wider.model.width_multiplier = 0.25  # same method and data, other shapes
  run = loop.Run(wider, str(tmp_path))
  with pytest.raises(loop.ConfigError,
                     match=r"no checkpoint in .* restores \(steps \[1, 2\]\).*"
                     r"rerun with the run's own config"):
    run.restore_or_init()
  run.checkpointer.close()
  assert run.checkpointer.all_steps() == [1, 2]
  assert not os.path.exists(tmp_path / "corrupt_checkpoints")


def _poison_loss_at(monkeypatch, run, bad_step):
  """Makes the method's loss NaN at the step that starts from ``bad_step``."""
  loss_fn = run.method.loss_fn

  def poisoned(params, state, *args):
    loss, aux = loss_fn(params, state, *args)
    return jnp.where(state.step == bad_step, jnp.nan, loss), aux

  monkeypatch.setattr(run.method, "loss_fn", poisoned)


def test_nonfinite_loss_stops_the_run_and_keeps_the_last_good_checkpoint(
    tiny_config, tmp_path, monkeypatch):
  run = loop.Run(tiny_config, str(tmp_path))
  _poison_loss_at(monkeypatch, run, 2)  # the third step
  with pytest.raises(loop.NonFiniteError,
                     match=r"step 3: loss is nan; the update was not applied.*"
                     r"config.train.nonfinite=skip"):
    loop.train(run)
  run.checkpointer.wait()
  assert run.checkpointer.all_steps() == [1, 2]
  state, _ = run.restore_or_init()
  run.checkpointer.close()
  assert all(np.isfinite(x).all() for x in _params(state))


def test_nonfinite_loss_skipped_and_counted(tiny_config, tmp_path,
                                            monkeypatch):
  config = tiny_config.copy_and_resolve_references()
  config.train.nonfinite = "skip"
  run = loop.Run(config, str(tmp_path))
  _poison_loss_at(monkeypatch, run, 2)
  state, _ = loop.train(run)
  run.checkpointer.close()
  assert int(jax.device_get(state.step)) == 4
  assert int(jax.device_get(state.nonfinite_steps)) == 1
  assert all(np.isfinite(x).all() for x in _params(state))
  with open(tmp_path / "metrics.jsonl") as f:
    logged = [json.loads(line) for line in f]
  assert [r["nonfinite"] for r in logged] == [0.0, 0.0, 1.0, 0.0]
  assert [r["nonfinite_steps"] for r in logged] == [0, 0, 1, 1]


def test_nonfinite_step_changes_only_the_counters(tiny_config):
  """An update that makes the parameters non-finite (here a NaN learning
  rate at the second step) is not applied, on 8 devices."""
  import optax  # pylint: disable=g-import-not-at-top
  from ssl_jax import methods  # pylint: disable=g-import-not-at-top
  method = methods.get_method(tiny_config, num_classes=10, total_steps=4)
  tx = optax.sgd(lambda count: jnp.where(count == 1, jnp.nan, 0.1))
  mesh = step_lib.make_mesh()
  state = step_lib.replicate(
      method.init_state(jax.random.PRNGKey(0), (8, 8, 1), tx), mesh)
  rng = np.random.default_rng(0)
  images = rng.integers(0, 17, (16, 8, 8, 1), dtype=np.uint8)
  labels = rng.integers(0, 10, 16).astype(np.int32)
  images, labels = step_lib.shard_batch((images, labels), mesh)
  train_step = step_lib.make_train_step(method, tx, mesh)
  state, first = train_step(state, images, labels)
  before = jax.device_get(state)
  state, second = train_step(state, images, labels)
  after = jax.device_get(state)
  assert float(first["nonfinite"]) == 0.0 and float(second["nonfinite"]) == 1.0
  assert np.isfinite(float(second["loss"]))  # the loss was fine; the update not
  assert (int(after.step), int(after.nonfinite_steps)) == (2, 1)
  _assert_same(jax.tree.leaves(after.replace(step=0, nonfinite_steps=0)),
               jax.tree.leaves(before.replace(step=0, nonfinite_steps=0)))


def test_unknown_nonfinite_policy_is_a_config_error(tiny_config, tmp_path):
  config = tiny_config.copy_and_resolve_references()
  config.train.nonfinite = "ignore"
  with pytest.raises(loop.ConfigError,
                     match=r"config.train.nonfinite='ignore'; use one of"):
    loop.Run(config, str(tmp_path))
