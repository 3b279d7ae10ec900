"""MoCo's queue in the TrainState: its init and the replicated enqueue."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import PartitionSpec as P

from ssl_jax.train import queue as queue_lib
from ssl_jax.train import state as state_lib
from ssl_jax.train import step as step_lib


def queue_state(queue, ptr):
  return state_lib.TrainState(
      step=jnp.zeros((), jnp.int32), rng=jax.random.PRNGKey(0), params={},
      batch_stats={}, opt_state=(), queue=queue, queue_ptr=ptr)


def test_init_queue_has_unit_rows_and_pointer_zero():
  queue, ptr = queue_lib.init_queue(jax.random.PRNGKey(0), 64, 8, 16)
  assert queue.shape == (64, 8) and queue.dtype == jnp.float32
  np.testing.assert_allclose(np.linalg.norm(queue, axis=1), 1.0, rtol=1e-6)
  assert ptr.dtype == jnp.int32 and int(ptr) == 0
  # Random directions: no two rows alike, seeded.
  gram = np.asarray(queue @ queue.T) - np.eye(64)
  assert np.max(np.abs(gram)) < 0.99
  again, _ = queue_lib.init_queue(jax.random.PRNGKey(0), 64, 8, 16)
  np.testing.assert_array_equal(queue, again)


@pytest.mark.parametrize("size, dim, batch", [(40, 8, 16), (0, 8, 16),
                                              (64, 0, 16), (64, 8, 0)])
def test_init_queue_refuses_bad_sizes(size, dim, batch):
  with pytest.raises(ValueError, match="queue"):
    queue_lib.init_queue(jax.random.PRNGKey(0), size, dim, batch)


def test_enqueue_overwrites_the_oldest_rows_and_wraps():
  queue = jnp.arange(4 * 3, dtype=jnp.float32).reshape(4, 3)
  state = queue_state(queue, jnp.zeros((), jnp.int32))
  enqueue = jax.jit(lambda s, k: queue_lib.enqueue(s, k, None))
  first = -jnp.ones((2, 3))
  second = -2 * jnp.ones((2, 3))
  third = -3 * jnp.ones((2, 3))
  state = enqueue(state, first)
  np.testing.assert_array_equal(state.queue[:2], first)
  np.testing.assert_array_equal(state.queue[2:], queue[2:])
  assert int(state.queue_ptr) == 2
  state = enqueue(state, second)
  assert int(state.queue_ptr) == 0
  state = enqueue(state, third)  # wrapped: replaces `first`, keeps `second`
  np.testing.assert_array_equal(state.queue, jnp.concatenate([third, second]))
  assert int(state.queue_ptr) == 2


def test_enqueue_passes_no_gradient_to_the_keys():
  state = queue_state(jnp.zeros((4, 3)), jnp.zeros((), jnp.int32))
  grad = jax.grad(lambda k: jnp.sum(queue_lib.enqueue(state, k, None).queue))(
      jnp.ones((2, 3)))
  np.testing.assert_array_equal(grad, 0.0)


def test_enqueue_on_eight_devices_matches_one():
  assert jax.device_count() == 8
  mesh = step_lib.make_mesh()
  axis = step_lib.BATCH_AXIS
  queue, ptr = queue_lib.init_queue(jax.random.PRNGKey(0), 48, 4, 16)
  batches = jax.random.normal(jax.random.PRNGKey(1), (4, 16, 4))

  def sharded_enqueue(queue, ptr, keys):
    new = queue_lib.enqueue(queue_state(queue, ptr), keys, axis)
    return new.queue, new.queue_ptr, new.queue[None]

  step = jax.jit(jax.shard_map(
      sharded_enqueue, mesh=mesh, in_specs=(P(), P(), P(axis)),
      out_specs=(P(), P(), P(axis))))
  single = jax.jit(lambda s, k: queue_lib.enqueue(s, k, None))
  one = queue_state(queue, ptr)
  for keys in batches:  # 4 batches of 16 in a queue of 48: wraps once
    queue, ptr, copies = step(queue, ptr, keys)
    one = single(one, keys)
    np.testing.assert_array_equal(queue, one.queue)
    assert int(ptr) == int(one.queue_ptr)
    for copy in np.asarray(copies):  # every replica's own queue
      np.testing.assert_array_equal(copy, one.queue)
  np.testing.assert_array_equal(queue[:16], batches[3])
  np.testing.assert_array_equal(queue[16:], batches[1:3].reshape(32, 4))
