"""Tests for ssl_jax.losses.noncontrastive (BYOL, SimSiam, Barlow Twins, VICReg).

Values are checked against analytic cases and independent float64 numpy
implementations written from the papers (BYOL eq. 2, SimSiam eq. 1, Barlow
Twins Algorithm 1, VICReg Algorithm 1); the batch-statistic losses are checked
on 8 simulated CPU devices against the single-device loss on the global batch.
"""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax
from jax.sharding import Mesh, PartitionSpec as P

from ssl_jax.eval.collapse import embedding_std
from ssl_jax.losses import noncontrastive
from ssl_jax.losses.noncontrastive import barlow_twins, byol, simsiam, vicreg

NDEV = 8


# --------------------------------------------------------------------------
# Independent references, float64 numpy.
# --------------------------------------------------------------------------
def _unit(x):
  x = np.asarray(x, np.float64)
  return x / np.linalg.norm(x, axis=1, keepdims=True)


def byol_numpy(p, z):
  """BYOL eq. 2: squared distance of the L2-normalised vectors."""
  return np.mean(np.sum((_unit(p) - _unit(z)) ** 2, axis=1))


def simsiam_numpy(p, z):
  return -np.mean(np.sum(_unit(p) * _unit(z), axis=1))


def barlow_algorithm1_numpy(z_a, z_b, lam, eps=0.0):
  """Barlow Twins Algorithm 1 (1/N variance: numpy's default std ddof=0)."""
  z_a = np.asarray(z_a, np.float64)
  z_b = np.asarray(z_b, np.float64)
  n, d = z_a.shape
  z_a_norm = (z_a - z_a.mean(0)) / np.sqrt(z_a.var(0) + eps)
  z_b_norm = (z_b - z_b.mean(0)) / np.sqrt(z_b.var(0) + eps)
  c = z_a_norm.T @ z_b_norm / n
  c_diff = (c - np.eye(d)) ** 2
  off = ~np.eye(d, dtype=bool)
  c_diff[off] *= lam
  return c_diff.sum(), c


def vicreg_algorithm1_numpy(z_a, z_b, lam=25.0, mu=25.0, nu=1.0):
  """VICReg Algorithm 1 (PyTorch's var is unbiased: ddof=1)."""
  z_a = np.asarray(z_a, np.float64)
  z_b = np.asarray(z_b, np.float64)
  n, d = z_a.shape
  sim_loss = np.mean((z_a - z_b) ** 2)
  std_z_a = np.sqrt(z_a.var(0, ddof=1) + 1e-4)
  std_z_b = np.sqrt(z_b.var(0, ddof=1) + 1e-4)
  std_loss = (np.mean(np.maximum(0.0, 1 - std_z_a))
              + np.mean(np.maximum(0.0, 1 - std_z_b)))
  z_a = z_a - z_a.mean(0)
  z_b = z_b - z_b.mean(0)
  cov_z_a = z_a.T @ z_a / (n - 1)
  cov_z_b = z_b.T @ z_b / (n - 1)
  off = ~np.eye(d, dtype=bool)
  cov_loss = (cov_z_a[off] ** 2).sum() / d + (cov_z_b[off] ** 2).sum() / d
  return lam * sim_loss + mu * std_loss + nu * cov_loss, (
      sim_loss, std_loss, cov_loss)


def _random_views(seed, b, d):
  """Correlated views with per-dimension scales on both sides of 1 (so the
  VICReg hinge is active for some dimensions only) and non-zero means."""
  rng = np.random.default_rng(seed)
  scale = np.linspace(0.3, 2.0, d)
  base = rng.normal(size=(b, d)) * scale + rng.normal(size=d)
  z1 = base + 0.5 * rng.normal(size=(b, d)) * scale
  z2 = base @ (np.eye(d) + 0.3 * rng.normal(size=(d, d))) + 0.2
  return z1.astype(np.float32), z2.astype(np.float32)


def _hadamard(n):
  h = np.ones((1, 1))
  while h.shape[0] < n:
    h = np.block([[h, h], [h, -h]])
  return h


def _rel_err(a, b):
  a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
  return np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-30)


def _mesh():
  return Mesh(np.array(jax.devices()[:NDEV]), ("batch",))


# Jitted once per shape: eager mode compiles every primitive separately.
_byol = jax.jit(byol)
_simsiam = jax.jit(simsiam)
_barlow = jax.jit(barlow_twins, static_argnames=("axis_name", "eps"))
_vicreg = jax.jit(vicreg, static_argnames=("axis_name",))


# ------------------------------- BYOL -------------------------------------
def test_byol_identical_zero_opposite_four_orthogonal_two():
  rng = np.random.default_rng(0)
  p = rng.normal(size=(4, 6)).astype(np.float32)
  q = np.linalg.qr(rng.normal(size=(6, 6)))[0][:2].astype(np.float32)
  z = np.concatenate([3.0 * p[:2], -0.5 * p[2:]])  # scale must not matter
  loss, aux = _byol(p, z)
  # Two identical-direction rows (0) and two opposite rows (4): mean 2.
  np.testing.assert_allclose(loss, 2.0, rtol=1e-6)
  np.testing.assert_allclose(aux["cos_sim"], 0.0, atol=1e-6)
  same, aux_same = _byol(p, 2.0 * p)
  np.testing.assert_allclose(same, 0.0, atol=1e-6)
  np.testing.assert_allclose(aux_same["cos_sim"], 1.0, rtol=1e-6)
  opp, _ = _byol(p, -p)
  np.testing.assert_allclose(opp, 4.0, rtol=1e-6)
  ortho, _ = _byol(q[:1], q[1:])
  np.testing.assert_allclose(ortho, 2.0, rtol=1e-6)


def test_byol_matches_numpy_and_target_gets_no_gradient():
  rng = np.random.default_rng(1)
  p = rng.normal(size=(4, 6)).astype(np.float32)
  z = rng.normal(size=(4, 6)).astype(np.float32)
  loss, aux = _byol(p, z)
  np.testing.assert_allclose(loss, byol_numpy(p, z), rtol=1e-5)
  np.testing.assert_allclose(aux["target_std"], embedding_std(z), rtol=1e-6)
  gp, gz = jax.jit(jax.grad(lambda a, b: byol(a, b)[0], argnums=(0, 1)))(p, z)
  assert np.all(np.asarray(gz) == 0.0)
  # Online gradient: that of the plain formula with z held constant.
  zc = jnp.asarray(_unit(z), jnp.float32)
  ref = jax.grad(lambda a: jnp.mean(jnp.sum(
      (a / jnp.linalg.norm(a, axis=1, keepdims=True) - zc) ** 2, axis=1)))(p)
  assert _rel_err(gp, ref) < 1e-5


# ------------------------------ SimSiam -----------------------------------
def test_simsiam_values_aux_and_stop_gradient():
  rng = np.random.default_rng(2)
  p = rng.normal(size=(4, 6)).astype(np.float32)
  z = rng.normal(size=(4, 6)).astype(np.float32)
  loss, aux = _simsiam(p, z)
  np.testing.assert_allclose(loss, simsiam_numpy(p, z), rtol=1e-5)
  np.testing.assert_allclose(aux["cos_sim"], -simsiam_numpy(p, z), rtol=1e-5)
  # Collapse indicator: population std of the normalised z, mean over dims.
  np.testing.assert_allclose(aux["z_std"], _unit(z).std(0).mean(), rtol=1e-5)
  np.testing.assert_allclose(_simsiam(p, 5.0 * p)[0], -1.0, rtol=1e-6)
  np.testing.assert_allclose(_simsiam(p, -p)[0], 1.0, rtol=1e-6)
  collapsed = np.tile(z[:1], (4, 1))
  assert float(_simsiam(p, collapsed)[1]["z_std"]) < 1e-6
  gp, gz = jax.jit(jax.grad(lambda a, b: simsiam(a, b)[0], argnums=(0, 1)))(
      p, z)
  assert np.all(np.asarray(gz) == 0.0)
  assert np.max(np.abs(np.asarray(gp))) > 1e-3


def test_simsiam_sharded_std_is_global_batch_std():
  mesh = _mesh()
  rng = np.random.default_rng(3)
  p = rng.normal(size=(2 * NDEV, 4)).astype(np.float32)
  z = rng.normal(size=(2 * NDEV, 4)).astype(np.float32)

  def per_replica(p, z):
    loss, aux = simsiam(p, z, axis_name="batch")
    return lax.pmean(loss, "batch"), aux["z_std"]

  loss_n, std_n = jax.jit(jax.shard_map(
      per_replica, mesh=mesh, in_specs=(P("batch"), P("batch")),
      out_specs=(P(), P())))(p, z)
  loss_1, aux_1 = _simsiam(p, z)
  np.testing.assert_allclose(loss_n, loss_1, rtol=1e-5)
  np.testing.assert_allclose(std_n, aux_1["z_std"], rtol=1e-5)


# ---------------------------- Barlow Twins --------------------------------
def test_barlow_twins_decorrelated_standardised_identical_views_is_zero():
  # Hadamard columns 1..4: zero mean, unit (1/N) variance, orthogonal.
  z = _hadamard(8)[:, 1:5].astype(np.float32)
  loss, aux = _barlow(z, z, eps=0.0)
  np.testing.assert_allclose(loss, 0.0, atol=1e-6)
  np.testing.assert_allclose(aux["mean_diag_corr"], 1.0, rtol=1e-6)
  np.testing.assert_allclose(aux["off_diag"], 0.0, atol=1e-6)
  # Per-dimension affine maps (positive scales) of either view change nothing.
  scale = np.array([0.5, 2.0, 3.0, 7.0], np.float32)
  loss2, _ = _barlow(z * scale + 1.0, z / scale - 2.0, eps=0.0)
  np.testing.assert_allclose(loss2, 0.0, atol=1e-6)
  # Default eps = 1e-5 (BatchNorm's): C_ii = 1 / (1 + 1e-5), loss ~ 4e-10.
  np.testing.assert_allclose(_barlow(z, z)[0], 0.0, atol=1e-6)
  # Anti-correlated views: C = -I, every diagonal term is (1 - (-1))^2 = 4.
  anti, aux_anti = _barlow(z, -z, eps=0.0)
  np.testing.assert_allclose(anti, 16.0, rtol=1e-6)
  np.testing.assert_allclose(aux_anti["on_diag"], 16.0, rtol=1e-6)


@pytest.mark.parametrize("eps", [0.0, 1e-5])
def test_barlow_twins_matches_numpy_algorithm1(eps):
  z1, z2 = _random_views(4, 16, 6)
  lam = 0.05
  loss, aux = _barlow(z1, z2, lam, eps=eps)
  ref, c = barlow_algorithm1_numpy(z1, z2, lam, eps)
  assert loss.dtype == jnp.float32
  np.testing.assert_allclose(loss, ref, rtol=1e-5)
  off = ~np.eye(6, dtype=bool)
  np.testing.assert_allclose(aux["on_diag"], np.sum((1 - np.diag(c)) ** 2),
                             rtol=1e-5)
  np.testing.assert_allclose(aux["off_diag"], np.sum(c[off] ** 2), rtol=1e-5)
  np.testing.assert_allclose(aux["mean_diag_corr"], np.diag(c).mean(),
                             rtol=1e-5)
  np.testing.assert_allclose(aux["mean_abs_offdiag_corr"],
                             np.abs(c[off]).mean(), rtol=1e-5)


# ------------------------------- VICReg -----------------------------------
def test_vicreg_hand_made_terms():
  # View 1: two samples, both dims +-1 and perfectly correlated.
  #   unbiased var = 2 per dim -> std > 1, no variance penalty;
  #   C = [[2, 2], [2, 2]] -> c = (2^2 + 2^2) / 2 = 4.
  # View 2: all zeros -> std = sqrt(1e-4) = 0.01 -> v = 0.99, c = 0.
  # Invariance: mean of (z1 - z2)^2 over 4 entries of 1 -> 1.
  z1 = np.array([[1.0, 1.0], [-1.0, -1.0]], np.float32)
  z2 = np.zeros((2, 2), np.float32)
  loss, aux = _vicreg(z1, z2)
  np.testing.assert_allclose(aux["invariance"], 1.0, rtol=1e-6)
  np.testing.assert_allclose(aux["variance"], 0.99, rtol=1e-6)
  np.testing.assert_allclose(aux["covariance"], 4.0, rtol=1e-6)
  np.testing.assert_allclose(aux["std"], 0.5 * np.sqrt(2.0), rtol=1e-6)
  np.testing.assert_allclose(loss, 25 * 1.0 + 25 * 0.99 + 1 * 4.0, rtol=1e-6)
  # Identical, decorrelated, unit-std views: every term is zero.
  h = _hadamard(8)[:, 1:4] * np.sqrt(7 / 8)   # unbiased var exactly 1
  loss0, aux0 = _vicreg(h.astype(np.float32), h.astype(np.float32))
  np.testing.assert_allclose(loss0, 0.0, atol=1e-6)
  assert float(aux0["invariance"]) == 0.0


@pytest.mark.parametrize("coeffs", [(25.0, 25.0, 1.0), (1.0, 3.0, 0.5)])
def test_vicreg_matches_numpy_algorithm1(coeffs):
  z1, z2 = _random_views(5, 16, 6)
  loss, aux = _vicreg(z1, z2, *coeffs)
  ref, (sim, std, cov) = vicreg_algorithm1_numpy(z1, z2, *coeffs)
  assert 0.0 < std  # some dimensions are penalised ...
  assert np.min(np.concatenate([z1.std(0), z2.std(0)])) < 1 < np.max(
      np.concatenate([z1.std(0), z2.std(0)]))  # ... and some are not
  np.testing.assert_allclose(loss, ref, rtol=1e-5)
  np.testing.assert_allclose(aux["invariance"], sim, rtol=1e-5)
  np.testing.assert_allclose(aux["variance"], std, rtol=1e-5)
  np.testing.assert_allclose(aux["covariance"], cov, rtol=1e-5)


# --------------------------- across devices -------------------------------
def _sharded_case(loss_fn, check_vma):
  """Runs ``loss_fn`` on x @ w over 8 devices, returning (loss, aux, grad w,
  grad x1, grad x2, per-replica losses)."""
  mesh = _mesh()

  def step(w, x1, x2):
    def global_loss(w, x1, x2):
      loss, aux = loss_fn(x1 @ w, x2 @ w, axis_name="batch")
      if check_vma:   # documented recipe: the (p)mean'd loss, grads final
        loss = lax.pmean(loss, "batch")
      return loss, aux

    (loss, aux), grads = jax.value_and_grad(
        global_loss, argnums=(0, 1, 2), has_aux=True)(w, x1, x2)
    gw, gx1, gx2 = grads
    if not check_vma:  # pmap recipe: pmean the replicated-parameter grads
      gw = lax.pmean(gw, "batch")
    return loss, aux, gw, gx1, gx2, loss[None]

  return jax.jit(jax.shard_map(
      step, mesh=mesh, in_specs=(P(), P("batch"), P("batch")),
      out_specs=(P(), P(), P(), P("batch"), P("batch"), P("batch")),
      check_vma=check_vma))


def _check_sharded_equals_single(loss_fn, ref_fn, seed):
  rng = np.random.default_rng(seed)
  x1 = rng.normal(size=(2 * NDEV, 5)).astype(np.float32)
  x2 = (x1 + 0.5 * rng.normal(size=x1.shape)).astype(np.float32)
  # Column scales: embedding stds on both sides of 1 (VICReg's hinge).
  w = (rng.normal(size=(5, 4)) * [0.15, 0.3, 0.6, 1.2]).astype(np.float32)

  single = jax.jit(jax.value_and_grad(
      lambda w, a, b: loss_fn(a @ w, b @ w), argnums=(0, 1, 2), has_aux=True))
  (loss_1, aux_1), (gw_1, gx1_1, gx2_1) = single(w, x1, x2)

  loss_n, aux_n, gw, gx1, gx2, local = _sharded_case(loss_fn, True)(w, x1, x2)
  np.testing.assert_allclose(loss_n, loss_1, rtol=1e-5)
  np.testing.assert_allclose(loss_1, ref_fn(x1 @ w, x2 @ w), rtol=1e-5)
  # Every replica holds the global loss, not the loss of its own shard.
  np.testing.assert_allclose(local, np.full(NDEV, loss_1), rtol=1e-5)
  shard_only = ref_fn(x1[:2] @ w, x2[:2] @ w)
  assert abs(float(shard_only) - float(loss_1)) > 1e-2
  for k in aux_1:
    np.testing.assert_allclose(aux_n[k], aux_1[k], rtol=1e-5, atol=1e-7)
  for g, g1 in ((gw, gw_1), (gx1, gx1_1), (gx2, gx2_1)):
    assert _rel_err(g, g1) < 1e-5

  # pmap-style (check_vma=False): the local-loss gradient w.r.t. the local
  # inputs is R times the global one; pmean'd parameter grads are exact.
  _, _, gw_f, gx1_f, _, _ = _sharded_case(loss_fn, False)(w, x1, x2)
  assert _rel_err(gw_f, gw_1) < 1e-5
  assert _rel_err(gx1_f, NDEV * gx1_1) < 1e-5


def test_barlow_twins_sharded_value_and_gradients_equal_single_device():
  _check_sharded_equals_single(
      lambda a, b, axis_name=None: barlow_twins(a, b, 0.1, axis_name),
      lambda a, b: barlow_algorithm1_numpy(a, b, 0.1, 1e-5)[0], 6)


def test_vicreg_sharded_value_and_gradients_equal_single_device():
  _check_sharded_equals_single(
      lambda a, b, axis_name=None: vicreg(a, b, axis_name=axis_name),
      lambda a, b: vicreg_algorithm1_numpy(a, b)[0], 7)


# ------------------------------ errors ------------------------------------
@pytest.mark.parametrize("fn", [byol, simsiam, barlow_twins, vicreg])
def test_shape_and_dtype_errors(fn):
  with pytest.raises(ValueError, match="same shape"):
    fn(jnp.ones((4, 3)), jnp.ones((4, 2)))
  with pytest.raises(ValueError, match="same shape"):
    fn(jnp.ones((4,)), jnp.ones((4,)))
  with pytest.raises(TypeError, match="floating"):
    fn(jnp.ones((4, 3), jnp.int32), jnp.ones((4, 3), jnp.int32))


def test_vicreg_needs_two_samples():
  with pytest.raises(ValueError, match="at least 2"):
    vicreg(jnp.ones((1, 3)), jnp.ones((1, 3)))


def test_module_exports():
  assert set(noncontrastive.__all__) == {"byol", "simsiam", "barlow_twins",
                                         "vicreg"}


def test_simsiam_without_stop_gradient_has_the_same_value_and_a_z_gradient():
  """SimSiam Sec. 4.1 ablation: D(p, z) with gradients into both arguments."""
  rng = np.random.default_rng(11)
  p = rng.normal(size=(5, 6)).astype(np.float32)
  z = rng.normal(size=(5, 6)).astype(np.float32)
  no_sg = jax.jit(lambda a, b: simsiam(a, b, stop_gradient=False))
  loss, aux = no_sg(p, z)
  loss_sg, aux_sg = _simsiam(p, z)
  np.testing.assert_allclose(loss, loss_sg, rtol=1e-6)
  np.testing.assert_allclose(aux["z_std"], aux_sg["z_std"], rtol=1e-6)
  gp, gz = jax.jit(jax.grad(
      lambda a, b: simsiam(a, b, stop_gradient=False)[0], argnums=(0, 1)))(p, z)
  # -mean cos(p, z) is symmetric in p and z: its z-gradient is the p-gradient
  # formula with the roles swapped.
  gz_swapped, gp_swapped = jax.jit(jax.grad(
      lambda a, b: simsiam(a, b)[0], argnums=(0, 1)))(z, p)
  assert np.all(np.asarray(gp_swapped) == 0.0)
  assert _rel_err(gz, gz_swapped) < 1e-5
  # The p-gradient is the one with the stop-gradient.
  gp_sg = jax.jit(jax.grad(lambda a: simsiam(a, z)[0]))(p)
  assert _rel_err(gp, gp_sg) < 1e-5
  assert np.max(np.abs(np.asarray(gz))) > 1e-3
