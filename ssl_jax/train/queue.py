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

  Args:
    rng: PRNG key of the random initial keys.
    queue_size: K, the number of keys held.
    dim: D, the key dimension.
    global_batch_size: keys enqueued per step, over all replicas.

  Returns:
    ``(queue, queue_ptr)``: ``(K, D)`` float32 rows of unit norm, and an
    int32 scalar 0.

  Raises:
    ValueError: ``queue_size`` is not a positive multiple of the global batch
      (the keys of one step must fit without wrapping mid-batch), or ``dim``
      or the batch is not positive.
  """
  if global_batch_size <= 0 or dim <= 0:
    raise ValueError(
        f"MoCo queue needs a positive key dim and global batch; got dim={dim}, "
        f"global batch {global_batch_size}.")
  if queue_size <= 0 or queue_size % global_batch_size:
    raise ValueError(
        f"MoCo queue size {queue_size} is not a positive multiple of the "
        f"global batch size {global_batch_size}; set config.moco.queue_size "
        f"to a multiple of {global_batch_size}.")
  queue = jax.random.normal(rng, (queue_size, dim), jnp.float32)
  queue = queue / jnp.linalg.norm(queue, axis=1, keepdims=True)
  return queue, jnp.zeros((), jnp.int32)


def enqueue(state, keys, axis_name):
  """``state`` with the global batch's ``keys`` written at ``queue_ptr``.

  Args:
    state: a TrainState with ``queue`` and ``queue_ptr``.
    keys: ``(n, D)`` keys of this replica (no gradient flows into the queue).
    axis_name: the mapped device axis (keys of all replicas are written, in
      replica order, identically on every replica), or ``None``.

  Returns:
    ``state`` with the new ``queue`` and ``queue_ptr`` (advanced by the
    global batch, modulo K).
  """
  queue, queue_ptr = losses.moco_enqueue(
      state.queue, state.queue_ptr, jax.lax.stop_gradient(keys), axis_name)
  return state.replace(queue=queue, queue_ptr=queue_ptr)
