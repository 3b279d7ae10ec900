"""Tests for ssl_jax.models.heads.MLPHead."""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import Mesh, PartitionSpec as P

from ssl_jax.models import MLPHead

KEY = jax.random.key(0)


def abstract_variables(head, x):
    return jax.eval_shape(functools.partial(head.init, train=False), KEY, x)


def fake_variables(head, x, seed=0):
    """The head's exact variable tree filled from numpy (no RNG compiles)."""
    rng = np.random.default_rng(seed)

    def fill(path, leaf):
        name = path[-1].key
        if name == "kernel":
            value = rng.normal(size=leaf.shape) / np.sqrt(leaf.shape[0])
        elif name == "scale":
            value = 1.0 + 0.1 * rng.normal(size=leaf.shape)
        elif name == "var":
            value = rng.uniform(0.5, 1.5, size=leaf.shape)
        else:
            value = 0.1 * rng.normal(size=leaf.shape)
        return jnp.asarray(value, leaf.dtype)

    return jax.tree_util.tree_map_with_path(fill, abstract_variables(head, x))


def features(n=8, d=16, seed=1):
    return jnp.asarray(np.random.default_rng(seed).normal(size=(n, d)), jnp.float32)


def shapes(tree):
    return jax.tree.map(lambda a: tuple(a.shape), tree)


def test_simclr_v1_head_layout_and_output():
    head = MLPHead(hidden_dims=(16,), out_dim=4)
    x = features()
    variables = abstract_variables(head, x)
    assert shapes(variables["params"]) == {
        "dense1": {"kernel": (16, 16)},  # no bias: BN follows
        "bn1": {"scale": (16,), "bias": (16,)},
        "dense_out": {"kernel": (16, 4), "bias": (4,)},
    }
    variables = fake_variables(head, x)
    out, state = head.apply(variables, x, train=True, mutable=["batch_stats"])
    assert out.shape == (8, 4) and out.dtype == jnp.float32

    # Reference computation: Dense -> BN (batch statistics) -> ReLU -> Dense.
    p = variables["params"]
    h = x @ p["dense1"]["kernel"]
    mean, var = h.mean(0), h.var(0)
    h = (h - mean) / jnp.sqrt(var + 1e-5) * p["bn1"]["scale"] + p["bn1"]["bias"]
    expected = jnp.maximum(h, 0) @ p["dense_out"]["kernel"] + p["dense_out"]["bias"]
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(
        state["batch_stats"]["bn1"]["mean"],
        0.9 * variables["batch_stats"]["bn1"]["mean"] + 0.1 * mean,
        rtol=1e-5,
        atol=1e-6,
    )


def test_simclr_v2_three_layer_head_with_last_bn():
    head = MLPHead(hidden_dims=(16, 16), out_dim=4, last_bn=True)
    x = features(n=32)
    tree = abstract_variables(head, x)
    assert set(tree["params"]) == {"dense1", "bn1", "dense2", "bn2", "dense_out"}
    assert shapes(tree["params"]["dense_out"]) == {"kernel": (16, 4)}  # no bias
    assert "bn_out" not in tree["params"]  # no learned scale or shift
    assert shapes(tree["batch_stats"]["bn_out"]) == {"mean": (4,), "var": (4,)}

    variables = fake_variables(head, x)
    out, _ = head.apply(variables, x, train=True, mutable=["batch_stats"])
    # Train mode: every output feature is standardised over the batch.
    np.testing.assert_allclose(out.mean(0), 0.0, atol=1e-5)
    np.testing.assert_allclose(out.std(0), 1.0, rtol=1e-3)


def test_last_bn_scale_matches_simclr_v2_code():
    head = MLPHead(hidden_dims=(8,), out_dim=4, last_bn=True, last_bn_scale=True)
    tree = abstract_variables(head, features())
    assert shapes(tree["params"]["bn_out"]) == {"scale": (4,)}


def test_return_hidden():
    head = MLPHead(hidden_dims=(12, 10), out_dim=4)
    x = features()
    variables = fake_variables(head, x)
    out = head.apply(variables, x, train=False)
    out2, hiddens = head.apply(variables, x, train=False, return_hidden=True)
    np.testing.assert_array_equal(out, out2)
    assert [h.shape for h in hiddens] == [(8, 16), (8, 12), (8, 10)]
    np.testing.assert_array_equal(hiddens[0], x)
    assert all(np.all(np.asarray(h) >= 0) for h in hiddens[1:])  # post-ReLU
    # The output is the last hidden activation through the output layer.
    p = variables["params"]["dense_out"]
    np.testing.assert_allclose(out, hiddens[-1] @ p["kernel"] + p["bias"], rtol=1e-5, atol=1e-5)


def test_without_bn_is_a_plain_mlp_with_biases():
    head = MLPHead(hidden_dims=(8,), out_dim=3, use_bn=False)
    x = features()
    tree = abstract_variables(head, x)
    assert "batch_stats" not in tree
    assert shapes(tree["params"]["dense1"]) == {"kernel": (16, 8), "bias": (8,)}
    variables = fake_variables(head, x)
    p = variables["params"]
    expected = (
        jnp.maximum(x @ p["dense1"]["kernel"] + p["dense1"]["bias"], 0) @ p["dense_out"]["kernel"]
        + p["dense_out"]["bias"]
    )
    # No BatchNorm: train and eval agree and nothing is mutable.
    for train in (True, False):
        np.testing.assert_allclose(head.apply(variables, x, train=train), expected, rtol=1e-5, atol=1e-5)


def test_linear_head_and_eval_mode_uses_running_statistics():
    head = MLPHead(hidden_dims=(), out_dim=4, last_bn=True)
    x = features()
    variables = fake_variables(head, x)
    out = head.apply(variables, x, train=False)
    stats = variables["batch_stats"]["bn_out"]
    linear = x @ variables["params"]["dense_out"]["kernel"]
    np.testing.assert_allclose(
        out, (linear - stats["mean"]) / jnp.sqrt(stats["var"] + 1e-5), rtol=1e-5, atol=1e-5
    )


def test_bfloat16_head():
    head = MLPHead(hidden_dims=(8,), out_dim=4, last_bn=True, dtype=jnp.bfloat16)
    x = features()
    assert all(leaf.dtype == jnp.float32 for leaf in jax.tree.leaves(abstract_variables(head, x)))
    out, hiddens = head.apply(fake_variables(head, x), x, train=False, return_hidden=True)
    assert out.dtype == jnp.bfloat16 and all(h.dtype == jnp.bfloat16 for h in hiddens)


def test_cross_replica_head_matches_global_batch():
    mesh = Mesh(np.array(jax.devices()), ("batch",))
    config = dict(hidden_dims=(8,), out_dim=4, last_bn=True)
    x = features(n=16)
    variables = fake_variables(MLPHead(**config), x)

    def run(head, variables, x):
        out, state = head.apply(variables, x, train=True, mutable=["batch_stats"])
        return out, state["batch_stats"]

    ref_out, ref_stats = run(MLPHead(**config), variables, x)
    out, stats = jax.jit(
        jax.shard_map(
            functools.partial(run, MLPHead(bn_axis_name="batch", **config)),
            mesh=mesh,
            in_specs=(P(), P("batch")),
            out_specs=(P("batch"), P()),
        )
    )(variables, x)
    np.testing.assert_allclose(out, ref_out, rtol=1e-5, atol=1e-5)
    for a, b in zip(jax.tree.leaves(stats), jax.tree.leaves(ref_stats)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_invalid_inputs():
    with pytest.raises(ValueError, match=r"\(batch, features\)"):
        abstract_variables(MLPHead(hidden_dims=(4,), out_dim=2), jnp.zeros((2, 3, 4)))
    with pytest.raises(ValueError, match="positive"):
        abstract_variables(MLPHead(hidden_dims=(0,), out_dim=2), jnp.zeros((2, 4)))
