"""Tests for ssl_jax.eval.collapse against analytic values and numpy."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import NamedSharding, PartitionSpec as P

from ssl_jax.eval import collapse


def _gaussian(n, d, seed=0):
  return np.random.default_rng(seed).normal(size=(n, d)).astype(np.float32)


def _rank_r(n, d, r, seed=0):
  """Isotropic Gaussian in a random r-dim subspace of R^d, plus an offset."""
  rng = np.random.default_rng(seed)
  basis, _ = np.linalg.qr(rng.normal(size=(d, r)))  # (d, r) orthonormal columns
  offset = rng.normal(size=(1, d))
  return (rng.normal(size=(n, r)) @ basis.T + offset).astype(np.float32)


def test_embedding_std_isotropic_gaussian_is_one_over_sqrt_d():
  for d in (16, 128):
    std = float(collapse.embedding_std(_gaussian(4096, d)))
    assert std == pytest.approx(1 / np.sqrt(d), rel=0.03)


def test_embedding_std_matches_numpy():
  z = _gaussian(257, 12, seed=3) * 5 + 2
  u = z / np.linalg.norm(z, axis=1, keepdims=True)
  expected = np.mean(np.std(u.astype(np.float64), axis=0))
  np.testing.assert_allclose(collapse.embedding_std(z), expected, rtol=1e-5)


def test_constant_embeddings_are_completely_collapsed():
  z = np.tile(np.random.default_rng(0).normal(size=(1, 32)), (512, 1)).astype(np.float32)
  assert float(collapse.embedding_std(z)) == pytest.approx(0.0, abs=1e-7)
  np.testing.assert_allclose(collapse.singular_spectrum(z), 0.0, atol=1e-7)
  assert float(collapse.effective_rank(z)) == 0.0


def test_effective_rank_isotropic_gaussian_is_near_d():
  d = 32
  erank = float(collapse.effective_rank(_gaussian(8192, d)))
  assert 0.97 * d < erank <= d


def test_rank_r_embedding_spectrum_and_effective_rank():
  n, d, r = 4096, 32, 5
  z = _rank_r(n, d, r)
  s = np.asarray(collapse.singular_spectrum(z))
  assert s.shape == (d,)
  assert np.all(np.diff(s) <= 1e-6 * s[0]), "spectrum must be descending"
  assert np.all(s[r:] < 1e-5 * s[0]), s
  assert np.all(s[:r] > 0.5)  # each direction has unit variance
  assert float(collapse.effective_rank(z)) == pytest.approx(r, rel=0.03)


def test_singular_spectrum_matches_numpy_covariance():
  rng = np.random.default_rng(1)
  z = (rng.normal(size=(600, 10)) @ rng.normal(size=(10, 10))).astype(np.float32)
  expected = np.linalg.svd(np.cov(z.astype(np.float64), rowvar=False, bias=True),
                           compute_uv=False)
  np.testing.assert_allclose(collapse.singular_spectrum(z), expected, rtol=1e-4,
                             atol=1e-5 * expected[0])
  p = expected / expected.sum()
  np.testing.assert_allclose(collapse.effective_rank(z), np.exp(-np.sum(p * np.log(p))),
                             rtol=1e-4)


def test_normalize_option_uses_unit_vectors():
  z = _gaussian(300, 8, seed=2)
  scaled = z * np.random.default_rng(0).uniform(0.1, 10, size=(300, 1)).astype(np.float32)
  np.testing.assert_allclose(collapse.singular_spectrum(scaled, normalize=True),
                             collapse.singular_spectrum(z, normalize=True), rtol=1e-4,
                             atol=1e-7)


def test_effective_rank_is_scale_invariant():
  z = _gaussian(500, 16, seed=4)
  np.testing.assert_allclose(collapse.effective_rank(1000.0 * z),
                             collapse.effective_rank(z), rtol=1e-4)


def test_axis_name_gives_global_batch_statistics():
  devices = jax.devices()
  assert len(devices) == 8, "tests/conftest.py should provide 8 CPU devices"
  mesh = jax.make_mesh((8,), ("batch",))
  z = _rank_r(8 * 64, 12, 7, seed=6)

  def per_replica(zs):
    return (collapse.embedding_std(zs, axis_name="batch"),
            collapse.singular_spectrum(zs, axis_name="batch"),
            collapse.effective_rank(zs, axis_name="batch"))

  sharded = jax.jit(jax.shard_map(per_replica, mesh=mesh, in_specs=P("batch"),
                                  out_specs=(P(), P(), P())))
  z_sharded = jax.device_put(z, NamedSharding(mesh, P("batch")))
  std, spectrum, erank = sharded(z_sharded)
  np.testing.assert_allclose(std, collapse.embedding_std(z), rtol=1e-5)
  np.testing.assert_allclose(spectrum, collapse.singular_spectrum(z), rtol=1e-4,
                             atol=1e-6)
  np.testing.assert_allclose(erank, collapse.effective_rank(z), rtol=1e-4)


def test_rejects_non_matrix_input():
  with pytest.raises(ValueError, match="batch, dim"):
    collapse.embedding_std(np.ones(8, np.float32))
  with pytest.raises(ValueError, match="batch, dim"):
    collapse.effective_rank(np.ones((2, 3, 4), np.float32))


def test_collapse_metrics_and_warning_on_healthy_and_collapsed_clouds():
  d = 32
  healthy = jax.random.normal(jax.random.PRNGKey(0), (512, d))
  metrics = collapse.collapse_metrics(healthy)
  np.testing.assert_allclose(metrics["embedding_std_ratio"], 1.0, atol=0.1)
  assert metrics["effective_rank"] > 0.8 * d
  assert collapse.collapse_warning(jax.device_get(metrics)) is None

  # Every embedding a positive multiple of one direction: complete collapse.
  scales = jax.random.uniform(jax.random.PRNGKey(1), (512, 1), minval=0.5)
  collapsed = scales * jnp.ones((1, d))
  message = collapse.collapse_warning(
      jax.device_get(collapse.collapse_metrics(collapsed)))
  assert message.startswith("representation collapse")
  assert "complete collapse" in message and "dimensional collapse" in message

  # A rank-1 cloud along a random direction: dimensional collapse only.
  direction = jax.random.normal(jax.random.PRNGKey(2), (1, d))
  line = jax.random.normal(jax.random.PRNGKey(3), (512, 1)) * direction
  message = collapse.collapse_warning(
      jax.device_get(collapse.collapse_metrics(line)))
  assert "dimensional collapse" in message
  assert "complete collapse" not in message
