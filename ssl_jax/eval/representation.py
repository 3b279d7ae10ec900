"""Evaluating an encoder's representations: features, kNN and linear probe.

Every number this module returns names its protocol (``knn`` with k and
temperature, ``linear`` with its chosen L2), so a reported accuracy always
says what produced it.
"""

import jax
import numpy as np
from jax.sharding import NamedSharding, PartitionSpec as P

from ssl_jax.eval import knn
from ssl_jax.eval import linear_probe as linear_probe_lib


def make_feature_extractor(encode_fn, mesh, batch_size=512):
  """Compiles ``encode_fn(variables, images)`` once for feature extraction.

  Returns ``extract(variables, images) -> float32 numpy (N, D)`` for uint8
  ``images`` (N, H, W, C). Batches are split over ``mesh``'s devices (XLA
  partitions the forward pass); the last batch is padded and the padding
  dropped, so every call reuses the one compiled program.
  """
  num_devices = mesh.devices.size
  batch_size = -(-batch_size // num_devices) * num_devices
  replicated = NamedSharding(mesh, P())
  split = NamedSharding(mesh, P(mesh.axis_names[0]))
  encode = jax.jit(encode_fn, in_shardings=(replicated, split),
                   out_shardings=replicated)

  def extract(variables, images):
    variables = jax.device_put(variables, replicated)
    features = []
    for start in range(0, len(images), batch_size):
      chunk = images[start:start + batch_size]
      padded = np.zeros((batch_size,) + chunk.shape[1:], chunk.dtype)
      padded[:len(chunk)] = chunk
      out = encode(variables, padded)
      features.append(np.asarray(out, np.float32)[:len(chunk)])
    return np.concatenate(features)

  return extract


def evaluate_features(train_features, train_labels, test_features, test_labels,
                      num_classes, eval_config, seed=0):
  """kNN and offline linear probe on frozen features, on the test split."""
  knn_result = knn.knn_accuracy(
      train_features, train_labels, test_features, test_labels, num_classes,
      k=eval_config.knn_k, temperature=eval_config.knn_temperature)
  linear_result = linear_probe_lib.linear_probe(
      train_features, train_labels, test_features, test_labels, num_classes,
      seed=seed)
  return {
      "knn_top1": float(knn_result["top1"]),
      "knn_top5": float(knn_result["top5"]),
      "linear_top1": float(linear_result["top1"]),
      "linear_top5": float(linear_result["top5"]),
      "linear_l2": float(linear_result["l2"]),
  }


def evaluate_encoder(extract, variables, train_arrays, test_arrays,
                     num_classes, eval_config, seed=0):
  """Extracts train/test features with ``extract`` and evaluates them."""
  train_images, train_labels = train_arrays
  test_images, test_labels = test_arrays
  return evaluate_features(extract(variables, train_images), train_labels,
                           extract(variables, test_images), test_labels,
                           num_classes, eval_config, seed)
