"""Offline linear evaluation of frozen features (SimCLR / BYOL protocol).

Protocol (Chen et al., "A Simple Framework for Contrastive Learning of Visual
Representations", ICML 2020, App. B.5 "linear evaluation on frozen features";
Grill et al., "Bootstrap Your Own Latent", NeurIPS 2020, App. C.1 / D, where
the transfer linear probes are regularised multinomial logistic regressions
whose L2 strength is chosen on a validation split of the train set):

1. **Validation split.**  A seeded, class-stratified ``holdout_fraction`` of the
   train set is held out; the rest is the *fit* split.
2. **Standardisation.**  Features are standardised per dimension,
   ``(x - mean) / std``, with the mean and (population) std of the split the
   classifier is trained on: the fit split during model selection, the whole
   train set for the final classifier.  Test features use the train
   statistics.  Dimensions with ``std < 1e-6`` are only centred.
3. **Model selection.**  For each ``l2`` in the grid a multinomial logistic
   regression (weights ``W`` and bias ``b``) minimises

       mean_i CE(softmax(x_i W + b), y_i) + (l2 / 2) * ||W||_F^2

   on the fit split (the bias is not regularised).  The ``l2`` with the best
   held-out top-1 accuracy is chosen (ties: the stronger regularisation).
   For comparison with scikit-learn, ``LogisticRegression(C=c)`` on ``n``
   examples is the same objective with ``l2 = 1 / (c * n)``.
4. **Final fit.**  The classifier is retrained from scratch on the whole train
   set with the chosen ``l2`` and evaluated (top-1, top-5) on test.

Optimisation is full-batch L-BFGS (``optax.lbfgs`` with its zoom line search,
Nocedal & Wright Alg. 7.4/7.5) from zero initialisation, for at most
``max_steps`` iterations or until the gradient norm drops below ``tol``.  The
whole solve is one jitted ``lax.while_loop``; the regularisation strength,
tolerance and step budget are traced arguments and the held-out rows are
masked out of the objective rather than sliced away, so a single compilation
(per train-set shape and number of classes) serves the grid search and the
final fit.  The only
randomness is the validation split, so results are deterministic given
``seed`` (on a given device and XLA version).
"""

from __future__ import annotations

import functools
import math
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax
import optax.tree_utils as otu
from jax import lax

from ssl_jax.eval import inputs

__all__ = ["linear_probe", "DEFAULT_L2_GRID"]

#: Default L2 grid: log-spaced from 1e-6 to 1e-1 (for the mean-CE objective on
#: standardised features; covers scikit-learn's default ``C=1`` for 10 to 1e6
#: train examples).
DEFAULT_L2_GRID: tuple[float, ...] = tuple(10.0 ** e for e in range(-6, 0))

_STD_FLOOR = 1e-6
_TOPK_ACCURACY = 5


@jax.jit
def _standardization(x: jax.Array, weight: jax.Array) -> tuple[jax.Array, jax.Array]:
  """Per-dimension mean and scale (std, or 1 where std < floor) of the rows
  with ``weight == 1``."""
  x = x.astype(jnp.float32)
  n = jnp.sum(weight)
  mean = weight @ x / n
  std = jnp.sqrt(weight @ jnp.square(x - mean) / n)
  return mean, jnp.where(std < _STD_FLOOR, 1.0, std)


@jax.jit
def _standardize(x: jax.Array, mean: jax.Array, scale: jax.Array) -> jax.Array:
  return (x.astype(jnp.float32) - mean) / scale


def _objective(params, x, y, weight, l2):
  logits = x @ params["w"] + params["b"]
  log_z = jax.nn.logsumexp(logits, axis=-1)
  true_logit = jnp.take_along_axis(logits, y[:, None], axis=-1)[:, 0]
  mean_ce = weight @ (log_z - true_logit) / jnp.sum(weight)
  return mean_ce + 0.5 * l2 * jnp.sum(jnp.square(params["w"]))


@functools.partial(jax.jit, static_argnames=("num_classes",))
def _fit(x: jax.Array, y: jax.Array, weight: jax.Array, l2: jax.Array,
         tol: jax.Array, max_steps: jax.Array, *, num_classes: int):
  """L-BFGS solve of the L2-regularised multinomial logistic regression.

  Args:
    x: standardised features ``(n, dim)``.
    y: int32 labels ``(n,)``.
    weight: float32 ``(n,)`` row mask: 1 for rows in the training split, 0
      for rows to ignore (the held-out split during model selection).  Masking
      instead of slicing keeps one compiled solver for selection and final fit.
    l2: scalar regularisation strength.
    tol: scalar gradient-norm tolerance.
    max_steps: scalar int, maximum number of L-BFGS iterations.
    num_classes: number of classes.

  Returns:
    ``(params, num_steps)`` with ``params = {"w": (dim, C), "b": (C,)}``.
  """
  dim = x.shape[1]
  params = {"w": jnp.zeros((dim, num_classes), jnp.float32),
            "b": jnp.zeros((num_classes,), jnp.float32)}
  fun = functools.partial(_objective, x=x, y=y, weight=weight, l2=l2)
  solver = optax.lbfgs()
  value_and_grad = optax.value_and_grad_from_state(fun)

  def step(carry):
    params, state = carry
    value, grad = value_and_grad(params, state=state)
    updates, state = solver.update(grad, state, params, value=value, grad=grad,
                                   value_fn=fun)
    return optax.apply_updates(params, updates), state

  def not_done(carry):
    _, state = carry
    count = otu.tree_get(state, "count")
    grad_norm = otu.tree_norm(otu.tree_get(state, "grad"))
    # The stored gradient is only valid once one step has been taken.
    return (count == 0) | ((count < max_steps) & (grad_norm >= tol))

  params, state = lax.while_loop(not_done, step, (params, solver.init(params)))
  return params, otu.tree_get(state, "count")


@functools.partial(jax.jit, static_argnames=("top",))
def _ranked_classes(x: jax.Array, params, *, top: int) -> jax.Array:
  logits = x @ params["w"] + params["b"]
  return lax.top_k(logits, top)[1]


def _topk_accuracy(x, y: np.ndarray, params, num_classes: int) -> tuple[float, float]:
  ranked = np.asarray(_ranked_classes(x, params, top=min(_TOPK_ACCURACY, num_classes)))
  hits = ranked == y[:, None]
  return float(np.mean(hits[:, 0])), float(np.mean(np.any(hits, axis=1)))


def _stratified_split(labels: np.ndarray, fraction: float,
                     seed: int) -> tuple[np.ndarray, np.ndarray]:
  """Seeded class-stratified split of ``range(len(labels))``.

  From each class with ``n_c >= 2`` examples, ``round(fraction * n_c)`` of
  them (at least 1, at most ``n_c - 1``) go to the held-out part; singleton
  classes stay in the fit part.

  Returns:
    ``(fit_indices, holdout_indices)``, each sorted ascending.
  """
  labels = np.asarray(labels)
  rng = np.random.default_rng(seed)
  held = []
  for c in np.unique(labels):
    idx = np.flatnonzero(labels == c)
    if idx.size < 2:
      continue
    n_hold = int(min(max(round(fraction * idx.size), 1), idx.size - 1))
    held.append(rng.permutation(idx)[:n_hold])
  holdout = np.sort(np.concatenate(held)) if held else np.zeros((0,), np.int64)
  mask = np.ones(labels.shape[0], bool)
  mask[holdout] = False
  return np.flatnonzero(mask), holdout


def linear_probe(train_features, train_labels, test_features, test_labels,
                 num_classes: int, *, seed: int = 0,
                 l2_grid: Sequence[float] | None = None, max_steps: int = 500,
                 holdout_fraction: float = 0.1, tol: float = 1e-4) -> dict:
  """Linear evaluation of frozen features (SimCLR / BYOL protocol).

  See the module docstring for the protocol.

  Args:
    train_features: ``(num_train, dim)`` frozen features (numpy or jax).
    train_labels: ``(num_train,)`` integer labels in ``[0, num_classes)``.
    test_features: ``(num_test, dim)`` frozen features.
    test_labels: ``(num_test,)`` integer labels.
    num_classes: number of classes.
    seed: seed of the stratified validation split (the only randomness).
    l2_grid: candidate L2 strengths (non-negative; default
      :data:`DEFAULT_L2_GRID`).  A single value skips nothing: it is still
      scored on the held-out split unless ``holdout_fraction == 0``.
    max_steps: maximum L-BFGS iterations per fit.
    holdout_fraction: fraction of each class held out for choosing ``l2``, in
      ``[0, 1)``; ``0`` is allowed only with a single-value grid and then
      ``holdout_top1`` is NaN.
    tol: stop a fit early once the gradient norm of the objective is below it.

  Returns:
    dict with ``top1`` and ``top5`` (test accuracy, fractions in ``[0, 1]``;
    top-5 counts all classes when there are fewer than 5), ``l2`` (the chosen
    strength, an element of the grid) and ``holdout_top1`` (held-out top-1 of
    the chosen strength, trained on the fit split).
  """
  if not isinstance(num_classes, (int, np.integer)) or num_classes < 1:
    raise ValueError(f"num_classes must be a positive int; got {num_classes!r}.")
  if not isinstance(max_steps, (int, np.integer)) or max_steps < 1:
    raise ValueError(f"max_steps must be a positive int; got {max_steps!r}.")
  if not tol >= 0:
    raise ValueError(f"tol must be >= 0; got {tol!r}.")
  grid = tuple(float(v) for v in (DEFAULT_L2_GRID if l2_grid is None else l2_grid))
  if not grid:
    raise ValueError("l2_grid is empty.")
  if any(not (math.isfinite(v) and v >= 0) for v in grid):
    raise ValueError(f"l2_grid values must be finite and >= 0; got {grid}.")
  if not 0 <= holdout_fraction < 1:
    raise ValueError(f"holdout_fraction must be in [0, 1); got {holdout_fraction!r}.")
  if holdout_fraction == 0 and len(grid) > 1:
    raise ValueError("holdout_fraction=0 leaves no data to choose l2 from a grid "
                     f"of {len(grid)} values; pass a single-value l2_grid.")
  num_classes = int(num_classes)
  train_features = inputs.check_features(train_features, "train_features")
  test_features = inputs.check_features(test_features, "test_features")
  for features, name in ((train_features, "train_features"),
                         (test_features, "test_features")):
    if features.shape[0] == 0:
      raise ValueError(f"{name} is empty.")
  if train_features.shape[1] != test_features.shape[1]:
    raise ValueError(f"feature dims differ: train {train_features.shape[1]}, "
                     f"test {test_features.shape[1]}.")
  train_labels = inputs.check_labels(train_labels, train_features.shape[0], num_classes,
                               "train_labels")
  test_labels = inputs.check_labels(test_labels, test_features.shape[0], num_classes,
                              "test_labels")

  tol = jnp.asarray(tol, jnp.float32)
  max_steps = jnp.asarray(max_steps, jnp.int32)

  def fit(x, y, weight, l2):
    return _fit(x, y, weight, jnp.asarray(l2, jnp.float32), tol, max_steps,
                num_classes=num_classes)

  train_x = jnp.asarray(train_features)
  train_y = jnp.asarray(train_labels)

  chosen, holdout_top1 = grid[0], float("nan")
  if holdout_fraction > 0:
    fit_idx, hold_idx = _stratified_split(train_labels, holdout_fraction, seed)
    if hold_idx.size == 0:
      raise ValueError("the validation split is empty: every class has a single "
                       "train example.")
    fit_mask = np.zeros(train_labels.shape[0], np.float32)
    fit_mask[fit_idx] = 1.0
    fit_mask = jnp.asarray(fit_mask)
    mean, scale = _standardization(train_x, fit_mask)
    x = _standardize(train_x, mean, scale)
    hold_x, hold_y = x[hold_idx], train_labels[hold_idx]
    best = -1.0
    # Strongest regularisation first, so ties keep the simpler model.
    for l2 in sorted(grid, reverse=True):
      params, _ = fit(x, train_y, fit_mask, l2)
      acc, _ = _topk_accuracy(hold_x, hold_y, params, num_classes)
      if acc > best:
        chosen, best = l2, acc
    holdout_top1 = best

  all_rows = jnp.ones(train_labels.shape[0], jnp.float32)
  mean, scale = _standardization(train_x, all_rows)
  params, _ = fit(_standardize(train_x, mean, scale), train_y, all_rows, chosen)
  top1, top5 = _topk_accuracy(_standardize(jnp.asarray(test_features), mean, scale),
                              test_labels, params, num_classes)
  return {"top1": top1, "top5": top5, "l2": chosen, "holdout_top1": holdout_top1}
