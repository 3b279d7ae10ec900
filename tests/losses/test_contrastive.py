"""Tests for ssl_jax.losses.contrastive (NT-Xent / InfoNCE).

Values are checked against analytic cases and an independent numpy
implementation written from SimCLR's Algorithm 1; the data-parallel path is
checked against the single-device loss over 8 simulated CPU devices.
"""
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax
from jax.sharding import Mesh, PartitionSpec as P

from ssl_jax.losses import info_nce, nt_xent

NDEV = 8


# --------------------------------------------------------------------------
# Independent reference: SimCLR Algorithm 1, literally, in float64 numpy.
# z_{2k-1}, z_{2k} are the two views of image k (1-based in the paper).
# --------------------------------------------------------------------------
def simclr_algorithm1_numpy(z1, z2, tau):
  z1 = np.asarray(z1, np.float64)
  z2 = np.asarray(z2, np.float64)
  n = z1.shape[0]
  z = np.empty((2 * n, z1.shape[1]))
  z[0::2] = z1  # z[2k-2] is paper's z_{2k-1} (0-based storage)
  z[1::2] = z2

  def sim(u, v):
    return u @ v / (np.linalg.norm(u) * np.linalg.norm(v))

  s = np.array([[sim(z[i], z[j]) for j in range(2 * n)] for i in range(2 * n)])

  def ell(i, j):
    denom = sum(math.exp(s[i, k] / tau) for k in range(2 * n) if k != i)
    return -math.log(math.exp(s[i, j] / tau) / denom)

  total = 0.0
  for k in range(n):
    total += ell(2 * k, 2 * k + 1) + ell(2 * k + 1, 2 * k)
  return total / (2 * n)


def _random_pairs(seed, b, d, noise=1.0):
  rng = np.random.default_rng(seed)
  base = rng.normal(size=(b, d))
  z1 = base + noise * rng.normal(size=(b, d))
  z2 = base + noise * rng.normal(size=(b, d))
  return z1.astype(np.float32), z2.astype(np.float32)


# Tests call jitted wrappers and reuse a few shapes: eager mode would compile
# every primitive separately, which dominates the run time on CPU.
_loss = jax.jit(nt_xent, static_argnames="axis_name")
_grad = jax.jit(jax.grad(lambda a, b, t: nt_xent(a, b, t)[0], argnums=(0, 1)))


def _mesh():
  return Mesh(np.array(jax.devices()[:NDEV]), ("batch",))


def _rel_err(a, b):
  a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
  return np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-30)


# ------------------------------ values ------------------------------------
@pytest.mark.parametrize("b", [1, 6])
def test_identical_embeddings_give_log_2b_minus_1(b):
  z = jnp.ones((b, 8))
  loss, aux = _loss(z, z, 0.3)
  np.testing.assert_allclose(loss, math.log(2 * b - 1), rtol=1e-6, atol=1e-7)
  # All logits tie: no anchor's positive is strictly best.
  if b > 1:
    assert float(aux["contrastive_acc"]) == 0.0
    np.testing.assert_allclose(aux["neg_sim"], 1.0, rtol=1e-6)
  np.testing.assert_allclose(aux["pos_sim"], 1.0, rtol=1e-6)


@pytest.mark.parametrize("tau", [0.1, 0.5, 1.0])
def test_aligned_positives_orthogonal_negatives_closed_form(tau):
  b = 6
  # Image k is the k-th basis vector, scaled differently in each view
  # (scale must not matter: cosine similarity).
  z1 = np.eye(b, 8, dtype=np.float32) * 3.0
  z2 = np.eye(b, 8, dtype=np.float32) * 0.5
  loss, aux = _loss(z1, z2, tau)
  expected = math.log(math.exp(1 / tau) + (2 * b - 2) * math.exp(0.0)) - 1 / tau
  # atol: at tau=0.1 the loss (~3e-4) is a float32 difference of O(1/tau)
  # terms, so only its absolute error (~1e-7 / tau) is small.
  np.testing.assert_allclose(loss, expected, rtol=1e-5, atol=1e-6)
  assert float(aux["contrastive_acc"]) == 1.0
  np.testing.assert_allclose(aux["pos_sim"], 1.0, rtol=1e-6)
  np.testing.assert_allclose(aux["neg_sim"], 0.0, atol=1e-7)


@pytest.mark.parametrize("seed,b,d,tau", [(0, 6, 8, 0.1), (1, 6, 8, 0.5),
                                          (2, 3, 5, 1.0)])
def test_matches_numpy_algorithm1(seed, b, d, tau):
  z1, z2 = _random_pairs(seed, b, d)
  loss, _ = _loss(z1, z2, tau)
  assert loss.dtype == jnp.float32
  np.testing.assert_allclose(loss, simclr_algorithm1_numpy(z1, z2, tau),
                             rtol=1e-5)


def test_aux_metrics_against_numpy():
  z1, z2 = _random_pairs(3, 6, 8, noise=0.3)
  _, aux = _loss(z1, z2, 0.2)
  z = np.concatenate([z1, z2]).astype(np.float64)
  z /= np.linalg.norm(z, axis=1, keepdims=True)
  s = z @ z.T
  n2 = s.shape[0]
  pos = (np.arange(n2) + n2 // 2) % n2
  pos_sim = s[np.arange(n2), pos]
  neg_mask = ~np.eye(n2, dtype=bool)
  neg_mask[np.arange(n2), pos] = False
  neg_sim = np.array([s[i, neg_mask[i]].mean() for i in range(n2)])
  acc = np.array([pos_sim[i] > s[i, neg_mask[i]].max() for i in range(n2)])
  np.testing.assert_allclose(aux["pos_sim"], pos_sim.mean(), rtol=1e-5)
  np.testing.assert_allclose(aux["neg_sim"], neg_sim.mean(), rtol=1e-5,
                             atol=1e-6)
  np.testing.assert_allclose(aux["contrastive_acc"], acc.mean())


def test_invariant_to_scale_and_pair_order():
  z1, z2 = _random_pairs(4, 6, 8)
  loss, _ = _loss(z1, z2, 0.2)
  loss_scaled, _ = _loss(7.0 * z1, 0.1 * z2, 0.2)
  perm = np.random.default_rng(0).permutation(6)
  loss_perm, _ = _loss(z1[perm], z2[perm], 0.2)
  loss_swap, _ = _loss(z2, z1, 0.2)
  for other in (loss_scaled, loss_perm, loss_swap):
    np.testing.assert_allclose(other, loss, rtol=1e-5)


def test_lower_temperature_is_sharper():
  # Positives closer than any negative: as tau falls the softmax concentrates
  # on the positive, so the loss falls towards 0 ...
  z1, z2 = _random_pairs(5, 6, 8, noise=0.05)
  losses = [float(_loss(z1, z2, t)[0]) for t in (2.0, 1.0, 0.5, 0.2, 0.05)]
  assert all(a > b for a, b in zip(losses, losses[1:])), losses
  assert losses[-1] < 1e-3
  # ... and as tau grows every logit tends to the same value: log(2B - 1).
  big_tau, _ = _loss(z1, z2, 1e4)
  np.testing.assert_allclose(big_tau, math.log(11), rtol=1e-4)


def test_bfloat16_inputs_computed_in_float32():
  z1, z2 = _random_pairs(6, 6, 8)
  z1b, z2b = jnp.asarray(z1, jnp.bfloat16), jnp.asarray(z2, jnp.bfloat16)
  loss, aux = _loss(z1b, z2b, 0.1)
  assert loss.dtype == jnp.float32
  assert all(v.dtype == jnp.float32 for v in aux.values())
  # Same as the float32 loss on the (rounded) bfloat16 values.
  ref = simclr_algorithm1_numpy(np.asarray(z1b, np.float32),
                                np.asarray(z2b, np.float32), 0.1)
  np.testing.assert_allclose(loss, ref, rtol=1e-5)
  g1, g2 = _grad(z1b, z2b, 0.1)
  assert g1.dtype == jnp.bfloat16 and g2.dtype == jnp.bfloat16
  assert np.all(np.isfinite(np.asarray(g1, np.float32)))


def test_zero_embedding_is_finite():
  z1, z2 = _random_pairs(7, 6, 8)
  z1[0] = 0.0
  loss, _ = _loss(z1, z2, 0.1)
  grads = _grad(z1, z2, 0.1)
  assert np.isfinite(loss)
  assert all(np.all(np.isfinite(g)) for g in grads)


# ------------------------------ gradients ---------------------------------
def test_gradient_matches_finite_differences_of_numpy_reference():
  z1, z2 = _random_pairs(8, 3, 4)
  z1, z2 = z1.astype(np.float64), z2.astype(np.float64)
  tau = 0.5
  with jax.enable_x64(True):
    g1, g2 = jax.jit(jax.grad(lambda a, b: nt_xent(a, b, tau)[0],
                              argnums=(0, 1)))(jnp.asarray(z1), jnp.asarray(z2))
    assert g1.dtype == jnp.float64
  h = 1e-6
  for z, g, which in ((z1, g1, 0), (z2, g2, 1)):
    num = np.zeros_like(z)
    for idx in np.ndindex(z.shape):
      zp, zm = z.copy(), z.copy()
      zp[idx] += h
      zm[idx] -= h
      args_p = (zp, z2) if which == 0 else (z1, zp)
      args_m = (zm, z2) if which == 0 else (z1, zm)
      num[idx] = (simclr_algorithm1_numpy(*args_p, tau)
                  - simclr_algorithm1_numpy(*args_m, tau)) / (2 * h)
    np.testing.assert_allclose(np.asarray(g), num, rtol=1e-6, atol=1e-8)


# --------------------------- across devices -------------------------------
def _sharded_loss_fn(mesh, tau):
  """Global loss through shard_map: pmean over replicas of the local loss."""

  def per_replica(a, b):
    loss, aux = nt_xent(a, b, tau, axis_name="batch")
    return lax.pmean(loss, "batch"), lax.pmean(aux, "batch")

  return jax.shard_map(per_replica, mesh=mesh,
                       in_specs=(P("batch"), P("batch")),
                       out_specs=(P(), P()))


def test_sharded_loss_equals_single_device_loss():
  mesh = _mesh()
  z1, z2 = _random_pairs(9, 2 * NDEV, 8)
  loss_1, aux_1 = _loss(z1, z2, 0.2)

  def per_replica(a, b):
    loss, aux = nt_xent(a, b, 0.2, axis_name="batch")
    return lax.pmean(loss, "batch"), lax.pmean(aux, "batch"), loss[None]

  loss_n, aux_n, local = jax.jit(jax.shard_map(
      per_replica, mesh=mesh, in_specs=(P("batch"), P("batch")),
      out_specs=(P(), P(), P("batch"))))(z1, z2)
  np.testing.assert_allclose(loss_n, loss_1, rtol=1e-5)
  for k in aux_1:
    np.testing.assert_allclose(aux_n[k], aux_1[k], rtol=1e-5, atol=1e-6)
  # Each replica sees the global negatives: its local loss is NOT the loss of
  # its shard alone.
  local_only, _ = _loss(z1[:2], z2[:2], 0.2)
  assert abs(float(local[0]) - float(local_only)) > 1e-2


def test_sharded_gradient_wrt_inputs_equals_single_device():
  """Would catch a gradient scaled by the device count (factor 8)."""
  mesh = _mesh()
  z1, z2 = _random_pairs(10, 2 * NDEV, 8)
  grad_1 = _grad(z1, z2, 0.2)
  sharded = _sharded_loss_fn(mesh, 0.2)
  grad_n = jax.jit(jax.grad(lambda a, b: sharded(a, b)[0], argnums=(0, 1)))(
      z1, z2)
  for gn, g1 in zip(grad_n, grad_1):
    assert _rel_err(gn, g1) < 1e-5

  # The same gradient taken inside shard_map, per replica on its shard.
  def inner(a, b):
    return jax.grad(
        lambda a, b: lax.pmean(nt_xent(a, b, 0.2, axis_name="batch")[0],
                               "batch"), argnums=(0, 1))(a, b)

  grad_in = jax.jit(jax.shard_map(inner, mesh=mesh,
                                  in_specs=(P("batch"), P("batch")),
                                  out_specs=(P("batch"), P("batch"))))(z1, z2)
  for gn, g1 in zip(grad_in, grad_1):
    assert _rel_err(gn, g1) < 1e-5


@jax.jit
def _projected_grad_single(w, x1, x2):
  return jax.grad(lambda w: nt_xent(x1 @ w, x2 @ w, 0.3)[0])(w)


def _params_setup():
  rng = np.random.default_rng(11)
  x1 = rng.normal(size=(2 * NDEV, 5)).astype(np.float32)
  x2 = (x1 + 0.5 * rng.normal(size=x1.shape)).astype(np.float32)
  w = rng.normal(size=(5, 4)).astype(np.float32)
  return w, x1, x2


def test_replicated_param_gradient_recipe_check_vma_default():
  """Documented recipe: grad of pmean(loss) inside shard_map, no extra pmean."""
  mesh = _mesh()
  w, x1, x2 = _params_setup()
  g_single = _projected_grad_single(w, x1, x2)

  def step(w, a, b):
    def global_loss(w):
      return lax.pmean(nt_xent(a @ w, b @ w, 0.3, axis_name="batch")[0],
                       "batch")

    # The trap the docstring warns about: the grad of the LOCAL loss w.r.t.
    # replicated params is summed over replicas, i.e. NDEV times too large.
    def local_loss(w):
      return nt_xent(a @ w, b @ w, 0.3, axis_name="batch")[0]

    return jax.grad(global_loss)(w), jax.grad(local_loss)(w)

  g, g_wrong = jax.jit(jax.shard_map(step, mesh=mesh,
                                     in_specs=(P(), P("batch"), P("batch")),
                                     out_specs=(P(), P())))(w, x1, x2)
  assert _rel_err(g, g_single) < 1e-5
  assert _rel_err(g_wrong, NDEV * g_single) < 1e-5


def test_replicated_param_gradient_recipe_check_vma_false():
  """pmap-style recipe: grad of the local loss, then pmean the grads."""
  mesh = _mesh()
  w, x1, x2 = _params_setup()
  g_single = _projected_grad_single(w, x1, x2)

  def step(w, a, b):
    g = jax.grad(lambda w: nt_xent(a @ w, b @ w, 0.3, axis_name="batch")[0])(w)
    return lax.pmean(g, "batch")

  g = jax.jit(jax.shard_map(step, mesh=mesh,
                            in_specs=(P(), P("batch"), P("batch")),
                            out_specs=P(), check_vma=False))(w, x1, x2)
  assert _rel_err(g, g_single) < 1e-5


def test_two_axis_mesh_with_tuple_axis_name():
  mesh = Mesh(np.array(jax.devices()[:NDEV]).reshape(2, NDEV // 2),
              ("host", "dev"))
  z1, z2 = _random_pairs(12, 2 * NDEV, 8)
  axes = ("host", "dev")

  def per_replica(a, b):
    return lax.pmean(nt_xent(a, b, 0.2, axis_name=axes)[0], axes)

  loss_n = jax.jit(jax.shard_map(per_replica, mesh=mesh,
                                 in_specs=(P(axes), P(axes)),
                                 out_specs=P()))(z1, z2)
  np.testing.assert_allclose(loss_n, _loss(z1, z2, 0.2)[0], rtol=1e-5)


# ----------------------------- info_nce -----------------------------------
def test_info_nce_cross_view_matches_explicit_softmax():
  # CLIP/MoCo-style: query i's positive is key i, all other keys negatives.
  rng = np.random.default_rng(13)
  q = rng.normal(size=(5, 4)).astype(np.float32)
  k = rng.normal(size=(5, 4)).astype(np.float32)
  loss, _ = jax.jit(info_nce)(q, k, jnp.arange(5), 0.5)
  qn = q / np.linalg.norm(q, axis=1, keepdims=True)
  kn = k / np.linalg.norm(k, axis=1, keepdims=True)
  logits = qn.astype(np.float64) @ kn.T / 0.5
  ref = np.mean(np.log(np.exp(logits).sum(1)) - np.diag(logits))
  np.testing.assert_allclose(loss, ref, rtol=1e-5)


def test_info_nce_sharded_keys_equal_single_device():
  mesh = _mesh()
  rng = np.random.default_rng(14)
  q = rng.normal(size=(3 * NDEV, 4)).astype(np.float32)
  k = rng.normal(size=(3 * NDEV, 4)).astype(np.float32)
  single, _ = jax.jit(info_nce)(q, k, jnp.arange(3 * NDEV), 0.3)

  def per_replica(q, k):
    loss, _ = info_nce(q, k, jnp.arange(q.shape[0]), 0.3, axis_name="batch")
    return lax.pmean(loss, "batch")

  sharded = jax.jit(jax.shard_map(per_replica, mesh=mesh,
                                  in_specs=(P("batch"), P("batch")),
                                  out_specs=P()))(q, k)
  np.testing.assert_allclose(sharded, single, rtol=1e-5)


# ------------------------------ errors ------------------------------------
@pytest.mark.parametrize("s1,s2", [((4, 3), (5, 3)), ((4, 3), (4, 2)),
                                   ((4,), (4,)), ((2, 4, 3), (2, 4, 3))])
def test_shape_errors(s1, s2):
  with pytest.raises(ValueError, match="same shape"):
    nt_xent(jnp.ones(s1), jnp.ones(s2))


def test_other_errors():
  with pytest.raises(ValueError, match="non-empty"):
    nt_xent(jnp.ones((0, 3)), jnp.ones((0, 3)))
  with pytest.raises(ValueError, match="temperature"):
    nt_xent(jnp.ones((2, 3)), jnp.ones((2, 3)), temperature=0.0)
  with pytest.raises(TypeError, match="floating"):
    nt_xent(jnp.ones((2, 3), jnp.int32), jnp.ones((2, 3), jnp.int32))
  with pytest.raises(ValueError, match="feature dim"):
    info_nce(jnp.ones((2, 3)), jnp.ones((2, 4)), jnp.arange(2))
  with pytest.raises(ValueError, match="positive_index"):
    info_nce(jnp.ones((2, 3)), jnp.ones((2, 3)), jnp.arange(3))
