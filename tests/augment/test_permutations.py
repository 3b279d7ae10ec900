"""Jigsaw permutation sets: Noroozi & Favaro (2016) statistics, brute-force
references on small sets, determinism and the on-disk cache.

Exact integer checks throughout; the 1000-permutation statistics are the
paper's (average Hamming distance 8.00 for its maximal set).
"""
import itertools
import math

import numpy as np
import pytest

from ssl_jax.augment import permutations as pm


def _brute_stats(perms):
  distances = [int(np.sum(a != b)) for a, b in itertools.combinations(perms, 2)]
  return dict(mean=float(np.mean(distances)), min=float(min(distances)),
              max=float(max(distances)))


def test_all_permutations_lexicographic():
  for n in (1, 3, 5):
    expected = np.asarray(list(itertools.permutations(range(n))), np.uint8)
    np.testing.assert_array_equal(pm.all_permutations(n), expected)
  nine = pm.all_permutations(9)
  assert nine.shape == (math.factorial(9), 9) and nine.dtype == np.uint8
  np.testing.assert_array_equal(nine[[0, -1]], [range(9), range(8, -1, -1)])


def test_hamming_stats_against_brute_force():
  perms = np.random.RandomState(0).rand(40, 7).argsort(1)
  assert pm.hamming_stats(perms) == pytest.approx(_brute_stats(perms))
  distances = pm.pairwise_hamming(perms, chunk=7)  # Several chunks.
  assert distances[3, 5] == np.sum(perms[3] != perms[5])
  np.testing.assert_array_equal(np.diag(distances), 0)
  with pytest.raises(ValueError, match="P >= 2"):
    pm.hamming_stats(perms[:1])


def test_maximal_set_of_1000_matches_the_paper():
  # Noroozi & Favaro, Table 1: 1000 permutations, average distance 8.00.
  perms = pm.max_hamming_permutations(1000, seed=0)
  pm.check_permutation_set(perms, 1000, 9)
  assert perms.dtype == np.int32
  stats = pm.hamming_stats(perms)
  # Measured (seed 0): mean 8.008, min 5, max 9. The paper's set (summed
  # distance only) has mean 8.00 and min 2.
  assert 7.99 <= stats["mean"] <= 8.05, stats
  assert stats["min"] >= 5 and stats["max"] == 9


def test_greedy_rule_on_small_sets_against_brute_force():
  # 'max' with 5 tiles: each step adds a remaining permutation with the
  # largest (min distance, summed distance) to the set chosen so far.
  perms = pm.max_hamming_permutations(30, num_tiles=5, seed=3)
  pm.check_permutation_set(perms, 30, 5)
  everything = list(itertools.permutations(range(5)))
  for step in range(1, 30):
    chosen = perms[:step]

    def score(p):
      d = np.sum(np.asarray(p) != chosen, axis=1)
      return (d.min(), d.sum())

    best = max(score(p) for p in everything
               if not any(np.array_equal(p, c) for c in chosen))
    assert score(perms[step]) == best, step
  # The first 5 of a 5-tile maximal set are pairwise derangements (a Latin
  # square): distance 5 everywhere.
  assert pm.hamming_stats(perms[:5])["min"] == 5


def test_selection_modes_order_the_average_distance():
  stats = {}
  for selection, target in (("max", None), ("target", 6.4), ("min", None),
                            ("random", None)):
    perms = pm.max_hamming_permutations(100, seed=1, selection=selection,
                                        target_distance=target)
    pm.check_permutation_set(perms, 100, 9)
    stats[selection] = pm.hamming_stats(perms)
  # Measured: max 8.08 (min 6), target 6.40, min 4.00, random ~8.0.
  assert stats["max"]["mean"] >= 8.05 and stats["max"]["min"] >= 5
  assert stats["target"]["mean"] == pytest.approx(6.4, abs=0.02)
  assert 3.9 <= stats["min"]["mean"] <= 4.1
  assert 7.8 <= stats["random"]["mean"] <= 8.2
  for mode in stats.values():
    assert mode["min"] >= 2


def test_determinism_by_seed_and_argument_checks():
  a = pm.max_hamming_permutations(20, num_tiles=6, seed=5)
  np.testing.assert_array_equal(a, pm.max_hamming_permutations(
      20, num_tiles=6, seed=5))
  assert not np.array_equal(a, pm.max_hamming_permutations(
      20, num_tiles=6, seed=6))
  b = pm.max_hamming_permutations(20, num_tiles=6, seed=5,
                                  selection="random")
  np.testing.assert_array_equal(b, pm.max_hamming_permutations(
      20, num_tiles=6, seed=5, selection="random"))
  # All permutations of 4 tiles: every ordering is taken exactly once.
  assert len({tuple(p) for p in pm.max_hamming_permutations(24, 4)}) == 24
  with pytest.raises(ValueError, match="selection"):
    pm.max_hamming_permutations(10, selection="mean")
  with pytest.raises(ValueError, match="target_distance"):
    pm.max_hamming_permutations(10, selection="target")
  with pytest.raises(ValueError, match="target_distance"):
    pm.max_hamming_permutations(10, selection="target", target_distance=12)
  with pytest.raises(ValueError, match="num_permutations"):
    pm.max_hamming_permutations(25, num_tiles=4)
  with pytest.raises(ValueError, match="num_tiles"):
    pm.max_hamming_permutations(10, num_tiles=11)


def test_cache_round_trip_and_validation(tmp_path, monkeypatch):
  perms = pm.load_or_create_permutations(12, seed=2, cache_dir=tmp_path,
                                         num_tiles=5)
  path = tmp_path / pm.cache_file_name(12, 2, num_tiles=5)
  assert path.exists() and [p.name for p in tmp_path.iterdir()] == [path.name]
  np.testing.assert_array_equal(perms, pm.max_hamming_permutations(
      12, num_tiles=5, seed=2))
  # Reused: a valid file with other content is returned as stored.
  np.save(path, perms[::-1])
  again = pm.load_or_create_permutations(12, seed=2, cache_dir=tmp_path,
                                         num_tiles=5)
  np.testing.assert_array_equal(again, perms[::-1])
  assert again.dtype == np.int32
  # Keyed by mode: a target set gets its own file.
  pm.load_or_create_permutations(12, seed=2, cache_dir=tmp_path, num_tiles=5,
                                 selection="target", target_distance=3.5)
  assert len(list(tmp_path.iterdir())) == 2
  # Validated.
  bad = perms.copy()
  bad[0] = bad[1]
  np.save(path, bad)
  with pytest.raises(ValueError, match="distinct"):
    pm.load_or_create_permutations(12, seed=2, cache_dir=tmp_path,
                                   num_tiles=5)
  bad[0] = [0, 0, 1, 2, 3]
  np.save(path, bad)
  with pytest.raises(ValueError, match="not a permutation"):
    pm.load_or_create_permutations(12, seed=2, cache_dir=tmp_path,
                                   num_tiles=5)
  np.save(path, perms[:5])
  with pytest.raises(ValueError, match="shape"):
    pm.load_or_create_permutations(12, seed=2, cache_dir=tmp_path,
                                   num_tiles=5)
  path.write_bytes(b"not an npy file")
  with pytest.raises(ValueError, match="delete it"):
    pm.load_or_create_permutations(12, seed=2, cache_dir=tmp_path,
                                   num_tiles=5)
  # Default directory: $SSL_JAX_CACHE_DIR/permutations.
  monkeypatch.setenv(pm.CACHE_ENV, str(tmp_path / "env"))
  assert pm.default_cache_dir() == tmp_path / "env" / "permutations"
  pm.load_or_create_permutations(6, seed=0, num_tiles=4)
  assert (tmp_path / "env" / "permutations" /
          pm.cache_file_name(6, 0, num_tiles=4)).exists()
  monkeypatch.delenv(pm.CACHE_ENV)
  assert str(pm.default_cache_dir()).endswith(".cache/ssl_jax/permutations")
