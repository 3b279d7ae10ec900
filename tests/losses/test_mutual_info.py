"""Tests for ssl_jax.losses.mutual_info (Deep InfoMax local-global, CPC).

Values are checked against numpy implementations written term by term from
the papers' estimators, against closed forms for separable scores, and the
data-parallel path against the single-device loss on 8 simulated devices.
"""
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax
from jax.sharding import Mesh, PartitionSpec as P

from ssl_jax.losses import cpc, dim_local_global

NDEV = 8
ESTIMATORS = ("jsd", "infonce", "dv")


def _softplus(x):
  return np.logaddexp(0.0, x)


# --------------------------------------------------------------------------
# Independent references (float64, explicit loops over pairs).
# --------------------------------------------------------------------------
def dim_numpy(local, glob, estimator):
  """Returns (loss, mi) of local DIM. T(l, g) = l . g."""
  loc = np.asarray(local, np.float64)
  loc = loc.reshape(loc.shape[0], -1, loc.shape[-1])
  glob = np.asarray(glob, np.float64)
  b, n, _ = loc.shape
  score = lambda i, m, j: loc[i, m] @ glob[j]  # noqa: E731
  pos = [score(i, m, i) for i in range(b) for m in range(n)]
  neg = [score(i, m, j) for i in range(b) for m in range(n)
         for j in range(b) if j != i]
  if estimator == "jsd":
    mi = np.mean([-_softplus(-t) for t in pos]) - np.mean(
        [_softplus(t) for t in neg])
    return -mi, mi
  if estimator == "dv":
    mi = np.mean(pos) - math.log(np.mean([math.exp(t) for t in neg]))
    return -mi, mi
  # InfoNCE: each positive (l_im, g_i) against every local feature of the
  # other images, all scored with g_i.
  losses = []
  for i in range(b):
    negatives = [score(j, m2, i) for j in range(b) if j != i
                 for m2 in range(n)]
    for m in range(n):
      t_pos = score(i, m, i)
      denom = math.exp(t_pos) + sum(math.exp(t) for t in negatives)
      losses.append(-math.log(math.exp(t_pos) / denom))
  loss = float(np.mean(losses))
  return loss, math.log(1 + (b - 1) * n) - loss


def cpc_numpy(preds, targets, tau):
  """CPC InfoNCE: prediction (b, t, k) -> target (b, t+k+1) vs all latents."""
  preds = np.asarray(preds, np.float64)
  targets = np.asarray(targets, np.float64)
  b, t_len, k_steps, _ = preds.shape
  cands = [(bb, tt) for bb in range(b) for tt in range(t_len)]
  losses = []
  for bb in range(b):
    for tt in range(t_len):
      for kk in range(k_steps):
        if tt + kk + 1 >= t_len:
          continue
        p = preds[bb, tt, kk]
        f = {c: math.exp(p @ targets[c] / tau) for c in cands}
        losses.append(-math.log(f[(bb, tt + kk + 1)] / sum(f.values())))
  return float(np.mean(losses))


def _mesh():
  return Mesh(np.array(jax.devices()[:NDEV]), ("batch",))


def _rel_err(a, b):
  a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
  return np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-30)


_dim = jax.jit(dim_local_global, static_argnames=("estimator", "axis_name"))
_cpc = jax.jit(cpc, static_argnames="axis_name")


def _dim_inputs(seed, b=4, m=2, d=5, scale=0.5):
  rng = np.random.default_rng(seed)
  glob = rng.normal(size=(b, d))
  local = glob[:, None, None, :] + rng.normal(size=(b, m, m, d))
  return ((scale * local).astype(np.float32),
          (scale * glob).astype(np.float32))


# ------------------------------- DIM --------------------------------------
@pytest.mark.parametrize("estimator", ESTIMATORS)
def test_dim_matches_numpy(estimator):
  local, glob = _dim_inputs(0)
  loss, aux = _dim(local, glob, estimator=estimator)
  ref_loss, ref_mi = dim_numpy(local, glob, estimator)
  np.testing.assert_allclose(loss, ref_loss, rtol=1e-5)
  np.testing.assert_allclose(aux["mi_estimate"], ref_mi, rtol=1e-5)
  # Aux scores.
  loc = local.reshape(4, 4, 5).astype(np.float64)
  s = np.einsum("ind,cd->inc", loc, glob.astype(np.float64))
  pos = np.stack([s[i, :, i] for i in range(4)])
  np.testing.assert_allclose(aux["pos_score"], pos.mean(), rtol=1e-5)
  np.testing.assert_allclose(aux["neg_score"],
                             (s.sum() - pos.sum()) / (4 * 4 * 3), rtol=1e-5)


def test_dim_flat_locals_equal_feature_map():
  local, glob = _dim_inputs(1)
  for estimator in ("jsd", "dv"):
    a, _ = _dim(local, glob, estimator=estimator)
    b, _ = _dim(local.reshape(4, 4, 5), glob, estimator=estimator)
    np.testing.assert_allclose(a, b, rtol=1e-6)


def _separable(b, n, a):
  """Scores exactly +a for positives and -a for negatives."""
  d = b
  glob = np.full((b, d), -1.0) + 2.0 * np.eye(b)       # g_j = 2 e_j - 1
  # l_i = e_i gives l_i . g_j = +1 (j == i) or -1.
  local = np.repeat(np.eye(b)[:, None, :], n, axis=1) * a
  return local.astype(np.float32), glob.astype(np.float32)


@pytest.mark.parametrize("a", [0.5, 3.0])
def test_dim_estimators_closed_form_for_separable_scores(a):
  b, n = 3, 4
  local, glob = _separable(b, n, a)
  mi = {e: float(_dim(local, glob, estimator=e)[1]["mi_estimate"])
        for e in ESTIMATORS}
  sp = math.log1p(math.exp(-a))                          # softplus(-a)
  np.testing.assert_allclose(mi["jsd"], -2 * sp, rtol=1e-5)
  np.testing.assert_allclose(mi["dv"], 2 * a, rtol=1e-5)
  nce_loss = math.log(math.exp(a) + (b - 1) * n * math.exp(-a)) - a
  np.testing.assert_allclose(mi["infonce"],
                             math.log(1 + (b - 1) * n) - nce_loss, rtol=1e-5)


def test_dim_estimators_limits_for_perfectly_separable_scores():
  # JSD's bound tends to its maximum, 0 (= 2 log 2 - log 4: disjoint
  # supports); InfoNCE saturates at log(#candidates); DV grows without
  # bound (2a).
  b, n, a = 3, 4, 30.0
  local, glob = _separable(b, n, a)
  mi = {e: float(_dim(local, glob, estimator=e)[1]["mi_estimate"])
        for e in ESTIMATORS}
  assert abs(mi["jsd"]) < 1e-10
  np.testing.assert_allclose(mi["infonce"], math.log(1 + (b - 1) * n),
                             rtol=1e-6)
  np.testing.assert_allclose(mi["dv"], 2 * a, rtol=1e-6)
  # Uninformative scores (all T = 0): DV and InfoNCE estimate 0; the JSD
  # form gives 2 JSD - log 4 = -2 log 2 for identical distributions.
  zeros = np.zeros_like(local)
  mi0 = {e: float(_dim(zeros, glob, estimator=e)[1]["mi_estimate"])
         for e in ESTIMATORS}
  np.testing.assert_allclose(mi0["jsd"], -2 * math.log(2), rtol=1e-6)
  assert abs(mi0["dv"]) < 1e-6 and abs(mi0["infonce"]) < 1e-6


def test_dim_sharded_value_and_grad_all_estimators():
  mesh = _mesh()
  local, glob = _dim_inputs(2, b=2 * NDEV, m=2, d=4)

  def losses(loc, glo, axis_name=None):
    out = []
    for e in ESTIMATORS:
      loss, aux = dim_local_global(loc, glo, e, axis_name)
      if axis_name is not None:
        loss, aux = lax.pmean(loss, axis_name), lax.pmean(aux, axis_name)
      out.append((loss, aux))
    return out

  def values_and_grads(fn):
    def run(loc, glo):
      vals = fn(loc, glo)
      grads = [jax.grad(lambda a, b, i=i: fn(a, b)[i][0], argnums=(0, 1))(
          loc, glo) for i in range(len(ESTIMATORS))]
      return vals, grads
    return jax.jit(run)

  sharded = jax.shard_map(lambda a, b: losses(a, b, "batch"), mesh=mesh,
                          in_specs=(P("batch"), P("batch")), out_specs=P())
  vals_n, grads_n = values_and_grads(sharded)(local, glob)
  vals_1, grads_1 = values_and_grads(losses)(local, glob)
  for e, (ln, an), (l1, a1), gn, g1 in zip(ESTIMATORS, vals_n, vals_1,
                                           grads_n, grads_1):
    np.testing.assert_allclose(ln, l1, rtol=1e-5, err_msg=e)
    for key in a1:
      np.testing.assert_allclose(an[key], a1[key], rtol=1e-5, atol=1e-6,
                                 err_msg=f"{e} {key}")
    for x, y in zip(gn, g1):
      assert _rel_err(x, y) < 1e-5, e
  # Sanity: the sharded negatives really are the global batch's.
  ref_loss, _ = dim_numpy(local, glob, "dv")
  np.testing.assert_allclose(vals_n[2][0], ref_loss, rtol=1e-5)


def test_dim_errors():
  with pytest.raises(ValueError, match="unknown estimator"):
    dim_local_global(jnp.ones((2, 3, 4)), jnp.ones((2, 4)), "mine")
  with pytest.raises(ValueError, match="agree"):
    dim_local_global(jnp.ones((2, 3, 4)), jnp.ones((2, 5)))
  with pytest.raises(ValueError, match=">= 2 images"):
    dim_local_global(jnp.ones((1, 3, 4)), jnp.ones((1, 4)))
  with pytest.raises(ValueError, match="expects"):
    dim_local_global(jnp.ones((2, 4)), jnp.ones((2, 4)))


# ------------------------------- CPC --------------------------------------
def _cpc_inputs(seed, b=3, t=5, k=3, d=4):
  rng = np.random.default_rng(seed)
  targets = rng.normal(size=(b, t, d))
  preds = 0.7 * rng.normal(size=(b, t, k, d))
  for kk in range(k):  # make predictions informative about the future
    preds[:, : t - kk - 1, kk] += targets[:, kk + 1:]
  return preds.astype(np.float32), targets.astype(np.float32)


@pytest.mark.parametrize("tau", [1.0, 0.5])
def test_cpc_matches_numpy(tau):
  preds, targets = _cpc_inputs(3)
  loss, aux = _cpc(preds, targets, tau)
  np.testing.assert_allclose(loss, cpc_numpy(preds, targets, tau), rtol=1e-5)
  np.testing.assert_allclose(aux["mi_lower_bound"],
                             math.log(15) - float(loss), rtol=1e-5)


def test_cpc_aux_against_numpy():
  preds, targets = _cpc_inputs(4)
  _, aux = _cpc(preds, targets, 1.0)
  flat = targets.reshape(-1, 4).astype(np.float64)
  hits, pos_scores = [], []
  for b in range(3):
    for t in range(5):
      for k in range(3):
        if t + k + 1 < 5:
          s = flat @ preds[b, t, k]
          j = b * 5 + t + k + 1
          pos_scores.append(s[j])
          hits.append(s[j] > np.max(np.delete(s, j)))
  np.testing.assert_allclose(aux["contrastive_acc"], np.mean(hits))
  np.testing.assert_allclose(aux["pos_score"], np.mean(pos_scores),
                             rtol=1e-5)


def test_cpc_closed_form_perfect_prediction_orthogonal_latents():
  b, t, k, s = 2, 4, 2, 1.5
  targets = s * np.eye(b * t, dtype=np.float32).reshape(b, t, b * t)
  preds = np.zeros((b, t, k, b * t), np.float32)
  for kk in range(k):
    preds[:, : t - kk - 1, kk] = targets[:, kk + 1:]
  loss, aux = _cpc(preds, targets, 1.0)
  a = s * s
  np.testing.assert_allclose(loss, math.log(math.exp(a) + b * t - 1) - a,
                             rtol=1e-5)
  assert float(aux["contrastive_acc"]) == 1.0
  np.testing.assert_allclose(aux["neg_score"], 0.0, atol=1e-7)


def test_cpc_predictions_past_the_end_are_ignored():
  preds, targets = _cpc_inputs(5)
  garbage = preds.copy()
  garbage[:, 4, :] = 1e3          # t = T-1 predicts nothing
  garbage[:, 3, 1:] = -1e3        # t = T-2 only has k = 0
  np.testing.assert_allclose(_cpc(garbage, targets, 1.0)[0],
                             _cpc(preds, targets, 1.0)[0], rtol=1e-6)
  g = np.asarray(jax.jit(jax.grad(lambda p: cpc(p, targets)[0]))(preds))
  t, k = np.meshgrid(np.arange(5), np.arange(3), indexing="ij")
  has_target = (t + k + 1 < 5)[None]                      # (1, T, K)
  np.testing.assert_array_equal(np.any(g != 0, axis=-1),
                                np.broadcast_to(has_target, g.shape[:3]))


def test_cpc_sharded_value_and_grad():
  mesh = _mesh()
  preds, targets = _cpc_inputs(6, b=NDEV, t=4, k=2, d=4)

  def global_loss(p, z, axis_name=None):
    loss, aux = cpc(p, z, 0.5, axis_name)
    if axis_name is not None:
      loss, aux = lax.pmean(loss, axis_name), lax.pmean(aux, axis_name)
    return loss, aux

  sharded = jax.shard_map(lambda p, z: global_loss(p, z, "batch"), mesh=mesh,
                          in_specs=(P("batch"), P("batch")),
                          out_specs=(P(), P()))
  vg = lambda f: jax.jit(jax.value_and_grad(f, argnums=(0, 1),  # noqa: E731
                                            has_aux=True))
  (loss_n, aux_n), g_n = vg(sharded)(preds, targets)
  (loss_1, aux_1), g_1 = vg(global_loss)(preds, targets)
  np.testing.assert_allclose(loss_n, loss_1, rtol=1e-5)
  np.testing.assert_allclose(loss_1, cpc_numpy(preds, targets, 0.5),
                             rtol=1e-5)
  for key in aux_1:
    np.testing.assert_allclose(aux_n[key], aux_1[key], rtol=1e-5, atol=1e-6)
  for x, y in zip(g_n, g_1):
    assert _rel_err(x, y) < 1e-5


def test_cpc_errors():
  with pytest.raises(ValueError, match="expects"):
    cpc(jnp.ones((2, 3, 4)), jnp.ones((2, 3, 4)))
  with pytest.raises(ValueError, match="match predictions"):
    cpc(jnp.ones((2, 3, 1, 4)), jnp.ones((2, 4, 4)))
  with pytest.raises(ValueError, match="T >= 2"):
    cpc(jnp.ones((2, 1, 1, 4)), jnp.ones((2, 1, 4)))
  with pytest.raises(ValueError, match="temperature"):
    cpc(jnp.ones((2, 3, 1, 4)), jnp.ones((2, 3, 4)), temperature=-1.0)
