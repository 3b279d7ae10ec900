"""Tests for ssl_jax.train.optim: lr scaling, schedule, masks, optimizers."""
import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest

from ssl_jax.train.optim import (exclude_bias_and_norm, make_optimizer,
                                 scaled_learning_rate, warmup_cosine_schedule)


def _config(**overrides):
  cfg = ml_collections.ConfigDict(dict(
      name="lars", base_lr=0.3, lr_scaling="linear", warmup_steps=1,
      weight_decay=1e-2, momentum=0.9, trust_coefficient=0.01))
  cfg.update(overrides)
  return cfg


# ------------------------------ lr scaling --------------------------------
def test_scaled_learning_rate_values():
  assert scaled_learning_rate(0.3, 4096, "linear") == pytest.approx(4.8)
  assert scaled_learning_rate(0.3, 256, "linear") == pytest.approx(0.3)
  # SimCLR appendix B.1: 0.075 * sqrt(B).
  assert scaled_learning_rate(0.075, 4096, "sqrt") == pytest.approx(4.8)
  assert scaled_learning_rate(0.075, 100, "sqrt") == pytest.approx(0.75)
  assert scaled_learning_rate(1e-3, 4096, "none") == pytest.approx(1e-3)


def test_scaled_learning_rate_errors():
  with pytest.raises(ValueError, match="linear, sqrt, none"):
    scaled_learning_rate(0.1, 256, "quadratic")
  with pytest.raises(ValueError, match="global_batch_size"):
    scaled_learning_rate(0.1, 0, "linear")


# ------------------------------ schedule ----------------------------------
def test_warmup_cosine_schedule_key_points():
  s = warmup_cosine_schedule(0.6, total_steps=110, warmup_steps=10)
  np.testing.assert_allclose(s(0), 0.0, atol=1e-8)
  np.testing.assert_allclose(s(5), 0.3, rtol=1e-6)       # mid-warmup
  np.testing.assert_allclose(s(10), 0.6, rtol=1e-6)      # end of warmup
  np.testing.assert_allclose(s(60), 0.3, rtol=1e-5)      # middle of decay
  np.testing.assert_allclose(
      s(35), 0.3 * (1 + math.cos(math.pi * 25 / 100)), rtol=1e-5)
  np.testing.assert_allclose(s(110), 0.0, atol=1e-7)     # end
  np.testing.assert_allclose(s(200), 0.0, atol=1e-7)     # stays at 0
  values = np.asarray(s(jnp.arange(10, 111)))
  assert np.all(np.diff(values) <= 1e-7)                 # monotone decay


def test_warmup_cosine_schedule_without_warmup_and_errors():
  s = warmup_cosine_schedule(1.0, total_steps=10, warmup_steps=0)
  np.testing.assert_allclose(s(0), 1.0, rtol=1e-6)
  with pytest.raises(ValueError, match="warmup_steps"):
    warmup_cosine_schedule(1.0, total_steps=10, warmup_steps=10)
  with pytest.raises(ValueError, match="total_steps"):
    warmup_cosine_schedule(1.0, total_steps=0, warmup_steps=0)


# -------------------------------- mask ------------------------------------
class _SmallNet(nn.Module):

  @nn.compact
  def __call__(self, x, train: bool = True):
    x = nn.Conv(4, (3, 3))(x)
    x = nn.BatchNorm(use_running_average=not train)(x)
    x = nn.relu(x).mean(axis=(1, 2))
    x = nn.Dense(8)(x)
    x = nn.LayerNorm()(x)
    return nn.Dense(3, use_bias=False)(x)


def _small_net_variables():
  """Shapes from eval_shape, values from numpy (cheaper than compiling init)."""
  shapes = jax.eval_shape(_SmallNet().init, jax.random.key(0),
                          jnp.zeros((2, 8, 8, 3)))
  rng = np.random.default_rng(0)
  return jax.tree.map(
      lambda s: jnp.asarray(0.5 * rng.normal(size=s.shape), s.dtype), shapes)


def _small_net_params():
  return _small_net_variables()["params"]


def test_mask_excludes_exactly_biases_and_norm_params():
  params = _small_net_params()
  mask = exclude_bias_and_norm(params)
  flat = {"/".join(k.key for k in path): v
          for path, v in jax.tree_util.tree_leaves_with_path(mask)}
  assert flat == {
      "Conv_0/kernel": True, "Conv_0/bias": False,
      "BatchNorm_0/scale": False, "BatchNorm_0/bias": False,
      "Dense_0/kernel": True, "Dense_0/bias": False,
      "LayerNorm_0/scale": False, "LayerNorm_0/bias": False,
      "Dense_1/kernel": True,
  }


# ------------------------------ LARS --------------------------------------
def _numpy_lars(params, grads_seq, lrs, wd, eta, momentum, trust_form):
  """LARS with classic momentum, as in SimCLR's lars_optimizer.

  Included params (ndim > 1): u = g + wd * w, scaled by the trust ratio;
  excluded ones (biases/norm): u = g. Then v = m * v + lr * u; w -= v.
  trust_form 'decayed': eta * ||w|| / ||g + wd * w||   (SimCLR, optax)
  trust_form 'paper':   eta * ||w|| / (||g|| + wd * ||w||)   (You et al.)
  """
  w = {k: np.asarray(v, np.float64).copy() for k, v in params.items()}
  vel = {k: np.zeros_like(v) for k, v in w.items()}
  for grads, lr in zip(grads_seq, lrs):
    for k in w:
      g = np.asarray(grads[k], np.float64)
      if w[k].ndim > 1:
        u = g + wd * w[k]
        w_norm = np.linalg.norm(w[k])
        denom = (np.linalg.norm(u) if trust_form == "decayed"
                 else np.linalg.norm(g) + wd * w_norm)
        trust = eta * w_norm / denom if w_norm > 0 and denom > 0 else 1.0
        u = trust * u
      else:
        u = g
      vel[k] = momentum * vel[k] + lr * u
      w[k] = w[k] - vel[k]
  return w


def _lars_example():
  rng = np.random.default_rng(0)
  params = {"kernel": rng.normal(size=(3, 2)).astype(np.float32),
            "bias": rng.normal(size=(2,)).astype(np.float32)}
  grads_seq = [{k: rng.normal(size=v.shape).astype(np.float32)
                for k, v in params.items()} for _ in range(3)]
  return params, grads_seq


def _run_optax(tx, params, grads_seq):
  params = jax.tree.map(jnp.asarray, params)
  state = tx.init(params)
  for g in grads_seq:
    updates, state = tx.update(g, state, params)
    params = optax.apply_updates(params, updates)
  return params


@pytest.mark.parametrize("wd", [0.0, 0.1])
def test_lars_matches_numpy_reference(wd):
  params, grads_seq = _lars_example()
  cfg = _config(weight_decay=wd, base_lr=0.5, warmup_steps=1,
                trust_coefficient=0.01, momentum=0.9)
  total_steps, batch = 4, 512
  tx, schedule = make_optimizer(cfg, total_steps, batch)
  peak = 0.5 * batch / 256
  # lr at steps 0, 1, 2: warmup from 0, peak, then cosine over 3 steps.
  lrs = [0.0, peak, peak * 0.5 * (1 + math.cos(math.pi / 3))]
  np.testing.assert_allclose([schedule(t) for t in range(3)], lrs, rtol=1e-6)

  got = _run_optax(tx, params, grads_seq)
  want = _numpy_lars(params, grads_seq, lrs, wd, 0.01, 0.9, "decayed")
  for k in params:
    np.testing.assert_allclose(got[k] - params[k], want[k] - params[k],
                               rtol=1e-5, atol=1e-7)
  if wd == 0.0:
    # Without decay the paper's trust ratio is the same quantity.
    paper = _numpy_lars(params, grads_seq, lrs, wd, 0.01, 0.9, "paper")
    np.testing.assert_allclose(got["kernel"], paper["kernel"], rtol=1e-5)
  else:
    # With decay the two forms differ; the implemented one is SimCLR's.
    paper = _numpy_lars(params, grads_seq, lrs, wd, 0.01, 0.9, "paper")
    assert not np.allclose(got["kernel"] - params["kernel"],
                           paper["kernel"] - params["kernel"], rtol=1e-3)


def test_lars_masked_params_get_plain_momentum_sgd():
  params, grads_seq = _lars_example()
  tx, schedule = make_optimizer(
      _config(weight_decay=0.5, warmup_steps=0), total_steps=10,
      global_batch_size=256)
  got = _run_optax(tx, params, grads_seq[:2])
  lr0, lr1 = float(schedule(0)), float(schedule(1))
  g0, g1 = grads_seq[0]["bias"], grads_seq[1]["bias"]
  v1 = lr0 * g0
  v2 = 0.9 * v1 + lr1 * g1
  np.testing.assert_allclose(got["bias"], params["bias"] - v1 - v2,
                             rtol=1e-6)


# ------------------------------ SGD / AdamW -------------------------------
def test_sgd_one_step():
  params, grads_seq = _lars_example()
  tx, schedule = make_optimizer(
      _config(name="sgd", weight_decay=0.1, lr_scaling="none", base_lr=0.2,
              warmup_steps=0), total_steps=10, global_batch_size=64)
  got = _run_optax(tx, params, grads_seq[:1])
  g = grads_seq[0]
  np.testing.assert_allclose(
      got["kernel"], params["kernel"] - 0.2 * (g["kernel"] + 0.1 * params["kernel"]),
      rtol=1e-6)
  np.testing.assert_allclose(got["bias"], params["bias"] - 0.2 * g["bias"],
                             rtol=1e-6)


def test_adamw_decays_weights_but_not_biases():
  params, _ = _lars_example()
  zero = jax.tree.map(np.zeros_like, params)
  tx, _ = make_optimizer(
      _config(name="adamw", weight_decay=0.05, lr_scaling="none",
              base_lr=1e-2, warmup_steps=0), total_steps=10,
      global_batch_size=64)
  got = _run_optax(tx, params, [zero])
  np.testing.assert_allclose(got["kernel"],
                             params["kernel"] * (1 - 1e-2 * 0.05), rtol=1e-6)
  np.testing.assert_array_equal(got["bias"], params["bias"])


def test_make_optimizer_on_flax_params_under_jit():
  model = _SmallNet()
  variables = _small_net_variables()
  params = variables["params"]
  tx, _ = make_optimizer(_config(), total_steps=10, global_batch_size=256)
  state = jax.jit(tx.init)(params)

  @jax.jit
  def step(params, state, x):
    def loss_fn(p):
      out, _ = model.apply({"params": p,
                            "batch_stats": variables["batch_stats"]}, x,
                           mutable=["batch_stats"])
      return jnp.mean(out ** 2)
    grads = jax.grad(loss_fn)(params)
    updates, state = tx.update(grads, state, params)
    return optax.apply_updates(params, updates), state

  x = jnp.asarray(np.random.default_rng(1).normal(size=(2, 8, 8, 3)),
                  jnp.float32)
  new_params, state = step(params, state, x)  # lr(0) = 0: no change
  new_params, state = step(new_params, state, x)
  assert jax.tree.structure(new_params) == jax.tree.structure(params)
  moved = jax.tree.map(lambda a, b: bool(np.any(np.asarray(a) != np.asarray(b))),
                       new_params, params)
  assert moved["Dense_1"]["kernel"] and moved["Conv_0"]["kernel"]


# ------------------------------ errors ------------------------------------
def test_make_optimizer_errors():
  with pytest.raises(ValueError, match="lars, sgd, adamw"):
    make_optimizer(_config(name="rmsprop"), 10, 256)
  with pytest.raises(ValueError, match="linear, sqrt, none"):
    make_optimizer(_config(lr_scaling="cubic"), 10, 256)
  cfg = _config()
  del cfg["weight_decay"]
  with pytest.raises(ValueError, match="weight_decay"):
    make_optimizer(cfg, 10, 256)
  cfg = _config()
  del cfg["warmup_steps"]
  cfg.warmup_epochs = 10
  with pytest.raises(ValueError, match="warmup_epochs"):
    make_optimizer(cfg, 10, 256)
  with pytest.raises(ValueError, match="warmup_steps"):
    make_optimizer(_config(warmup_steps=20), 10, 256)


def test_fixed_lr_modules_keep_the_peak_rate():
  """SimSiam's predictor: plain SGD steps at the peak lr while the rest decays."""
  params = {"encoder": {"kernel": jnp.ones((2, 2))},
            "predictor": {"kernel": jnp.ones((2, 2))}}
  grads = jax.tree.map(jnp.ones_like, params)
  tx, schedule = make_optimizer(
      _config(name="sgd", weight_decay=0.0, momentum=0.0, lr_scaling="none",
              base_lr=0.5, warmup_steps=2, fixed_lr_modules=("predictor",)),
      total_steps=10, global_batch_size=64)
  opt_state = tx.init(params)
  for step in range(4):
    updates, opt_state = tx.update(grads, opt_state, params)
    np.testing.assert_allclose(updates["predictor"]["kernel"], -0.5)
    np.testing.assert_allclose(updates["encoder"]["kernel"], -schedule(step),
                               rtol=1e-6)
  assert schedule(0) == 0.0  # warmup: the encoder did not move at step 0


def test_fixed_lr_modules_must_exist():
  tx, _ = make_optimizer(_config(fixed_lr_modules=("predictor",)),
                         total_steps=10, global_batch_size=64)
  with pytest.raises(ValueError, match="not top-level modules"):
    tx.init({"encoder": {"kernel": jnp.ones((2, 2))}})
