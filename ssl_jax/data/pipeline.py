"""Host input pipeline: shuffle, shard per host, batch uint8 images.

The host only reads, decodes, shuffles, shards and batches; augmentation
happens on the device.

Training (:func:`make_train_loader`) is built with grain's ``MapDataset``
API, as a pure function from a batch number to a batch:

1. ``MapDataset.range(N).shuffle(seed).repeat(num_epochs)`` is the global
   stream of record indices. Epoch ``e`` occupies stream positions
   ``[e*N, (e+1)*N)`` and is a fresh permutation of ``0..N-1`` (grain
   reshuffles every epoch).
2. ``.batch(global_batch_size, drop_remainder=True)``: global batch ``j`` is
   stream positions ``[j*B, (j+1)*B)``. Batches run straight across epoch
   boundaries, so within every epoch each record is seen exactly once and
   nothing is dropped; with a finite ``num_epochs`` the final incomplete global
   batch is dropped.
3. Host ``k`` of ``P`` keeps rows ``[k*b, (k+1)*b)`` of each global batch
   (``b = B / P``) and reads only those records. Stacking the local batches of
   hosts ``0..P-1`` in order gives back the global batch, which is therefore
   the same for every ``P`` (and every ``worker_count``): one host with batch
   ``B`` sees exactly the data that eight hosts with ``B/8`` each see.

Because batch ``j`` depends only on ``j``, the iterator's state is just the
number of the next batch: :class:`TrainIterator` saves
``{"next_batch": j, "pipeline": {...}, ...}`` and, on ``set_state``,
re-slices the pipeline at ``j``. Restoring is exact, cheap and independent of
grain's internal state format. Since global batches do not depend on
``process_count`` or ``worker_count``, a state may even be restored with other
values of those: the global batches continue exactly. The ``pipeline`` entry
records what the order does depend on (dataset size, seed, global batch size,
number of epochs) and ``set_state`` refuses a state written by a pipeline that
differs in any of them.

Evaluation (:func:`iterate_batches`) walks arrays in order with a padded,
masked last batch.
"""
from __future__ import annotations

import dataclasses
import json
from typing import Any, Iterator, Optional

import grain
import numpy as np

from ssl_jax.data import sources as sources_lib

__all__ = [
    "TrainLoader",
    "TrainIterator",
    "make_train_loader",
    "iterate_batches",
    "read_records",
]

_STATE_VERSION = 1


def _shuffle_seed(seed: int) -> int:
  """Maps a user seed to grain's 32-bit shuffle seed.

  grain shuffles epoch ``e`` with seed ``s + e``, so raw seeds 0 and 1 would
  share all but one epoch ordering. Hashing the user seed first makes nearby
  seeds give unrelated orders.
  """
  return int(np.random.SeedSequence(seed).generate_state(1, np.uint32)[0])


class _HostRows:
  """Keeps this host's rows ``[start, stop)`` of a global index batch."""

  def __init__(self, start: int, stop: int):
    self.start = start
    self.stop = stop

  def __call__(self, global_indices: np.ndarray) -> np.ndarray:
    return global_indices[self.start:self.stop]


def read_records(source: Any, indices: np.ndarray) -> dict[str, np.ndarray]:
  """The records of ``source`` at ``indices``, stacked.

  Returns ``{"image": uint8 (n, ...), "label": int32 (n,), "index": int32
  (n,)}``: ``index`` is each record's index in ``source``, for methods that
  keep per-example state (DeepCluster's pseudo-labels). Any further field
  of the records (a paired source's second modality) is stacked too. A
  source with
  ``read_batch`` (:class:`~ssl_jax.data.sources.ArraySource`,
  :class:`~ssl_jax.data.video.MovingDigits`) reads with it.
  """
  indices = np.asarray(indices)
  read_batch = getattr(source, "read_batch", None)
  if read_batch is not None:  # ArraySource: one gather per array.
    return dict(read_batch(indices), index=indices.astype(np.int32))
  get_many = getattr(source, "__getitems__", None)
  if get_many is not None:
    records = get_many([int(i) for i in indices])
  else:
    records = [source[int(i)] for i in indices]
  shapes = {np.shape(r["image"]) for r in records}
  if len(shapes) != 1:
    raise ValueError(
        f"{source!r} returned images of different shapes "
        f"{sorted(shapes)} in one batch. The pipeline batches images as "
        "they are stored; variable-size datasets need a source whose "
        "images share one shape (resize or crop them when writing the "
        "dataset)."
    )
  batch = {
      "image": np.stack([np.asarray(r["image"], np.uint8) for r in records]),
      "label": np.asarray([r["label"] for r in records], dtype=np.int32),
  }
  # Further fields of a paired source (a second modality), stacked as stored.
  for field in records[0].keys() - batch.keys():
    batch[field] = np.stack([np.asarray(r[field]) for r in records])
  batch["index"] = indices.astype(np.int32)
  return batch


class _ReadBatch:
  """Reads the records at a batch of indices and stacks them
  (:func:`read_records`; picklable for grain's worker processes)."""

  def __init__(self, source: Any):
    self.source = source

  def __call__(self, indices: np.ndarray) -> dict[str, np.ndarray]:
    return read_records(self.source, indices)


@dataclasses.dataclass(frozen=True)
class TrainLoader:
  """An infinite (or ``num_epochs``-long), sharded, shuffled batch stream.

  Create with :func:`make_train_loader`. ``iter(loader)`` returns a new
  :class:`TrainIterator` positioned at batch 0; call its ``set_state`` to
  resume. Yields ``{"image": uint8 (local_batch_size, H, W, C),
  "label": int32 (local_batch_size,), "index": int32 (local_batch_size,)}``,
  ``index`` the records' indices in ``source``.
  """

  source: Any
  global_batch_size: int
  local_batch_size: int
  seed: int
  process_index: int
  process_count: int
  num_epochs: Optional[int]
  worker_count: int
  worker_buffer_size: int
  read_options: grain.ReadOptions
  batches: grain.MapDataset  # Element j: this host's part of global batch j.

  @property
  def num_records(self) -> int:
    return len(self.source)

  @property
  def steps_per_epoch(self) -> float:
    """Global batches per epoch, ``N / B`` (a fraction unless B divides N)."""
    return self.num_records / self.global_batch_size

  @property
  def num_batches(self) -> Optional[int]:
    """Total batches for a finite ``num_epochs``, None when infinite."""
    if self.num_epochs is None:
      return None
    return self.num_epochs * self.num_records // self.global_batch_size

  def fingerprint(self) -> dict[str, Any]:
    """What the global batch order depends on; checked on ``set_state``."""
    return {
        "num_records": self.num_records,
        "seed": self.seed,
        "global_batch_size": self.global_batch_size,
        "num_epochs": self.num_epochs,
    }

  def iter_from(self, next_batch: int) -> Iterator[dict[str, np.ndarray]]:
    """A raw grain iterator over batches ``next_batch, next_batch + 1, ...``."""
    ds = self.batches[next_batch:].to_iter_dataset(self.read_options)
    if self.worker_count > 0:
      ds = ds.mp_prefetch(
          grain.MultiprocessingOptions(
              num_workers=self.worker_count,
              per_worker_buffer_size=self.worker_buffer_size,
          )
      )
    return iter(ds)

  def __iter__(self) -> "TrainIterator":
    return TrainIterator(self)


class TrainIterator(grain.DatasetIterator):
  """Iterator over a :class:`TrainLoader` with exact save/restore.

  ``get_state()`` returns a small JSON-serialisable dict; ``set_state(state)``
  makes the iterator yield, from its next call on, exactly the batches that
  followed when the state was taken (this host's part of them, if the state
  came from a run with another ``process_count``). It is a
  ``grain.DatasetIterator``, so grain's Orbax checkpoint handler
  (``grain.checkpoint.CheckpointHandler``) can save and restore it too.

  Call ``close()`` when done with an iterator that uses worker processes.
  """

  def __init__(self, loader: TrainLoader, next_batch: int = 0):
    super().__init__()
    self._loader = loader
    self._next_batch = next_batch
    self._it = loader.iter_from(next_batch)

  @property
  def loader(self) -> TrainLoader:
    return self._loader

  @property
  def next_batch(self) -> int:
    """Number of the batch the next ``next()`` returns (0-based)."""
    return self._next_batch

  def __next__(self) -> dict[str, np.ndarray]:
    self._assert_not_closed()
    batch = next(self._it)
    self._next_batch += 1
    return batch

  def get_state(self) -> dict[str, Any]:
    return {
        "version": _STATE_VERSION,
        "next_batch": self._next_batch,
        "pipeline": self._loader.fingerprint(),
        # For people reading checkpoints; not checked (paths may move).
        "source": repr(self._loader.source),
        "process": [self._loader.process_index, self._loader.process_count],
    }

  def set_state(self, state: dict[str, Any] | bytes | str) -> None:
    """Restores a state from :meth:`get_state` (dict, or its JSON text)."""
    if isinstance(state, (bytes, str)):
      state = json.loads(state)
    if not isinstance(state, dict) or "next_batch" not in state:
      raise ValueError(
          f"TrainIterator.set_state: not a TrainIterator state: {state!r}. "
          "Pass the dict returned by TrainIterator.get_state()."
      )
    if state.get("version") != _STATE_VERSION:
      raise ValueError(
          f"TrainIterator.set_state: state version {state.get('version')!r} "
          f"is not supported (this code reads version {_STATE_VERSION})."
      )
    expected = self._loader.fingerprint()
    saved = state.get("pipeline", {})
    diff = {
        k: (saved.get(k), v) for k, v in expected.items() if saved.get(k) != v
    }
    if diff:
      lines = "\n".join(
          f"  {k}: saved {a!r}, now {b!r}" for k, (a, b) in sorted(diff.items())
      )
      raise ValueError(
          "TrainIterator.set_state: the state was saved by a different input "
          "pipeline, so resuming would not continue the same data order:\n"
          f"{lines}\nRebuild the loader with the saved settings, or start "
          "from batch 0 instead of restoring."
      )
    next_batch = int(state["next_batch"])
    if next_batch < 0:
      raise ValueError(
          f"TrainIterator.set_state: negative next_batch {next_batch}."
      )
    self._close_inner()
    self._it = self._loader.iter_from(next_batch)
    self._next_batch = next_batch

  def start_prefetch(self) -> None:
    start = getattr(self._it, "start_prefetch", None)
    if start is not None:
      start()

  def _close_inner(self) -> None:
    close = getattr(getattr(self, "_it", None), "close", None)
    if close is not None:
      close()

  def close(self) -> None:
    if not self._closed:
      self._close_inner()
    super().close()

  def __str__(self) -> str:
    return f"TrainIterator(next_batch={self._next_batch})"


def _check_int(name: str, value: Any, minimum: int) -> int:
  if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
    raise TypeError(f"make_train_loader: {name} must be an int, got {value!r}.")
  if value < minimum:
    raise ValueError(
        f"make_train_loader: {name} must be >= {minimum}, got {value}."
    )
  return int(value)


def make_train_loader(
    source: Any,
    global_batch_size: int,
    seed: int,
    *,
    process_index: Optional[int] = None,
    process_count: Optional[int] = None,
    worker_count: int = 0,
    worker_buffer_size: int = 2,
    num_threads: Optional[int] = None,
    prefetch_buffer_size: int = 4,
    num_epochs: Optional[int] = None,
) -> TrainLoader:
  """Builds the training input pipeline for this host.

  See the module docstring for the exact order. Properties:

  * each local batch is ``{"image": uint8 (b, H, W, C), "label": int32 (b,),
    "index": int32 (b,)}`` (``index``: the records' indices in ``source``)
    with ``b = global_batch_size // process_count``;
  * the order is a deterministic function of ``seed``, ``len(source)`` and
    ``global_batch_size`` only -- not of ``process_count``, ``worker_count``
    or thread counts;
  * every epoch is a new permutation; hosts get disjoint records of every
    global batch;
  * the iterator saves and restores its exact position
    (:class:`TrainIterator`).

  Args:
    source: a random-access source (``len``, ``[i]`` -> ``{"image", "label"}``),
      e.g. from :mod:`ssl_jax.data.sources`. Images must share one shape.
    global_batch_size: batch size summed over all hosts, at most
      ``len(source)`` and divisible by ``process_count``.
    seed: non-negative int seed of the shuffle.
    process_index: this host's index; defaults to ``jax.process_index()``.
    process_count: number of hosts; defaults to ``jax.process_count()``.
    worker_count: grain worker processes reading and stacking batches
      (0: in this process). Use >0 for sources that decode (TFDS).
    worker_buffer_size: batches each worker prepares ahead.
    num_threads: threads reading batches ahead in this process (and in each
      worker). None: 0 for an in-memory :class:`ArraySource` (one vectorised
      gather per batch needs none), else ``prefetch_buffer_size``.
    prefetch_buffer_size: batches read ahead by those threads.
    num_epochs: None for an endless stream; otherwise stop after
      ``num_epochs * len(source) // global_batch_size`` batches.

  Raises:
    ValueError / TypeError: on invalid sizes, indices or seed, with the fix.
  """
  num_records = len(source)
  global_batch_size = _check_int("global_batch_size", global_batch_size, 1)
  seed = _check_int("seed", seed, 0)
  worker_count = _check_int("worker_count", worker_count, 0)
  worker_buffer_size = _check_int("worker_buffer_size", worker_buffer_size, 1)
  prefetch_buffer_size = _check_int(
      "prefetch_buffer_size", prefetch_buffer_size, 0
  )
  if num_epochs is not None:
    num_epochs = _check_int("num_epochs", num_epochs, 1)
  if process_index is None or process_count is None:
    import jax  # pylint: disable=g-import-not-at-top

    if process_index is None:
      process_index = jax.process_index()
    if process_count is None:
      process_count = jax.process_count()
  process_count = _check_int("process_count", process_count, 1)
  process_index = _check_int("process_index", process_index, 0)
  if process_index >= process_count:
    raise ValueError(
        f"make_train_loader: process_index={process_index} must be < "
        f"process_count={process_count}."
    )
  shard = grain.sharding.ShardOptions(
      shard_index=process_index, shard_count=process_count, drop_remainder=True
  )
  if global_batch_size % shard.shard_count:
    lower = global_batch_size // shard.shard_count * shard.shard_count
    raise ValueError(
        f"make_train_loader: global_batch_size={global_batch_size} is not "
        f"divisible by process_count={shard.shard_count}; every host needs the "
        f"same local batch. Use a multiple of {shard.shard_count}, e.g. "
        f"{lower or shard.shard_count} or {lower + shard.shard_count}."
    )
  if global_batch_size > num_records:
    raise ValueError(
        f"make_train_loader: global_batch_size={global_batch_size} is larger "
        f"than the dataset ({num_records} records in {source!r}). Use a batch "
        f"of at most {num_records}."
    )
  if num_epochs is not None and num_epochs * num_records < global_batch_size:
    raise ValueError(
        f"make_train_loader: num_epochs={num_epochs} of {num_records} records "
        f"do not fill one batch of {global_batch_size}."
    )
  if num_threads is None:
    in_memory = isinstance(source, sources_lib.ArraySource)
    num_threads = 0 if in_memory else prefetch_buffer_size
  num_threads = _check_int("num_threads", num_threads, 0)

  local_batch_size = global_batch_size // shard.shard_count
  start = shard.shard_index * local_batch_size
  batches = (
      grain.MapDataset.range(num_records)
      .shuffle(seed=_shuffle_seed(seed))
      .repeat(num_epochs)
      .batch(global_batch_size, drop_remainder=True)
      .map(_HostRows(start, start + local_batch_size))
      .map(_ReadBatch(source))
  )
  return TrainLoader(
      source=source,
      global_batch_size=global_batch_size,
      local_batch_size=local_batch_size,
      seed=seed,
      process_index=shard.shard_index,
      process_count=shard.shard_count,
      num_epochs=num_epochs,
      worker_count=worker_count,
      worker_buffer_size=worker_buffer_size,
      read_options=grain.ReadOptions(
          num_threads=num_threads, prefetch_buffer_size=prefetch_buffer_size
      ),
      batches=batches,
  )


def iterate_batches(
    images: np.ndarray,
    labels: np.ndarray,
    batch_size: int,
) -> Iterator[dict[str, np.ndarray]]:
  """Sequential evaluation batches with a padded, masked last batch.

  Yields ``ceil(N / batch_size)`` dicts, every one of exactly ``batch_size``
  rows (so a jitted eval step compiles once):

  * ``"image"``: ``images[i*bs:(i+1)*bs]``; the last batch is padded with
    zeros;
  * ``"label"``: int32, padded with 0;
  * ``"mask"``: bool, True for real rows, False for padding.

  Weight per-example results by ``mask`` (e.g. ``sum(correct * mask)``) and
  drop padded rows of features with ``features[mask]``. Concatenating the
  real rows of all batches gives back the inputs in order.
  """
  images = np.asarray(images)
  labels = np.asarray(labels)
  if (isinstance(batch_size, bool)
      or not isinstance(batch_size, (int, np.integer)) or batch_size < 1):
    raise ValueError(
        f"iterate_batches: batch_size must be a positive int, got "
        f"{batch_size!r}."
    )
  if labels.ndim != 1 or len(images) != len(labels):
    raise ValueError(
        f"iterate_batches: got images {images.shape} and labels "
        f"{labels.shape}; expected (N, ...) and (N,)."
    )
  n = len(labels)
  for start in range(0, n, batch_size):
    stop = min(start + batch_size, n)
    real = stop - start
    img = images[start:stop]
    lab = labels[start:stop].astype(np.int32)
    mask = np.ones(batch_size, dtype=bool)
    if real < batch_size:
      pad = batch_size - real
      img = np.concatenate([img, np.zeros((pad,) + img.shape[1:], img.dtype)])
      lab = np.concatenate([lab, np.zeros(pad, np.int32)])
      mask[real:] = False
    yield {"image": img, "label": lab, "mask": mask}
