"""experiments/torch_reference.py: the PyTorch model mirrors ssl_jax's SimCLR
network (parameter count and shapes), its NT-Xent equals ssl_jax's, and the
step timer runs. Skipped without torch (an optional dependency)."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

torch = pytest.importorskip("torch")

from ssl_jax import losses  # pylint: disable=g-import-not-at-top
from ssl_jax import methods  # pylint: disable=g-import-not-at-top

from tests.conftest import load_config  # pylint: disable=g-import-not-at-top
from tests.experiments import load_script  # pylint: disable=g-import-not-at-top

torch_reference = load_script("torch_reference")


def _torch_shape(flax_shape):
  """A flax parameter shape in torch's layout: HWIO -> OIHW, (in, out) -> (out, in)."""
  if len(flax_shape) == 4:
    h, w, i, o = flax_shape
    return (o, i, h, w)
  if len(flax_shape) == 2:
    return tuple(reversed(flax_shape))
  return tuple(flax_shape)


@pytest.mark.parametrize("depth,width,stem", [(18, 0.125, "cifar"),
                                              (50, 0.25, "imagenet")])
def test_parameters_match_ssl_jax_simclr(depth, width, stem):
  config = load_config("simclr", "cifar10")
  config.model.depth = depth
  config.model.width_multiplier = width
  config.model.stem = stem
  method = methods.get_method(config, num_classes=10, total_steps=10)
  images = jnp.zeros((2, 32, 32, 3), jnp.float32)
  variables = jax.eval_shape(lambda: method.network.init(
      jax.random.PRNGKey(0), images, train=False))
  # The online linear probe is ssl_jax's addition, not part of SimCLR's net.
  params = {k: v for k, v in variables["params"].items() if k != "online_probe"}
  assert set(params) == {"encoder", "projector"}
  jax_shapes = sorted(_torch_shape(x.shape) for x in jax.tree.leaves(params))
  jax_count = sum(math.prod(x.shape) for x in jax.tree.leaves(params))
  jax_stats = sum(math.prod(x.shape)
                  for x in jax.tree.leaves(variables["batch_stats"]))

  model = torch_reference.build_simclr_model(
      depth, width, stem, proj_layers=config.simclr.proj_layers,
      proj_hidden_dim=config.simclr.proj_hidden_dim,
      proj_dim=config.simclr.proj_dim)
  torch_shapes = sorted(tuple(p.shape) for p in model.parameters())
  torch_stats = sum(b.numel() for name, b in model.named_buffers()
                    if name.endswith(("running_mean", "running_var")))
  assert torch_reference.count_parameters(model) == jax_count
  assert torch_shapes == jax_shapes
  assert torch_stats == jax_stats  # same BatchNorm layers, same widths

  out = model.train()(torch.zeros(4, 3, 32, 32))
  assert tuple(out.shape) == (4, config.simclr.proj_dim)


def test_nt_xent_matches_ssl_jax():
  rng = np.random.default_rng(0)
  z1 = rng.normal(size=(16, 8)).astype(np.float32)
  z2 = rng.normal(size=(16, 8)).astype(np.float32)
  expected, _ = losses.nt_xent(jnp.asarray(z1), jnp.asarray(z2), temperature=0.5)
  expected_grad = jax.grad(
      lambda a: losses.nt_xent(a, jnp.asarray(z2), temperature=0.5)[0])(
          jnp.asarray(z1))

  t1 = torch.from_numpy(z1).requires_grad_(True)
  loss = torch_reference.nt_xent(t1, torch.from_numpy(z2), 0.5)
  loss.backward()
  np.testing.assert_allclose(loss.item(), float(expected), rtol=1e-5)
  np.testing.assert_allclose(t1.grad.numpy(), np.asarray(expected_grad),
                             rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_time_simclr_step_returns_positive_finite_timings(dtype):
  result = torch_reference.time_simclr_step(
      batch_size=8, image_size=16, width_multiplier=0.125, steps=1, warmup=1,
      dtype=dtype, device="cpu")
  assert math.isfinite(result["step_s"]) and result["step_s"] > 0
  assert math.isfinite(result["images_per_sec"])
  assert result["images_per_sec"] == pytest.approx(8 / result["step_s"])
  assert result["num_params"] > 0
  assert isinstance(result["channels_last"], bool)
  assert result["threads"] >= 1
  assert result["torch_version"] == torch.__version__
  assert (result["device"], result["dtype"]) == ("cpu", dtype)


def test_bfloat16_autocast_step_computes_the_float32_loss_roughly():
  setting = dict(batch_size=8, image_size=16, depth=18, width_multiplier=0.125,
                 stem="cifar", proj_hidden_dim=32, proj_dim=16,
                 temperature=0.5, channels_last=False, seed=0, device="cpu")
  losses_by_dtype = {
      dtype: float(torch_reference._make_step(dtype=dtype, **setting)[1]())  # pylint: disable=protected-access
      for dtype in ("float32", "bfloat16")}
  assert math.isfinite(losses_by_dtype["bfloat16"])
  assert losses_by_dtype["bfloat16"] == pytest.approx(
      losses_by_dtype["float32"], rel=2e-2)
  with pytest.raises(ValueError, match="dtype must be one of"):
    torch_reference._make_step(dtype="float16", **setting)  # pylint: disable=protected-access
