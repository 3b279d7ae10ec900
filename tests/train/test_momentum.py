"""Momentum networks: the EMA update, its schedules, the target's copy and
forward pass (ssl_jax.train.momentum)."""

import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ssl_jax import models
from ssl_jax.methods import base
from ssl_jax.train import momentum
from ssl_jax.train import state as state_lib


def _tree(seed, dtype=np.float32):
  rng = np.random.default_rng(seed)
  return {"a": {"kernel": rng.normal(size=(3, 4)).astype(dtype)},
          "b": rng.normal(size=(5,)).astype(dtype)}


# --------------------------------- ema_update -------------------------------
def test_ema_update_is_m_target_plus_one_minus_m_online():
  target, online = _tree(0), _tree(1)
  got = jax.jit(momentum.ema_update)(target, online, 0.75)
  for g, t, o in zip(jax.tree.leaves(got), jax.tree.leaves(target),
                     jax.tree.leaves(online)):
    np.testing.assert_allclose(
        g, 0.75 * t.astype(np.float64) + 0.25 * o, rtol=1e-6, atol=1e-7)
  # m = 1 freezes the target, m = 0 copies the online network.
  for m, expected in ((1.0, target), (0.0, online)):
    got = momentum.ema_update(target, online, m)
    for g, e in zip(jax.tree.leaves(got), jax.tree.leaves(expected)):
      np.testing.assert_array_equal(g, e)


def test_ema_update_keeps_the_target_dtype():
  target = jax.tree.map(lambda x: x.astype(jnp.bfloat16), _tree(0))
  got = momentum.ema_update(target, _tree(1), 0.5)
  assert all(x.dtype == jnp.bfloat16 for x in jax.tree.leaves(got))


# --------------------------------- momentum_at ------------------------------
def test_constant_momentum_is_the_base_at_every_step():
  for step in (0, 7, 100, 1000):
    np.testing.assert_allclose(
        momentum.momentum_at(step, 0.999, 100, "constant"), 0.999, rtol=1e-7)


def test_cosine_momentum_endpoints_midpoint_and_clamp():
  at = jax.jit(lambda k: momentum.momentum_at(k, 0.996, 1000, "cosine"))
  np.testing.assert_allclose(at(0), 0.996, rtol=1e-7)
  np.testing.assert_allclose(at(1000), 1.0, rtol=1e-7)
  # Halfway the cosine term is 1/2: tau = 1 - (1 - 0.996) / 2 = 0.998.
  np.testing.assert_allclose(at(500), 0.998, rtol=1e-7)
  # BYOL Sec. 3.2 at an arbitrary step.
  expected = 1 - 0.004 * (math.cos(math.pi * 123 / 1000) + 1) / 2
  np.testing.assert_allclose(at(123), expected, rtol=1e-7)
  # Monotone, and stays at 1 past the end (a run extended beyond K).
  values = np.asarray([at(k) for k in range(0, 1001, 50)])
  assert np.all(np.diff(values) > 0)
  np.testing.assert_allclose(at(1500), 1.0, rtol=1e-7)


def test_unknown_momentum_schedule_is_refused():
  with pytest.raises(ValueError, match="cosine"):
    momentum.momentum_at(0, 0.99, 10, "linear")


# ------------------------------ target network ------------------------------
class _Encoder(nn.Module):
  """A tiny encoder with BatchNorm, called like the ResNet: (x, train)."""

  @nn.compact
  def __call__(self, x, train):
    x = nn.Dense(6)(x.reshape((x.shape[0], -1)))
    return nn.relu(nn.BatchNorm(use_running_average=not train)(x))


def _network():
  return base.SiameseNetwork(
      encoder=_Encoder(),
      projector=models.MLPHead(hidden_dims=(8,), out_dim=4),
      predictor=models.MLPHead(hidden_dims=(8,), out_dim=4),
      num_classes=3)


@pytest.fixture(scope="module")
def network_and_variables():
  network = _network()
  images = jnp.asarray(np.random.default_rng(0).normal(size=(6, 2, 2, 1)),
                       jnp.float32)
  # One compiled program: op-by-op init compiles a kernel per primitive.
  variables = jax.jit(network.init, static_argnames="train")(
      jax.random.PRNGKey(0), images, train=False)
  return network, variables, images


def test_init_target_copies_only_the_named_modules(network_and_variables):
  _, variables, _ = network_and_variables
  assert sorted(variables["params"]) == [
      "encoder", "online_probe", "predictor", "projector"]
  ema_params, ema_stats = momentum.init_target(
      variables, ("encoder", "projector"))
  assert sorted(ema_params) == ["encoder", "projector"]
  assert sorted(ema_stats) == ["encoder", "projector"]
  for name in ("encoder", "projector"):
    for copy, original in zip(jax.tree.leaves(ema_params[name]),
                              jax.tree.leaves(variables["params"][name])):
      np.testing.assert_array_equal(copy, original)
      assert copy is not original
    for copy, original in zip(jax.tree.leaves(ema_stats[name]),
                              jax.tree.leaves(variables["batch_stats"][name])):
      np.testing.assert_array_equal(copy, original)
  # A module without BatchNorm has params and no statistics.
  probe_params, probe_stats = momentum.init_target(variables, ("online_probe",))
  assert sorted(probe_params) == ["online_probe"] and probe_stats == {}


def test_init_target_refuses_unknown_modules(network_and_variables):
  _, variables, _ = network_and_variables
  with pytest.raises(ValueError, match="key_encoder"):
    momentum.init_target(variables, ("encoder", "key_encoder"))


def _state(variables, ema_params, ema_stats):
  return state_lib.TrainState(
      step=jnp.zeros((), jnp.int32), rng=jax.random.PRNGKey(0),
      params=variables["params"], batch_stats=variables["batch_stats"],
      opt_state=None, ema_params=ema_params, ema_batch_stats=ema_stats)


def test_target_forward_gives_no_gradient_and_its_own_statistics(
    network_and_variables):
  network, variables, images = network_and_variables
  ema_params, ema_stats = momentum.init_target(
      variables, ("encoder", "projector"))
  state = _state(variables, ema_params, ema_stats)

  def target_sum(ema, x):
    z, _ = momentum.target_forward(network, state.replace(ema_params=ema), x,
                                   method=base.SiameseNetwork.project,
                                   train=True)
    return jnp.sum(z ** 2)

  grad_params, grad_images = jax.jit(jax.grad(target_sum, argnums=(0, 1)))(
      ema_params, images)
  assert all(np.all(np.asarray(g) == 0.0)
             for g in jax.tree.leaves((grad_params, grad_images)))
  # The same function without the stop-gradient does have a gradient.
  online = jax.jit(jax.grad(lambda p: jnp.sum(network.apply(
      {"params": p, "batch_stats": variables["batch_stats"]}, images,
      train=True, method=base.SiameseNetwork.project,
      mutable=["batch_stats"])[0] ** 2)))(variables["params"])
  assert max(float(jnp.max(jnp.abs(g)))
             for g in jax.tree.leaves(online["encoder"])) > 1e-4

  z, new_stats = jax.jit(lambda s, x: momentum.target_forward(
      network, s, x, method=base.SiameseNetwork.project, train=True))(
          state, images)
  # At step 0 the target equals the online g(f(x)) in training mode.
  expected, _ = jax.jit(lambda v, x: network.apply(
      v, x, train=True, method=base.SiameseNetwork.project,
      mutable=["batch_stats"]))(variables, images)
  np.testing.assert_allclose(z, expected, rtol=1e-6)
  # Training-mode BatchNorm moved the target's running averages.
  assert sorted(new_stats) == ["encoder", "projector"]
  moved = jax.tree.map(lambda a, b: float(jnp.max(jnp.abs(a - b))),
                       new_stats, ema_stats)
  assert max(jax.tree.leaves(moved)) > 1e-4


def test_update_target_moves_only_the_mirrored_modules(network_and_variables):
  _, variables, _ = network_and_variables
  ema_params, ema_stats = momentum.init_target(
      variables, ("encoder", "projector"))
  shifted = jax.tree.map(lambda x: x + 1.0, variables["params"])
  state = _state({"params": shifted,
                  "batch_stats": variables["batch_stats"]},
                 ema_params, ema_stats)
  updated = jax.jit(momentum.update_target)(state, 0.9).ema_params
  assert sorted(updated) == ["encoder", "projector"]
  for name in ("encoder", "projector"):
    for new, old in zip(jax.tree.leaves(updated[name]),
                        jax.tree.leaves(ema_params[name])):
      np.testing.assert_allclose(new, old + 0.1, rtol=1e-6, atol=1e-6)
