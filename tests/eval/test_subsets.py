"""Label subsets: exact class-balanced counts, fixed by seed, stored and reused."""

import json

import numpy as np
import pytest

from ssl_jax import data
from ssl_jax.eval import subsets


@pytest.fixture(scope="module")
def labels():
  return data.as_arrays(data.load_digits("train"))[1]


@pytest.mark.parametrize("fraction", [0.01, 0.1, 0.5, 1.0])
def test_exact_counts_per_class(labels, fraction):
  indices = subsets.class_balanced_subset(labels, fraction, seed=0)
  assert len(np.unique(indices)) == len(indices)
  for c in range(10):
    n_c = int(np.sum(labels == c))
    assert np.sum(labels[indices] == c) == max(1, round(fraction * n_c))


def test_same_seed_same_indices_other_seed_other_indices(labels):
  a = subsets.class_balanced_subset(labels, 0.1, seed=3)
  b = subsets.class_balanced_subset(labels, 0.1, seed=3)
  c = subsets.class_balanced_subset(labels, 0.1, seed=4)
  np.testing.assert_array_equal(a, b)
  assert not np.array_equal(a, c)


def test_index_file_is_written_then_reused(labels, tmp_path):
  path = subsets.subset_path(str(tmp_path), "digits", len(labels), 0.1, 0)
  first = subsets.load_or_create_subset(path, labels, 0.1, 0)
  with open(path) as f:
    record = json.load(f)
  assert record["indices"] == first.tolist()
  assert sum(record["per_class"].values()) == len(first)
  # A later run reads the file: even a hand-edited file wins over a redraw.
  record["indices"] = record["indices"][:-1]
  with open(path, "w") as f:
    json.dump(record, f)
  np.testing.assert_array_equal(
      subsets.load_or_create_subset(path, labels, 0.1, 0), first[:-1])


def test_file_from_other_labels_is_refused(labels, tmp_path):
  path = subsets.subset_path(str(tmp_path), "digits", len(labels), 0.1, 0)
  subsets.load_or_create_subset(path, labels, 0.1, 0)
  with pytest.raises(ValueError, match="does not match"):
    subsets.load_or_create_subset(path, labels[::-1], 0.1, 0)


def test_bad_fraction():
  with pytest.raises(ValueError, match=r"\(0, 1\]"):
    subsets.class_balanced_subset(np.zeros(10, int), 0.0, seed=0)
