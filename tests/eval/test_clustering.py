"""Clustering kernels: k-means recovers blobs and re-seeds empty clusters,
NMI matches scikit-learn, PCA whitening whitens, assign is the argmin."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from sklearn import metrics

from ssl_jax.eval import clustering


def blobs(num_per_blob=50, centres=((10.0, 10.0), (10.0, 20.0), (20.0, 10.0),
                                    (20.0, 20.0)), spread=0.5, seed=0):
  """Well-separated Gaussian blobs, ``(points, true blob of each)``."""
  rng = np.random.default_rng(seed)
  centres = np.asarray(centres, np.float32)
  truth = np.repeat(np.arange(len(centres)), num_per_blob)
  points = centres[truth] + spread * rng.standard_normal(
      (len(truth), centres.shape[1])).astype(np.float32)
  return points, truth


def test_kmeans_recovers_well_separated_blobs():
  points, truth = blobs(centres=np.random.default_rng(1).uniform(
      -20, 20, size=(6, 5)), spread=0.3)
  centroids, assignments, _ = clustering.kmeans(
      jax.random.PRNGKey(0), points, k=6, num_iters=10, init="kmeans++")
  assert centroids.shape == (6, 5) and assignments.dtype == jnp.int32
  assert clustering.normalized_mutual_info(assignments, truth) > 0.99
  np.testing.assert_array_equal(assignments,
                                clustering.assign(points, centroids))
  # Converged: every centroid is the mean of its points.
  for c in range(6):
    np.testing.assert_allclose(centroids[c], points[assignments == c].mean(0),
                               rtol=1e-5, atol=1e-5)


def test_random_init_draws_distinct_points():
  points, _ = blobs()
  start = clustering.init_centroids(jax.random.PRNGKey(0), points, 50)
  rows = {tuple(np.asarray(c)) for c in start}
  assert len(rows) == 50 and rows <= {tuple(p) for p in points}


def test_empty_clusters_are_reseeded_by_splitting():
  # Every centroid starts on the same point: after the first assignment all
  # points are in cluster 0 (ties go to the lowest index) and 1..3 are empty.
  points, truth = blobs()
  start = np.repeat(points[:1], 4, axis=0)
  centroids, assignments, num_reseeded = clustering.kmeans(
      jax.random.PRNGKey(0), points, k=4, num_iters=10,
      initial_centroids=start)
  assert int(num_reseeded) >= 3
  assert np.all(np.bincount(np.asarray(assignments), minlength=4) > 0)
  assert clustering.normalized_mutual_info(assignments, truth) > 0.99
  assert np.all(np.isfinite(centroids))


def test_split_follows_faiss():
  centroids = jnp.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0], [0.0, 0.0, 0.0]])
  counts = jnp.array([1, 9, 0], jnp.int32)  # a singleton is never split
  new, new_counts, num_split = clustering.split_empty_clusters(
      jax.random.PRNGKey(3), centroids, counts)
  eps = clustering.SPLIT_EPS
  sign = np.array([1.0, -1.0, 1.0])
  np.testing.assert_allclose(new[2], np.array([4.0, 5.0, 6.0]) * (1 + eps * sign))
  np.testing.assert_allclose(new[1], np.array([4.0, 5.0, 6.0]) * (1 - eps * sign))
  np.testing.assert_array_equal(new[0], centroids[0])
  np.testing.assert_array_equal(new_counts, [1, 5, 4])
  assert int(num_split) == 1


def test_nmi_equals_scikit_learn():
  rng = np.random.default_rng(0)
  for num_a, num_b, n in ((10, 10, 500), (3, 50, 200), (1, 7, 30), (1, 1, 5)):
    a = rng.integers(0, num_a, n) * 7 - 3  # arbitrary label values
    b = rng.integers(0, num_b, n)
    expected = metrics.normalized_mutual_info_score(a, b)
    assert clustering.normalized_mutual_info(a, b) == pytest.approx(
        expected, abs=1e-12)
  # Related labelings, and a permutation of one labeling (NMI 1).
  a = rng.integers(0, 20, 1000)
  b = np.where(rng.uniform(size=1000) < 0.7, a, rng.integers(0, 30, 1000))
  assert clustering.normalized_mutual_info(a, b) == pytest.approx(
      metrics.normalized_mutual_info_score(a, b), abs=1e-12)
  assert clustering.normalized_mutual_info(a, (a * 5 + 1) % 101) == (
      pytest.approx(1.0))


def test_pca_whitening_gives_identity_covariance():
  rng = np.random.default_rng(0)
  mixing = rng.standard_normal((12, 12)) * np.geomspace(10.0, 0.1, 12)
  features = (rng.standard_normal((2000, 12)) @ mixing.T + 3.0).astype(
      np.float32)
  whitened = np.asarray(clustering.pca_whiten(features, 6, eps=1e-8),
                        np.float64)
  assert whitened.shape == (2000, 6)
  np.testing.assert_allclose(whitened.mean(0), 0.0, atol=1e-3)
  covariance = np.cov(whitened, rowvar=False, bias=True)
  np.testing.assert_allclose(covariance, np.eye(6), atol=2e-3)
  # The directions are the top principal components (numpy reference): the
  # whitened coordinates are the projections on them, up to sign.
  centered = features.astype(np.float64) - features.mean(0)
  values, vectors = np.linalg.eigh(centered.T @ centered / len(features))
  reference = centered @ vectors[:, ::-1][:, :6] / np.sqrt(values[::-1][:6])
  np.testing.assert_allclose(np.abs(whitened), np.abs(reference), atol=2e-3)
  with pytest.raises(ValueError, match="dim=13"):
    clustering.pca_whiten(features, 13)


def test_l2_normalize_and_assign_match_numpy():
  rng = np.random.default_rng(0)
  points = rng.standard_normal((300, 7)).astype(np.float32)
  centroids = rng.standard_normal((11, 7)).astype(np.float32)
  normalized = np.asarray(clustering.l2_normalize(points))
  np.testing.assert_allclose(np.linalg.norm(normalized, axis=1), 1.0,
                             rtol=1e-6)
  distances = ((points[:, None] - centroids[None]) ** 2).sum(-1)
  np.testing.assert_array_equal(clustering.assign(points, centroids),
                                distances.argmin(1))


def test_too_many_clusters_is_refused():
  with pytest.raises(ValueError, match="k=5 clusters need at least k points"):
    clustering.kmeans(jax.random.PRNGKey(0), np.zeros((4, 2), np.float32),
                      k=5, num_iters=1)
