"""Tests for ssl_jax.eval.linear_probe against scikit-learn on the digits data."""

import math

import jax.numpy as jnp
import numpy as np
import pytest
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from ssl_jax.eval import DEFAULT_L2_GRID
from ssl_jax.eval import linear_probe as linear_probe_module
from ssl_jax.eval.linear_probe import linear_probe

# Accuracy tolerance against scikit-learn's LogisticRegression on the same
# standardised pixels: 3 points (~13 of 450 test images).  The two differ only
# in how the L2 strength is chosen (validation grid vs. sklearn's default C=1).
SKLEARN_TOLERANCE = 0.03


def _sklearn_logreg(x, y, **kwargs):
  # Single-threaded BLAS: on a small shared CPU, oversubscribed OpenBLAS
  # threads make this ~50x slower than one thread.
  with threadpool_limits(limits=1):
    return LogisticRegression(**kwargs).fit(x, y)


@pytest.fixture(scope="module")
def digits():
  x, y = load_digits(return_X_y=True)
  x_train, x_test, y_train, y_test = train_test_split(
      x.astype(np.float32), y, test_size=0.25, random_state=0, stratify=y)
  return x_train, y_train, x_test, y_test


@pytest.fixture(scope="module")
def probe_result(digits):
  return linear_probe(*digits, num_classes=10, seed=0)


def test_digits_accuracy_close_to_sklearn(digits, probe_result):
  x_train, y_train, x_test, y_test = digits
  scaler = StandardScaler().fit(x_train)
  sk = _sklearn_logreg(scaler.transform(x_train), y_train, max_iter=5000)
  sk_acc = sk.score(scaler.transform(x_test), y_test)
  assert probe_result["top1"] == pytest.approx(sk_acc, abs=SKLEARN_TOLERANCE)
  assert probe_result["top1"] > 0.9  # chance is 0.1
  assert probe_result["top5"] >= probe_result["top1"]
  assert probe_result["top5"] > 0.99
  assert probe_result["holdout_top1"] > 0.9


def test_package_exposes_the_module_not_the_function():
  import ssl_jax.eval
  assert ssl_jax.eval.linear_probe is linear_probe_module
  assert linear_probe_module.linear_probe is linear_probe


def test_chosen_l2_is_from_the_grid(probe_result):
  assert probe_result["l2"] in DEFAULT_L2_GRID
  assert set(probe_result) == {"top1", "top5", "l2", "holdout_top1"}


def test_same_seed_is_deterministic(digits, probe_result):
  assert linear_probe(*digits, num_classes=10, seed=0) == probe_result


def test_custom_grid_and_no_holdout(digits):
  grid = (3e-3, 3e-2)
  result = linear_probe(*digits, num_classes=10, seed=1, l2_grid=grid,
                        holdout_fraction=0.2)
  assert result["l2"] in grid
  single = linear_probe(*digits, num_classes=10, l2_grid=[1e-2], holdout_fraction=0.0)
  assert single["l2"] == 1e-2 and math.isnan(single["holdout_top1"])
  assert single["top1"] > 0.9


def test_solver_matches_sklearn_objective(digits):
  """For a fixed strength the L-BFGS solution is sklearn's (C = 1 / (l2 * n))."""
  x_train, y_train, x_test, _ = digits
  n, l2 = len(y_train), 1e-3
  scaler = StandardScaler().fit(x_train)
  xs = scaler.transform(x_train).astype(np.float32)
  params, steps = linear_probe_module._fit(
      jnp.asarray(xs), jnp.asarray(y_train, jnp.int32), jnp.ones(n, jnp.float32),
      jnp.float32(l2), jnp.float32(1e-6), jnp.int32(2000), num_classes=10)
  assert 0 < int(steps) < 2000  # converged to the gradient tolerance
  sk = _sklearn_logreg(xs, y_train, C=1.0 / (l2 * n), tol=1e-8, max_iter=10_000)
  np.testing.assert_allclose(params["w"], sk.coef_.T, atol=2e-3 * np.abs(sk.coef_).max())
  xt = scaler.transform(x_test)
  logits = xt @ np.asarray(params["w"]) + np.asarray(params["b"])
  probs = np.exp(logits - logits.max(1, keepdims=True))
  probs /= probs.sum(1, keepdims=True)
  np.testing.assert_allclose(probs, sk.predict_proba(xt), atol=2e-3)


def test_stratified_split_is_seeded_and_balanced():
  labels = np.repeat(np.arange(4), [10, 20, 30, 1])
  fit, hold = linear_probe_module._stratified_split(labels, 0.1, seed=3)
  fit2, hold2 = linear_probe_module._stratified_split(labels, 0.1, seed=3)
  np.testing.assert_array_equal(hold, hold2)
  np.testing.assert_array_equal(np.sort(np.concatenate([fit, hold])), np.arange(61))
  np.testing.assert_array_equal(np.bincount(labels[hold], minlength=4), [1, 2, 3, 0])
  _, hold3 = linear_probe_module._stratified_split(labels, 0.1, seed=4)
  assert not np.array_equal(hold, hold3)


@pytest.mark.parametrize("kwargs,match", [
    (dict(num_classes=0), "num_classes"),
    (dict(l2_grid=[]), "empty"),
    (dict(l2_grid=[-1.0]), "l2_grid"),
    (dict(holdout_fraction=1.0), "holdout_fraction"),
    (dict(holdout_fraction=0.0), "single-value"),
    (dict(max_steps=0), "max_steps"),
    (dict(test_features=np.zeros((4, 3), np.float32)), "feature dims differ"),
    (dict(train_labels=np.full(20, 5)), r"train_labels must lie in \[0, 2\)"),
    (dict(train_features=np.full((20, 4), np.inf, np.float32)), "NaN or infinite"),
])
def test_invalid_arguments_raise(kwargs, match):
  rng = np.random.default_rng(0)
  args = dict(train_features=rng.normal(size=(20, 4)).astype(np.float32),
              train_labels=np.arange(20) % 2,
              test_features=rng.normal(size=(4, 4)).astype(np.float32),
              test_labels=np.arange(4) % 2, num_classes=2)
  args.update(kwargs)
  with pytest.raises(ValueError, match=match):
    linear_probe(**args)
