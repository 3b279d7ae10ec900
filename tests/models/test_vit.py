"""Tests for ssl_jax.models.vit: sine-cosine position embeddings against
their closed form, patch layout, preset sizes, and an encoder that runs on
the kept patches only (token count and compiled FLOPs)."""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ssl_jax import augment
from ssl_jax.models import VIT_SIZES, VisionTransformer, vit, vit_dims
from ssl_jax.models.vit import (
    TransformerBlock,
    extract_patches,
    sincos_pos_embed_1d,
    sincos_pos_embed_2d,
)

KEY = jax.random.key(0)
BATCH, SIDE, PATCH = 4, 8, 2  # 16 patches
NUM_PATCHES = (SIDE // PATCH) ** 2


def reference_pos_embed(dim, rows, cols):
    """The closed form, entry by entry: for the patch at (r, c) and
    k < dim/4, with w_k = 10000^(-k / (dim/4)),
    [sin(c w_k) | cos(c w_k) | sin(r w_k) | cos(r w_k)]."""
    quarter = dim // 4
    out = np.zeros((rows * cols, dim))
    for r in range(rows):
        for c in range(cols):
            for k in range(quarter):
                w = 10000.0 ** (-k / quarter)
                out[r * cols + c, k] = np.sin(c * w)
                out[r * cols + c, quarter + k] = np.cos(c * w)
                out[r * cols + c, 2 * quarter + k] = np.sin(r * w)
                out[r * cols + c, 3 * quarter + k] = np.cos(r * w)
    return out


@pytest.mark.parametrize("dim,grid", [(16, 4), (8, (2, 3)), (64, 14)])
def test_sincos_pos_embed_matches_the_closed_form(dim, grid):
    rows, cols = (grid, grid) if isinstance(grid, int) else grid
    emb = sincos_pos_embed_2d(dim, grid)
    assert emb.shape == (rows * cols, dim) and emb.dtype == np.float32
    np.testing.assert_allclose(emb, reference_pos_embed(dim, rows, cols),
                               atol=1e-6)
    with_cls = sincos_pos_embed_2d(dim, grid, class_token=True)
    np.testing.assert_array_equal(with_cls[0], 0.0)
    np.testing.assert_array_equal(with_cls[1:], emb)


def test_sincos_pos_embed_values_and_errors():
    # Position 0: sines 0, cosines 1; position 1, first frequency: sin(1).
    emb = sincos_pos_embed_2d(8, 2)
    np.testing.assert_allclose(emb[0], [0, 0, 1, 1, 0, 0, 1, 1], atol=1e-7)
    np.testing.assert_allclose(emb[1, 0], np.sin(1.0), rtol=1e-6)  # col 1
    np.testing.assert_allclose(emb[2, 4], np.sin(1.0), rtol=1e-6)  # row 1
    np.testing.assert_allclose(sincos_pos_embed_1d(4, np.array([2.0])),
                               [[np.sin(2), np.sin(2e-2), np.cos(2),
                                 np.cos(2e-2)]], rtol=1e-6)
    with pytest.raises(ValueError, match="multiple of 4"):
        sincos_pos_embed_2d(6, 2)


def test_patches_have_augments_layout():
    images = np.random.RandomState(0).rand(2, 6, 4, 3).astype(np.float32)
    np.testing.assert_array_equal(
        np.asarray(extract_patches(jnp.asarray(images), 2)),
        np.asarray(augment.patchify(images, 2)))
    with pytest.raises(ValueError, match="multiple of the patch size"):
        extract_patches(jnp.asarray(images), 4)


def test_preset_sizes_and_overrides():
    assert vit_dims("tiny") == (192, 12, 3)
    assert vit_dims("small") == (384, 12, 6)
    assert vit_dims("base") == (768, 12, 12)
    assert VIT_SIZES["large"] == (1024, 24, 16)
    assert vit_dims("base", depth=6) == (768, 6, 12)
    assert vit_dims("custom", width=64, depth=4, num_heads=4) == (64, 4, 4)
    assert vit_dims(None, width=64, depth=4, num_heads=4) == (64, 4, 4)
    with pytest.raises(ValueError, match="needs width, depth and num_heads"):
        vit_dims("custom", width=64)
    with pytest.raises(ValueError, match="giant"):
        vit_dims("giant")
    with pytest.raises(ValueError, match="divisible"):
        vit_dims("custom", width=66, depth=1, num_heads=4)
    model = vit("small", patch_size=8)
    assert (model.width, model.depth, model.num_heads, model.patch_size) == (
        384, 12, 6, 8)


def _count(tree):
    return sum(int(np.prod(x.shape)) for x in jax.tree.leaves(tree))


def test_vit_b16_has_the_reference_parameter_count():
    """ViT-B/16 without head and without the (fixed) position embeddings:
    patch embedding 768*768 + 768, class token 768, 12 blocks of 7,087,104
    (qkv with q and v biases, proj, fc1, fc2, two LayerNorms) and the final
    LayerNorm: timm's 85.8M less the 151,296 position embeddings and the
    768 key biases per block."""
    model = vit("base", patch_size=16)
    variables = jax.eval_shape(model.init, KEY,
                               jnp.zeros((1, 224, 224, 3)))
    params = variables["params"]
    assert _count(params) == 590592 + 768 + 12 * 7087104 + 1536 == 85638144
    assert params["cls_token"].shape == (1, 1, 768)
    block = params["transformer"]["block0"]
    assert block["attn"]["qkv"]["kernel"].shape == (768, 2304)
    assert sorted(block["attn"]) == ["proj", "q_bias", "qkv", "v_bias"]
    assert block["fc1"]["kernel"].shape == (768, 3072)
    assert sorted(params["transformer"]) == sorted(
        [f"block{i}" for i in range(12)] + ["norm"])


def fake_variables(model, images, seed=0):
    """The model's variable tree filled from numpy (``model.init`` compiles
    an RNG kernel per parameter, slow on XLA:CPU)."""
    rng = np.random.default_rng(seed)
    shapes = jax.eval_shape(model.init, KEY, images)

    def fill(leaf):
        scale = 1.0 / np.sqrt(leaf.shape[0]) if leaf.ndim == 2 else 0.1
        return jnp.asarray(rng.normal(size=leaf.shape) * scale, leaf.dtype)

    return jax.tree.map(fill, shapes)


@pytest.fixture(scope="module")
def tiny():
    model = vit(patch_size=PATCH, width=16, depth=2, num_heads=2)
    images = jnp.asarray(
        np.random.default_rng(1).normal(size=(BATCH, SIDE, SIDE, 1)),
        jnp.float32)
    return model, fake_variables(model, images), images


@pytest.fixture(scope="module")
def apply_fn(tiny):
    model = tiny[0]
    return jax.jit(functools.partial(model.apply, return_tokens=True))


def test_encoder_sees_only_the_kept_tokens(tiny, apply_fn):
    model, variables, images = tiny
    perm = np.stack([np.random.RandomState(i).permutation(NUM_PATCHES)
                     for i in range(BATCH)]).astype(np.int32)
    kept = jnp.asarray(perm[:, :4])
    tokens = apply_fn(variables, images, ids_keep=kept)
    assert tokens.shape == (BATCH, 1 + 4, 16)  # class token + 4 patches
    # Every block runs on the 5 tokens, not on the 16 patches.
    _, inter = jax.eval_shape(functools.partial(
        model.apply, capture_intermediates=lambda m, _: isinstance(
            m, TransformerBlock), mutable=["intermediates"]),
        variables, images, ids_keep=kept)
    blocks = inter["intermediates"]["transformer"]
    assert len(blocks) == 2
    for block in blocks.values():
        assert block["__call__"][0].shape == (BATCH, 5, 16)
    # Without masking: all 16 patches.
    assert jax.eval_shape(apply_fn, variables, images).shape == (
        BATCH, 17, 16)


def test_kept_tokens_keep_their_positions(tiny, apply_fn):
    """Position embeddings are added before the tokens are dropped: feeding
    all patches in any order gives the same tokens, permuted."""
    _, variables, images = tiny
    perm = np.stack([np.random.RandomState(i).permutation(NUM_PATCHES)
                     for i in range(BATCH)]).astype(np.int32)
    full = np.asarray(apply_fn(variables, images))
    shuffled = np.asarray(apply_fn(variables, images,
                                   ids_keep=jnp.asarray(perm)))
    np.testing.assert_allclose(shuffled[:, 0], full[:, 0], atol=1e-5)
    np.testing.assert_allclose(
        shuffled[:, 1:], np.take_along_axis(full[:, 1:], perm[..., None], 1),
        atol=1e-5)
    # The identity keep-list is the unmasked pass.
    identity = np.tile(np.arange(NUM_PATCHES, dtype=np.int32), (BATCH, 1))
    np.testing.assert_allclose(
        np.asarray(apply_fn(variables, images, ids_keep=identity)), full,
        atol=1e-6)


def test_pooling(tiny, apply_fn):
    model, variables, images = tiny
    tokens = np.asarray(apply_fn(variables, images))
    pooled = model.apply(variables, jnp.asarray(tokens),
                         method=VisionTransformer.pool_tokens)
    np.testing.assert_allclose(pooled, tokens[:, 1:].mean(1), atol=1e-6)
    np.testing.assert_allclose(
        jax.jit(model.apply)(variables, images), pooled, atol=1e-6)
    cls_model = model.clone(pool="token")
    np.testing.assert_array_equal(
        cls_model.apply(variables, jnp.asarray(tokens),
                        method=VisionTransformer.pool_tokens), tokens[:, 0])
    with pytest.raises(ValueError, match="class_token"):
        jax.eval_shape(model.clone(pool="token", class_token=False).init,
                       KEY, images)
    no_cls = model.clone(class_token=False)
    assert "cls_token" not in jax.eval_shape(no_cls.init, KEY,
                                             images)["params"]


def test_encoder_flops_scale_with_the_visible_fraction(tiny):
    """XLA's compiled cost of the encoder at mask ratio 0.75 (4 of 16
    patches) is under 35% of the full pass (5 vs 17 tokens: the patch
    embedding of all 16 patches is the only part that does not shrink)."""
    model, variables, images = tiny

    def flops(num_kept):
        ids = jnp.tile(jnp.arange(num_kept, dtype=jnp.int32), (BATCH, 1))
        fn = jax.jit(lambda v, x, i: model.apply(v, x, ids_keep=i))
        return fn.lower(variables, images, ids).compile().cost_analysis()[
            "flops"]

    ratio = flops(4) / flops(NUM_PATCHES)
    assert 0.2 < ratio < 0.35, ratio


def test_bfloat16_compute_keeps_float32_params():
    model = vit(patch_size=PATCH, width=8, depth=1, num_heads=2,
                dtype=jnp.bfloat16)
    images = jnp.zeros((2, SIDE, SIDE, 1))
    variables = jax.eval_shape(model.init, KEY, images)
    assert {x.dtype for x in jax.tree.leaves(variables)} == {np.dtype("float32")}
    out = jax.eval_shape(model.apply, variables, images)
    assert out.shape == (2, 8) and out.dtype == jnp.bfloat16
    assert isinstance(model, VisionTransformer)
