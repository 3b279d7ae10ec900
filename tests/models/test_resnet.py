"""Tests for ssl_jax.models.resnet and ssl_jax.models.layers.

Compile time dominates on CPU, so shapes are checked with ``jax.eval_shape``
(tracing only), real runs use tiny widths and inputs, and parameters are filled
from numpy instead of ``model.init`` (whose many RNG kernels take long to
compile on XLA:CPU); ``test_initialisation`` covers the real initialisers.
"""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import flax.linen as nn
from jax.sharding import Mesh, PartitionSpec as P

from ssl_jax.models import layers
from ssl_jax.models import (
    RESNET_DEPTHS,
    ResNet,
    ShiftedMatmulConv,
    batch_chunked_conv,
    matmul_wgrad_conv,
    resnet,
    shifted_matmul_conv,
)

KEY = jax.random.key(0)


def abstract_variables(model, x, **kwargs):
    """Variable shapes and dtypes of ``model.init(KEY, x, **kwargs)``, no compute.

    ``train=False`` is passed to ResNets (whose ``__call__`` requires it).
    """
    if isinstance(model, ResNet):
        kwargs.setdefault("train", False)
    return jax.eval_shape(functools.partial(model.init, **kwargs), KEY, x)


def fake_variables(model, x, seed=0):
    """Variables with the model's exact tree and dtypes, filled from numpy.

    He-scaled kernels, BN scales/shifts and running statistics away from their
    trivial values, so every parameter influences the output.
    """
    rng = np.random.default_rng(seed)

    def fill(path, leaf):
        name = path[-1].key
        shape = leaf.shape
        if name == "kernel":
            value = rng.normal(size=shape) * np.sqrt(2.0 / np.prod(shape[:-1]))
        elif name == "scale":
            value = 1.0 + 0.1 * rng.normal(size=shape)
        elif name == "var":
            value = rng.uniform(0.5, 1.5, size=shape)
        else:  # bias, mean
            value = 0.1 * rng.normal(size=shape)
        return jnp.asarray(value, leaf.dtype)

    return jax.tree_util.tree_map_with_path(fill, abstract_variables(model, x))


def tiny_resnet(**kwargs):
    """Two basic-block stages, 8 and 16 channels: the cheapest ResNet to compile
    that still has a stem, an identity block and a strided projection block."""
    config = dict(stage_sizes=(1, 1), block="basic", width_multiplier=0.125, stem="cifar")
    config.update(kwargs)
    return ResNet(**config)


def images(n, size, seed=1):
    return jnp.asarray(np.random.default_rng(seed).normal(size=(n, size, size, 3)), jnp.float32)


def shapes(tree):
    return jax.tree.map(lambda a: tuple(a.shape), tree)


def assert_trees_close(a, b, rtol, atol_frac=None):
    """Leafwise ``allclose``; ``atol_frac`` is relative to each leaf's max |b|."""
    assert jax.tree.structure(a) == jax.tree.structure(b)
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
        atol = 0.0 if atol_frac is None else atol_frac * max(np.abs(y).max(), 1e-30)
        np.testing.assert_allclose(x, y, rtol=rtol, atol=atol)


# --------------------------------------------------------------------------
# Architecture: depths, shapes, parameter counts.


@pytest.mark.parametrize("depth", sorted(RESNET_DEPTHS))
def test_every_depth_output_shape_and_feature_dim(depth):
    model = resnet(depth, width_multiplier=0.25, stem="cifar")
    x = jax.ShapeDtypeStruct((2, 32, 32, 3), jnp.float32)
    out, _ = jax.eval_shape(
        functools.partial(model.init_with_output, train=False), KEY, x
    )
    expected = (2048 if RESNET_DEPTHS[depth][1] == "bottleneck" else 512) // 4
    assert model.feature_dim == expected
    assert out.shape == (2, expected) and out.dtype == jnp.float32


def test_feature_dim_scales_with_width():
    assert resnet(18).feature_dim == 512
    assert resnet(50).feature_dim == 2048
    assert resnet(50, width_multiplier=2).feature_dim == 4096
    assert resnet(18, width_multiplier=0.5).feature_dim == 256
    assert ResNet(stage_sizes=(1, 1), block="basic").feature_dim == 128


def test_resnet50_tiny_runs():
    model = resnet(50, width_multiplier=0.25, stem="cifar")
    x = images(2, 32)
    variables = fake_variables(model, x)
    out, updates = jax.jit(
        lambda v, x: model.apply(v, x, train=True, mutable=["batch_stats"])
    )(variables, x)
    assert out.shape == (2, 512) and out.dtype == jnp.float32
    assert np.all(np.isfinite(out)) and np.all(np.asarray(out) >= 0)  # mean of ReLU outputs
    assert jax.tree.structure(updates["batch_stats"]) == jax.tree.structure(
        variables["batch_stats"]
    )


class _Classifier(nn.Module):
    backbone: nn.Module
    num_classes: int = 1000

    @nn.compact
    def __call__(self, x, train):
        return nn.Dense(self.num_classes)(self.backbone(x, train))


@pytest.mark.parametrize("depth,torchvision_count", [(18, 11_689_512), (50, 25_557_032)])
def test_parameter_count_matches_torchvision(depth, torchvision_count):
    model = _Classifier(resnet(depth, stem="imagenet"))
    shapes = jax.eval_shape(
        functools.partial(model.init, train=False),
        KEY,
        jax.ShapeDtypeStruct((1, 224, 224, 3), jnp.float32),
    )
    count = sum(int(np.prod(p.shape)) for p in jax.tree.leaves(shapes["params"]))
    assert count == torchvision_count
    # Running statistics are state, not parameters (torchvision buffers).
    assert all(p.dtype == jnp.float32 for p in jax.tree.leaves(shapes))


def _feature_map_shapes(model, size):
    x = jax.ShapeDtypeStruct((2, size, size, 3), jnp.float32)
    variables = abstract_variables(model, x)
    _, state = jax.eval_shape(
        lambda v, x: model.apply(v, x, train=False, mutable=["intermediates"]), variables, x
    )
    return {k: v[0].shape for k, v in state["intermediates"].items()}


def test_cifar_and_imagenet_stem_resolutions():
    cifar = _feature_map_shapes(resnet(18, width_multiplier=0.125, stem="cifar"), 32)
    assert cifar["stem"] == (2, 32, 32, 8)
    assert [cifar[f"stage{i}"][1:3] for i in range(1, 5)] == [(32, 32), (16, 16), (8, 8), (4, 4)]
    imagenet = _feature_map_shapes(resnet(18, width_multiplier=0.125, stem="imagenet"), 224)
    assert imagenet["stem"] == (2, 56, 56, 8)
    assert [imagenet[f"stage{i}"][1:3] for i in range(1, 5)] == [
        (56, 56), (28, 28), (14, 14), (7, 7)
    ]
    assert imagenet["stage4"][-1] == 64
    bottleneck = _feature_map_shapes(resnet(50, width_multiplier=0.125, stem="cifar"), 32)
    assert bottleneck["stage4"] == (2, 4, 4, 256)


def test_output_stride_caps_the_downsampling_and_keeps_the_parameters():
    standard = resnet(18, width_multiplier=0.125, stem="cifar")
    capped = resnet(18, width_multiplier=0.125, stem="cifar", output_stride=4)
    maps = _feature_map_shapes(capped, 32)
    assert [maps[f"stage{i}"][1:3] for i in range(1, 5)] == [(32, 32), (16, 16), (8, 8), (8, 8)]
    x = jax.ShapeDtypeStruct((1, 32, 32, 3), jnp.float32)
    assert shapes(abstract_variables(capped, x)) == shapes(abstract_variables(standard, x))
    imagenet = _feature_map_shapes(
        resnet(18, width_multiplier=0.125, stem="imagenet", output_stride=8), 64)
    assert imagenet["stage4"][1:3] == (8, 8)
    for bad in (3, 2):
        with pytest.raises(ValueError, match="output_stride must be a power of two"):
            abstract_variables(resnet(18, width_multiplier=0.125, stem="imagenet",
                                      output_stride=bad), x)


def test_parameter_tree_layout():
    model = resnet(50, width_multiplier=0.125, stem="imagenet")
    params = abstract_variables(model, jax.ShapeDtypeStruct((1, 64, 64, 3), jnp.float32))["params"]
    assert params["stem_conv"]["kernel"].shape == (7, 7, 3, 8)
    assert "bias" not in params["stem_conv"]
    # v1.5: the stride is on the 3x3; the first block of every stage projects.
    block = params["stage2_block1"]
    assert block["conv1"]["kernel"].shape == (1, 1, 32, 16)
    assert block["conv2"]["kernel"].shape == (3, 3, 16, 16)
    assert block["conv3"]["kernel"].shape == (1, 1, 16, 64)
    assert block["proj_conv"]["kernel"].shape == (1, 1, 32, 64)
    assert "proj_conv" in params["stage1_block1"]  # 8 -> 32 channels
    assert "proj_conv" not in params["stage1_block2"]
    basic = abstract_variables(
        resnet(18, width_multiplier=0.125, stem="cifar"),
        jax.ShapeDtypeStruct((1, 8, 8, 3), jnp.float32),
    )["params"]
    assert "proj_conv" not in basic["stage1_block1"]  # 8 -> 8 channels, stride 1
    assert basic["stage2_block1"]["proj_conv"]["kernel"].shape == (1, 1, 8, 16)


def test_invalid_arguments_raise_clear_errors():
    with pytest.raises(ValueError, match=r"valid depths are \[10, 18, 34, 50, 101, 152\]"):
        resnet(20)
    with pytest.raises(TypeError, match="stage_sizes"):
        resnet(18, stage_sizes=(1, 1))
    x = jax.ShapeDtypeStruct((1, 8, 8, 3), jnp.float32)
    bad = [
        (dict(block="wide"), "block must be one of"),
        (dict(stem="tiny"), "stem must be one of"),
        (dict(conv_impl="fft"), "conv_impl must be one of"),
        (dict(width_multiplier=0.001), "leaves a layer"),
        (dict(width_multiplier=0.0), "width_multiplier must be positive"),
    ]
    for kwargs, message in bad:
        base = dict(stage_sizes=(1,), block="basic")
        base.update(kwargs)
        with pytest.raises(ValueError, match=message):
            abstract_variables(ResNet(**base), x)
    with pytest.raises(ValueError, match="rank 4"):
        abstract_variables(resnet(10), jax.ShapeDtypeStruct((8, 8, 3), jnp.float32))


# --------------------------------------------------------------------------
# Initialisation and BatchNorm behaviour.


def test_initialisation():
    """Real ``model.init``: He fan-out kernels, BN scale 1 or 0 (zero_init_residual)."""
    x = jnp.zeros((1, 8, 8, 3))

    models = [
        resnet(10, width_multiplier=0.125, stem="cifar", zero_init_residual=zero)
        for zero in (False, True)
    ]

    # Only the returned leaves are computed (XLA drops the other RNG work).
    @jax.jit
    def leaves(x):
        picked = []
        for model in models:
            block = model.init(KEY, x, train=False)["params"]["stage4_block1"]
            picked.append({
                "bn1": block["bn1"]["scale"],
                "bn2": block["bn2"]["scale"],
                "proj_bn": block["proj_bn"]["scale"],
                "kernel": block["conv2"]["kernel"],
            })
        return picked

    default, zeroed = leaves(x)
    np.testing.assert_array_equal(default["bn2"], 1.0)
    np.testing.assert_array_equal(zeroed["bn2"], 0.0)  # last BN of the residual branch
    np.testing.assert_array_equal(zeroed["bn1"], 1.0)
    np.testing.assert_array_equal(zeroed["proj_bn"], 1.0)  # shortcut BN untouched
    kernel = np.asarray(default["kernel"])
    assert kernel.shape == (3, 3, 64, 64)
    fan_out = 3 * 3 * 64
    assert abs(kernel.std() / np.sqrt(2.0 / fan_out) - 1.0) < 0.05
    assert abs(kernel.mean()) < 0.01


def test_train_updates_batch_stats_and_eval_does_not():
    model = tiny_resnet(bn_momentum=0.8)
    x = images(4, 8)
    variables = fake_variables(model, x)
    old = variables["batch_stats"]

    (out, state) = model.apply(
        variables, x, train=True, mutable=["batch_stats"], capture_intermediates=True
    )
    new = state["batch_stats"]
    for a, b in zip(jax.tree.leaves(old), jax.tree.leaves(new)):
        assert not np.allclose(a, b)
    # The stem BN's running mean moves towards the batch mean of its input.
    stem_out = state["intermediates"]["stem_conv"]["__call__"][0]
    expected = 0.8 * old["stem_bn"]["mean"] + 0.2 * jnp.mean(stem_out, axis=(0, 1, 2))
    np.testing.assert_allclose(new["stem_bn"]["mean"], expected, rtol=1e-5, atol=1e-6)

    eval_out, eval_state = model.apply(variables, x, train=False, mutable=["batch_stats"])
    assert_trees_close(eval_state["batch_stats"], old, rtol=0)
    # Eval mode normalises with running statistics: an example's output does
    # not depend on the rest of the batch. In train mode it does.
    other = x.at[1:].set(images(3, 8, seed=7))
    np.testing.assert_allclose(
        model.apply(variables, other, train=False)[0], eval_out[0], rtol=1e-5, atol=1e-6
    )
    train_other, _ = model.apply(variables, other, train=True, mutable=["batch_stats"])
    assert not np.allclose(train_other[0], out[0], rtol=1e-3)


def test_cross_replica_batchnorm_matches_single_device_global_batch():
    devices = np.array(jax.devices())
    assert devices.size == 8, "tests/conftest.py should give 8 CPU devices"
    mesh = Mesh(devices, ("batch",))
    global_model = tiny_resnet()
    replica_model = tiny_resnet(bn_axis_name="batch")
    x = images(16, 8)  # two examples per device
    variables = fake_variables(global_model, x)

    def run(model, variables, x):
        out, state = model.apply(variables, x, train=True, mutable=["batch_stats"])
        return out, state["batch_stats"]

    ref_out, ref_stats = run(global_model, variables, x)
    sharded = jax.jit(
        jax.shard_map(
            functools.partial(run, replica_model),
            mesh=mesh,
            in_specs=(P(), P("batch")),
            out_specs=(P("batch"), P()),
        )
    )
    out, stats = sharded(variables, x)
    np.testing.assert_allclose(out, ref_out, rtol=1e-5, atol=1e-5 * np.abs(ref_out).max())
    assert_trees_close(stats, ref_stats, rtol=1e-5, atol_frac=1e-6)
    # Control: one device's shard alone gives different statistics.
    _, shard_stats = run(global_model, variables, x[:2])
    assert not np.allclose(shard_stats["stem_bn"]["var"], ref_stats["stem_bn"]["var"], rtol=1e-3)


def test_batch_chunked_gradients_under_shard_map_equal_one_device_xla(monkeypatch):
    """The custom VJP inside ``shard_map`` (chunks of 2 images per device):
    the gradient of the global loss equals XLA's on one device."""
    monkeypatch.setattr(layers, "_CHUNK_POSITIONS", 2 * 8 * 8)
    mesh = Mesh(np.array(jax.devices()), ("batch",))
    reference = tiny_resnet()
    chunked = tiny_resnet(bn_axis_name="batch", conv_impl="batch_chunked")
    x = images(32, 8)  # four examples per device
    variables = fake_variables(reference, x)

    def loss(model, params, x):
        out, _ = model.apply({"params": params, "batch_stats": variables["batch_stats"]},
                             x, train=True, mutable=["batch_stats"])
        return jnp.sum(jnp.sin(out))

    ref_grads = jax.jit(jax.grad(functools.partial(loss, reference)))(variables["params"], x)
    sharded = jax.jit(jax.shard_map(
        jax.grad(functools.partial(loss, chunked)),  # summed over devices by shard_map
        mesh=mesh, in_specs=(P(), P("batch")), out_specs=P()))
    assert_trees_close(sharded(variables["params"], x), ref_grads, rtol=1e-4, atol_frac=5e-5)


def test_bfloat16_compute_keeps_float32_params():
    model = tiny_resnet(dtype=jnp.bfloat16)
    x = images(4, 8)
    shapes = abstract_variables(model, x)
    assert all(leaf.dtype == jnp.float32 for leaf in jax.tree.leaves(shapes))
    variables = fake_variables(model, x)
    out, state = model.apply(variables, x, train=True, mutable=["batch_stats"])
    assert out.dtype == jnp.bfloat16 and out.shape == (4, model.feature_dim)
    assert np.all(np.isfinite(np.asarray(out, np.float32)))
    assert all(leaf.dtype == jnp.float32 for leaf in jax.tree.leaves(state))
    # Close to the float32 computation (bf16 has ~3 significant digits).
    ref = tiny_resnet().apply(variables, x, train=False)
    low = model.apply(variables, x, train=False)
    np.testing.assert_allclose(np.asarray(low, np.float32), ref, rtol=0.1, atol=0.05 * np.abs(ref).max())


# --------------------------------------------------------------------------
# Shifted-matmul convolution.

CONV_CASES = [
    # (height, width, kernel, stride, padding)
    (7, 7, 3, 1, "SAME"),
    (8, 8, 3, 2, "SAME"),  # even size, stride 2: SAME pads (0, 1)
    (7, 9, 3, 2, "SAME"),  # odd sizes
    (8, 8, 3, 2, ((1, 1), (1, 1))),  # the ResNet's fixed padding
    (6, 7, 1, 2, "SAME"),  # strided projection shortcut
    (5, 6, 2, 1, "VALID"),  # even kernel
    (9, 8, 3, 2, "VALID"),  # stride 2 without padding, odd height
]


@pytest.mark.parametrize("h,w,k,stride,padding", CONV_CASES)
def test_shifted_matmul_conv_matches_nn_conv(h, w, k, stride, padding):
    """Forward and both gradients equal ``nn.Conv``'s on the same parameters."""
    x = jnp.asarray(np.random.default_rng(k + stride).normal(size=(2, h, w, 3)), jnp.float32)
    reference = nn.Conv(5, (k, k), strides=stride, padding=padding)
    convs = [reference] + [
        ShiftedMatmulConv(5, k, strides=stride, padding=padding, mode=mode)
        for mode in ("shifted_matmul", "matmul_wgrad", "batch_chunked")
    ]
    params = fake_variables(reference, x)
    for conv in convs[1:]:  # identical parameter trees: checkpoints interchange
        assert shapes(abstract_variables(conv, x)) == shapes(params)

    def loss(module):
        # A non-linear loss, so the output cotangent is not uniform.
        return lambda p, x: jnp.sum(jnp.sin(module.apply(p, x)))

    @jax.jit
    def run_all(p, x):
        return [(m.apply(p, x), jax.value_and_grad(loss(m), argnums=(0, 1))(p, x)) for m in convs]

    (ref_y, (ref_v, ref_g)), *others = run_all(params, x)
    for y, (v, g) in others:
        assert y.shape == ref_y.shape
        np.testing.assert_allclose(y, ref_y, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(v, ref_v, rtol=1e-5, atol=1e-5)
        assert_trees_close(g, ref_g, rtol=1e-5, atol_frac=1e-5)


@pytest.mark.parametrize("h,w,k,stride,padding", CONV_CASES)
def test_batch_chunked_conv_matches_xla_over_several_chunks(
        h, w, k, stride, padding, monkeypatch):
    """Value and both gradients equal ``lax.conv_general_dilated``'s when
    the batch is cut into chunks (a chunk of 8 output positions here)."""
    monkeypatch.setattr(layers, "_CHUNK_POSITIONS", 8)
    rng = np.random.default_rng(h * w + k + stride)
    x = jnp.asarray(rng.normal(size=(6, h, w, 3)), jnp.float32)
    kernel = jnp.asarray(rng.normal(size=(k, k, 3, 5)), jnp.float32)
    pads = layers.resolve_conv_padding(padding, (h, w), (k, k), (stride, stride))
    out_h = layers.conv_output_size(h, k, stride, pads[0])
    out_w = layers.conv_output_size(w, k, stride, pads[1])
    assert layers.conv_batch_chunks(6, out_h, out_w) > 1

    def reference(x, kernel):
        return jax.lax.conv_general_dilated(
            x, kernel, (stride, stride), pads, dimension_numbers=("NHWC", "HWIO", "NHWC"))

    def chunked(x, kernel):
        return batch_chunked_conv(x, kernel, stride, padding)

    @jax.jit
    def run(x, kernel):
        return [(conv(x, kernel), jax.value_and_grad(
            lambda x, kernel: jnp.sum(jnp.sin(conv(x, kernel))), argnums=(0, 1))(x, kernel))
            for conv in (reference, chunked)]

    (ref_y, (ref_v, ref_g)), (y, (v, g)) = run(x, kernel)
    np.testing.assert_allclose(y, ref_y, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(v, ref_v, rtol=1e-5, atol=1e-5)
    for grad, ref_grad in zip(g, ref_g):
        np.testing.assert_allclose(grad, ref_grad, rtol=1e-5, atol=1e-4)


def test_conv_batch_chunks_divide_the_batch():
    assert layers.conv_batch_chunks(128, 32, 32) == 32  # 4 images of 1024
    assert layers.conv_batch_chunks(128, 16, 16) == 16  # 8 images of 256
    assert layers.conv_batch_chunks(128, 4, 4) == 1  # 2048 positions in all
    assert layers.conv_batch_chunks(12, 32, 32) == 6  # a divisor of 12
    assert layers.conv_batch_chunks(14, 32, 32) == 7
    assert layers.conv_batch_chunks(7, 32, 32) == 1  # no divisor up to 3
    assert layers.conv_batch_chunks(1, 1, 1) == 1


@pytest.mark.parametrize("fn", [shifted_matmul_conv, matmul_wgrad_conv, batch_chunked_conv])
def test_conv_functions_reject_bad_inputs(fn):
    x = jnp.zeros((1, 4, 4, 3))
    with pytest.raises(ValueError, match="rank 4"):
        fn(x[0], jnp.zeros((3, 3, 3, 2)))
    with pytest.raises(ValueError, match="3 channels but the kernel expects 2"):
        fn(x, jnp.zeros((3, 3, 2, 2)))
    with pytest.raises(ValueError, match="not supported"):
        fn(x, jnp.zeros((3, 3, 3, 2)), padding="CIRCULAR")
    with pytest.raises(ValueError, match="too small"):
        fn(x, jnp.zeros((5, 5, 3, 2)), padding="VALID")
    with pytest.raises(ValueError, match="strides must be positive"):
        fn(x, jnp.zeros((3, 3, 3, 2)), strides=0)


def test_shifted_matmul_conv_bfloat16():
    x = jnp.asarray(np.random.default_rng(0).normal(size=(2, 6, 6, 4)), jnp.float32)
    reference = nn.Conv(8, (3, 3), strides=2)
    params = fake_variables(reference, x)
    ref = reference.apply(params, x)
    convs = [
        ShiftedMatmulConv(8, 3, strides=2, mode=mode, dtype=jnp.bfloat16)
        for mode in ("shifted_matmul", "matmul_wgrad", "batch_chunked")
    ]

    @jax.jit
    def run(p, x):
        return [
            (c.apply(p, x), jax.grad(lambda p: jnp.sum(c.apply(p, x).astype(jnp.float32)))(p))
            for c in convs
        ]

    for y, grads in run(params, x):
        assert y.dtype == jnp.bfloat16
        np.testing.assert_allclose(np.asarray(y, np.float32), ref, rtol=0.05, atol=0.05)
        assert grads["params"]["kernel"].dtype == jnp.float32
        assert np.all(np.isfinite(grads["params"]["kernel"]))


def test_conv_impls_give_the_same_resnet():
    """Same parameters, same outputs, BN statistics and gradients for every impl.

    An ImageNet stem and a bottleneck block exercise the 7x7/2 stem, max-pool,
    1x1 and 3x3 convolutions and a projection shortcut (strided convolutions
    are covered conv by conv above; compile time keeps this model small).
    """
    x = images(4, 16)
    models = {
        impl: ResNet(
            stage_sizes=(1,), block="bottleneck", width_multiplier=0.125, stem="imagenet",
            conv_impl=impl,
        )
        for impl in ("xla", "shifted_matmul", "matmul_wgrad", "batch_chunked")
    }
    variables = fake_variables(models["xla"], x)
    for model in models.values():
        assert shapes(abstract_variables(model, x)) == shapes(variables)

    @jax.jit
    def run(params, stats, x):
        def loss(model, params):
            out, state = model.apply(
                {"params": params, "batch_stats": stats}, x, train=True, mutable=["batch_stats"]
            )
            return jnp.sum(jnp.sin(out)), (out, state["batch_stats"])

        return {
            impl: jax.value_and_grad(functools.partial(loss, m), has_aux=True)(params)
            for impl, m in models.items()
        }

    results = run(variables["params"], variables["batch_stats"], x)
    ref = results["xla"]
    # atol 5e-5 of each leaf's largest value: some gradients (of BN shifts
    # feeding the next BN) are rounding noise around 0 of order 1e-6.
    for impl in ("shifted_matmul", "matmul_wgrad", "batch_chunked"):
        assert_trees_close(results[impl], ref, rtol=1e-4, atol_frac=5e-5)


def test_auto_conv_impl_is_chunked_for_training_on_cpu_and_xla_otherwise():
    from ssl_jax.models.resnet import resolve_conv_impl

    assert jax.default_backend() == "cpu"  # tests/conftest.py
    assert resolve_conv_impl("auto", train=True) == "batch_chunked"
    assert resolve_conv_impl("auto", train=False) == "xla"
    for impl in ("xla", "shifted_matmul", "matmul_wgrad", "batch_chunked"):
        assert resolve_conv_impl(impl, train=True) == impl
        assert resolve_conv_impl(impl, train=False) == impl
