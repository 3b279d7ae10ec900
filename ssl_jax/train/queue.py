"""MoCo's queue of negative keys in the TrainState (He et al. 2020, Sec. 3.2).

The queue is a ring buffer of K L2-normalised keys, shape ``(K, D)``,
replicated and kept identical on every replica: each step enqueues the keys
of the whole global batch, gathered in replica order
(``ssl_jax.losses.moco_enqueue``), over the oldest ones.
"""

import jax
import jax.numpy as jnp

from ssl_jax import losses


def init_queue(rng, queue_size, dim, global_batch_size):
  """A queue of random unit vectors (MoCo's init) and its pointer at 0.

  Raises:
    ValueError: ``queue_size`` is not a positive multiple of the global batch
      (the keys of one step must fit without wrapping mid-batch).
  """
  if queue_size <= 0 or queue_size % global_batch_size:
    raise ValueError(
        f"MoCo queue size {queue_size} is not a positive multiple of the "
        f"global batch size {global_batch_size}; set config.moco.queue_size "
        f"to a multiple of {global_batch_size}.")
  queue = jax.random.normal(rng, (queue_size, dim), jnp.float32)
  queue = queue / jnp.linalg.norm(queue, axis=1, keepdims=True)
  return queue, jnp.zeros((), jnp.int32)


def enqueue(state, keys, axis_name):
  """``state`` with the global batch's ``keys`` written at ``queue_ptr``."""
  queue, queue_ptr = losses.moco_enqueue(
      state.queue, state.queue_ptr, jax.lax.stop_gradient(keys), axis_name)
  return state.replace(queue=queue, queue_ptr=queue_ptr)
