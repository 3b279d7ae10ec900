"""MoCo: 8 devices == 1 device with shuffling BN, the queue, the key encoder's EMA."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ssl_jax import methods
from ssl_jax.methods import base
from ssl_jax.methods import moco
from ssl_jax.train import optim
from ssl_jax.train import step as step_lib

from tests.conftest import load_config
from tests.methods.common import assert_eight_devices_match_one
from tests.methods.common import digits_batch

NUM_STEPS = 3  # the queue holds 2 batches: step 3 wraps around


def tiny_moco_config():
  """MoCo v2 on 16 digits in 8 BN groups of 2, queue of 2 batches."""
  config = load_config("moco", "digits")
  config.model.depth = 10
  config.model.width_multiplier = 0.125
  # Views of 16x16: the last stage is 2x2, so a BN group of 2 images still
  # has 8 values per channel. At 8x8 (1x1 there) BatchNorm over 2 values is
  # so ill-conditioned that float32 rounding alone separates 8 devices from 1.
  config.augment.crop_size = 16
  config.moco.proj_hidden_dim = 16
  config.moco.dim = 16
  config.moco.queue_size = 32
  config.moco.bn_groups = 8
  config.moco.momentum = 0.99
  config.train.batch_size = 16
  config.optim.warmup_steps = 1
  return config


def host_copy(tree):
  return jax.tree.map(np.array, jax.device_get(tree))


@pytest.fixture(scope="module")
def config():
  return tiny_moco_config()


@pytest.fixture(scope="module")
def run(config):
  """3 steps on 8 devices: the method, the batch, the state before and after
  every step, and every device's copy of the queue after every step."""
  images, labels = digits_batch(config.train.batch_size)
  mesh = step_lib.make_mesh()
  method = methods.get_method(config, num_classes=10, total_steps=10)
  tx, _ = optim.make_optimizer(config.optim, 10, config.train.batch_size)
  state = host_copy(method.init_state(jax.random.PRNGKey(0), images.shape[1:], tx))
  states, queue_copies = [state], []
  state = step_lib.replicate(state, mesh)
  train_step = step_lib.make_train_step(method, tx, mesh)
  for _ in range(NUM_STEPS):
    state, _ = train_step(state, *step_lib.shard_batch((images, labels), mesh))
    queue_copies.append(
        [np.array(shard.data) for shard in state.queue.addressable_shards])
    states.append(host_copy(state))
  return method, images, states, queue_copies


@pytest.fixture(scope="module")
def expected_keys(run):
  """The keys of a step, computed apart from the method's gather code.

  The step's key views, the global permutation, the key encoder run on each
  BN group of the permuted batch one at a time, the keys put back in batch
  order by plain indexing, L2-normalised.
  """
  method = run[0]
  views = jax.jit(method.views)
  project = jax.jit(lambda p, s, x: method.network.apply(
      {"params": p, "batch_stats": s}, x, train=True, mutable=["batch_stats"],
      method=base.SiameseNetwork.project)[0])

  def keys_of_step(state, images, shuffle=True):
    batch = images.shape[0]
    step_key = jax.random.fold_in(state.rng, state.step)
    example_keys = jax.vmap(jax.random.fold_in, in_axes=(None, 0))(
        step_key, jnp.arange(batch))
    view_k = np.asarray(views(example_keys, images)[1])
    perm = (np.asarray(moco.shuffle_permutation(state.rng, state.step, batch))
            if shuffle else np.arange(batch))
    group = batch // method.bn_groups
    keys = np.zeros((batch, method.config.moco.dim), np.float32)
    for start in range(0, batch, group):
      rows = perm[start:start + group]
      z = np.asarray(project(state.ema_params, state.ema_batch_stats,
                             view_k[rows]))
      keys[rows] = z / np.linalg.norm(z, axis=1, keepdims=True)
    return keys

  return keys_of_step


def test_eight_devices_match_one(config):
  _, _, history = assert_eight_devices_match_one(config, num_steps=NUM_STEPS)
  for metrics in history:
    for name in ("contrastive_loss", "contrastive_acc", "pos_sim", "neg_sim",
                 "probe_loss", "probe_acc", "embedding_std", "effective_rank"):
      assert np.isfinite(metrics[name]), name
    np.testing.assert_allclose(metrics["ema_momentum"], 0.99, rtol=1e-6)


def test_queue_holds_the_keys_of_every_replica_in_order(run, expected_keys):
  method, images, states, queue_copies = run
  batch, size = images.shape[0], method.queue_size
  pointers = [int(s.queue_ptr) for s in states]
  assert pointers == [0, 16, 0, 16]  # step 3 wrapped around
  for t in range(1, NUM_STEPS + 1):
    before, after = states[t - 1], states[t]
    # Every device holds the same queue, bit for bit.
    for copy in queue_copies[t - 1]:
      np.testing.assert_array_equal(copy, queue_copies[t - 1][0])
    ptr = pointers[t - 1]
    written = np.arange(ptr, ptr + batch)
    np.testing.assert_allclose(after.queue[written],
                               expected_keys(before, images),
                               atol=2e-5)
    kept = np.setdiff1d(np.arange(size), written)
    np.testing.assert_array_equal(after.queue[kept], before.queue[kept])
  # Step 3 overwrote the oldest keys (step 1's), kept step 2's.
  assert not np.allclose(states[3].queue[:batch], states[1].queue[:batch],
                         atol=1e-3)
  np.testing.assert_array_equal(states[3].queue[batch:], states[2].queue[batch:])


def test_keys_are_computed_with_shuffled_bn_groups(run, expected_keys):
  # Without the shuffle the BN groups of the keys would be those of the
  # queries, and the keys measurably different.
  _, images, states, _ = run
  unshuffled = expected_keys(states[0], images, shuffle=False)
  assert np.max(np.abs(states[1].queue[:16] - unshuffled)) > 1e-3


def test_key_encoder_is_the_ema_of_the_query_encoder(run, config):
  method, _, states, _ = run
  m = config.moco.momentum
  init = states[0]
  assert set(init.ema_params) == set(method.target_modules)
  for name in method.target_modules:  # starts as a copy
    jax.tree.map(np.testing.assert_array_equal, init.ema_params[name],
                 init.params[name])
  for before, after in zip(states[:-1], states[1:]):
    expected = jax.tree.map(lambda k, q: m * k + (1 - m) * q,
                            before.ema_params,
                            {n: after.params[n] for n in before.ema_params})
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6,
                                                         atol=1e-8),
                 after.ema_params, expected)
    # The key encoder's BN statistics come from its own forward pass.
    changed = jax.tree.map(lambda a, b: np.max(np.abs(a - b)),
                           after.ema_batch_stats, before.ema_batch_stats)
    assert min(jax.tree.leaves(changed)) > 0
  # The query encoder moved (step 1 has lr 0: warmup), so the check is not
  # vacuous, and the key encoder lags behind it.
  moved = jax.tree.map(lambda a, b: np.max(np.abs(a - b)),
                       states[-1].params["encoder"], states[1].params["encoder"])
  assert max(jax.tree.leaves(moved)) > 1e-3
  lag = jax.tree.map(lambda a, b: np.max(np.abs(a - b)),
                     states[-1].params["encoder"], states[-1].ema_params["encoder"])
  assert max(jax.tree.leaves(lag)) > 1e-4


@pytest.mark.parametrize("field, value, match", [
    ("bn_groups", 6, "bn_groups=6 must divide"),
    ("bn_groups", 16, "groups of at least 2"),
    ("queue_size", 40, "queue_size=40 must be a positive multiple of"),
    ("version", 3, "version=3"),
    ("momentum_schedule", "linear", "momentum_schedule"),
])
def test_bad_settings_are_refused_at_init(config, field, value, match):
  bad = tiny_moco_config()
  bad.moco[field] = value
  with pytest.raises(ValueError, match=match):
    methods.get_method(bad, num_classes=10, total_steps=10)


def test_bn_groups_not_divisible_by_the_devices_is_refused():
  config = tiny_moco_config()
  config.moco.bn_groups = 4
  method = methods.get_method(config, num_classes=10, total_steps=10)
  tx, _ = optim.make_optimizer(config.optim, 10, 16)
  state = jax.eval_shape(
      lambda: method.init_state(jax.random.PRNGKey(0), (8, 8, 1), tx))
  train_step = step_lib.make_train_step(method, tx, step_lib.make_mesh())
  images = jax.ShapeDtypeStruct((16, 8, 8, 1), np.uint8)
  labels = jax.ShapeDtypeStruct((16,), np.int32)
  with pytest.raises(ValueError, match="multiple of 8"):
    jax.eval_shape(train_step, state, images, labels)
