r"""Clustering of frozen features: PCA whitening, k-means on device, NMI.

The kernels DeepCluster (Caron, Bojanowski, Joulin, Douze, ECCV 2018,
https://arxiv.org/abs/1807.05520) runs once per epoch to turn the encoder's
features into pseudo-labels (its Sec. 3.2 and 4: "the features are
PCA-reduced to 256 dimensions, whitened and l2-normalized", then clustered
by k-means with faiss, Johnson, Douze, Jegou 2017):

* :func:`pca_whiten` (:func:`fit_pca_whitening` and :func:`apply_whitening`
  to fit on one set and apply to another) and :func:`l2_normalize`;
* :func:`kmeans` (Lloyd's algorithm, a fixed number of iterations, random
  or k-means++ initialisation from an explicit key, empty clusters re-seeded
  as faiss does: :func:`split_empty_clusters`) and :func:`assign` (nearest
  centroid);
* :func:`normalized_mutual_info` (host-side, sparse contingency table), the
  measure the paper tracks between the clusters and the labels and between
  successive clusterings (its Fig. 2).

Everything but the NMI is a pure, jitted ``jax.numpy`` function (shapes,
``k``, ``dim``, ``num_iters`` and ``init`` static). Distances and the covariance use
``Precision.HIGHEST`` matmuls, so GPUs do not round them to TF32.
"""

import functools

import jax
from jax import lax
import jax.numpy as jnp
import numpy as np

#: faiss's relative perturbation of a split centroid (``EPS`` in
#: ``faiss/Clustering.cpp``).
SPLIT_EPS = 1.0 / 1024.0
INITS = ("random", "kmeans++")
# Entries of one block of the point-to-centroid distance matrix.
_BLOCK_ENTRIES = 1 << 26

_dot = functools.partial(jnp.matmul, precision=lax.Precision.HIGHEST)


def l2_normalize(x, axis=-1, eps=1e-12):
  r""":math:`x / \max(\lVert x \rVert_2, \epsilon)` along ``axis``."""
  x = jnp.asarray(x)
  norm = jnp.sqrt(jnp.sum(jnp.square(x), axis=axis, keepdims=True))
  return x / jnp.maximum(norm, eps)


@functools.partial(jax.jit, static_argnames=("dim",))
def fit_pca_whitening(features, dim, eps=1e-5):
  r"""The PCA-whitening map of ``features``: ``(mean, projection)``.

  With :math:`\mu` the mean of the N rows and
  :math:`\Sigma = \frac1N \sum_i (x_i - \mu)(x_i - \mu)^\top = U \Lambda U^\top`
  (eigenvalues in decreasing order), the map keeps the top ``dim``
  principal directions and scales each to unit variance:

  .. math::
     \tilde x = \Lambda_d^{-1/2} U_d^\top (x - \mu),
     \qquad \text{projection} = U_d (\Lambda_d + \epsilon)^{-1/2}

  (faiss's ``PCAMatrix(d, dim, eigen_power=-0.5)``, which DeepCluster
  applies; ``eps`` keeps null directions finite). Apply it as
  ``(x - mean) @ projection``.

  Args:
    features: ``(N, D)``.
    dim: output dimension, at most D.
    eps: added to the eigenvalues before the inverse square root.

  Returns:
    ``mean (D,)`` and ``projection (D, dim)``, float32.
  """
  x = jnp.asarray(features, jnp.float32)
  if x.ndim != 2:
    raise ValueError(f"fit_pca_whitening: features must be (N, D), got "
                     f"shape {x.shape}.")
  if not 1 <= dim <= x.shape[1]:
    raise ValueError(
        f"fit_pca_whitening: dim={dim} must be in [1, {x.shape[1]}], the "
        "feature dimension; lower the PCA dimension.")
  mean = jnp.mean(x, axis=0)
  centered = x - mean
  covariance = _dot(centered.T, centered) / x.shape[0]
  eigenvalues, eigenvectors = jnp.linalg.eigh(covariance)  # ascending
  eigenvalues = jnp.maximum(eigenvalues[::-1][:dim], 0.0)
  eigenvectors = eigenvectors[:, ::-1][:, :dim]
  return mean, eigenvectors * lax.rsqrt(eigenvalues + eps)


@jax.jit
def apply_whitening(features, mean, projection):
  """``(features - mean) @ projection``: a map from :func:`fit_pca_whitening`
  applied to ``(N, D)`` features (those it was fitted on, or others)."""
  return _dot(jnp.asarray(features, jnp.float32) - mean, projection)


@functools.partial(jax.jit, static_argnames=("dim",))
def pca_whiten(features, dim, eps=1e-5):
  """``features`` PCA-reduced to ``dim`` dimensions and whitened
  (:func:`fit_pca_whitening` fitted on them): ``(N, dim)`` float32 with
  mean 0 and covariance ``diag(lambda / (lambda + eps))``, the identity up
  to ``eps``."""
  return apply_whitening(features, *fit_pca_whitening(features, dim, eps))


def _block_size(num_points, k):
  return int(max(1, min(num_points, _BLOCK_ENTRIES // max(k, 1))))


def _nearest(points, centroids):
  r"""Index and squared distance of every point's nearest centroid.

  :math:`\lVert x - c\rVert^2 = \lVert x\rVert^2 - 2 x^\top c + \lVert c\rVert^2`,
  computed over blocks of points (``lax.map``) so that the N x k distance
  matrix is never whole in memory; ties go to the lowest index.
  """
  n, d = points.shape
  squared_norms = jnp.sum(jnp.square(centroids), axis=-1)

  def block(x):
    d2 = (jnp.sum(jnp.square(x), axis=-1, keepdims=True)
          - 2.0 * _dot(x, centroids.T) + squared_norms)
    index = jnp.argmin(d2, axis=-1)
    nearest = jnp.take_along_axis(d2, index[:, None], axis=-1)[:, 0]
    return index.astype(jnp.int32), jnp.maximum(nearest, 0.0)

  size = _block_size(n, centroids.shape[0])
  if size >= n:
    return block(points)
  pad = -n % size
  blocks = jnp.pad(points, ((0, pad), (0, 0))).reshape(-1, size, d)
  index, d2 = lax.map(block, blocks)
  return index.reshape(-1)[:n], d2.reshape(-1)[:n]


@jax.jit
def assign(points, centroids):
  r"""The nearest centroid of every point,
  :math:`a_i = \arg\min_j \lVert x_i - c_j \rVert_2^2` (int32 ``(N,)``;
  ties go to the lowest index)."""
  points = jnp.asarray(points, jnp.float32)
  centroids = jnp.asarray(centroids, jnp.float32)
  return _nearest(points, centroids)[0]


def _counts(assignments, k):
  return jnp.zeros((k,), jnp.int32).at[assignments].add(1)


@functools.partial(jax.jit, static_argnames=("k", "init"))
def init_centroids(key, points, k, init="random"):
  """``k`` initial centroids drawn from ``points`` with ``key``.

  * ``'random'``: k distinct points drawn uniformly (faiss's default, which
    DeepCluster uses);
  * ``'kmeans++'``: D^2 sampling (Arthur & Vassilvitskii 2007): the first
    centroid uniform, each next one a point drawn with probability
    proportional to its squared distance to the nearest centroid so far.
  """
  points = jnp.asarray(points, jnp.float32)
  n = points.shape[0]
  if init == "random":
    return points[jax.random.choice(key, n, (k,), replace=False)]
  if init != "kmeans++":
    raise ValueError(f"k-means init={init!r} is not known; use one of {INITS}.")
  first_key, key = jax.random.split(key)
  first = points[jax.random.randint(first_key, (), 0, n)]
  centroids = jnp.zeros((k, points.shape[1]), jnp.float32).at[0].set(first)
  d2 = jnp.sum(jnp.square(points - first), axis=-1)
  tiny = jnp.finfo(jnp.float32).tiny  # all-equal points: draw uniformly

  def body(i, carry):
    centroids, d2 = carry
    index = jax.random.categorical(jax.random.fold_in(key, i),
                                   jnp.log(d2 + tiny))
    centroid = points[index]
    d2 = jnp.minimum(d2, jnp.sum(jnp.square(points - centroid), axis=-1))
    return centroids.at[i].set(centroid), d2

  return lax.fori_loop(1, k, body, (centroids, d2))[0]


@jax.jit
def split_empty_clusters(key, centroids, counts, eps=SPLIT_EPS):
  r"""Re-seeds every empty cluster by splitting a populated one, as faiss.

  DeepCluster, Sec. 3.3 ("Empty clusters"): "When a cluster becomes empty,
  we randomly select a non-empty cluster and use its centroid with a small
  random perturbation as the new centroid. We then reassign the points
  belonging to the non-empty cluster to the two resulting clusters." Its
  code does this through faiss (``split_clusters`` in
  ``faiss/Clustering.cpp``), which this follows: for each empty cluster i in
  turn, a donor j is drawn with probability proportional to
  :math:`n_j - 1` (faiss walks the clusters accepting j with probability
  :math:`(n_j - 1)/(N - k)`; here the draw is direct), so singletons are
  never split; then, with :math:`s_t = +1` for even coordinates t and
  :math:`-1` for odd ones,

  .. math::
     c_i \leftarrow c_j \odot (1 + \epsilon s), \qquad
     c_j \leftarrow c_j \odot (1 - \epsilon s), \qquad \epsilon = 1/1024,

  and the donor's count is shared, :math:`n_i = \lfloor n_j / 2 \rfloor`,
  :math:`n_j \leftarrow n_j - n_i` (faiss assumes an even split; the next
  assignment step moves the points). Needs :math:`\sum_j n_j \ge k`.

  Args:
    key: PRNG key of the donor draws.
    centroids: ``(k, d)``.
    counts: int32 ``(k,)`` cluster sizes.
    eps: the relative perturbation.

  Returns:
    ``(centroids, counts, num_split)``: the new centroids and counts, and the
    number of clusters re-seeded (int32).
  """
  k, d = centroids.shape
  sign = jnp.where(jnp.arange(d) % 2 == 0, 1.0, -1.0).astype(centroids.dtype)

  def needs_split(carry):
    _, counts, num_split = carry
    return jnp.any(counts == 0) & (num_split < k)

  def split_one(carry):
    centroids, counts, num_split = carry
    empty = jnp.argmax(counts == 0)
    weights = jnp.maximum(counts - 1, 0).astype(jnp.float32)
    donor = jax.random.categorical(jax.random.fold_in(key, num_split),
                                   jnp.log(weights))
    centroid = centroids[donor]
    centroids = (centroids.at[empty].set(centroid * (1.0 + eps * sign))
                 .at[donor].set(centroid * (1.0 - eps * sign)))
    half = counts[donor] // 2
    counts = counts.at[empty].set(half).at[donor].add(-half)
    return centroids, counts, num_split + 1

  return lax.while_loop(needs_split, split_one,
                        (centroids, counts, jnp.zeros((), jnp.int32)))


@functools.partial(jax.jit, static_argnames=("k", "num_iters", "init"))
def kmeans(key, points, k, num_iters, init="random", initial_centroids=None):
  r"""k-means by Lloyd's algorithm: ``(centroids, assignments, num_reseeded)``.

  Minimises :math:`\sum_i \lVert x_i - c_{a_i} \rVert_2^2` by alternating
  ``num_iters`` times: assign every point to its nearest centroid; move
  every centroid to the mean of its points (an empty one keeps its place);
  re-seed the empty clusters by splitting populated ones
  (:func:`split_empty_clusters`, faiss's rule). This is the loop of faiss's
  ``Clustering::train`` that DeepCluster runs (a fixed number of
  iterations, no convergence test). The returned ``assignments`` are the
  nearest centroids of the final centroids, so, rarely, a cluster re-seeded
  in the last iteration can end up empty; a caller that needs it counts the
  non-empty clusters (DeepCluster's uniform sampling skips empty ones).

  Args:
    key: PRNG key of the initialisation and the re-seeding draws.
    points: ``(N, d)``, N >= k.
    k: number of clusters (static).
    num_iters: Lloyd iterations (static).
    init: ``'random'`` or ``'kmeans++'`` (:func:`init_centroids`).
    initial_centroids: ``(k, d)`` to start from instead (``init`` unused).

  Returns:
    ``centroids (k, d)`` float32, ``assignments`` int32 ``(N,)``, and the
    number of clusters re-seeded over all iterations (int32).
  """
  points = jnp.asarray(points, jnp.float32)
  n = points.shape[0]
  if not 1 <= k <= n:
    raise ValueError(
        f"kmeans: k={k} clusters need at least k points, got {n}; lower k or "
        "cluster more points.")
  init_key, split_key = jax.random.split(key)
  if initial_centroids is None:
    centroids = init_centroids(init_key, points, k, init)
  else:
    centroids = jnp.asarray(initial_centroids, jnp.float32)
    if centroids.shape != (k, points.shape[1]):
      raise ValueError(
          f"kmeans: initial_centroids has shape {centroids.shape}, expected "
          f"{(k, points.shape[1])}.")

  def lloyd(i, carry):
    centroids, num_reseeded = carry
    assignments, _ = _nearest(points, centroids)
    counts = _counts(assignments, k)
    sums = jax.ops.segment_sum(points, assignments, num_segments=k)
    centroids = jnp.where(counts[:, None] > 0,
                          sums / jnp.maximum(counts, 1)[:, None].astype(
                              jnp.float32), centroids)
    centroids, _, num_split = split_empty_clusters(
        jax.random.fold_in(split_key, i), centroids, counts)
    return centroids, num_reseeded + num_split

  centroids, num_reseeded = lax.fori_loop(
      0, num_iters, lloyd, (centroids, jnp.zeros((), jnp.int32)))
  return centroids, assign(points, centroids), num_reseeded


def normalized_mutual_info(a, b):
  r"""Normalised mutual information of two labelings (host-side numpy).

  .. math::
     \mathrm{NMI}(A, B) = \frac{I(A; B)}{\tfrac12 (H(A) + H(B))},
     \qquad I(A; B) = \sum_{i,j} \frac{n_{ij}}{N}
       \log \frac{N n_{ij}}{n_i n_j}

  with the arithmetic-mean normalisation, scikit-learn's default
  (``sklearn.metrics.normalized_mutual_info_score``), including its limit
  cases: 1 when both labelings are a single cluster, 0 when the mutual
  information is 0. DeepCluster (Sec. 4.1, Fig. 2) uses it to compare the
  clusters with the labels and with the previous epoch's clusters. The
  contingency table is built sparse (from the distinct label pairs), so
  10,000 x 10,000 clusters cost O(N log N).

  Args:
    a, b: ``(N,)`` integer labelings (any values).

  Returns:
    A Python float in [0, 1].
  """
  a = np.asarray(a).reshape(-1)
  b = np.asarray(b).reshape(-1)
  if a.shape != b.shape:
    raise ValueError(f"normalized_mutual_info: labelings of {a.size} and "
                     f"{b.size} examples; they must label the same examples.")
  _, a = np.unique(a, return_inverse=True)
  _, b = np.unique(b, return_inverse=True)
  n = a.size
  a_counts, b_counts = np.bincount(a), np.bincount(b)
  if n == 0 or (len(a_counts) == 1 and len(b_counts) == 1):
    return 1.0
  pairs, joint = np.unique(a.astype(np.int64) * len(b_counts) + b,
                           return_counts=True)
  i, j = pairs // len(b_counts), pairs % len(b_counts)
  log_n = np.log(n)
  mutual_info = np.sum(joint / n * (np.log(joint) + log_n - np.log(a_counts[i])
                                    - np.log(b_counts[j])))
  mutual_info = max(float(mutual_info), 0.0)
  if mutual_info == 0.0:
    return 0.0

  def entropy(counts):
    p = counts / n
    return float(-np.sum(p * np.log(p)))

  return mutual_info / (0.5 * (entropy(a_counts) + entropy(b_counts)))
