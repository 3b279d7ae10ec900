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


# ==========================================================================
# MoCo, its queue, symmetric (CLIP/CMC) InfoNCE, CMC full graph, SupCon.
# ==========================================================================
from ssl_jax.losses import (cmc_full_graph, moco, moco_enqueue,  # noqa: E402
                            supervised_contrastive, symmetric_info_nce)


def _unit_rows(x):
  x = np.asarray(x, np.float64)
  return x / np.linalg.norm(x, axis=-1, keepdims=True)


def _log_softmax_np(logits, axis=-1):
  m = np.max(logits, axis=axis, keepdims=True)
  return logits - m - np.log(np.sum(np.exp(logits - m), axis=axis,
                                    keepdims=True))


def moco_algorithm1_numpy(q, k, queue, t):
  """MoCo Algorithm 1 (with the encoders' L2 normalisation), float64."""
  q, k, queue = _unit_rows(q), _unit_rows(k), _unit_rows(queue)
  n, c = q.shape
  l_pos = np.einsum("nc,nc->n", q, k).reshape(n, 1)  # bmm(q.view(N,1,C), ...)
  l_neg = q @ queue.T                                # mm(q.view(N,C), queue)
  logits = np.concatenate([l_pos, l_neg], axis=1) / t
  labels = np.zeros(n, dtype=int)                    # positives are the 0-th
  return -np.mean(_log_softmax_np(logits)[np.arange(n), labels])


def clip_symmetric_numpy(a, b, t):
  """CLIP's Fig. 3 pseudocode on cosine logits: mean of both CE directions."""
  logits = _unit_rows(a) @ _unit_rows(b).T / t
  labels = np.arange(len(logits))
  loss_i = -np.mean(_log_softmax_np(logits, axis=1)[labels, labels])
  loss_t = -np.mean(_log_softmax_np(logits, axis=0)[labels, labels])
  return (loss_i + loss_t) / 2


def supcon_lout_numpy(z, labels, t):
  """SupCon eq. 2 (L_out), term by term; anchors without positives add 0."""
  z = _unit_rows(z)
  n = len(z)
  total = 0.0
  for i in range(n):
    a_set = [a for a in range(n) if a != i]
    p_set = [p for p in a_set if labels[p] == labels[i]]
    if not p_set:
      continue
    denom = sum(math.exp(z[i] @ z[a] / t) for a in a_set)
    total += -sum(math.log(math.exp(z[i] @ z[p] / t) / denom)
                  for p in p_set) / len(p_set)
  return total / n


_moco = jax.jit(moco)
_moco_grads = jax.jit(jax.grad(lambda q, k, qu, t: moco(q, k, qu, t)[0],
                               argnums=(0, 1, 2)))
_enqueue = jax.jit(moco_enqueue)
_sym = jax.jit(symmetric_info_nce)
_cmc = jax.jit(cmc_full_graph)
_supcon = jax.jit(supervised_contrastive)


# ------------------------------ MoCo --------------------------------------
@pytest.mark.parametrize("seed,t", [(20, 0.07), (21, 0.5)])
def test_moco_matches_numpy_algorithm1(seed, t):
  rng = np.random.default_rng(seed)
  q, k = (rng.normal(size=(6, 8)).astype(np.float32) for _ in range(2))
  queue = rng.normal(size=(16, 8)).astype(np.float32)
  loss, aux = _moco(q, k, queue, t)
  np.testing.assert_allclose(loss, moco_algorithm1_numpy(q, k, queue, t),
                             rtol=1e-5)
  qn, kn, un = _unit_rows(q), _unit_rows(k), _unit_rows(queue)
  l_pos, l_neg = np.sum(qn * kn, 1), qn @ un.T
  np.testing.assert_allclose(aux["pos_sim"], l_pos.mean(), rtol=1e-5)
  np.testing.assert_allclose(aux["neg_sim"], l_neg.mean(), rtol=1e-5,
                             atol=1e-6)
  np.testing.assert_allclose(aux["contrastive_acc"],
                             np.mean(l_pos > l_neg.max(1)))


def test_moco_aligned_keys_orthogonal_queue_closed_form():
  n, size, t = 4, 6, 0.2
  q = 2.0 * np.eye(n, 16, dtype=np.float32)        # q_i = k_i = e_i (scaled)
  k = 0.5 * np.eye(n, 16, dtype=np.float32)
  queue = np.eye(16, dtype=np.float32)[n:n + size]  # orthogonal to every q
  loss, aux = _moco(q, k, queue, t)
  np.testing.assert_allclose(loss, math.log(math.exp(1 / t) + size) - 1 / t,
                             rtol=1e-5, atol=1e-6)
  assert float(aux["contrastive_acc"]) == 1.0


def test_moco_keys_and_queue_get_no_gradient():
  rng = np.random.default_rng(22)
  q, k = (rng.normal(size=(6, 8)).astype(np.float32) for _ in range(2))
  queue = rng.normal(size=(16, 8)).astype(np.float32)
  gq, gk, gqueue = _moco_grads(q, k, queue, 0.1)
  assert np.any(np.asarray(gq) != 0)
  assert not np.any(np.asarray(gk)) and not np.any(np.asarray(gqueue))


def test_moco_enqueue_ring_buffer():
  rng = np.random.default_rng(23)
  queue = rng.normal(size=(8, 3)).astype(np.float32)
  keys1, keys2 = (rng.normal(size=(4, 3)).astype(np.float32) for _ in "ab")
  q1, p1 = _enqueue(queue, jnp.int32(0), keys1)
  expected = queue.copy()
  expected[0:4] = keys1
  np.testing.assert_array_equal(q1, expected)
  assert int(p1) == 4 and p1.dtype == jnp.int32
  q2, p2 = _enqueue(q1, p1, keys2)
  expected[4:8] = keys2
  np.testing.assert_array_equal(q2, expected)
  assert int(p2) == 0                                 # wrapped around
  with pytest.raises(ValueError, match="multiple of the global batch"):
    moco_enqueue(jnp.zeros((10, 3)), 0, jnp.ones((4, 3)))
  with pytest.raises(ValueError, match="queue_ptr"):
    moco_enqueue(jnp.zeros((8, 3)), 0.0, jnp.ones((4, 3)))


def test_moco_sharded_equals_single_device_and_queues_stay_identical():
  mesh = _mesh()
  rng = np.random.default_rng(24)
  q, k = (rng.normal(size=(2 * NDEV, 8)).astype(np.float32) for _ in "ab")
  queue = rng.normal(size=(4 * NDEV, 8)).astype(np.float32)
  ptr = jnp.int32(2 * NDEV)

  def per_replica(q, k, queue, ptr):
    def global_loss(q):
      loss, aux = moco(q, k, queue, 0.1)
      return lax.pmean(loss, "batch"), lax.pmean(aux, "batch")

    (loss, aux), g = jax.value_and_grad(global_loss, has_aux=True)(q)
    new_queue, new_ptr = moco_enqueue(queue, ptr, k, axis_name="batch")
    # The queue is returned twice: replicated (out_specs P(), which needs it
    # replica-invariant under check_vma) and one copy per replica.
    return loss, aux, g, new_queue, new_queue[None], new_ptr

  out = jax.jit(jax.shard_map(
      per_replica, mesh=mesh,
      in_specs=(P("batch"), P("batch"), P(), P()),
      out_specs=(P(), P(), P("batch"), P(), P("batch"), P())))(q, k, queue,
                                                               ptr)
  loss_n, aux_n, g_n, queue_n, queue_copies, ptr_n = out
  loss_1, aux_1 = _moco(q, k, queue, 0.1)
  g_1 = _moco_grads(q, k, queue, 0.1)[0]
  np.testing.assert_allclose(loss_n, loss_1, rtol=1e-5)
  for key in aux_1:
    np.testing.assert_allclose(aux_n[key], aux_1[key], rtol=1e-5, atol=1e-6)
  assert _rel_err(g_n, g_1) < 1e-5
  # Every replica enqueued the keys of ALL replicas, in replica order: the
  # same as enqueueing the global batch on one device.
  queue_1, ptr_1 = _enqueue(queue, ptr, k)
  assert queue_copies.shape == (NDEV,) + queue.shape
  for r in range(NDEV):
    np.testing.assert_array_equal(queue_copies[r], queue_1)
  np.testing.assert_array_equal(queue_n, queue_1)
  assert int(ptr_n) == int(ptr_1) == (4 * NDEV) % (4 * NDEV)

  def bad(queue, ptr, k):  # 16 global keys do not tile a queue of 24
    return moco_enqueue(queue[:24], ptr, k, axis_name="batch")[0]

  with pytest.raises(ValueError, match=r"K=24 .* 2 per replica x 8"):
    jax.shard_map(bad, mesh=mesh, in_specs=(P(), P(), P("batch")),
                  out_specs=P())(queue, ptr, k)


# ----------------------- symmetric / CMC full graph -----------------------
@pytest.mark.parametrize("seed,t", [(25, 0.1), (26, 0.7)])
def test_symmetric_info_nce_matches_clip_pseudocode(seed, t):
  a, b = _random_pairs(seed, 6, 8)
  loss, aux = _sym(a, b, t)
  np.testing.assert_allclose(loss, clip_symmetric_numpy(a, b, t), rtol=1e-5)
  s = _unit_rows(a) @ _unit_rows(b).T
  d = np.diag(s)
  acc_ab = np.mean(d > np.max(s - 9 * np.eye(6), axis=1))
  acc_ba = np.mean(d > np.max(s - 9 * np.eye(6), axis=0))
  np.testing.assert_allclose(aux["acc_a_to_b"], acc_ab)
  np.testing.assert_allclose(aux["acc_b_to_a"], acc_ba)
  np.testing.assert_allclose(aux["pos_sim"], d.mean(), rtol=1e-5)
  # Symmetric in its arguments.
  np.testing.assert_allclose(_sym(b, a, t)[0], loss, rtol=1e-6)


def test_symmetric_and_cmc_closed_form_aligned_orthogonal():
  b, t = 5, 0.25
  views = [s * np.eye(b, 8, dtype=np.float32) for s in (1.0, 3.0, 0.2)]
  per_direction = math.log(math.exp(1 / t) + (b - 1)) - 1 / t
  loss2, aux2 = _sym(views[0], views[1], t)
  np.testing.assert_allclose(loss2, per_direction, rtol=1e-5, atol=1e-6)
  assert float(aux2["contrastive_acc"]) == 1.0
  loss3, aux3 = _cmc(views, t)
  np.testing.assert_allclose(loss3, 3 * per_direction, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(aux3["neg_sim"], 0.0, atol=1e-7)


def test_cmc_full_graph_matches_numpy_sum_over_pairs():
  rng = np.random.default_rng(27)
  base = rng.normal(size=(6, 8))
  views = [(base + rng.normal(size=base.shape)).astype(np.float32)
           for _ in range(4)]
  loss, _ = _cmc(views, 0.3)
  ref = sum(clip_symmetric_numpy(views[i], views[j], 0.3)
            for i in range(4) for j in range(i + 1, 4))
  np.testing.assert_allclose(loss, ref, rtol=1e-5)
  np.testing.assert_allclose(_cmc(views[:2], 0.3)[0],
                             _sym(views[0], views[1], 0.3)[0], rtol=1e-6)
  with pytest.raises(ValueError, match="at least 2 views"):
    cmc_full_graph(views[:1])
  with pytest.raises(ValueError, match="same shape"):
    cmc_full_graph([views[0], views[1][:5]])


def test_symmetric_and_cmc_sharded_value_and_grad():
  mesh = _mesh()
  rng = np.random.default_rng(28)
  views = tuple(rng.normal(size=(2 * NDEV, 8)).astype(np.float32)
                for _ in range(3))

  def losses(v0, v1, v2, axis_name=None):
    sym, _ = symmetric_info_nce(v0, v1, 0.2, axis_name)
    cmc, _ = cmc_full_graph((v0, v1, v2), 0.2, axis_name)
    if axis_name is not None:
      sym, cmc = lax.pmean(sym, axis_name), lax.pmean(cmc, axis_name)
    return sym, cmc

  def value_and_grads(fn):
    return jax.jit(lambda *v: (
        fn(*v),
        jax.grad(lambda *v: fn(*v)[0], argnums=(0, 1))(*v),
        jax.grad(lambda *v: fn(*v)[1], argnums=(0, 1, 2))(*v)))

  sharded = jax.shard_map(lambda *v: losses(*v, axis_name="batch"),
                          mesh=mesh, in_specs=(P("batch"),) * 3,
                          out_specs=(P(), P()))
  (vals_n, gs_n, gc_n) = value_and_grads(sharded)(*views)
  (vals_1, gs_1, gc_1) = value_and_grads(losses)(*views)
  np.testing.assert_allclose(vals_n, vals_1, rtol=1e-5)
  for gn, g1 in zip(gs_n + gc_n, gs_1 + gc_1):
    assert _rel_err(gn, g1) < 1e-5


# ------------------------------ SupCon ------------------------------------
def test_supcon_matches_numpy_eq2():
  rng = np.random.default_rng(29)
  z = rng.normal(size=(10, 6)).astype(np.float32)
  labels = np.array([0, 1, 2, 0, 1, 0, 3, 3, 1, 2])
  for t in (0.1, 0.5):
    loss, aux = _supcon(z, labels, t)
    np.testing.assert_allclose(loss, supcon_lout_numpy(z, labels, t),
                               rtol=1e-5)
  assert float(aux["frac_with_positives"]) == 1.0
  # An anchor whose label is unique adds 0 but still counts in the mean.
  labels_single = labels.copy()
  labels_single[6] = 7                     # anchors 6 and 7 lose positives
  loss, aux = _supcon(z, labels_single, 0.2)
  np.testing.assert_allclose(loss, supcon_lout_numpy(z, labels_single, 0.2),
                             rtol=1e-5)
  np.testing.assert_allclose(aux["frac_with_positives"], 0.8)


def test_supcon_anchor_without_positives_has_finite_zero_gradient():
  z = np.array([[1.0, 2.0], [0.5, -1.0], [2.0, 0.1]], np.float32)
  labels = np.array([0, 0, 1])                 # anchor 2 has no positive

  @jax.jit
  def grads(z):
    g = jax.grad(lambda z: supervised_contrastive(z, labels, 0.2)[0])(z)
    # A lone sample: loss 0, gradient 0 (not NaN).
    lone = jax.value_and_grad(
        lambda z: supervised_contrastive(z, np.array([3]))[0])(z[:1])
    return g, lone

  g, (loss1, g1) = grads(z)
  assert np.all(np.isfinite(g))
  assert float(loss1) == 0.0
  np.testing.assert_array_equal(g1, 0.0)


def test_supcon_aux_against_numpy():
  rng = np.random.default_rng(30)
  z = rng.normal(size=(10, 6)).astype(np.float32)
  labels = np.array([0, 1, 2, 0, 1, 0, 3, 3, 1, 2])
  _, aux = _supcon(z, labels, 0.2)
  s = _unit_rows(z) @ _unit_rows(z).T
  same = labels[:, None] == labels[None, :]
  np.fill_diagonal(s, -np.inf)
  nn_label_ok = same[np.arange(10), np.argmax(s, axis=1)]
  np.testing.assert_allclose(aux["contrastive_acc"], nn_label_ok.mean())
  np.fill_diagonal(same, False)
  np.testing.assert_allclose(
      aux["pos_sim"], np.mean([s[i, same[i]].mean() for i in range(10)]),
      rtol=1e-5)


def test_supcon_with_unique_labels_per_image_is_nt_xent():
  z1, z2 = _random_pairs(31, 6, 8)
  labels = np.concatenate([np.arange(6), np.arange(6)])
  loss, aux = _supcon(np.concatenate([z1, z2]), labels, 0.2)
  loss_nt, aux_nt = _loss(z1, z2, 0.2)
  np.testing.assert_allclose(loss, loss_nt, rtol=1e-5)
  np.testing.assert_allclose(aux["contrastive_acc"], aux_nt["contrastive_acc"])


def test_supcon_closed_form_orthogonal_classes():
  # C classes with m samples each, every sample its class's basis vector:
  # m-1 positives at cosine 1, (C-1)m negatives at cosine 0.
  c, m, t = 3, 4, 0.2
  labels = np.repeat(np.arange(c), m)
  z = np.eye(c, 5, dtype=np.float32)[labels] * np.linspace(
      0.5, 2, c * m, dtype=np.float32)[:, None]
  loss, aux = _supcon(z, labels, t)
  expected = math.log((m - 1) * math.exp(1 / t) + (c - 1) * m) - 1 / t
  np.testing.assert_allclose(loss, expected, rtol=1e-5, atol=1e-6)
  assert float(aux["contrastive_acc"]) == 1.0


def test_supcon_sharded_value_and_grad():
  mesh = _mesh()
  rng = np.random.default_rng(32)
  z = rng.normal(size=(3 * NDEV, 6)).astype(np.float32)
  labels = rng.integers(0, 4, size=3 * NDEV)

  def global_loss(z, labels, axis_name=None):
    loss, aux = supervised_contrastive(z, labels, 0.2, axis_name)
    if axis_name is not None:
      loss, aux = lax.pmean(loss, axis_name), lax.pmean(aux, axis_name)
    return loss, aux

  sharded = jax.shard_map(lambda z, y: global_loss(z, y, "batch"), mesh=mesh,
                          in_specs=(P("batch"), P("batch")),
                          out_specs=(P(), P()))
  grad_fn = lambda f: jax.jit(jax.value_and_grad(f, has_aux=True))  # noqa
  (loss_n, aux_n), g_n = grad_fn(sharded)(z, labels)
  (loss_1, aux_1), g_1 = grad_fn(global_loss)(z, labels)
  np.testing.assert_allclose(loss_n, loss_1, rtol=1e-5)
  assert _rel_err(g_n, g_1) < 1e-5
  for key in ("contrastive_acc", "neg_sim", "frac_with_positives"):
    np.testing.assert_allclose(aux_n[key], aux_1[key], rtol=1e-5, atol=1e-6)


def test_new_losses_input_errors():
  with pytest.raises(ValueError, match="same shape"):
    moco(jnp.ones((4, 3)), jnp.ones((5, 3)), jnp.ones((8, 3)))
  with pytest.raises(ValueError, match="queue"):
    moco(jnp.ones((4, 3)), jnp.ones((4, 3)), jnp.ones((8, 2)))
  with pytest.raises(ValueError, match="temperature"):
    moco(jnp.ones((4, 3)), jnp.ones((4, 3)), jnp.ones((8, 3)), 0.0)
  with pytest.raises(ValueError, match="same shape"):
    symmetric_info_nce(jnp.ones((4, 3)), jnp.ones((4, 2)))
  with pytest.raises(ValueError, match="labels"):
    supervised_contrastive(jnp.ones((4, 3)), jnp.zeros((4,), jnp.float32))
  with pytest.raises(ValueError, match="labels"):
    supervised_contrastive(jnp.ones((4, 3)), jnp.zeros((5,), jnp.int32))
  with pytest.raises(TypeError, match="floating"):
    supervised_contrastive(jnp.ones((4, 3), jnp.int32), jnp.zeros(4, int))
