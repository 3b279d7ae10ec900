"""Synthetic scenes: 8 devices == 1 with the domain classifier, the
reversal layer flips the sign of the encoder's gradient from the domain
classifier exactly (and leaves the classifier's own), the targets are the
renderer's labels, a reversal scale of 0 cuts the classifier off the
encoder, and bad settings fail clearly."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ssl_jax import losses
from ssl_jax import methods
from ssl_jax.data import synthetic_scenes as scenes_data
from ssl_jax.train import defaults

from tests.conftest import load_config
from tests.methods.common import assert_eight_devices_match_one

BATCH = 16
SIZE = 16


@pytest.fixture(scope="module")
def real_dir(tmp_path_factory):
  """An npz folder of 32 random 16x16 RGB 'real' images."""
  folder = tmp_path_factory.mktemp("real")
  rng = np.random.default_rng(0)
  for split in ("train", "test"):
    np.savez(folder / f"{split}.npz",
             image=rng.integers(0, 256, (32, SIZE, SIZE, 3), dtype=np.uint8),
             label=rng.integers(0, 10, 32))
  return str(folder)


def tiny_config(real_dir, preset="cifar10", **settings):
  config = load_config("synthetic_scenes", preset)
  config.data.scenes.update(frame_size=SIZE, textures="procedural",
                            min_radius=2.0, max_radius=5.0,
                            real_dir=real_dir if config.data.scenes.real_dir
                            else "")
  config.augment.crop_size = SIZE
  config.model.depth = 10
  config.train.batch_size = BATCH
  config.optim.warmup_steps = 1
  config.synthetic_scenes.domain.ramp = False
  config.synthetic_scenes.update(settings)
  return config


def scene_batch(config, size=BATCH):
  """``(images, labels dict)`` as the loop feeds the method."""
  source = scenes_data.load_synthetic_scenes("train", config.data.scenes)
  records = source.read_batch(range(size))
  method = methods.get_method(config, num_classes=3, total_steps=10)
  labels = {"label": records["label"],
            **{field: records[field] for field in method.batch_fields}}
  return records["image"], labels


def test_eight_devices_match_one_with_domain_alignment(real_dir):
  config = tiny_config(real_dir)
  defaults.use_sgd(config, base_lr=0.01, weight_decay=0.0)
  _, _, history = assert_eight_devices_match_one(
      config, num_steps=2, batch=scene_batch(config), rtol=1e-4)
  metrics = history[-1]
  for name in ("depth_loss", "segmentation_loss", "edges_loss", "flow_loss",
               "domain_loss", "domain_acc", "abs_rel", "mean_iou",
               "flow_epe", "flow_zero_epe", "edges_f1"):
    assert np.isfinite(metrics[name]), name
  np.testing.assert_allclose(metrics["reversal_scale"], 0.3)


def _domain_gradient_fn(method, variables, inputs):
  """``scale -> d(domain loss) / d(params)``, compiled once."""
  def domain_loss(params, scale):
    outputs = method.network.apply(
        {"params": params, "batch_stats": variables["batch_stats"]}, inputs,
        train=True, reversal_scale=scale, mutable=["batch_stats"])[0]
    return losses.domain_adversarial(outputs["source_logits"],
                                     outputs["target_logits"])[0]
  gradient = jax.jit(jax.grad(domain_loss))
  return lambda scale: gradient(variables["params"], jnp.float32(scale))


def test_gradient_reversal_flips_the_encoder_gradient_exactly(real_dir):
  config = tiny_config(real_dir)
  # One device, no mapped axis: BatchNorm over the local batch.
  method = methods.method_class("synthetic_scenes")(config, 3, 10,
                                                    axis_name=None)
  images, labels = scene_batch(config, 4)
  inputs, _ = method.inputs_and_targets(None, images, labels)
  variables = jax.jit(method.network.init, static_argnames="train")(
      jax.random.PRNGKey(0), inputs, train=False)
  # Scale -1 passes the classifier's gradient through unchanged: the plain
  # gradient of the domain loss, as without a reversal layer.
  gradients = _domain_gradient_fn(method, variables, inputs)
  plain, reversed_, halved, cut = (gradients(scale)
                                   for scale in (-1.0, 1.0, 0.5, 0.0))
  encoder_leaves = jax.tree.leaves(plain["encoder"])
  assert max(float(jnp.max(jnp.abs(g))) for g in encoder_leaves) > 0
  jax.tree.map(lambda a, b: np.testing.assert_array_equal(a, -b),
               reversed_["encoder"], plain["encoder"])
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, -0.5 * b, rtol=1e-6),
               halved["encoder"], plain["encoder"])
  jax.tree.map(lambda a: np.testing.assert_array_equal(a, 0.0), cut["encoder"])
  # The classifier's own gradient does not depend on the reversal.
  for grads in (reversed_, cut):
    jax.tree.map(np.testing.assert_array_equal, grads["discriminator"],
                 plain["discriminator"])
  # The decoder does not see the domain loss.
  jax.tree.map(lambda a: np.testing.assert_array_equal(a, 0.0),
               plain["decoder"])


def test_targets_are_the_renderers_labels(real_dir):
  config = tiny_config(real_dir)
  method = methods.get_method(config, num_classes=3, total_steps=10)
  assert method.batch_fields == ("next_image", "depth", "semantics", "edges",
                                 "flow", "real_image")
  images, labels = scene_batch(config, 4)
  inputs, targets = method.inputs_and_targets(None, images, labels)
  assert inputs["frames"].shape == (4, 2, SIZE, SIZE, 3)
  assert inputs["real"].shape == (4, SIZE, SIZE, 3)
  for key in ("depth", "semantics", "edges", "flow"):
    np.testing.assert_array_equal(targets[key], labels[key])
  # Without flow the network reads frame t only, and frame t + 1 is not read.
  single = methods.get_method(
      tiny_config(real_dir, "synthetic_only", flow_weight=0.0), 3, 10)
  assert single.num_frames == 1 and single.domain is None
  assert single.batch_fields == ("depth", "semantics", "edges")


def test_bad_settings_are_refused(real_dir):
  config = tiny_config(real_dir)
  config.augment.crop_size = 8
  with pytest.raises(ValueError, match="crop_size=16"):
    methods.get_method(config, 3, 10)
  config = tiny_config(real_dir)
  config.data.scenes.real_dir = ""
  with pytest.raises(ValueError, match="real_dir"):
    methods.get_method(config, 3, 10)
  config = tiny_config(real_dir)
  config.data.source = "npz"
  with pytest.raises(ValueError, match="synthetic_scenes"):
    methods.get_method(config, 3, 10)
  with pytest.raises(ValueError, match="reversal_scale"):
    methods.get_method(tiny_config(real_dir, domain=dict(
        enabled=True, reversal_scale=-1.0, ramp=False, hidden_dim=8)), 3, 10)
