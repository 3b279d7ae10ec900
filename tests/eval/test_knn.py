"""Tests for ssl_jax.eval.knn against an independent numpy implementation."""

import jax.numpy as jnp
import numpy as np
import pytest
from sklearn.neighbors import KNeighborsClassifier
from threadpoolctl import threadpool_limits

from ssl_jax.eval import knn_accuracy, knn_predict


def reference_scores(train, train_labels, queries, num_classes, k, temperature):
  """Plain float64 numpy weighted vote (Wu et al. 2018), one query at a time."""
  train = np.asarray(train, np.float64)
  queries = np.asarray(queries, np.float64)
  train = train / np.linalg.norm(train, axis=1, keepdims=True)
  queries = queries / np.linalg.norm(queries, axis=1, keepdims=True)
  k = min(k, len(train))
  scores = np.zeros((len(queries), num_classes))
  for i, q in enumerate(queries):
    sim = train @ q
    neighbours = np.argsort(-sim, kind="stable")[:k]
    for j in neighbours:
      scores[i, train_labels[j]] += np.exp(sim[j] / temperature)
  return scores


def _random_problem(n_train, n_query, dim, num_classes, seed):
  rng = np.random.default_rng(seed)
  centers = rng.normal(size=(num_classes, dim))
  train_labels = rng.integers(0, num_classes, n_train)
  query_labels = rng.integers(0, num_classes, n_query)
  # Weak class signal, so votes are informative but far from unanimous.
  train = (0.3 * centers[train_labels] + rng.normal(size=(n_train, dim))).astype(np.float32)
  queries = (0.3 * centers[query_labels] + rng.normal(size=(n_query, dim))).astype(np.float32)
  return train, train_labels, queries, query_labels


@pytest.mark.parametrize("k,temperature", [(200, 0.1), (15, 0.07), (1, 0.5)])
def test_predictions_match_numpy_reference(k, temperature):
  num_classes = 7
  train, ytr, queries, yq = _random_problem(400, 150, 24, num_classes, seed=k)
  scores = reference_scores(train, ytr, queries, num_classes, k, temperature)
  ordered = np.sort(scores, axis=1)
  # Skip float32-vs-float64 near-ties between the two best classes (none expected).
  clear = ordered[:, -1] - ordered[:, -2] > 1e-4 * ordered[:, -1]
  assert clear.mean() > 0.97
  pred = knn_predict(train, ytr, queries, num_classes, k=k, temperature=temperature,
                     batch_size=64)
  assert pred.shape == (150,) and isinstance(pred, np.ndarray)
  np.testing.assert_array_equal(pred[clear], scores.argmax(1)[clear])

  acc = knn_accuracy(train, ytr, queries, yq, num_classes, k=k, temperature=temperature,
                     batch_size=64)
  top5 = np.argsort(-scores, axis=1, kind="stable")[:, :5]
  ref_top5 = np.mean(np.any(top5 == yq[:, None], axis=1))
  assert acc["top1"] == pytest.approx(np.mean(scores.argmax(1) == yq), abs=1.5 / 150)
  assert acc["top5"] == pytest.approx(ref_top5, abs=1.5 / 150)


def test_k_larger_than_bank_is_clipped():
  train, ytr, queries, _ = _random_problem(50, 40, 8, 4, seed=1)
  clipped = knn_predict(train, ytr, queries, 4, k=10_000)
  exact = knn_predict(train, ytr, queries, 4, k=50)
  np.testing.assert_array_equal(clipped, exact)
  scores = reference_scores(train, ytr, queries, 4, 50, 0.1)
  np.testing.assert_array_equal(clipped, scores.argmax(1))


def test_perfectly_separated_classes_give_accuracy_one():
  rng = np.random.default_rng(2)
  num_classes, dim = 10, 32
  centers = 10.0 * np.eye(num_classes, dim)
  ytr = np.repeat(np.arange(num_classes), 30)
  yte = np.repeat(np.arange(num_classes), 7)
  train = centers[ytr] + 0.1 * rng.normal(size=(len(ytr), dim))
  test = centers[yte] + 0.1 * rng.normal(size=(len(yte), dim))
  # k = 200 > 30 examples per class: other classes vote too, with tiny weights.
  acc = knn_accuracy(train, ytr, test, yte, num_classes)
  assert acc == {"top1": 1.0, "top5": 1.0}


@pytest.mark.parametrize("batch_size", [1, 7, 64, 1000])
def test_batch_size_does_not_change_predictions(batch_size):
  train, ytr, queries, _ = _random_problem(300, 101, 16, 5, seed=3)
  expected = knn_predict(train, ytr, queries, 5, k=30, batch_size=256)
  np.testing.assert_array_equal(
      knn_predict(train, ytr, queries, 5, k=30, batch_size=batch_size), expected)


def test_k1_is_cosine_nearest_neighbour():
  train, ytr, queries, _ = _random_problem(500, 120, 12, 6, seed=4)
  with threadpool_limits(limits=1):  # avoid BLAS oversubscription on small CPUs
    expected = KNeighborsClassifier(n_neighbors=1, metric="cosine").fit(
        train, ytr).predict(queries)
  np.testing.assert_array_equal(knn_predict(train, ytr, queries, 6, k=1), expected)


def test_accepts_jax_arrays_and_is_scale_invariant():
  train, ytr, queries, yq = _random_problem(200, 60, 8, 3, seed=5)
  expected = knn_predict(train, ytr, queries, 3, k=20)
  scaled = knn_predict(jnp.asarray(train) * 7.0, jnp.asarray(ytr), jnp.asarray(queries) * 0.01,
                       3, k=20)
  np.testing.assert_array_equal(scaled, expected)
  # Fewer than 5 classes: top-5 covers every class.
  assert knn_accuracy(train, ytr, queries, yq, 3, k=20)["top5"] == 1.0


def test_empty_queries():
  train, ytr, _, _ = _random_problem(20, 1, 4, 2, seed=6)
  assert knn_predict(train, ytr, np.zeros((0, 4), np.float32), 2).shape == (0,)


@pytest.mark.parametrize("kwargs,match", [
    (dict(k=0), "k must be"),
    (dict(temperature=0.0), "temperature"),
    (dict(batch_size=0), "batch_size"),
    (dict(num_classes=2), r"train_labels must lie in \[0, 2\)"),
    (dict(query_features=np.zeros((3, 5), np.float32)), "feature dims differ"),
    (dict(train_labels=np.zeros(9, np.int32)), "train_labels must have shape"),
    (dict(train_labels=np.zeros(10, np.float32)), "integer"),
])
def test_invalid_arguments_raise(kwargs, match):
  rng = np.random.default_rng(0)
  args = dict(train_features=rng.normal(size=(10, 4)).astype(np.float32),
              train_labels=np.arange(10) % 3,
              query_features=rng.normal(size=(3, 4)).astype(np.float32),
              num_classes=3)
  args.update(kwargs)
  with pytest.raises(ValueError, match=match):
    knn_predict(**args)


def test_test_labels_are_validated():
  rng = np.random.default_rng(0)
  x = rng.normal(size=(10, 4)).astype(np.float32)
  with pytest.raises(ValueError, match="test_labels"):
    knn_accuracy(x, np.arange(10) % 3, x, np.full(10, 3), 3)


def test_non_finite_features_raise():
  x = np.ones((4, 3), np.float32)
  bad = x.copy()
  bad[1, 2] = np.nan
  with pytest.raises(ValueError, match="NaN or infinite"):
    knn_predict(x, np.zeros(4, np.int32), bad, 2)


def test_digits_raw_pixels_agree_with_sklearn_weighted_knn():
  """Same metric (cosine), same k, same vote weights exp(sim / t)."""
  from ssl_jax import data  # pylint: disable=g-import-not-at-top
  train_images, train_labels = data.as_arrays(data.load_digits("train"))
  test_images, test_labels = data.as_arrays(data.load_digits("test"))
  train = train_images.reshape(len(train_images), -1).astype(np.float64)
  test = test_images.reshape(len(test_images), -1).astype(np.float64)
  k, temperature = 20, 0.1
  with threadpool_limits(limits=1):
    sklearn_knn = KNeighborsClassifier(
        n_neighbors=k, metric="cosine",
        weights=lambda distance: np.exp((1.0 - distance) / temperature))
    expected = sklearn_knn.fit(train, train_labels).score(test, test_labels)
  got = knn_accuracy(train, train_labels, test, test_labels, 10, k=k,
                     temperature=temperature)["top1"]
  assert expected > 0.9
  assert abs(got - expected) <= 0.01, (got, expected)
