"""The data-parallel training step shared by every method.

``make_train_step`` compiles one pure function

    step(state, images_uint8, labels) -> (state, metrics)

and runs it with ``jax.shard_map`` over a one-axis ``Mesh`` whose axis is
named ``BATCH_AXIS``: the state is replicated, the batch is split along its
first dimension. Inside, per replica: per-example keys -> the method's views,
networks and loss (negatives and BatchNorm statistics over the global batch
through the named axis) -> gradients of the global loss -> optimizer update
-> the method's extra state updates (EMA, queue) -> metrics averaged over
replicas. Nothing in the step touches the host.

A step whose loss, gradient norm or update is not finite changes nothing
but the step counter and ``state.nonfinite_steps`` (``lax.cond`` keeps the
previous state, EMA and queue included), so a checkpoint never holds the
NaN or Inf. The metric ``nonfinite`` (1.0 for such a step) tells the loop,
which stops or goes on by ``config.train.nonfinite``; ``nonfinite_steps`` is
the count so far.

The same step gives the same numbers on 1 device with global batch B as on
n devices with B/n each: every example's randomness comes from its global
index, not from the device it lands on.
"""

import jax
from jax import lax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

BATCH_AXIS = "batch"


def make_mesh(devices=None):
  """A one-axis mesh named ``BATCH_AXIS`` over ``devices`` (default: all).

  Built with ``Mesh`` directly: ``jax.make_mesh`` defaults to Explicit axes,
  which ``shard_map`` does not take.
  """
  devices = jax.devices() if devices is None else devices
  return Mesh(np.asarray(devices), (BATCH_AXIS,))


def example_keys(step_key, local_batch_size, axis_name):
  """One raw PRNG key per example, from the example's index in the global batch.

  Folding in the global index (replica index x local batch + local index)
  makes the augmentations independent of how the batch is split.
  """
  first = lax.axis_index(axis_name) * local_batch_size
  global_index = first + jnp.arange(local_batch_size)
  return jax.vmap(jax.random.fold_in, in_axes=(None, 0))(step_key, global_index)


def make_train_step(method, tx, mesh, axis_name=BATCH_AXIS):
  """Compiles the data-parallel step of ``method`` with optimizer ``tx``.

  ``method`` provides:
    loss_fn(params, state, keys, images, labels, axis_name)
        -> (loss, (state_updates, metrics)), ``loss`` the mean over the
        replica's examples, ``state_updates`` a dict of TrainState fields
        (e.g. ``batch_stats``) that the forward pass produced;
    after_update(state, axis_name) -> state, for updates that follow the
        optimizer step (momentum encoders, queues); identity for SimCLR.

  ``labels`` is split over the batch axis like the images: the int32
  class array, or, for a method with ``batch_fields``, the dict
  ``{"label", *batch_fields}`` (every leaf split alike).

  The returned function donates its input state.
  """

  def replica_step(state, images, labels):
    previous = state
    num_replicas = lax.axis_size(axis_name)
    step_key = jax.random.fold_in(state.rng, state.step)
    keys = example_keys(step_key, images.shape[0], axis_name)

    def objective(params):
      loss, aux = method.loss_fn(params, state, keys, images, labels, axis_name)
      # Under shard_map (check_vma=True) the gradient with respect to the
      # replicated params is summed over replicas by the transpose of the
      # implicit broadcast; scaling by 1/num_replicas makes that sum the
      # gradient of the global loss (the mean of the replicas' losses).
      return loss / num_replicas, (loss, aux)

    grads, (loss, (state_updates, metrics)) = jax.grad(
        objective, has_aux=True)(state.params)
    updates, opt_state = tx.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    state = state.replace(
        step=state.step + 1, params=params, opt_state=opt_state,
        **state_updates)
    state = method.after_update(state, axis_name)
    metrics = dict(metrics, loss=loss)
    metrics = lax.pmean(metrics, axis_name)
    metrics["grad_norm"] = optax.tree.norm(grads)
    # The replicas agree: the loss is averaged and the gradients and
    # updates are replicated. Finite parameters plus a finite update are
    # finite parameters.
    finite = (jnp.isfinite(metrics["loss"]) & jnp.isfinite(metrics["grad_norm"])
              & jnp.isfinite(optax.tree.norm(updates)))
    state = lax.cond(finite, lambda: state, lambda: previous)
    state = state.replace(
        step=previous.step + 1,
        nonfinite_steps=previous.nonfinite_steps + (~finite).astype(jnp.int32))
    metrics["nonfinite"] = (~finite).astype(jnp.float32)
    metrics["nonfinite_steps"] = state.nonfinite_steps
    return state, metrics

  sharded_step = jax.shard_map(
      replica_step,
      mesh=mesh,
      in_specs=(P(), P(axis_name), P(axis_name)),
      out_specs=(P(), P()),
  )
  return jax.jit(sharded_step, donate_argnums=0)


def replicate(tree, mesh):
  """Places a pytree fully replicated on every device of ``mesh``."""
  return jax.device_put(tree, NamedSharding(mesh, P()))


def shard_batch(local_batch, mesh, axis_name=BATCH_AXIS):
  """Assembles this host's part of the batch into global arrays split over the mesh."""
  sharding = NamedSharding(mesh, P(axis_name))
  return jax.tree.map(
      lambda x: jax.make_array_from_process_local_data(sharding, np.asarray(x)),
      local_batch)
