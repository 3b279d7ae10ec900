"""Features of a frozen encoder, extracted on device in fixed-size batches.

The protocols that use them (kNN, linear probe, collapse diagnostics) are in
``ssl_jax.eval.protocols``.
"""

import jax
import numpy as np
from jax.sharding import NamedSharding, PartitionSpec as P


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


def extractor_factory(batch_size=512):
  """``factory(encode_fn, mesh) -> extract``, compiling once per function.

  ``make_feature_extractor`` builds a new ``jax.jit`` each call; the factory
  keeps one per (function, mesh), so evaluating the trained and the
  random-init encoder, or several protocols, reuses one compiled program.
  """
  cache = {}

  def factory(encode_fn, mesh):
    key = (encode_fn, id(mesh))
    if key not in cache:
      cache[key] = (make_feature_extractor(encode_fn, mesh, batch_size), mesh)
    return cache[key][0]

  return factory


def match_channels(images, channels):
  """uint8 NHWC ``images`` with ``channels`` channels, for transfer evaluation.

  Grayscale to RGB repeats the channel; RGB to grayscale takes the ITU-R
  601-2 luma (as PIL's ``convert('L')``). Other conversions are an error.
  """
  have = images.shape[-1]
  if have == channels:
    return images
  if have == 1 and channels == 3:
    return np.repeat(images, 3, axis=-1)
  if have == 3 and channels == 1:
    luma = images.astype(np.float32) @ np.array([0.299, 0.587, 0.114],
                                                np.float32)
    return np.clip(np.round(luma), 0, 255).astype(np.uint8)[..., None]
  raise ValueError(
      f"cannot evaluate an encoder trained on {channels}-channel images on "
      f"{have}-channel images; pick an evaluation dataset with 1 or 3 "
      "channels.")
