"""MAE: 8 devices == 1, per-sample masking by the example's key, a loss on
the masked patches only (with and without per-patch normalised targets),
an encoder that sees only the visible tokens, evaluation features from the
whole image, reconstructions, and a few steps that lower the loss."""

import importlib.util

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ssl_jax import augment
from ssl_jax import methods
from ssl_jax.models.vit import Transformer

from tests.conftest import REPO_ROOT, load_config
from tests.methods.common import (assert_eight_devices_match_one,
                                  digits_batch, run_steps)

BATCH = 16
NUM_PATCHES = 16  # 8x8 digits, patch 2
NUM_KEPT = 4  # int(16 * (1 - 0.75))


def tiny_config():
  config = load_config("mae", "digits")
  config.model.width = 16
  config.model.depth = 1
  config.model.num_heads = 2
  config.mae.decoder_width = 8
  config.mae.decoder_depth = 1
  config.mae.decoder_heads = 2
  config.train.batch_size = BATCH
  config.optim.lr_scaling = "none"
  config.optim.base_lr = 3e-3
  config.optim.warmup_steps = 1
  return config


@pytest.fixture(scope="module")
def method():
  return methods.get_method(tiny_config(), num_classes=10, total_steps=10)


@pytest.fixture(scope="module")
def trained():
  return assert_eight_devices_match_one(tiny_config(), num_steps=2)


@pytest.fixture(scope="module")
def keys():
  """Per-example keys as the step makes them (one device: global index)."""
  step_key = jax.random.fold_in(jax.random.PRNGKey(0), 0)
  return jax.vmap(jax.random.fold_in, in_axes=(None, 0))(
      step_key, jnp.arange(BATCH))


def method_with(norm_pix_loss):
  config = tiny_config()
  config.mae.norm_pix_loss = norm_pix_loss
  return methods.get_method(config, num_classes=10, total_steps=10)


@pytest.fixture(scope="module")
def batch():
  return digits_batch(BATCH)


@pytest.fixture(scope="module")
def step_inputs(method, trained, keys, batch):
  """The step's views, mask and decoder output from the 1-device state
  (outside the step, the way loss_fn computes them), and loss_fn's own
  metrics for the same keys."""
  params = trained[1].params
  images, labels = batch

  @jax.jit
  def forward(params, keys, images, labels):
    view_keys, mask_keys = method.split_keys(keys)
    views = method.views(view_keys, images)
    outputs, mask, ids_restore = method.forward(params, views, mask_keys)
    _, (_, metrics) = method.loss_fn(params, None, keys, images, labels, None)
    return views, outputs["pred"], mask, ids_restore, metrics

  return jax.device_get(forward(params, keys, images, labels))


def reference_loss(pred, target, mask, norm_pix_loss):
  """MAE's forward_loss in numpy: per-patch MSE averaged over masked patches."""
  pred, target = np.float64(pred), np.float64(target)
  if norm_pix_loss:
    mean = target.mean(-1, keepdims=True)
    var = target.var(-1, keepdims=True, ddof=1)
    target = (target - mean) / np.sqrt(var + 1e-6)
  per_patch = ((pred - target) ** 2).mean(-1)
  return (per_patch * mask).sum() / mask.sum()


def test_eight_devices_match_one_and_the_state_is_plain(trained):
  init, state, history = trained
  assert sorted(state.params) == ["decoder", "encoder", "online_probe"]
  assert state.batch_stats == {} and state.ema_params is None
  assert state.queue is None
  for metrics in history:
    np.testing.assert_allclose(
        metrics["loss"], metrics["reconstruction_loss"] + metrics["probe_loss"],
        rtol=1e-5)
    assert metrics["mask_ratio"] == 0.75
    for name in ("probe_acc", "embedding_std", "effective_rank",
                 "visible_loss"):
      assert np.isfinite(metrics[name]), name
  # The decoder and the encoder both trained.
  for part in ("encoder", "decoder"):
    moved = jax.tree.leaves(jax.tree.map(
        lambda a, b: np.max(np.abs(a - b)), state.params[part],
        init.params[part]))
    assert max(moved) > 1e-4, part


def test_a_few_steps_lower_the_loss(batch):
  images, labels = batch
  _, _, history = run_steps(tiny_config(), jax.devices()[:1], images, labels,
                            num_steps=8)
  losses = [float(m["reconstruction_loss"]) for m in history]
  assert np.mean(losses[-2:]) < 0.8 * np.mean(losses[:2]), losses


def test_masking_per_sample(method, keys):
  masking = jax.jit(method.random_masking)
  mask, ids_keep, ids_restore = jax.device_get(masking(keys))
  assert method.num_kept == NUM_KEPT == int(round(NUM_PATCHES * 0.25))
  assert mask.shape == (BATCH, NUM_PATCHES)
  assert ids_keep.shape == (BATCH, NUM_KEPT)
  # Exactly NUM_KEPT visible patches per sample.
  np.testing.assert_array_equal((mask == 0).sum(1), NUM_KEPT)
  tokens = np.arange(NUM_PATCHES) + 100
  for i in range(BATCH):
    assert sorted(ids_restore[i]) == list(range(NUM_PATCHES))
    assert sorted(ids_keep[i]) == list(np.flatnonzero(mask[i] == 0))
    # ids_restore inverts the shuffle: kept tokens then mask tokens (-1),
    # gathered by ids_restore, land back at their own positions.
    shuffled = np.concatenate([tokens[ids_keep[i]],
                               np.full(NUM_PATCHES - NUM_KEPT, -1)])
    np.testing.assert_array_equal(shuffled[ids_restore[i]],
                                  np.where(mask[i] == 1, -1, tokens))
  # Different keys give different masks; the same keys the same masks.
  assert len({m.tobytes() for m in mask}) >= BATCH - 2
  again, _, _ = jax.device_get(masking(keys))
  np.testing.assert_array_equal(again, mask)
  other, _, _ = jax.device_get(masking(jax.random.split(jax.random.PRNGKey(5),
                                                        BATCH)))
  assert (other != mask).any(axis=1).sum() >= BATCH - 2


def test_views_and_masks_use_independent_keys(method, keys):
  view_keys, mask_keys = method.split_keys(keys)
  assert view_keys.shape == mask_keys.shape == keys.shape
  assert not np.array_equal(np.asarray(view_keys), np.asarray(mask_keys))


def test_patchify_unpatchify_round_trip(method):
  images = np.random.RandomState(0).rand(3, 8, 8, 1).astype(np.float32)
  patches = np.asarray(method.patchify(jnp.asarray(images)))
  assert patches.shape == (3, NUM_PATCHES, 4)
  # Patch (r, c) is the 2x2 block at (2r, 2c), row-major.
  np.testing.assert_array_equal(patches[1, 1 * 4 + 2],
                                images[1, 2:4, 4:6].reshape(-1))
  back = augment.unpatchify(jnp.asarray(patches), 2, 8, 8, 1)
  np.testing.assert_array_equal(np.asarray(back), images)


def test_loss_is_the_masked_patch_mse(method, step_inputs):
  views, pred, mask, _, metrics = step_inputs
  target = np.asarray(augment.patchify(views, 2))
  assert method.norm_pix_loss  # MAE's default, kept by the digits preset
  expected = reference_loss(pred, target, mask, norm_pix_loss=True)
  np.testing.assert_allclose(metrics["reconstruction_loss"], expected,
                             rtol=1e-5)
  visible = reference_loss(pred, target, 1 - mask, norm_pix_loss=True)
  np.testing.assert_allclose(metrics["visible_loss"], visible, rtol=1e-5)


@pytest.mark.parametrize("norm_pix_loss", [False, True])
def test_loss_ignores_visible_patches(method, step_inputs, norm_pix_loss):
  views, pred, mask, _, _ = step_inputs
  target = np.asarray(augment.patchify(views, 2))
  loss_fn = method_with(norm_pix_loss).reconstruction_loss
  loss, _ = loss_fn(pred, views, mask)
  np.testing.assert_allclose(
      loss, reference_loss(pred, target, mask, norm_pix_loss), rtol=1e-5)
  # Predictions on visible patches do not enter the loss or its gradient.
  noise = np.random.RandomState(1).normal(size=pred.shape) * 10
  changed = pred + noise * (1 - mask)[..., None]
  np.testing.assert_allclose(loss_fn(changed, views, mask)[0], loss,
                             rtol=1e-6)
  grad = jax.grad(lambda p: loss_fn(p, views, mask)[0])(pred)
  assert np.all(np.asarray(grad)[mask == 0] == 0)
  assert np.any(np.asarray(grad)[mask == 1] != 0)


def test_norm_pix_loss_normalises_each_target_patch(method, step_inputs):
  """With norm_pix_loss the target is each patch standardised by its own
  mean and unbiased variance: shifting and scaling a view's patches leaves
  the loss unchanged (up to the 1e-6 in the variance)."""
  views, pred, mask, _, _ = step_inputs
  loss_fn = method_with(True).reconstruction_loss
  loss, _ = loss_fn(pred, views, mask)
  rng = np.random.RandomState(2)
  shift = rng.normal(size=(BATCH, 4, 4, 1)).repeat(2, 1).repeat(2, 2)
  scale = rng.uniform(0.5, 2, size=(BATCH, 4, 4, 1)).repeat(2, 1).repeat(2, 2)
  varied = views * scale + shift
  # Blank patches (variance 0) stay 0 whatever the shift: compare the rest.
  target = np.asarray(method.patchify(views))
  live = mask * (target.var(-1, ddof=1) > 1e-2)
  loss_live, _ = loss_fn(pred, views, live)
  loss_varied, _ = loss_fn(pred, varied, live)
  np.testing.assert_allclose(loss_varied, loss_live, rtol=1e-3)
  normalised = (target - target.mean(-1, keepdims=True)) / np.sqrt(
      target.var(-1, ddof=1, keepdims=True) + 1e-6)
  np.testing.assert_allclose(
      loss, ((pred - normalised) ** 2).mean(-1)[mask == 1].mean(), rtol=1e-5)


def test_the_encoder_sees_only_the_visible_tokens(method, trained, keys,
                                                  step_inputs):
  views = step_inputs[0]
  params = trained[1].params
  _, mask_keys = method.split_keys(keys)

  def token_counts(images, mask_keys):
    mask, ids_keep, ids_restore = method.random_masking(mask_keys)
    _, inter = method.network.apply(
        {"params": params}, images, train=True, ids_keep=ids_keep,
        ids_restore=ids_restore, mutable=["intermediates"],
        capture_intermediates=lambda m, _: isinstance(m, Transformer))
    return inter["intermediates"]

  shapes = jax.eval_shape(token_counts, views, mask_keys)
  encoder = shapes["encoder"]["transformer"]["__call__"][0]
  decoder = shapes["decoder"]["transformer"]["__call__"][0]
  assert encoder.shape == (BATCH, 1 + NUM_KEPT, 16)  # class token + visible
  assert decoder.shape == (BATCH, 1 + NUM_PATCHES, 8)  # every patch


def test_encode_uses_the_whole_image_and_mean_pools(method, trained, batch):
  params = trained[1].params
  images = batch[0]
  features = jax.jit(method.encode)({"params": params, "batch_stats": {}},
                                    images)
  assert features.shape == (BATCH, 16)
  inputs = augment.batch_eval_views(images, method.view_recipes[0])

  def all_tokens(params, inputs):
    return method.network.apply({"params": params}, inputs, train=False,
                                method=lambda m, x, train: m.encoder(
                                    x, return_tokens=True))

  tokens = jax.jit(all_tokens)(params, inputs)
  assert tokens.shape == (BATCH, 1 + NUM_PATCHES, 16)
  np.testing.assert_allclose(features, tokens[:, 1:].mean(1), atol=1e-5)


@pytest.fixture(scope="module")
def reconstructions(method, trained, batch):
  params = trained[1].params
  return jax.device_get(jax.jit(method.reconstruct)(
      params, batch[0][:4], jax.random.PRNGKey(3)))


def test_reconstructions(reconstructions):
  r = reconstructions
  for name in ("original", "mask", "masked", "reconstruction", "pasted"):
    assert r[name].shape == (4, 8, 8, 1), name
  np.testing.assert_allclose(r["mask"].mean(axis=(1, 2, 3)), 0.75)
  visible = r["mask"] == 0
  np.testing.assert_array_equal(r["pasted"][visible], r["original"][visible])
  np.testing.assert_array_equal(r["pasted"][~visible],
                                r["reconstruction"][~visible])
  np.testing.assert_array_equal(r["masked"][~visible], 0.0)


def test_reconstruction_grid_png(method, reconstructions, tmp_path):
  spec = importlib.util.spec_from_file_location(
      "reconstructions", REPO_ROOT / "experiments" / "reconstructions.py")
  script = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(script)
  path = tmp_path / "reconstructions.png"
  panels = script.mae_panels(reconstructions, method.view_recipes[0])
  image = script.render(panels, str(path), panel_size=32)
  assert path.exists()
  # One row per image, four columns.
  from ssl_jax.augment import preview  # pylint: disable=g-import-not-at-top
  assert image.size == preview.grid_size(4 * 4, 32, columns=4)


def test_settings_are_checked():
  config = tiny_config()
  config.model = load_config("simclr", "digits").model
  with pytest.raises(ValueError, match="ViT encoder"):
    methods.get_method(config, 10, 10)
  config = tiny_config()
  config.model.patch_size = 3
  with pytest.raises(ValueError, match="multiple of"):
    methods.get_method(config, 10, 10)
  config = tiny_config()
  config.mae.mask_ratio = 0.97
  with pytest.raises(ValueError, match="keeps no patch"):
    methods.get_method(config, 10, 10)
