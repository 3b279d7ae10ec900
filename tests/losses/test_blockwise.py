"""Tests for ssl_jax.losses.blockwise.nt_xent_blockwise.

The reference is the dense ``nt_xent`` (itself tested against SimCLR's
Algorithm 1): value, aux and gradients must agree for block sizes that do and
do not divide the number of keys, on one device and on 8 simulated devices.
The memory claim is checked on the compiled programs.
"""
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax
from jax.sharding import Mesh, PartitionSpec as P

from ssl_jax.losses import nt_xent, nt_xent_blockwise

NDEV = 8


def _random_pairs(seed, b, d, noise=1.0):
  rng = np.random.default_rng(seed)
  base = rng.normal(size=(b, d))
  z1 = base + noise * rng.normal(size=(b, d))
  z2 = base + noise * rng.normal(size=(b, d))
  return z1.astype(np.float32), z2.astype(np.float32)


def _rel_err(a, b):
  a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
  return np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-30)


def _value_and_grads(loss_fn):
  """jit: (loss, aux), (d/dz1, d/dz2, d/dtemperature)."""
  return jax.jit(jax.value_and_grad(loss_fn, argnums=(0, 1, 2), has_aux=True))


_dense = _value_and_grads(nt_xent)
_blocked = {bs: _value_and_grads(
    lambda a, b, t, bs=bs: nt_xent_blockwise(a, b, t, block_size=bs))
            for bs in (1, 5, 64)}


def _assert_same(out, ref, rtol=1e-5):
  (loss, aux), grads = out
  (loss_r, aux_r), grads_r = ref
  np.testing.assert_allclose(loss, loss_r, rtol=rtol)
  for key in aux_r:
    np.testing.assert_allclose(aux[key], aux_r[key], rtol=rtol, atol=1e-6,
                               err_msg=key)
  for g, g_r in zip(grads, grads_r):
    assert _rel_err(g, g_r) < rtol


# 2B = 12 keys: block 5 leaves a padded last block, 1 is the degenerate
# one-key-per-step scan, 64 is clipped to 12 (one exact block).
@pytest.mark.parametrize("block_size", [1, 5, 64])
def test_matches_dense_value_aux_and_gradients(block_size):
  z1, z2 = _random_pairs(0, 6, 8)
  for tau in (0.1, 0.5):
    _assert_same(_blocked[block_size](z1, z2, tau), _dense(z1, z2, tau))


def test_near_duplicate_views_against_float64():
  """Tiny loss from O(1/tau) logits: float32 cancellation territory.

  Near-identical views at tau = 0.02 give logits ~50 (float32 spacing 4e-6)
  and a loss ~1e-5. The blockwise loss forms (max - positive) + log(sum) and
  softmax - 1 with expm1, so it stays close to the float64 value; the dense
  float32 loss loses most of its digits here, so compare both to float64.
  """
  z1, z2 = _random_pairs(1, 6, 8, noise=1e-3)
  tau = 0.02
  (loss, _), grads = _blocked[5](z1, z2, tau)
  (loss_dense, _), _ = _dense(z1, z2, tau)
  with jax.enable_x64(True):
    (loss_64, _), grads_64 = jax.jit(jax.value_and_grad(
        nt_xent, argnums=(0, 1, 2), has_aux=True))(
            jnp.asarray(z1, jnp.float64), jnp.asarray(z2, jnp.float64),
            jnp.float64(tau))
    loss_64, grads_64 = float(loss_64), [np.asarray(g) for g in grads_64]
  assert 1e-6 < loss_64 < 1e-4
  err = abs(float(loss) - loss_64) / loss_64
  assert err < 2e-3
  assert err < abs(float(loss_dense) - loss_64) / loss_64
  # Embedding gradients (the temperature's, a sum of cancelling terms of
  # size 1/tau^2, is left to the well-conditioned tests above).
  for g, g_64 in zip(grads[:2], grads_64[:2]):
    assert _rel_err(g, g_64) < 1e-5


def test_identical_embeddings_give_log_2b_minus_1_and_ties_are_misses():
  z = jnp.ones((6, 8))
  (loss, aux), _ = _blocked[5](z, z, 0.3)
  np.testing.assert_allclose(loss, math.log(11), rtol=1e-6)
  assert float(aux["contrastive_acc"]) == 0.0


def test_bfloat16_inputs():
  z1, z2 = _random_pairs(2, 6, 8)
  z1b, z2b = jnp.asarray(z1, jnp.bfloat16), jnp.asarray(z2, jnp.bfloat16)
  out = _blocked[5](z1b, z2b, 0.2)
  assert out[0][0].dtype == jnp.float32
  assert out[1][0].dtype == jnp.bfloat16
  ref = _dense(np.asarray(z1b, np.float32), np.asarray(z2b, np.float32), 0.2)
  np.testing.assert_allclose(out[0][0], ref[0][0], rtol=1e-5)


def test_sharded_matches_single_device_dense():
  """8 devices, 2 pairs each: 32 global keys, blocks of 5 (not a divisor)."""
  mesh = Mesh(np.array(jax.devices()[:NDEV]), ("batch",))
  z1, z2 = _random_pairs(3, 2 * NDEV, 8)

  def per_replica(a, b, t):
    loss, aux = nt_xent_blockwise(a, b, t, block_size=5, axis_name="batch")
    return lax.pmean(loss, "batch"), lax.pmean(aux, "batch")

  sharded = jax.shard_map(per_replica, mesh=mesh,
                          in_specs=(P("batch"), P("batch"), P()),
                          out_specs=(P(), P()))
  out = _value_and_grads(sharded)(z1, z2, 0.2)
  _assert_same(out, _dense(z1, z2, 0.2))

  # The gradient taken inside shard_map (check_vma=True recipe) as well.
  def inner(a, b):
    return jax.grad(lambda a, b: per_replica(a, b, 0.2)[0],
                    argnums=(0, 1))(a, b)

  grads = jax.jit(jax.shard_map(inner, mesh=mesh,
                                in_specs=(P("batch"), P("batch")),
                                out_specs=(P("batch"), P("batch"))))(z1, z2)
  for g, g_r in zip(grads, _dense(z1, z2, 0.2)[1][:2]):
    assert _rel_err(g, g_r) < 1e-5


def test_compiled_memory_is_linear_in_batch():
  """The (2B)^2 logits never exist: compiled temp memory << (2B)^2 floats."""
  b, d, block = 1024, 16, 128
  z = jax.ShapeDtypeStruct((b, d), jnp.float32)

  def temp_bytes(loss_fn):
    grad_fn = jax.jit(jax.grad(lambda a, c: loss_fn(a, c)[0], argnums=(0, 1)))
    return grad_fn.lower(z, z).compile().memory_analysis().temp_size_in_bytes

  dense = temp_bytes(lambda a, c: nt_xent(a, c, 0.1))
  blocked = temp_bytes(
      lambda a, c: nt_xent_blockwise(a, c, 0.1, block_size=block))
  logits_bytes = (2 * b) ** 2 * 4
  assert dense >= logits_bytes                 # dense holds the logits
  # Blockwise: a few (2B x block) temporaries plus O(B * d) vectors.
  assert blocked < 4 * (2 * b) * block * 4 + 16 * (2 * b) * d * 4
  assert blocked < logits_bytes / 2


def test_errors():
  with pytest.raises(ValueError, match="block_size"):
    nt_xent_blockwise(jnp.ones((2, 3)), jnp.ones((2, 3)), block_size=0)
  with pytest.raises(ValueError, match="same shape"):
    nt_xent_blockwise(jnp.ones((2, 3)), jnp.ones((3, 3)))
  with pytest.raises(ValueError, match="non-empty"):
    nt_xent_blockwise(jnp.ones((0, 3)), jnp.ones((0, 3)))
  with pytest.raises(ValueError, match="temperature"):
    nt_xent_blockwise(jnp.ones((2, 3)), jnp.ones((2, 3)), temperature=0.0)
