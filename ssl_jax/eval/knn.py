"""Weighted k-nearest-neighbour evaluation of frozen features.

Protocol (Wu et al., "Unsupervised Feature Learning via Non-Parametric
Instance Discrimination", CVPR 2018, Sec. 3.4; the same vote is used by the
MoCo and SimCLR CIFAR-10 demo notebooks):

1. L2-normalise train ("bank") and query features.
2. For each query ``q``, compute the cosine similarity ``s_i = q . x_i`` to
   every bank feature and keep the ``k`` most similar (``k = 200``, clipped to
   the bank size).
3. Each neighbour votes for its label with weight ``exp(s_i / tau)``
   (``tau = 0.1``).
4. The class score is the sum of its votes; the prediction is the class with
   the largest score, top-5 accuracy checks the 5 largest scores.

The computation runs on device in fixed-size query batches: one jitted kernel
(compiled once per bank shape, query batch size, ``k`` and number of classes)
sees a ``(batch_size, num_train)`` similarity block at a time, never the full
``(num_test, num_train)`` matrix.  The last batch is zero-padded to the
static batch size and the padding rows are dropped.

Ties: among equal similarities the neighbour with the lower bank index is
taken first (``lax.top_k``), among equal class scores the lower class index
wins (as ``argmax``).  Votes are computed as ``exp((s_i - s_max) / tau)``,
i.e. rescaled by the per-query constant ``exp(-s_max / tau)`` so that small
temperatures cannot overflow; this changes no ranking and no prediction.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from ssl_jax.eval import inputs

__all__ = ["knn_predict", "knn_accuracy"]

_NORM_EPS = 1e-12
_TOPK_ACCURACY = 5


def _l2_normalize(x: jax.Array) -> jax.Array:
  x = x.astype(jnp.float32)
  norm = jnp.linalg.norm(x, axis=-1, keepdims=True)
  return x / jnp.maximum(norm, _NORM_EPS)


_normalize_bank = jax.jit(_l2_normalize)


@functools.partial(jax.jit, static_argnames=("k", "num_classes", "top"))
def _knn_top_classes(bank: jax.Array, bank_labels: jax.Array,
                     queries: jax.Array, temperature: jax.Array, *, k: int,
                     num_classes: int, top: int) -> jax.Array:
  """Class indices ranked by summed neighbour votes, for one query batch.

  Args:
    bank: L2-normalised train features, ``(num_train, dim)`` float32.
    bank_labels: int32 labels of the bank, ``(num_train,)``.
    queries: raw query features, ``(batch, dim)``.
    temperature: scalar vote temperature.
    k: neighbours per query (``<= num_train``).
    num_classes: number of classes ``C``.
    top: number of ranked classes to return (``<= C``).

  Returns:
    int32 ``(batch, top)``: the ``top`` highest-scoring classes, best first.
  """
  q = _l2_normalize(queries)
  sim = q @ bank.T  # (batch, num_train): the only O(num_train) block.
  # The barrier keeps XLA from fusing the top-k slice into its consumers;
  # otherwise the CPU backend cannot rewrite sort+slice into its TopK kernel
  # and fully sorts every (batch, num_train) row (about 10x slower at 50k).
  top_sim, top_idx = lax.optimization_barrier(lax.top_k(sim, k))  # descending.
  weights = jnp.exp((top_sim - top_sim[:, :1]) / temperature)
  neighbour_labels = bank_labels[top_idx]  # (batch, k)
  rows = jnp.arange(q.shape[0])[:, None]
  scores = jnp.zeros((q.shape[0], num_classes), jnp.float32)
  scores = scores.at[rows, neighbour_labels].add(weights)
  _, classes = lax.top_k(scores, top)
  return classes


def _check_args(train_features, train_labels, query_features, num_classes, k,
                temperature, batch_size):
  if not isinstance(num_classes, (int, np.integer)) or num_classes < 1:
    raise ValueError(f"num_classes must be a positive int; got {num_classes!r}.")
  if not isinstance(k, (int, np.integer)) or k < 1:
    raise ValueError(f"k must be a positive int; got {k!r}.")
  if not temperature > 0:
    raise ValueError(f"temperature must be > 0; got {temperature!r}.")
  if not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
    raise ValueError(f"batch_size must be a positive int; got {batch_size!r}.")
  train_features = inputs.check_features(train_features, "train_features")
  query_features = inputs.check_features(query_features, "query_features")
  if train_features.shape[0] == 0:
    raise ValueError("train_features is empty: the kNN bank needs at least one example.")
  if train_features.shape[1] != query_features.shape[1]:
    raise ValueError(
        f"feature dims differ: train {train_features.shape[1]}, "
        f"query {query_features.shape[1]}.")
  train_labels = inputs.check_labels(train_labels, train_features.shape[0], int(num_classes),
                            "train_labels")
  return train_features, train_labels, query_features


def _ranked_classes(train_features, train_labels, query_features, num_classes,
                    k, temperature, batch_size, top) -> np.ndarray:
  """Runs the batched kernel over all queries; returns ``(num_queries, top)``."""
  num_train = train_features.shape[0]
  num_queries = query_features.shape[0]
  k = int(min(k, num_train))
  top = int(min(top, num_classes))
  if num_queries == 0:
    return np.zeros((0, top), np.int32)
  batch = int(min(batch_size, num_queries))
  bank = _normalize_bank(jnp.asarray(train_features))
  bank_labels = jnp.asarray(train_labels)
  temperature = jnp.asarray(temperature, jnp.float32)
  outputs = []
  for start in range(0, num_queries, batch):
    chunk = jnp.asarray(query_features[start:start + batch])
    pad = batch - chunk.shape[0]
    if pad:  # Only the last batch; padded rows are dropped below.
      chunk = jnp.pad(chunk, ((0, pad), (0, 0)))
    # Dispatch is asynchronous; results are fetched once at the end.
    outputs.append(_knn_top_classes(bank, bank_labels, chunk,
                                    temperature, k=k, num_classes=int(num_classes),
                                    top=top))
  ranked = np.concatenate([np.asarray(o) for o in outputs])
  return ranked[:num_queries]


def knn_predict(train_features, train_labels, query_features, num_classes: int,
                k: int = 200, temperature: float = 0.1,
                batch_size: int = 256) -> np.ndarray:
  """Predicts labels by the temperature-weighted kNN vote of InstDisc (Wu et al. 2018).

  See the module docstring for the protocol.

  Args:
    train_features: ``(num_train, dim)`` bank features (numpy or jax array).
    train_labels: ``(num_train,)`` integer labels in ``[0, num_classes)``.
    query_features: ``(num_queries, dim)`` features to classify.
    num_classes: number of classes.
    k: neighbours per query; clipped to ``num_train``.
    temperature: vote temperature ``tau`` in ``exp(sim / tau)``.
    batch_size: queries per device batch (static; the last batch is padded).
      Peak memory is about ``batch_size * num_train`` floats plus the bank.

  Returns:
    ``np.ndarray`` of int32 predicted labels, shape ``(num_queries,)``.
  """
  train_features, train_labels, query_features = _check_args(
      train_features, train_labels, query_features, num_classes, k, temperature,
      batch_size)
  ranked = _ranked_classes(train_features, train_labels, query_features,
                           num_classes, k, temperature, batch_size, top=1)
  return ranked[:, 0]


def knn_accuracy(train_features, train_labels, test_features, test_labels,
                 num_classes: int, k: int = 200, temperature: float = 0.1,
                 batch_size: int = 256) -> dict[str, float]:
  """Top-1 / top-5 accuracy of the weighted kNN classifier (Wu et al. 2018).

  Top-1 is the accuracy of :func:`knn_predict`; top-5 counts a test example
  as correct when its label is among the 5 classes with the largest summed
  vote weight (with fewer than 5 classes, among all classes, so top-5 = 1).

  Args:
    train_features, train_labels: the kNN bank, as in :func:`knn_predict`.
    test_features: ``(num_test, dim)`` features.
    test_labels: ``(num_test,)`` integer labels in ``[0, num_classes)``.
    num_classes, k, temperature, batch_size: as in :func:`knn_predict`.

  Returns:
    ``{"top1": float, "top5": float}``, fractions in ``[0, 1]``.
  """
  train_features, train_labels, test_features = _check_args(
      train_features, train_labels, test_features, num_classes, k, temperature,
      batch_size)
  test_labels = inputs.check_labels(test_labels, test_features.shape[0], int(num_classes),
                           "test_labels")
  if test_features.shape[0] == 0:
    raise ValueError("test_features is empty: accuracy is undefined.")
  ranked = _ranked_classes(train_features, train_labels, test_features,
                           num_classes, k, temperature, batch_size,
                           top=_TOPK_ACCURACY)
  hits = ranked == test_labels[:, None]
  return {"top1": float(np.mean(hits[:, 0])),
          "top5": float(np.mean(np.any(hits, axis=1)))}
