"""The data-parallel step: 8 devices give the numbers of 1 device."""

import jax
import numpy as np

from ssl_jax import data
from ssl_jax import methods
from ssl_jax.train import optim
from ssl_jax.train import step as step_lib

from tests.conftest import tiny_simclr_config


def _run_steps(config, devices, images, labels, num_steps):
  mesh = step_lib.make_mesh(devices)
  method = methods.get_method(config, num_classes=10)
  tx, _ = optim.make_optimizer(config.optim, 10, config.train.batch_size)
  state = method.init_state(jax.random.PRNGKey(0), images.shape[1:], tx)
  state = step_lib.replicate(state, mesh)
  train_step = step_lib.make_train_step(method, tx, mesh)
  losses = []
  for _ in range(num_steps):
    batch = step_lib.shard_batch((images, labels), mesh)
    state, metrics = train_step(state, *batch)
    losses.append(float(metrics["loss"]))
  return jax.device_get(state), losses


def _max_relative_difference(a, b):
  diffs = jax.tree.map(
      lambda x, y: np.max(np.abs(x - y)) / (np.max(np.abs(y)) + 1e-12), a, b)
  return max(jax.tree.leaves(diffs))


def test_eight_devices_match_one_device():
  assert jax.device_count() == 8, "tests/conftest.py sets 8 CPU devices"
  config = tiny_simclr_config()
  images, labels = data.as_arrays(data.load_digits("train"))
  images, labels = images[:16], labels[:16]
  one, losses_one = _run_steps(config, jax.devices()[:1], images, labels, 2)
  eight, losses_eight = _run_steps(config, jax.devices(), images, labels, 2)
  np.testing.assert_allclose(losses_eight, losses_one, rtol=1e-4)
  assert _max_relative_difference(eight.params, one.params) < 1e-4
  assert _max_relative_difference(eight.batch_stats, one.batch_stats) < 1e-4
  # The step really trained: parameters moved and the step counter advanced.
  init = methods.get_method(config, 10).init_state(
      jax.random.PRNGKey(0), images.shape[1:],
      optim.make_optimizer(config.optim, 10, 16)[0])
  assert int(one.step) == 2
  assert _max_relative_difference(one.params, jax.device_get(init.params)) > 1e-3
