"""Input checks shared by the evaluation protocols: one message per problem."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np


def check_features(x, name: str) -> np.ndarray | jax.Array:
  """A 2-D numeric, finite feature matrix (may be empty), else ValueError."""
  if not hasattr(x, "shape") or not hasattr(x, "dtype"):
    x = np.asarray(x)
  if x.ndim != 2:
    raise ValueError(f"{name} must have shape (num_examples, dim); got {x.shape}.")
  if not (jnp.issubdtype(x.dtype, jnp.floating) or jnp.issubdtype(x.dtype, jnp.integer)):
    raise ValueError(f"{name} must be numeric; got dtype {x.dtype}.")
  finite = np.all(np.isfinite(x)) if isinstance(x, np.ndarray) else jnp.all(jnp.isfinite(x))
  if not bool(finite):
    raise ValueError(f"{name} contains NaN or infinite values.")
  return x


def check_labels(y, n: int, num_classes: int, name: str) -> np.ndarray:
  """``n`` integer class ids in [0, num_classes), as int32, else ValueError."""
  y = np.asarray(y)
  if y.ndim != 1 or y.shape[0] != n:
    raise ValueError(f"{name} must have shape ({n},) to match the features; "
                     f"got {y.shape}.")
  if not np.issubdtype(y.dtype, np.integer):
    raise ValueError(f"{name} must be integer class ids; got dtype {y.dtype}.")
  if n and (y.min() < 0 or y.max() >= num_classes):
    raise ValueError(f"{name} must lie in [0, {num_classes}); got range "
                     f"[{y.min()}, {y.max()}].")
  return y.astype(np.int32)
