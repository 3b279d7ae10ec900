"""SimSiam: 8 devices == 1, the networks and the symmetric loss, the
predictor's fixed learning rate, and the collapse without the stop-gradient
(Sec. 4.1) that the training loop reports in words."""

import json
import logging
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ssl_jax.train import loop
from ssl_jax.train import optim

from tests.conftest import load_config
from tests.methods.common import assert_eight_devices_match_one


def tiny_config(name="simsiam"):
  config = load_config(name, "digits")
  config.model.width_multiplier = 0.125
  config.simsiam.proj_hidden_dim = 32
  config.simsiam.proj_dim = 32
  config.simsiam.pred_hidden_dim = 16
  config.train.batch_size = 16
  return config


@pytest.fixture(scope="module")
def trained():
  return assert_eight_devices_match_one(tiny_config(), num_steps=2)


def test_networks_are_the_papers(trained):
  _, state, _ = trained
  assert sorted(state.params) == [
      "encoder", "online_probe", "predictor", "projector"]
  assert state.ema_params is None and state.queue is None
  # Projector: Dense-BN-ReLU, then Dense-BN with no bias, scale or shift.
  assert sorted(state.params["projector"]) == ["bn1", "dense1", "dense_out"]
  assert "bias" not in state.params["projector"]["dense_out"]
  assert "bn_out" in state.batch_stats["projector"]
  # Predictor: a bottleneck Dense-BN-ReLU-Dense, no BN on its output.
  predictor = state.params["predictor"]
  assert sorted(predictor) == ["bn1", "dense1", "dense_out"]
  assert predictor["dense1"]["kernel"].shape == (32, 16)
  assert predictor["dense_out"]["kernel"].shape == (16, 32)
  assert "bias" in predictor["dense_out"]


def test_logged_loss_is_the_symmetric_negative_cosine(trained):
  _, _, history = trained
  for metrics in history:
    # D(p1, z2)/2 + D(p2, z1)/2 with D = -cos: minus the mean cosine.
    np.testing.assert_allclose(metrics["simsiam_loss"], -metrics["cos_sim"],
                               rtol=1e-5, atol=1e-7)
    assert -1.0 <= metrics["simsiam_loss"] <= 1.0
    np.testing.assert_allclose(
        metrics["loss"], metrics["simsiam_loss"] + metrics["probe_loss"],
        rtol=1e-5, atol=1e-6)
    for name in ("probe_acc", "embedding_std_ratio", "effective_rank",
                 "z_std"):
      assert np.isfinite(metrics[name]), name


def test_predictor_keeps_the_peak_rate_while_the_rest_follows_the_schedule(
    trained):
  init, _, _ = trained
  config = tiny_config()
  assert tuple(config.optim.fixed_lr_modules) == ("predictor",)
  config.optim.weight_decay = 0.0  # updates are then lr x momentum buffer
  config.optim.warmup_steps = 2
  total_steps, batch = 8, 256
  tx, schedule = optim.make_optimizer(config.optim, total_steps, batch)
  peak = config.optim.base_lr * batch / 256
  params = init.params
  grads = jax.tree.map(jnp.ones_like, params)
  update = jax.jit(tx.update)
  opt_state = tx.init(params)
  buffer = 0.0  # SGD momentum with constant unit gradients
  rates = []
  for t in range(total_steps):
    updates, opt_state = update(grads, opt_state, params)
    buffer = config.optim.momentum * buffer + 1.0
    rates.append(float(schedule(t)))
    for name, tree in updates.items():
      lr = peak if name == "predictor" else rates[-1]
      for leaf in jax.tree.leaves(tree):
        np.testing.assert_allclose(leaf, -lr * buffer, rtol=1e-5, atol=1e-8,
                                   err_msg=f"{name} at step {t}")
  # The schedule did move: warmup from 0 and cosine decay below the peak.
  assert rates[0] == 0.0 and max(rates) == pytest.approx(peak)
  assert rates[-1] < 0.1 * peak


def _train(config, workdir, monkeypatch):
  run = loop.Run(config, workdir)
  # Checkpoints are tests/train/test_loop.py's business; orbax's writes
  # would double this test's time.
  monkeypatch.setattr(run.checkpointer, "save", lambda *args, **kwargs: None)
  try:
    loop.train(run)
  finally:
    run.checkpointer.close()
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    return [json.loads(line) for line in f]


def test_without_stop_gradient_it_collapses_and_the_log_says_so(
    tmp_path, caplog, monkeypatch):
  history = {}
  for name in ("simsiam_no_stopgrad", "simsiam"):
    config = tiny_config(name)
    config.optim.base_lr = 3.0  # collapses within 80 steps without sg
    config.train.num_steps = 80
    config.train.log_every_steps = 10
    config.train.checkpoint_every_steps = 1000
    config.train.progress_bar = False
    caplog.clear()
    with caplog.at_level(logging.WARNING):
      history[name] = _train(config, str(tmp_path / name), monkeypatch)
    history[name + "_log"] = caplog.text
  assert [m["step"] for m in history["simsiam"]] == list(range(10, 81, 10))

  collapsed = history["simsiam_no_stopgrad"][-1]
  # Complete collapse: the L2-normalised std is near 0 (healthy: 1/sqrt(d))
  # and one direction carries the variance.
  assert collapsed["embedding_std_ratio"] < 0.1, collapsed
  assert collapsed["effective_rank"] < 1.5, collapsed
  assert "representation collapse" in history["simsiam_no_stopgrad_log"]

  # The same run with the stop-gradient stays healthy at every log step.
  for metrics in history["simsiam"]:
    assert metrics["embedding_std_ratio"] > 0.2, metrics
    assert metrics["effective_rank"] > 2.0, metrics
  assert "representation collapse" not in history["simsiam_log"]
