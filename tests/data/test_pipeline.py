"""Tests for ssl_jax.data.pipeline: order, sharding, epochs, exact resume."""
import itertools
import json

from absl import flags
import grain
import numpy as np
import pytest

from ssl_jax.data import pipeline
from ssl_jax.data import sources

# grain worker processes read absl flags; pytest never parses them.
flags.FLAGS.mark_as_parsed()


def _id_source(n):
  """Record i has label i and pixels that encode i, to check alignment."""
  images = np.zeros((n, 2, 3, 1), np.uint8)
  images[:, 0, 0, 0] = np.arange(n) % 256
  images[:, 0, 1, 0] = np.arange(n) // 256
  return sources.ArraySource(images, np.arange(n), n, name=f"ids{n}")


def _ids(batch):
  img = batch["image"].astype(np.int64)
  from_pixels = img[:, 0, 0, 0] + 256 * img[:, 0, 1, 0]
  np.testing.assert_array_equal(from_pixels, batch["label"])
  # Record i has label i: the index travels with its record.
  np.testing.assert_array_equal(batch["index"], batch["label"])
  return batch["label"]


def _take(iterator, k):
  return [_ids(b) for b in itertools.islice(iterator, k)]


def _loader(src, batch=8, seed=0, index=0, count=1, **kw):
  return pipeline.make_train_loader(
      src, batch, seed, process_index=index, process_count=count, **kw
  )


def test_batches_shape_and_dtype():
  src = sources.load_digits("test")
  loader = _loader(src, batch=16, index=1, count=2)
  assert loader.local_batch_size == 8
  batch = next(iter(loader))
  assert set(batch) == {"image", "label", "index"}
  assert batch["index"].dtype == np.int32
  np.testing.assert_array_equal(src.images[batch["index"]], batch["image"])
  assert batch["image"].shape == (8, 8, 8, 1)
  assert batch["image"].dtype == np.uint8
  assert batch["label"].shape == (8,)
  assert batch["label"].dtype == np.int32
  # Images travel with their labels.
  for img, lab in zip(batch["image"], batch["label"]):
    match = np.flatnonzero((src.images == img).all(axis=(1, 2, 3)))
    assert lab in src.labels[match]


def test_one_epoch_covers_each_record_once_and_epochs_reshuffle():
  loader = _loader(_id_source(64), batch=16)
  batches = _take(iter(loader), 8)  # two epochs
  epoch0 = np.concatenate(batches[:4])
  epoch1 = np.concatenate(batches[4:])
  np.testing.assert_array_equal(np.sort(epoch0), np.arange(64))
  np.testing.assert_array_equal(np.sort(epoch1), np.arange(64))
  assert not np.array_equal(epoch0, epoch1)
  assert not np.array_equal(epoch0, np.arange(64))  # actually shuffled


def test_batches_straddle_epochs_without_dropping_records():
  # 50 records, batch 20: the stream is still a sequence of permutations.
  stream = np.concatenate(_take(iter(_loader(_id_source(50), batch=20)), 10))
  for e in range(4):
    np.testing.assert_array_equal(
        np.sort(stream[50 * e:50 * (e + 1)]), np.arange(50)
    )


def test_same_seed_same_order_different_seed_different_order():
  src = _id_source(64)
  a = np.concatenate(_take(iter(_loader(src, seed=3)), 8))
  b = np.concatenate(_take(iter(_loader(src, seed=3)), 8))
  c = np.concatenate(_take(iter(_loader(src, seed=4)), 8))
  np.testing.assert_array_equal(a, b)
  assert not np.array_equal(a, c)


def test_neighbouring_seeds_do_not_share_epochs():
  # grain reshuffles epoch e with (seed + e); the pipeline hashes user seeds
  # so seed 0's second epoch is not seed 1's first.
  src = _id_source(32)
  s0 = _take(iter(_loader(src, batch=32, seed=0)), 2)
  s1 = _take(iter(_loader(src, batch=32, seed=1)), 1)
  assert not np.array_equal(s0[1], s1[0])


def test_two_hosts_get_disjoint_halves_of_each_global_batch():
  src = _id_source(96)
  single = _take(iter(_loader(src, batch=16)), 12)
  host0 = _take(iter(_loader(src, batch=16, index=0, count=2)), 12)
  host1 = _take(iter(_loader(src, batch=16, index=1, count=2)), 12)
  for g, h0, h1 in zip(single, host0, host1):
    assert len(h0) == len(h1) == 8
    assert not set(h0) & set(h1)
    # Hosts in process order rebuild the one-host global batch exactly.
    np.testing.assert_array_equal(np.concatenate([h0, h1]), g)


def test_state_save_and_restore_is_exact():
  src = _id_source(40)
  it = iter(_loader(src, batch=8, seed=7))
  _take(it, 3)
  state = it.get_state()
  assert json.loads(json.dumps(state)) == state  # JSON-serialisable
  expected = _take(it, 9)  # crosses two epoch boundaries
  fresh = iter(_loader(src, batch=8, seed=7))
  fresh.set_state(state)
  assert fresh.next_batch == 3
  got = _take(fresh, 9)
  for e, g in zip(expected, got):
    np.testing.assert_array_equal(e, g)
  # JSON text (as written to a checkpoint) is accepted as well.
  again = iter(_loader(src, batch=8, seed=7))
  again.set_state(json.dumps(state).encode())
  np.testing.assert_array_equal(_take(again, 1)[0], expected[0])


def test_state_restores_on_another_number_of_hosts():
  # Global batches do not depend on process_count, so neither does the state.
  src = _id_source(48)
  it = iter(_loader(src, batch=8, seed=2))
  _take(it, 5)
  state = it.get_state()
  expected = _take(it, 4)
  halves = []
  for k in range(2):
    host = iter(_loader(src, batch=8, seed=2, index=k, count=2))
    host.set_state(state)
    halves.append(_take(host, 4))
  for e, h0, h1 in zip(expected, *halves):
    np.testing.assert_array_equal(np.concatenate([h0, h1]), e)


def test_state_with_grain_checkpoint_handler(tmp_path):
  src = _id_source(40)
  it = iter(_loader(src, batch=8))
  _take(it, 2)
  grain.checkpoint.CheckpointHandler().save(tmp_path, item=it)
  expected = _take(it, 2)
  fresh = iter(_loader(src, batch=8))
  grain.checkpoint.CheckpointHandler().restore(tmp_path, item=fresh)
  for e, g in zip(expected, _take(fresh, 2)):
    np.testing.assert_array_equal(e, g)


def test_set_state_rejects_a_different_pipeline():
  src = _id_source(40)
  it = iter(_loader(src, batch=8, seed=1))
  next(it)
  state = it.get_state()
  other = iter(_loader(src, batch=8, seed=2))
  with pytest.raises(ValueError, match="seed: saved 1, now 2"):
    other.set_state(state)
  bigger = iter(_loader(src, batch=4, seed=1))
  with pytest.raises(ValueError, match="global_batch_size: saved 8, now 4"):
    bigger.set_state(state)
  with pytest.raises(ValueError, match="not a TrainIterator state"):
    other.set_state({"next_index": 3})


def test_worker_processes_give_the_same_batches_and_state():
  src = _id_source(48)
  expected = _take(iter(_loader(src, batch=8, seed=5)), 6)
  it = iter(_loader(src, batch=8, seed=5, worker_count=1))
  try:
    got = _take(it, 3)
    state = it.get_state()
  finally:
    it.close()
  for e, g in zip(expected, got):
    np.testing.assert_array_equal(e, g)
  # A state taken with workers restores without them.
  fresh = iter(_loader(src, batch=8, seed=5))
  fresh.set_state(state)
  for e, g in zip(expected[3:], _take(fresh, 3)):
    np.testing.assert_array_equal(e, g)


def test_finite_epochs_stop_and_drop_the_remainder():
  loader = _loader(_id_source(50), batch=20, num_epochs=2)
  assert loader.num_batches == 5
  batches = _take(iter(loader), 100)
  assert len(batches) == 5
  assert all(len(b) == 20 for b in batches)


def test_defaults_to_jax_process():
  loader = pipeline.make_train_loader(_id_source(16), 8, 0)
  assert (loader.process_index, loader.process_count) == (0, 1)


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (dict(batch=10, count=4), ValueError,
         "global_batch_size=10 is not divisible by process_count=4.* 8 or 12"),
        (dict(batch=48), ValueError, "larger than the dataset.*40 records"),
        (dict(index=2, count=2), ValueError, "process_index=2 must be < process_count=2"),
        (dict(seed=-1), ValueError, "seed must be >= 0"),
        (dict(batch=0), ValueError, "global_batch_size must be >= 1"),
        (dict(batch=8.0), TypeError, "global_batch_size must be an int"),
    ],
)
def test_validation_errors(kwargs, error, match):
  with pytest.raises(error, match=match):
    _loader(_id_source(40), **kwargs)


class _ListSource:
  """A minimal grain-style source: only __len__ and __getitem__."""

  def __init__(self, n):
    self.inner = _id_source(n)

  def __len__(self):
    return len(self.inner)

  def __getitem__(self, i):
    return self.inner[i]


def test_generic_source_matches_array_source():
  a = _take(iter(_loader(_id_source(24), batch=8, seed=2)), 4)
  b = _take(iter(_loader(_ListSource(24), batch=8, seed=2)), 4)
  for x, y in zip(a, b):
    np.testing.assert_array_equal(x, y)


def test_iterate_batches_pads_and_masks_the_last_batch():
  images = np.arange(10 * 2 * 2 * 1, dtype=np.uint8).reshape(10, 2, 2, 1)
  labels = np.arange(10) % 3
  batches = list(pipeline.iterate_batches(images, labels, 4))
  assert len(batches) == 3
  for b in batches:
    assert b["image"].shape == (4, 2, 2, 1) and b["image"].dtype == np.uint8
    assert b["label"].dtype == np.int32 and b["mask"].dtype == bool
  np.testing.assert_array_equal(batches[-1]["mask"], [True, True, False, False])
  np.testing.assert_array_equal(batches[-1]["image"][2:], 0)
  real = lambda k: np.concatenate([b[k][b["mask"]] for b in batches])
  np.testing.assert_array_equal(real("image"), images)
  np.testing.assert_array_equal(real("label"), labels)
  # An exact multiple needs no padding.
  assert all(b["mask"].all() for b in pipeline.iterate_batches(images, labels, 5))


def test_iterate_batches_errors():
  with pytest.raises(ValueError, match="batch_size"):
    list(pipeline.iterate_batches(np.zeros((2, 1, 1, 1)), np.zeros(2), 0))
  with pytest.raises(ValueError, match="expected"):
    list(pipeline.iterate_batches(np.zeros((2, 1, 1, 1)), np.zeros(3), 2))


class _PairedSource(_ListSource):
  """Records with a second modality beside the image."""

  def __getitem__(self, i):
    return dict(self.inner[i], audio=np.full((5,), i, np.float32))


def test_further_record_fields_are_batched_with_their_records():
  batch = pipeline.read_records(_PairedSource(24), np.array([3, 7, 1]))
  np.testing.assert_array_equal(batch["index"], [3, 7, 1])
  np.testing.assert_array_equal(batch["label"], [3, 7, 1])
  assert batch["audio"].shape == (3, 5) and batch["audio"].dtype == np.float32
  np.testing.assert_array_equal(batch["audio"][:, 0], [3, 7, 1])
