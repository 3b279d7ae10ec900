"""Permutation sets for the jigsaw pretext task (host-side numpy).

Noroozi & Favaro, "Unsupervised Learning of Visual Representations by
Solving Jigsaw Puzzles" (ECCV 2016), section 3.2 and Algorithm 1: the network
classifies which of ``P`` fixed tile permutations was applied, and the set
is chosen greedily so that its permutations are far apart in Hamming
distance (the number of positions at which two permutations differ). The
paper's ablation (Table 1) shows that sets with a larger average distance
make a harder pretext task and better features.

:func:`max_hamming_permutations` runs the greedy selection over all
``num_tiles!`` permutations (362,880 for 9 tiles) with a running distance per
candidate, so one step costs ``O(num_tiles * num_tiles!)`` uint8 work and the
memory stays at a few MB. Selection modes and what they give for 9 tiles
(seed 0; pairwise mean / min distance; time on a shared 2-core CPU):

* ``'max'``: the largest minimum distance to the chosen set, ties by the
  largest summed distance, then the RNG. 1000 perms: mean 8.008, min 5, ~3 s;
  100 perms: mean 8.08, min 6.
* ``'target'``: keeps the mean pairwise distance of the set nearest
  ``target_distance``. 1000 perms with 6.4: mean 6.400, min 2, ~6 s.
* ``'min'``: the smallest summed distance (the tightest set). 1000 perms:
  mean 5.454, min 2, ~3 s; 100 perms: mean 3.998.
* ``'random'``: uniform without replacement. 1000 perms: mean 7.997, min 2,
  < 0.1 s.

The paper's Algorithm 1 scores a candidate by its summed distance to the
chosen set (``D_bar = 1^T D``, argmax); ``'max'`` ranks by the minimum
distance first and uses that sum only to break ties, which keeps the
paper's mean (8.00 for 1000) and raises the set's minimum from 2 to 5.

Jigsaw ablation sets of one size: ``'max'`` for a mean of about 8.0,
``selection='target', target_distance=6.4`` for 6.4, ``'min'`` for the
lowest mean. A mean of 4.0 is reachable only for small sets (``'min'`` gives
4.00 for 100 permutations; the 120 permutations of 5 tiles that fix the
other 4 have mean 4.03); for 1000 permutations of 9 tiles ``'min'`` stops
at 5.45 (swapping its most distant member for the closest non-member does
not lower it; 720 permutations of 6 tiles have mean 5.0).
"""
from __future__ import annotations

import math
import os
import pathlib
from typing import Dict, Optional, Union

import numpy as np

SELECTIONS = ("max", "min", "target", "random")
MAX_TILES = 10  # 10! rows of 10 uint8: 36 MB. 11! would be 440 MB.
CACHE_ENV = "SSL_JAX_CACHE_DIR"


def all_permutations(num_tiles: int) -> np.ndarray:
  """Every permutation of ``range(num_tiles)`` in lexicographic order.

  Returns uint8 ``(num_tiles!, num_tiles)``; built by prepending each first
  element to the permutations of the rest (vectorised, no Python loop over
  rows).
  """
  if not 1 <= num_tiles <= MAX_TILES:
    raise ValueError(f"all_permutations: num_tiles must be in [1, "
                     f"{MAX_TILES}], got {num_tiles}.")
  perms = np.zeros((1, 0), np.uint8)
  for size in range(1, num_tiles + 1):
    blocks = []
    for first in range(size):
      # Permutations of range(size) starting with `first`: shift the values
      # >= first of each permutation of range(size - 1) up by one.
      rest = perms + (perms >= first).astype(np.uint8)
      head = np.full((perms.shape[0], 1), first, np.uint8)
      blocks.append(np.concatenate([head, rest], axis=1))
    perms = np.concatenate(blocks, axis=0)
  return perms


def _distances_to(columns: np.ndarray, perm: np.ndarray) -> np.ndarray:
  """Hamming distance (uint8) from ``perm`` to every candidate.

  ``columns`` is the candidate set transposed to ``(num_tiles, N)``, so each
  position is one contiguous compare.
  """
  distance = np.full(columns.shape[1], columns.shape[0], np.uint8)
  for position, value in enumerate(perm):
    distance -= columns[position] == value
  return distance


def max_hamming_permutations(num_permutations: int, num_tiles: int = 9,
                             seed: int = 0, selection: str = "max",
                             target_distance: Optional[float] = None
                             ) -> np.ndarray:
  """Greedy permutation set of Noroozi & Favaro (2016), Algorithm 1.

  Start from a permutation drawn uniformly from all ``num_tiles!``; then
  repeatedly add the remaining candidate that is best under ``selection``
  (see the module docstring for the table of measured statistics):

  * ``'max'``: the largest minimum Hamming distance to the chosen set, ties
    broken by the largest summed distance, remaining ties uniformly by the
    seeded RNG.
  * ``'min'``: the smallest summed distance to the chosen set (the paper's
    score with argmin): the least diverse set, for the ablation.
  * ``'target'``: the candidate that puts the mean pairwise distance of the
    set nearest ``target_distance`` (ties by the RNG). Self-correcting, so
    the result lands on the target when it is reachable (6.4 -> 6.40).
  * ``'random'``: a uniformly random remaining permutation (mean ~ num_tiles
    - 1, the expected distance of two random permutations).

  Args:
    num_permutations: set size ``P`` (the jigsaw classifier's classes).
    num_tiles: tiles per puzzle (9 for a 3x3 grid); at most 10.
    seed: seeds ``numpy.random.default_rng``; the set is a pure function of
      all arguments.
    selection: one of ``'max'``, ``'min'``, ``'target'``, ``'random'``.
    target_distance: mean pairwise distance for ``selection='target'``.

  Returns:
    int32 ``(num_permutations, num_tiles)``, distinct rows, each a
    permutation of ``range(num_tiles)``. Row ``p`` tells which tile goes
    where (see :func:`ssl_jax.augment.pretext.jigsaw_tiles`).
  """
  if selection not in SELECTIONS:
    raise ValueError(f"max_hamming_permutations: selection must be one of "
                     f"{SELECTIONS}, got {selection!r}.")
  if (selection == "target") != (target_distance is not None):
    raise ValueError(
        "max_hamming_permutations: pass target_distance exactly when "
        f"selection='target' (got selection={selection!r}, "
        f"target_distance={target_distance}).")
  if target_distance is not None and not 0 <= target_distance <= num_tiles:
    raise ValueError(f"max_hamming_permutations: target_distance must be in "
                     f"[0, {num_tiles}] (distances between {num_tiles}-tile "
                     f"permutations), got {target_distance}.")
  if not 2 <= num_tiles <= MAX_TILES:
    raise ValueError(f"max_hamming_permutations: num_tiles must be in [2, "
                     f"{MAX_TILES}] (all num_tiles! candidates are held in "
                     f"memory), got {num_tiles}.")
  total = math.factorial(num_tiles)
  if not 1 <= num_permutations <= total:
    raise ValueError(
        f"max_hamming_permutations: num_permutations must be in [1, "
        f"{total}] for {num_tiles} tiles, got {num_permutations}.")

  rng = np.random.default_rng(seed)
  candidates = all_permutations(num_tiles)
  if selection == "random":
    chosen = rng.choice(total, size=num_permutations, replace=False)
    return candidates[chosen].astype(np.int32)
  columns = np.ascontiguousarray(candidates.T)
  # Per candidate: minimum and summed distance to the chosen set. A chosen
  # permutation has minimum 0 and every other one >= 2, so `min_dist == 0`
  # marks the taken ones.
  min_dist = np.full(total, num_tiles + 1, np.uint8)
  sum_dist = np.zeros(total, np.int32)  # <= num_tiles * num_permutations.
  # 'min' and 'target' rank by sum_dist: a taken candidate gets this added
  # to its sum once, more than any available sum (<= num_tiles * size) can
  # be from the (clipped) wanted sum. Fits int32 for num_tiles <= 10.
  taken_penalty = 2 * num_tiles * num_permutations + 1
  chosen = np.empty(num_permutations, np.int64)
  pair_total = 0  # Sum of the pairwise distances within the chosen set.
  index = int(rng.integers(total))
  for step in range(num_permutations):
    chosen[step] = index
    pair_total += int(sum_dist[index])
    distance = _distances_to(columns, candidates[index])
    np.minimum(min_dist, distance, out=min_dist)
    sum_dist += distance
    if step == num_permutations - 1:
      break
    if selection == "max":
      # Lexicographic (min, sum); taken ones (min 0) score below any other.
      score = min_dist.astype(np.int32) * (num_tiles * num_permutations + 1)
      score += sum_dist
    else:
      sum_dist[index] += taken_penalty
      if selection == "min":
        score = -sum_dist
      else:  # "target"
        size = step + 1  # Chosen so far; the next one makes size + 1.
        wanted = target_distance * size * (size + 1) / 2.0 - pair_total
        # Beyond [0, num_tiles * size] only the extreme sums can be nearest;
        # clipping keeps that order and keeps taken ones out of reach.
        wanted = min(max(wanted, 0.0), float(num_tiles * size))
        score = -np.abs(sum_dist - wanted)
    best = np.flatnonzero(score == score.max())
    index = int(best[rng.integers(best.size)])
  return candidates[chosen].astype(np.int32)


def pairwise_hamming(perms: np.ndarray, chunk: int = 512) -> np.ndarray:
  """``(P, P)`` int matrix of Hamming distances, computed in row chunks."""
  perms = np.asarray(perms)
  out = np.empty((perms.shape[0], perms.shape[0]), np.int16)
  for start in range(0, perms.shape[0], chunk):
    block = perms[start:start + chunk]
    out[start:start + chunk] = np.sum(block[:, None, :] != perms[None, :, :],
                                      axis=-1)
  return out


def hamming_stats(perms: np.ndarray) -> Dict[str, float]:
  """Mean, minimum and maximum Hamming distance over distinct pairs of rows.

  The quantities of Noroozi & Favaro's Table 1 (average / minimum Hamming
  distance of a permutation set). Needs at least two rows.
  """
  perms = np.asarray(perms)
  if perms.ndim != 2 or perms.shape[0] < 2:
    raise ValueError(f"hamming_stats: expected (P, num_tiles) with P >= 2, "
                     f"got shape {perms.shape}.")
  distances = pairwise_hamming(perms)
  upper = distances[np.triu_indices(perms.shape[0], k=1)]
  return dict(mean=float(upper.mean()), min=float(upper.min()),
              max=float(upper.max()))


def check_permutation_set(perms: np.ndarray, num_permutations: int,
                          num_tiles: int, source: str = "permutations") -> None:
  """Raise ``ValueError`` unless ``perms`` is ``(num_permutations,
  num_tiles)`` with distinct rows that are permutations of
  ``range(num_tiles)``."""
  perms = np.asarray(perms)
  if perms.shape != (num_permutations, num_tiles):
    raise ValueError(f"{source}: expected shape ({num_permutations}, "
                     f"{num_tiles}), got {perms.shape}.")
  if not np.issubdtype(perms.dtype, np.integer):
    raise ValueError(f"{source}: expected integers, got dtype {perms.dtype}.")
  if not np.array_equal(np.sort(perms, axis=1),
                        np.broadcast_to(np.arange(num_tiles), perms.shape)):
    raise ValueError(f"{source}: some row is not a permutation of "
                     f"range({num_tiles}).")
  if np.unique(perms, axis=0).shape[0] != num_permutations:
    raise ValueError(f"{source}: rows are not distinct.")


def default_cache_dir() -> pathlib.Path:
  """``$SSL_JAX_CACHE_DIR/permutations`` if set, else
  ``~/.cache/ssl_jax/permutations``."""
  root = os.environ.get(CACHE_ENV)
  if root:
    base = pathlib.Path(root)
  else:
    base = pathlib.Path.home() / ".cache" / "ssl_jax"
  return base / "permutations"


def cache_file_name(num_permutations: int, seed: int, num_tiles: int = 9,
                    selection: str = "max",
                    target_distance: Optional[float] = None) -> str:
  """File name that keys a cached set by every argument that defines it."""
  mode = selection
  if target_distance is not None:
    mode += f"{float(target_distance):.4f}"
  return (f"perms_n{num_permutations}_tiles{num_tiles}_{mode}_seed{seed}"
          ".npy")


def load_or_create_permutations(
    num_permutations: int, seed: int = 0,
    cache_dir: Union[None, str, os.PathLike] = None, num_tiles: int = 9,
    selection: str = "max",
    target_distance: Optional[float] = None) -> np.ndarray:
  """:func:`max_hamming_permutations`, cached as an ``.npy`` file.

  The file lives in ``cache_dir`` (default :func:`default_cache_dir`, i.e.
  ``$SSL_JAX_CACHE_DIR/permutations`` or ``~/.cache/ssl_jax/permutations``)
  under :func:`cache_file_name`. An existing file is loaded and validated
  (shape, every row a permutation, rows distinct); a corrupt one raises
  ``ValueError`` naming the file. New files are written to a temporary name
  and renamed, so concurrent processes never read a partial file.

  Returns:
    int32 ``(num_permutations, num_tiles)``.
  """
  directory = (pathlib.Path(cache_dir) if cache_dir is not None
               else default_cache_dir())
  path = directory / cache_file_name(num_permutations, seed, num_tiles,
                                     selection, target_distance)
  if path.exists():
    try:
      perms = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as error:
      raise ValueError(
          f"load_or_create_permutations: cannot read {path} ({error}); "
          "delete it to regenerate the set.") from error
    try:
      check_permutation_set(perms, num_permutations, num_tiles, str(path))
    except ValueError as error:
      raise ValueError(f"load_or_create_permutations: invalid cache file: "
                       f"{error} Delete it to regenerate the set.") from error
    return perms.astype(np.int32)
  perms = max_hamming_permutations(num_permutations, num_tiles, seed,
                                   selection, target_distance)
  directory.mkdir(parents=True, exist_ok=True)
  temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
  with open(temporary, "wb") as handle:
    np.save(handle, perms)
  os.replace(temporary, path)
  return perms
