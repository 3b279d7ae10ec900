"""Checkpoints: the state's ``extra`` round-trips, and a checkpoint written
before TrainState had ``extra`` and ``nonfinite_steps`` still restores."""

from typing import Any

import flax
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from ssl_jax.train import checkpoint as checkpoint_lib
from ssl_jax.train import state as state_lib


@flax.struct.dataclass
class StateBeforeExtra:
  """TrainState as it was before the ``extra`` field."""
  step: Any
  rng: Any
  params: Any
  batch_stats: Any
  opt_state: Any
  ema_params: Any = None
  ema_batch_stats: Any = None
  queue: Any = None
  queue_ptr: Any = None


def make_state(extra=None):
  tx = optax.sgd(0.1, momentum=0.9)
  return state_lib.create_train_state(
      jax.random.PRNGKey(0), {"params": {"w": jnp.arange(3.0)}}, tx,
      extra=extra)


def save(directory, state):
  checkpointer = checkpoint_lib.Checkpointer(str(directory))
  checkpointer.save(1, state, {"next_batch": 1}, force=True)
  checkpointer.wait()
  return checkpointer


def test_extra_round_trips(tmp_path):
  state = make_state({"assignments": jnp.arange(5, dtype=jnp.int32) - 1,
                      "cluster_weights": jnp.full((4,), 0.5)})
  checkpointer = save(tmp_path, state)
  restored, data_state = checkpointer.restore(
      checkpoint_lib.abstract_like(state))
  checkpointer.close()
  assert data_state == {"next_batch": 1}
  for name in ("assignments", "cluster_weights"):
    assert restored.extra[name].dtype == state.extra[name].dtype
    np.testing.assert_array_equal(restored.extra[name], state.extra[name])


def test_checkpoint_without_extra_restores(tmp_path):
  state = make_state()
  old = StateBeforeExtra(state.step, state.rng, state.params,
                         state.batch_stats, state.opt_state)
  checkpointer = save(tmp_path, old)
  restored, _ = checkpointer.restore(checkpoint_lib.abstract_like(state))
  assert isinstance(restored, state_lib.TrainState) and restored.extra is None
  # The counter of non-finite steps starts at 0, on the state's devices.
  assert restored.nonfinite_steps.dtype == jnp.int32
  assert int(restored.nonfinite_steps) == 0
  assert restored.nonfinite_steps.sharding == state.nonfinite_steps.sharding
  np.testing.assert_array_equal(restored.params["w"], [0.0, 1.0, 2.0])
  # A method that uses ``extra`` cannot start from it.
  with pytest.raises(ValueError, match=r"no TrainState field\(s\) \['extra'\]"):
    checkpointer.restore(checkpoint_lib.abstract_like(
        make_state({"assignments": jnp.zeros((5,), jnp.int32)})))
  checkpointer.close()
