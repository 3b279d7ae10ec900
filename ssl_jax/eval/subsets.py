"""Fixed, class-balanced label subsets for semi-supervised evaluation.

SimCLR (Chen et al. 2020, Sec. 4.2 and its released ImageNet 1% / 10%
index files) fine-tunes on a fixed fraction of the labelled training set,
the same examples for every method, so that numbers compare. Here a subset
is drawn per class, seeded, and written to a JSON index file that later
runs read back instead of drawing again.
"""

import hashlib
import json
import os

import numpy as np


def class_balanced_subset(labels, fraction, seed):
  """Indices of a seeded subset holding ``fraction`` of every class.

  From each class c with n_c examples, ``max(1, round(fraction * n_c))``
  are drawn without replacement (every class keeps at least one label).

  Args:
    labels: ``(N,)`` integer labels of the training set.
    fraction: in (0, 1].
    seed: the subset's seed; the same seed gives the same indices.

  Returns:
    Sorted int64 indices into ``labels``.
  """
  if not 0 < fraction <= 1:
    raise ValueError(f"label fraction must be in (0, 1], got {fraction}.")
  labels = np.asarray(labels)
  rng = np.random.default_rng(seed)
  chosen = []
  for c in np.unique(labels):
    idx = np.flatnonzero(labels == c)
    count = max(1, int(round(fraction * idx.size)))
    chosen.append(rng.choice(idx, size=count, replace=False))
  return np.sort(np.concatenate(chosen)).astype(np.int64)


def labels_digest(labels):
  """A short fingerprint of the label array a subset file was drawn from."""
  return hashlib.sha256(np.asarray(labels, np.int64).tobytes()).hexdigest()[:16]


def subset_path(subset_dir, dataset, num_examples, fraction, seed):
  """``<dir>/<dataset>_n<examples>_<pct>pct_seed<seed>.json``."""
  return os.path.join(
      subset_dir,
      f"{dataset}_n{num_examples}_{fraction * 100:g}pct_seed{seed}.json")


def load_or_create_subset(path, labels, fraction, seed):
  """The subset stored at ``path``; drawn and written there if absent.

  Raises:
    ValueError: the file was drawn from other labels (another dataset or
      split), or for another fraction or seed: its indices would be wrong.
  """
  digest = labels_digest(labels)
  if os.path.exists(path):
    with open(path) as f:
      stored = json.load(f)
    expected = {"fraction": fraction, "seed": seed, "labels_digest": digest,
                "num_examples": int(len(labels))}
    mismatched = {k: stored.get(k) for k in expected if stored.get(k) != expected[k]}
    if mismatched:
      raise ValueError(
          f"label subset file {path} does not match this dataset and setting "
          f"(stored {mismatched}, expected "
          f"{ {k: expected[k] for k in mismatched} }); delete it or set "
          "config.eval.subset_dir to another folder.")
    return np.asarray(stored["indices"], np.int64)
  indices = class_balanced_subset(labels, fraction, seed)
  os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
  classes, counts = np.unique(np.asarray(labels)[indices], return_counts=True)
  record = {"fraction": fraction, "seed": seed, "labels_digest": digest,
            "num_examples": int(len(labels)),
            "per_class": {int(c): int(n) for c, n in zip(classes, counts)},
            "indices": indices.tolist()}
  tmp = path + ".tmp"
  with open(tmp, "w") as f:
    json.dump(record, f)
  os.replace(tmp, path)
  return indices
