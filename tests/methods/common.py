"""Checks every method's tests share: 8 devices vs 1, and a step that trains."""

import jax
import jax.numpy as jnp
import numpy as np

from ssl_jax import data
from ssl_jax import methods
from ssl_jax.train import optim
from ssl_jax.train import step as step_lib

STATE_FIELDS = ("params", "batch_stats", "opt_state", "ema_params",
                "ema_batch_stats", "queue", "queue_ptr", "extra", "step")


def digits_batch(batch_size=16):
  images, labels = data.as_arrays(data.load_digits("train"))
  return images[:batch_size], labels[:batch_size]


def run_steps(config, devices, images, labels, num_steps, total_steps=10,
              prepare=None):
  """``num_steps`` steps on ``devices``; returns (init, final state, metrics).

  The schedule spans ``total_steps`` with at most 1 warmup step. A method
  with per-example state (``uses_example_index``) is built for
  ``len(images)`` records, and ``labels`` is then its ``{"label",
  "index"}`` dict. ``prepare(method, state, tx) -> state`` changes the
  step-0 state first (e.g. DeepCluster's pseudo-labels).
  """
  mesh = step_lib.make_mesh(devices)
  method = methods.get_method(config, num_classes=10, total_steps=total_steps)
  optim_config = config.optim.copy_and_resolve_references()
  optim_config.warmup_steps = min(optim_config.warmup_steps, 1)
  tx, _ = optim.make_optimizer(optim_config, total_steps, images.shape[0])
  per_example = ({"num_examples": len(images)}
                 if method.uses_example_index else {})
  init = method.init_state(jax.random.PRNGKey(0), images.shape[1:], tx,
                           **per_example)
  if prepare is not None:
    init = prepare(method, init, tx)
  # A host copy: the step donates its input, which may share init's buffers.
  init = jax.device_get(init)
  state = step_lib.replicate(init, mesh)
  train_step = step_lib.make_train_step(method, tx, mesh)
  history = []
  for _ in range(num_steps):
    batch = step_lib.shard_batch((images, labels), mesh)
    state, metrics = train_step(state, *batch)
    history.append(jax.device_get(metrics))
  return init, jax.device_get(state), history


def max_relative_difference(a, b):
  diffs = jax.tree.map(
      lambda x, y: np.max(np.abs(np.asarray(x, np.float64) - y))
      / (np.max(np.abs(y)) + 1e-12), a, b)
  return max(jax.tree.leaves(diffs), default=0.0)


def tinted_digits_batch(batch_size=16, seed=0):
  """RGB uint8 ``(B, 8, 8, 3)``: digits drawn in one random colour on
  another (colour data for the colour tasks; the digits are grayscale)."""
  images, labels = digits_batch(batch_size)
  ink = images.astype(np.float32) / 255.0
  colours = np.random.default_rng(seed).uniform(size=(2, batch_size, 1, 1, 3))
  rgb = ink * colours[0] + (1.0 - ink) * colours[1]
  return np.round(rgb * 255.0).astype(np.uint8), labels


def assert_eight_devices_match_one(config, num_steps=2, rtol=1e-4, batch=None):
  """The same global batch on 8 devices and on 1 gives the same numbers.

  Compares the loss and metrics of every step and every field of the final
  TrainState (params, BN statistics, optimizer state, EMA networks, queue).
  ``batch``: ``(images, labels)``, default the first digits of the
  config's batch size. Returns ``(init, one_device_state, history)`` for
  further checks.
  """
  assert jax.device_count() == 8, "tests/conftest.py sets 8 CPU devices"
  images, labels = batch or digits_batch(config.train.batch_size)
  init, one, history_one = run_steps(
      config, jax.devices()[:1], images, labels, num_steps)
  _, eight, history_eight = run_steps(
      config, jax.devices(), images, labels, num_steps)
  for m1, m8 in zip(history_one, history_eight):
    np.testing.assert_allclose(m8["loss"], m1["loss"], rtol=rtol)
  for field in STATE_FIELDS:
    a, b = getattr(eight, field), getattr(one, field)
    assert jax.tree.structure(a) == jax.tree.structure(b), field
    difference = max_relative_difference(a, b)
    assert difference < rtol, f"{field} differs by {difference:.2e}"
  # The step really trained: the counter advanced and the params moved.
  assert int(one.step) == num_steps
  assert max_relative_difference(one.params, init.params) > 1e-3
  return init, one, history_one


def make_step_projections(method):
  """``(state, images) -> (z1, z2)``: the projections of the step from ``state``.

  Recomputed outside the step, on one device: the step's keys and views,
  each view through the network in its own training-mode pass (BatchNorm on
  the batch's statistics).
  """

  def forward(state, images):
    step_key = jax.random.fold_in(state.rng, state.step)
    keys = step_lib.example_keys(step_key, images.shape[0], step_lib.BATCH_AXIS)
    variables = {"params": state.params, "batch_stats": state.batch_stats}
    return [method.network.apply(variables, view, train=True,
                                 mutable=["batch_stats"])[0]["projections"]
            for view in method.views(keys, images)]

  # vmap over a unit axis binds the BatchNorm's axis name.
  batched = jax.jit(jax.vmap(forward, in_axes=(None, 0),
                             axis_name=step_lib.BATCH_AXIS))
  return lambda state, images: tuple(
      z[0] for z in batched(state, jnp.asarray(images)[None]))
