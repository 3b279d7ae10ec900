r"""Vision Transformer (Dosovitskiy et al. 2021, "An Image is Worth 16x16
Words", arXiv 2010.11929) in the form MAE uses it (He et al. 2021, "Masked
Autoencoders Are Scalable Vision Learners", arXiv 2111.06377, and its code,
``models_mae.py``).

* Patch embedding: non-overlapping ``p x p`` patches, flattened in
  ``(row, column, channel)`` order (the layout of
  :func:`ssl_jax.augment.patchify`), through one ``Dense`` -- the same
  function as a ``p x p`` convolution with stride ``p``, initialised like
  MAE's (Xavier-uniform on the flattened ``(p*p*C, width)`` kernel).
* Position embeddings: fixed 2-D sine-cosine (:func:`sincos_pos_embed_2d`,
  MAE's ``get_2d_sincos_pos_embed``), not learned, added to the patch tokens
  *before* any token is dropped, so a visible patch keeps its position.
* Optional class token (learned, no position embedding), prepended after the
  masking, as in MAE.
* Pre-LN transformer blocks: ``x + MHSA(LN(x))``, ``x + MLP(LN(x))`` with a
  GELU MLP of ``mlp_ratio * width``; then a final LayerNorm (eps 1e-6).
* The blocks also take an optional attention mask, a rotary hook on the
  queries and keys, dropout and a cross-attention context (all off for the
  ViT), so the text Transformers of :mod:`ssl_jax.models.transformer` reuse
  them.
* ``ids_keep``: the encoder takes only the kept (visible) patch tokens, so
  its cost scales with the visible fraction (MAE Sec. 3, "MAE encoder").

Sizes (:data:`VIT_SIZES`): Tiny 192/12/3, Small 384/12/6, Base 768/12/12,
Large 1024/24/16, Huge 1280/32/16 (width / depth / heads); :func:`vit` takes
one of them and overrides any of the three, or all three for a custom size.
"""
from __future__ import annotations

from typing import Any, Callable, Optional, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

Array = jax.Array

__all__ = [
    "VIT_SIZES",
    "POOLS",
    "MultiHeadCrossAttention",
    "MultiHeadSelfAttention",
    "Transformer",
    "TransformerBlock",
    "VisionTransformer",
    "attention_weights",
    "extract_patches",
    "sincos_pos_embed_1d",
    "sincos_pos_embed_2d",
    "vit",
    "vit_dims",
]

#: name -> (width, depth, num_heads), ViT / DeiT naming.
VIT_SIZES = {
    "tiny": (192, 12, 3),
    "small": (384, 12, 6),
    "base": (768, 12, 12),
    "large": (1024, 24, 16),
    "huge": (1280, 32, 16),
}
#: How the encoder's tokens become one feature vector.
POOLS = ("mean", "token")

LN_EPSILON = 1e-6  # MAE: partial(nn.LayerNorm, eps=1e-6)
_xavier = nn.initializers.xavier_uniform()
_token_init = nn.initializers.normal(stddev=0.02)  # MAE: cls and mask tokens


# ---------------------------------------------------------------------------
# Fixed sine-cosine position embeddings (MAE's util/pos_embed.py).
# ---------------------------------------------------------------------------


def sincos_pos_embed_1d(dim: int, positions: np.ndarray) -> np.ndarray:
    r"""``(M, dim)``: ``[sin(pos * omega), cos(pos * omega)]`` per position.

    :math:`\omega_k = 10000^{-k / (dim/2)}` for ``k = 0 .. dim/2 - 1``; the
    first half of the output holds the sines, the second the cosines.
    """
    if dim % 2:
        raise ValueError(f"sincos_pos_embed_1d: dim must be even, got {dim}.")
    omega = np.arange(dim // 2, dtype=np.float64) / (dim / 2.0)
    omega = 1.0 / 10000.0**omega
    out = np.outer(np.asarray(positions, np.float64).reshape(-1), omega)
    return np.concatenate([np.sin(out), np.cos(out)], axis=1)


def sincos_pos_embed_2d(dim: int, grid_size: int | Sequence[int],
                        class_token: bool = False) -> np.ndarray:
    """Fixed 2-D sine-cosine position embeddings, ``(rows * cols [+1], dim)``.

    MAE's ``get_2d_sincos_pos_embed``: for the patch at ``(row, col)`` (row-
    major order, index ``row * cols + col``) the first ``dim/2`` values are
    the 1-D embedding of ``col`` and the last ``dim/2`` that of ``row`` (MAE
    builds its grid with ``np.meshgrid(grid_w, grid_h)``, so the half it
    calls ``emb_h`` holds the column coordinate; kept for compatibility with
    its checkpoints). ``class_token`` prepends a row of zeros. float32.
    """
    if dim % 4:
        raise ValueError(
            f"sincos_pos_embed_2d: dim must be a multiple of 4, got {dim}.")
    if isinstance(grid_size, (int, np.integer)):
        rows = cols = int(grid_size)
    else:
        rows, cols = (int(g) for g in grid_size)
    row, col = np.meshgrid(np.arange(rows), np.arange(cols), indexing="ij")
    emb = np.concatenate([sincos_pos_embed_1d(dim // 2, col),
                          sincos_pos_embed_1d(dim // 2, row)], axis=1)
    if class_token:
        emb = np.concatenate([np.zeros((1, dim)), emb], axis=0)
    return emb.astype(np.float32)


def extract_patches(images: Array, patch_size: int) -> Array:
    """``(B, H, W, C)`` -> ``(B, L, p*p*C)``, row-major patches flattened in
    ``(row, column, channel)`` order (as :func:`ssl_jax.augment.patchify`)."""
    batch, height, width, channels = images.shape
    if height % patch_size or width % patch_size:
        raise ValueError(
            f"VisionTransformer: a {height}x{width} image does not split into "
            f"{patch_size}x{patch_size} patches; use a crop size that is a "
            f"multiple of the patch size.")
    rows, cols = height // patch_size, width // patch_size
    x = images.reshape(batch, rows, patch_size, cols, patch_size, channels)
    x = x.transpose(0, 1, 3, 2, 4, 5)
    return x.reshape(batch, rows * cols, patch_size * patch_size * channels)


# ---------------------------------------------------------------------------
# Transformer.
# ---------------------------------------------------------------------------


def attention_weights(q: Array, k: Array,
                      mask: Optional[Array] = None) -> Array:
    """Softmax attention weights ``(B, H, Tq, Tk)``, float32, of queries
    ``(B, Tq, H, hd)`` and keys ``(B, Tk, H, hd)`` (logits scaled by
    ``hd ** -0.5``, Vaswani et al. 2017).

    ``mask``: optional boolean, broadcastable to ``(B, H, Tq, Tk)``, True
    where a query may attend to a key (the layout of ``nn.make_attention_mask``
    and ``nn.make_causal_mask``). A masked logit becomes the float32 minimum,
    so its weight is exactly zero whenever the row has a visible key (a
    key-padding mask then makes the real tokens exactly independent of the
    padding); a row with no visible key gets uniform weights, never NaN.
    """
    head_dim = q.shape[-1]
    logits = jnp.einsum("bqhd,bkhd->bhqk", q, k) * head_dim**-0.5
    logits = logits.astype(jnp.float32)
    if mask is not None:
        logits = jnp.where(mask, logits, jnp.finfo(jnp.float32).min)
    return jax.nn.softmax(logits, axis=-1)


class MultiHeadSelfAttention(nn.Module):
    """Softmax self-attention over tokens ``(B, T, D)``, softmax in float32.

    One fused qkv projection (as timm's ``Attention``) with biases on the
    queries and values only (``q_bias``, ``v_bias``, as BEiT): a key bias
    adds ``q . b_k`` to every logit of a query, which the softmax removes,
    so its gradient is zero up to rounding and an adaptive optimizer would
    only turn that rounding noise into updates.

    ``__call__(x, mask=None, rotate=None, deterministic=True)``: ``mask`` as
    in :func:`attention_weights`; ``rotate`` an optional function applied to
    the queries and keys ``(B, T, H, hd)`` before the logits (rotary position
    embeddings, :func:`ssl_jax.models.transformer.apply_rotary`);
    ``dropout_rate`` drops attention weights when not ``deterministic``
    (BERT's attention-probability dropout). The defaults are the plain ViT
    attention.
    """

    num_heads: int
    dtype: Any = jnp.float32
    dropout_rate: float = 0.0

    @nn.compact
    def __call__(self, x: Array, mask: Optional[Array] = None,
                 rotate: Optional[Callable[[Array], Array]] = None,
                 deterministic: bool = True) -> Array:
        batch, tokens, width = x.shape
        if width % self.num_heads:
            raise ValueError(
                f"width {width} is not divisible by num_heads={self.num_heads}.")
        head_dim = width // self.num_heads
        zeros = nn.initializers.zeros
        bias = jnp.concatenate([
            self.param("q_bias", zeros, (width,)), jnp.zeros((width,)),
            self.param("v_bias", zeros, (width,))]).astype(self.dtype)
        qkv = nn.Dense(3 * width, use_bias=False, dtype=self.dtype,
                       kernel_init=_xavier, name="qkv")(x) + bias
        qkv = qkv.reshape(batch, tokens, 3, self.num_heads, head_dim)
        q, k, v = qkv[:, :, 0], qkv[:, :, 1], qkv[:, :, 2]
        if rotate is not None:
            q, k = rotate(q), rotate(k)
        weights = attention_weights(q, k, mask)
        weights = nn.Dropout(self.dropout_rate)(weights,
                                                deterministic=deterministic)
        out = jnp.einsum("bhqk,bkhd->bqhd", weights.astype(self.dtype), v)
        out = out.reshape(batch, tokens, width)
        return nn.Dense(width, dtype=self.dtype, kernel_init=_xavier,
                        name="proj")(out)


class MultiHeadCrossAttention(nn.Module):
    """Softmax attention of tokens ``x`` ``(B, T, D)`` to ``context``
    ``(B, S, D)`` (the encoder-decoder attention of Vaswani et al. 2017):
    queries from ``x`` (``q``), fused keys and values from ``context``
    (``kv``), query and value biases only, as
    :class:`MultiHeadSelfAttention`. ``mask`` (e.g. the context's padding,
    ``(B, 1, 1, S)``) as in :func:`attention_weights`."""

    num_heads: int
    dtype: Any = jnp.float32
    dropout_rate: float = 0.0

    @nn.compact
    def __call__(self, x: Array, context: Array,
                 mask: Optional[Array] = None,
                 deterministic: bool = True) -> Array:
        batch, tokens, width = x.shape
        if width % self.num_heads:
            raise ValueError(
                f"width {width} is not divisible by num_heads={self.num_heads}.")
        head_dim = width // self.num_heads
        zeros = nn.initializers.zeros
        q = nn.Dense(width, use_bias=False, dtype=self.dtype,
                     kernel_init=_xavier, name="q")(x)
        q = q + self.param("q_bias", zeros, (width,)).astype(self.dtype)
        kv_bias = jnp.concatenate([
            jnp.zeros((width,)),
            self.param("v_bias", zeros, (width,))]).astype(self.dtype)
        kv = nn.Dense(2 * width, use_bias=False, dtype=self.dtype,
                      kernel_init=_xavier, name="kv")(context) + kv_bias
        kv = kv.reshape(batch, context.shape[1], 2, self.num_heads, head_dim)
        q = q.reshape(batch, tokens, self.num_heads, head_dim)
        weights = attention_weights(q, kv[:, :, 0], mask)
        weights = nn.Dropout(self.dropout_rate)(weights,
                                                deterministic=deterministic)
        out = jnp.einsum("bhqk,bkhd->bqhd", weights.astype(self.dtype),
                         kv[:, :, 1])
        out = out.reshape(batch, tokens, width)
        return nn.Dense(width, dtype=self.dtype, kernel_init=_xavier,
                        name="proj")(out)


class TransformerBlock(nn.Module):
    """Pre-LN block: ``x + MHSA(LN(x))``, then ``x + MLP(LN(x))`` (GELU).

    ``__call__(x, mask=None, rotate=None, context=None, context_mask=None,
    deterministic=True)``: ``mask`` and ``rotate`` go to the self-attention
    (:class:`MultiHeadSelfAttention`). With a ``context`` the block is a
    decoder block: ``x + CrossAttn(LN(x), context)`` (``norm_cross``,
    ``cross_attn``, masked by ``context_mask``) between the self-attention
    and the MLP, as in Vaswani et al. 2017 (pre-LN, Xiong et al. 2020).
    ``dropout_rate``: attention-weight dropout and dropout on each
    sub-layer's output before its residual sum (BERT's placement), active
    only when not ``deterministic``. The defaults are the ViT block.
    """

    num_heads: int
    mlp_ratio: float = 4.0
    dtype: Any = jnp.float32
    dropout_rate: float = 0.0

    @nn.compact
    def __call__(self, x: Array, mask: Optional[Array] = None,
                 rotate: Optional[Callable[[Array], Array]] = None,
                 context: Optional[Array] = None,
                 context_mask: Optional[Array] = None,
                 deterministic: bool = True) -> Array:
        width = x.shape[-1]

        def drop(y):
            return nn.Dropout(self.dropout_rate)(y,
                                                 deterministic=deterministic)

        y = nn.LayerNorm(epsilon=LN_EPSILON, dtype=self.dtype, name="norm1")(x)
        x = x + drop(MultiHeadSelfAttention(
            self.num_heads, self.dtype, self.dropout_rate, name="attn")(
                y, mask=mask, rotate=rotate, deterministic=deterministic))
        if context is not None:
            y = nn.LayerNorm(epsilon=LN_EPSILON, dtype=self.dtype,
                             name="norm_cross")(x)
            x = x + drop(MultiHeadCrossAttention(
                self.num_heads, self.dtype, self.dropout_rate,
                name="cross_attn")(y, context, mask=context_mask,
                                   deterministic=deterministic))
        y = nn.LayerNorm(epsilon=LN_EPSILON, dtype=self.dtype, name="norm2")(x)
        y = nn.Dense(int(width * self.mlp_ratio), dtype=self.dtype,
                     kernel_init=_xavier, name="fc1")(y)
        y = nn.gelu(y, approximate=False)  # torch.nn.GELU (exact erf form)
        y = nn.Dense(width, dtype=self.dtype, kernel_init=_xavier,
                     name="fc2")(y)
        return x + drop(y)


class Transformer(nn.Module):
    """``depth`` :class:`TransformerBlock` s and a final LayerNorm; width is
    that of the input tokens. Shared by the ViT encoder, MAE's decoder and
    the text models of :mod:`ssl_jax.models.transformer`, which pass the
    blocks' optional ``mask``, ``rotate``, ``context``, ``context_mask`` and
    ``deterministic`` (see :class:`TransformerBlock`)."""

    depth: int
    num_heads: int
    mlp_ratio: float = 4.0
    dtype: Any = jnp.float32
    dropout_rate: float = 0.0

    @nn.compact
    def __call__(self, x: Array, mask: Optional[Array] = None,
                 rotate: Optional[Callable[[Array], Array]] = None,
                 context: Optional[Array] = None,
                 context_mask: Optional[Array] = None,
                 deterministic: bool = True) -> Array:
        for i in range(self.depth):
            x = TransformerBlock(self.num_heads, self.mlp_ratio, self.dtype,
                                 self.dropout_rate, name=f"block{i}")(
                                     x, mask=mask, rotate=rotate,
                                     context=context,
                                     context_mask=context_mask,
                                     deterministic=deterministic)
        return nn.LayerNorm(epsilon=LN_EPSILON, dtype=self.dtype,
                            name="norm")(x)


class VisionTransformer(nn.Module):
    """ViT encoder; see the module docstring.

    ``__call__(images, train, ids_keep=None, return_tokens=False)``:

    * ``images``: ``(B, H, W, C)``, H and W multiples of ``patch_size``.
    * ``ids_keep``: optional ``(B, K)`` int indices of the patches to keep
      (row-major patch order); only those K tokens (plus the class token)
      enter the transformer. None: all patches.
    * ``return_tokens``: return the final tokens ``(B, [1 +] K, width)``
      (class token first) instead of the pooled feature ``(B, width)``.

    ``pool``: ``'mean'`` averages the patch tokens (the class token
    excluded), ``'token'`` takes the class token (needs ``class_token``).
    ``train`` is accepted for the backbone interface; the model has no
    dropout or BatchNorm, so it changes nothing.
    """

    patch_size: int
    width: int
    depth: int
    num_heads: int
    mlp_ratio: float = 4.0
    class_token: bool = True
    pool: str = "mean"
    dtype: Any = jnp.float32

    def setup(self):
        if self.pool not in POOLS:
            raise ValueError(f"pool={self.pool!r}; use one of {POOLS}.")
        if self.pool == "token" and not self.class_token:
            raise ValueError("pool='token' needs class_token=True.")
        self.patch_embed = nn.Dense(self.width, dtype=self.dtype,
                                    kernel_init=_xavier, name="patch_embed")
        if self.class_token:
            self.cls_token = self.param("cls_token", _token_init,
                                        (1, 1, self.width))
        self.transformer = Transformer(self.depth, self.num_heads,
                                       self.mlp_ratio, self.dtype,
                                       name="transformer")

    def grid(self, images: Array) -> tuple[int, int]:
        """``(rows, cols)`` of the patch grid of ``images``."""
        return (images.shape[1] // self.patch_size,
                images.shape[2] // self.patch_size)

    def __call__(self, images: Array, train: bool = False,
                 ids_keep: Optional[Array] = None,
                 return_tokens: bool = False) -> Array:
        del train
        patches = extract_patches(images, self.patch_size)
        x = self.patch_embed(patches.astype(self.dtype))
        x = x + jnp.asarray(sincos_pos_embed_2d(self.width, self.grid(images)),
                            self.dtype)
        if ids_keep is not None:
            x = jnp.take_along_axis(x, ids_keep[..., None], axis=1)
        if self.class_token:
            cls = jnp.broadcast_to(self.cls_token.astype(self.dtype),
                                   (x.shape[0], 1, self.width))
            x = jnp.concatenate([cls, x], axis=1)
        x = self.transformer(x)
        return x if return_tokens else self.pool_tokens(x)

    def pool_tokens(self, tokens: Array) -> Array:
        """The feature vector ``(B, width)`` of encoder tokens (``pool``)."""
        if self.pool == "token":
            return tokens[:, 0]
        if self.class_token:
            tokens = tokens[:, 1:]
        return jnp.mean(tokens, axis=1)


def vit_dims(size: Optional[str] = None, width: Optional[int] = None,
             depth: Optional[int] = None,
             num_heads: Optional[int] = None) -> tuple[int, int, int]:
    """``(width, depth, num_heads)``: the preset ``size`` with any given
    field overriding it; without a size all three must be given."""
    if size is None or size == "custom":
        base = (None, None, None)
    elif size in VIT_SIZES:
        base = VIT_SIZES[size]
    else:
        raise ValueError(
            f"ViT size {size!r} is not known; use one of {sorted(VIT_SIZES)} "
            "or 'custom' with width, depth and num_heads.")
    dims = tuple(b if v is None else int(v)
                 for b, v in zip(base, (width, depth, num_heads)))
    if None in dims:
        raise ValueError(
            "a custom ViT needs width, depth and num_heads (got "
            f"width={width}, depth={depth}, num_heads={num_heads}).")
    width, depth, num_heads = dims
    if width % num_heads or width % 4:
        raise ValueError(
            f"ViT width {width} must be divisible by num_heads={num_heads} "
            "and by 4 (2-D sine-cosine position embeddings).")
    return dims


def vit(size: Optional[str] = None, *, patch_size: int,
        width: Optional[int] = None, depth: Optional[int] = None,
        num_heads: Optional[int] = None, mlp_ratio: float = 4.0,
        class_token: bool = True, pool: str = "mean",
        dtype: Any = jnp.float32) -> VisionTransformer:
    """A :class:`VisionTransformer` of preset ``size`` (``'tiny'``,
    ``'small'``, ``'base'``, ...) or a custom one, e.g.
    ``vit('base', patch_size=16)`` is ViT-B/16."""
    width, depth, num_heads = vit_dims(size, width, depth, num_heads)
    if patch_size < 1:
        raise ValueError(f"patch_size must be positive, got {patch_size}.")
    return VisionTransformer(patch_size=int(patch_size), width=width,
                             depth=depth, num_heads=num_heads,
                             mlp_ratio=float(mlp_ratio),
                             class_token=bool(class_token), pool=pool,
                             dtype=dtype)
