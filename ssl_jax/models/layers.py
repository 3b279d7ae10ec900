"""Convolution layers shared by the backbones.

:class:`ShiftedMatmulConv` is a 2-D convolution with the parameters of
:class:`flax.linen.Conv` (``kernel`` of shape ``(kh, kw, in_features,
features)`` and an optional ``bias``), so a parameter tree produced with one
implementation loads into the other, computed in one of three CPU-minded
ways:

- ``'shifted_matmul'``: forward and both gradients as ``kh * kw`` matrix
  products, one per kernel tap (:func:`shifted_matmul_conv`);
- ``'matmul_wgrad'``: XLA's forward and input gradient, the weight gradient
  as per-tap matmuls (:func:`matmul_wgrad_conv`);
- ``'batch_chunked'``: XLA's convolutions throughout, the forward pass and
  the weight gradient run on batch chunks of about 2,048 output positions
  (:func:`batch_chunked_conv`).

Why they exist: XLA:CPU's convolution kernels lose most of their speed on
large batches of large maps, the weight gradient worst. Measured on the
2-core development machine with jaxlib 0.10.2 (3x3, 64->64, batch 128 of
32x32): forward 74 ms, input gradient 75 ms, weight gradient 186 ms as one
convolution; 51 ms and 60 ms for the forward and the weight gradient in
chunks of 4 images; per-tap matmuls were slower than XLA's own weight
gradient there (362 ms). The developers' guide's figure of 1.2 s for XLA's
(batch 64) does not reproduce with this jaxlib.
``experiments/bench_step.py`` measures whole training steps; on GPU/TPU the
native convolution (``ResNet(conv_impl='xla')``) is the right choice.
"""
from __future__ import annotations

import functools
import numbers
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
from jax import lax
import flax.linen as nn

Array = jax.Array
PaddingLike = str | int | Sequence[int] | Sequence[tuple[int, int]]

__all__ = [
    "CONV_MODES",
    "ShiftedMatmulConv",
    "batch_chunked_conv",
    "conv_batch_chunks",
    "matmul_wgrad_conv",
    "conv_output_size",
    "resolve_conv_padding",
    "shifted_matmul_conv",
]


def _pair(value: int | Sequence[int], name: str) -> tuple[int, int]:
    """Normalises an int or a length-2 sequence to a pair of positive ints."""
    if isinstance(value, numbers.Integral):
        pair = (int(value), int(value))
    else:
        pair = tuple(int(v) for v in value)
        if len(pair) != 2:
            raise ValueError(f"{name} must be an int or a pair of ints, got {value!r}")
    if min(pair) < 1:
        raise ValueError(f"{name} must be positive, got {value!r}")
    return pair  # type: ignore[return-value]


def resolve_conv_padding(
    padding: PaddingLike,
    spatial_shape: Sequence[int],
    kernel_size: Sequence[int],
    strides: Sequence[int],
) -> tuple[tuple[int, int], tuple[int, int]]:
    """Turns a padding spec into explicit ``((top, bottom), (left, right))`` pads.

    Accepts the same forms as :class:`flax.linen.Conv` for 2-D inputs, except
    the ``'CIRCULAR'``/``'CAUSAL'`` modes:

    * ``'SAME'``: output size ``ceil(in / stride)``, the extra pixel (if the
      total pad is odd) at the end, as in XLA/TensorFlow;
    * ``'VALID'``: no padding;
    * an int ``p``: ``p`` on every side;
    * a pair of ints ``(ph, pw)``: symmetric per axis;
    * a pair of ``(low, high)`` pairs.
    """
    if isinstance(padding, str):
        mode = padding.upper()
        if mode not in ("SAME", "VALID"):
            raise ValueError(
                f"padding {padding!r} is not supported; use 'SAME', 'VALID', an int "
                "or explicit (low, high) pairs"
            )
        pads = lax.padtype_to_pads(tuple(spatial_shape), tuple(kernel_size), tuple(strides), mode)
        return tuple((int(lo), int(hi)) for lo, hi in pads)  # type: ignore[return-value]
    if isinstance(padding, numbers.Integral):
        pads = ((int(padding),) * 2,) * 2
    else:
        items = list(padding)
        if len(items) != 2:
            raise ValueError(f"padding must describe 2 spatial axes, got {padding!r}")
        if all(isinstance(p, numbers.Integral) for p in items):
            pads = tuple((int(p), int(p)) for p in items)
        else:
            pads = tuple(tuple(int(v) for v in p) for p in items)
            if any(len(p) != 2 for p in pads):
                raise ValueError(f"padding pairs must be (low, high), got {padding!r}")
    if any(v < 0 for p in pads for v in p):
        raise ValueError(f"padding must be non-negative, got {padding!r}")
    return pads  # type: ignore[return-value]


def conv_output_size(size: int, kernel: int, stride: int, pad: tuple[int, int]) -> int:
    """Spatial output size of a convolution with explicit padding."""
    return (size + pad[0] + pad[1] - kernel) // stride + 1


def _check_conv_args(x, kernel, strides, padding):
    """Validates NHWC/HWIO shapes; returns ``(x, kernel, strides, pads)``."""
    x = jnp.asarray(x)
    kernel = jnp.asarray(kernel)
    if x.ndim != 4:
        raise ValueError(f"expected an NHWC input of rank 4, got shape {x.shape}")
    if kernel.ndim != 4:
        raise ValueError(f"expected a (kh, kw, C_in, C_out) kernel, got shape {kernel.shape}")
    _, h, w, cin = x.shape
    kh, kw, kcin, _ = kernel.shape
    if kcin != cin:
        raise ValueError(
            f"input has {cin} channels but the kernel expects {kcin} (kernel shape {kernel.shape})"
        )
    strides = _pair(strides, "strides")
    pads = resolve_conv_padding(padding, (h, w), (kh, kw), strides)
    if conv_output_size(h, kh, strides[0], pads[0]) < 1 or conv_output_size(
        w, kw, strides[1], pads[1]
    ) < 1:
        raise ValueError(
            f"input spatial size {(h, w)} is too small for kernel {(kh, kw)} with padding {pads}"
        )
    return x, kernel, strides, pads


def shifted_matmul_conv(
    x: Array,
    kernel: Array,
    strides: int | Sequence[int] = 1,
    padding: PaddingLike = "SAME",
    *,
    precision: Any = None,
    accumulation_dtype: Any = None,
) -> Array:
    """2-D NHWC convolution as a sum of shifted, strided matrix products.

    Computes ``out[n, y, x, :] = sum_{i, j} xpad[n, y*sh + i, x*sw + j, :] @ kernel[i, j]``
    -- the cross-correlation that :func:`jax.lax.conv_general_dilated` (and
    therefore :class:`flax.linen.Conv`) computes -- by slicing the padded
    input once per kernel tap ``(i, j)`` and contracting the channel axis with
    ``kernel[i, j]``. Forward and backward passes are then ``kh * kw``
    matmuls each, plus slices/pads.

    Args:
      x: input of shape ``(N, H, W, C_in)``.
      kernel: weights of shape ``(kh, kw, C_in, C_out)`` (the
        :class:`flax.linen.Conv` layout).
      strides: int or ``(sh, sw)``.
      padding: see :func:`resolve_conv_padding`.
      precision: passed to each matmul.
      accumulation_dtype: dtype of the per-tap products and of their running
        sum (e.g. ``float32`` for ``bfloat16`` inputs); the result is cast
        back to the promoted input dtype. ``None`` accumulates in that dtype.

    Returns:
      Array of shape ``(N, H_out, W_out, C_out)``.
    """
    x, kernel, (sh, sw), pads = _check_conv_args(x, kernel, strides, padding)
    kh, kw = kernel.shape[:2]
    oh = conv_output_size(x.shape[1], kh, sh, pads[0])
    ow = conv_output_size(x.shape[2], kw, sw, pads[1])
    out_dtype = jnp.result_type(x.dtype, kernel.dtype)
    x = x.astype(out_dtype)
    kernel = kernel.astype(out_dtype)
    acc_dtype = out_dtype if accumulation_dtype is None else jnp.dtype(accumulation_dtype)

    xp = _pad_spatial(x, pads)
    out = None
    for i, j, tap in _taps(xp, (kh, kw), (oh, ow), (sh, sw)):
        term = lax.dot_general(
            tap,
            kernel[i, j],
            (((3,), (0,)), ((), ())),
            precision=precision,
            preferred_element_type=acc_dtype,
        )
        out = term if out is None else out + term
    return out.astype(out_dtype)


def _pad_spatial(x: Array, pads: tuple[tuple[int, int], tuple[int, int]]) -> Array:
    if all(p == (0, 0) for p in pads):
        return x
    return jnp.pad(x, ((0, 0), pads[0], pads[1], (0, 0)))


def _taps(xp: Array, kernel_size, out_size, strides):
    """Yields ``(i, j, xp[:, i::sh, j::sw, :])`` cropped to the output size."""
    n, _, _, c = xp.shape
    (kh, kw), (oh, ow), (sh, sw) = kernel_size, out_size, strides
    for i in range(kh):
        for j in range(kw):
            yield i, j, lax.slice(
                xp,
                (0, i, j, 0),
                (n, i + (oh - 1) * sh + 1, j + (ow - 1) * sw + 1, c),
                (1, sh, sw, 1),
            )


def _xla_conv(x, kernel, strides, pads, precision):
    return lax.conv_general_dilated(
        x,
        kernel,
        window_strides=strides,
        padding=pads,
        dimension_numbers=("NHWC", "HWIO", "NHWC"),
        precision=precision,
    )


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3, 4))
def _conv_matmul_wgrad(x, kernel, strides, pads, precision):
    return _xla_conv(x, kernel, strides, pads, precision)


def _conv_matmul_wgrad_fwd(x, kernel, strides, pads, precision):
    return _xla_conv(x, kernel, strides, pads, precision), (x, kernel)


def _conv_matmul_wgrad_bwd(strides, pads, precision, residuals, g):
    x, kernel = residuals
    # Input gradient: XLA's transposed convolution, which is fast on every backend.
    _, x_vjp = jax.vjp(lambda x_: _xla_conv(x_, kernel, strides, pads, precision), x)
    (dx,) = x_vjp(g)
    # Weight gradient: one (C_in x N*H*W) @ (N*H*W x C_out) product per tap.
    kh, kw = kernel.shape[:2]
    acc = jnp.float32 if jnp.finfo(kernel.dtype).bits < 32 else kernel.dtype
    rows = [[None] * kw for _ in range(kh)]
    for i, j, tap in _taps(_pad_spatial(x, pads), (kh, kw), g.shape[1:3], strides):
        rows[i][j] = lax.dot_general(
            tap,
            g,
            (((0, 1, 2), (0, 1, 2)), ((), ())),
            precision=precision,
            preferred_element_type=acc,
        )
    dkernel = jnp.stack([jnp.stack(r) for r in rows]).astype(kernel.dtype)
    return dx, dkernel


_conv_matmul_wgrad.defvjp(_conv_matmul_wgrad_fwd, _conv_matmul_wgrad_bwd)


def matmul_wgrad_conv(
    x: Array,
    kernel: Array,
    strides: int | Sequence[int] = 1,
    padding: PaddingLike = "SAME",
    *,
    precision: Any = None,
) -> Array:
    """XLA convolution whose *weight* gradient is computed by shifted matmuls.

    The forward pass and the input gradient are :func:`jax.lax.conv_general_dilated`
    and its transpose (fast on XLA:CPU); only the kernel gradient, the slow
    path on XLA:CPU, is replaced (through :func:`jax.custom_vjp`) by
    ``dkernel[i, j] = sum_{n,y,x} xpad[n, y*sh + i, x*sw + j, :]^T g[n, y, x, :]``,
    one matmul per kernel tap. Same arguments and result as
    :func:`shifted_matmul_conv`.
    """
    return _call_custom_vjp_conv(_conv_matmul_wgrad, x, kernel, strides, padding, precision)


# Output positions (images x rows x columns) per batch chunk, and the most
# chunks a convolution is cut into.
_CHUNK_POSITIONS = 2048
_MAX_CHUNKS = 32


def conv_batch_chunks(batch: int, out_height: int, out_width: int) -> int:
    """How many batch chunks :func:`batch_chunked_conv` cuts a convolution
    into: the largest divisor of ``batch`` that leaves at least
    ``_CHUNK_POSITIONS`` output positions per chunk (at most ``_MAX_CHUNKS``;
    1 for small batches or maps)."""
    limit = min(_MAX_CHUNKS, batch * out_height * out_width // _CHUNK_POSITIONS)
    return max(k for k in range(1, max(limit, 1) + 1) if batch % k == 0)


def _forward_chunks(x, kernel, strides, pads) -> int:
    """:func:`conv_batch_chunks` of the convolution of ``x`` by ``kernel``."""
    n, h, w, _ = x.shape
    kh, kw = kernel.shape[:2]
    return conv_batch_chunks(
        n, conv_output_size(h, kh, strides[0], pads[0]), conv_output_size(w, kw, strides[1], pads[1])
    )


def _chunked_forward(x, kernel, strides, pads, precision):
    """XLA's convolution run on batch chunks one after another (``lax.map``)."""
    n = x.shape[0]
    chunks = _forward_chunks(x, kernel, strides, pads)
    y = lax.map(
        lambda part: _xla_conv(part, kernel, strides, pads, precision),
        x.reshape(chunks, n // chunks, *x.shape[1:]),
    )
    return y.reshape(n, *y.shape[2:])


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3, 4))
def _conv_batch_chunked(x, kernel, strides, pads, precision):
    return _chunked_forward(x, kernel, strides, pads, precision)


def _conv_batch_chunked_fwd(x, kernel, strides, pads, precision):
    return _chunked_forward(x, kernel, strides, pads, precision), (x, kernel)


def _conv_batch_chunked_bwd(strides, pads, precision, residuals, g):
    x, kernel = residuals
    conv = functools.partial(_xla_conv, strides=strides, pads=pads, precision=precision)
    # Input gradient: XLA's transposed convolution of the whole batch (in
    # chunks, as the forward pass, it measured no faster).
    (dx,) = jax.vjp(lambda x_: conv(x_, kernel), x)[1](g)
    # Weight gradient: XLA's own on each chunk, summed. The chunks are
    # unrolled: inside a loop (lax.map, lax.scan) XLA:CPU's weight gradient
    # took 38 s instead of 0.19 s.
    chunks = conv_batch_chunks(*g.shape[:3])
    dkernel = None
    for x_part, g_part in zip(jnp.split(x, chunks), jnp.split(g, chunks)):
        (part,) = jax.vjp(lambda k: conv(x_part, k), kernel)[1](g_part)
        dkernel = part if dkernel is None else dkernel + part
    return dx, dkernel


_conv_batch_chunked.defvjp(_conv_batch_chunked_fwd, _conv_batch_chunked_bwd)


def batch_chunked_conv(
    x: Array,
    kernel: Array,
    strides: int | Sequence[int] = 1,
    padding: PaddingLike = "SAME",
    *,
    precision: Any = None,
) -> Array:
    """XLA's convolution computed on batch chunks that stay in cache.

    The forward pass runs :func:`jax.lax.conv_general_dilated` on
    :func:`conv_batch_chunks` slices of the batch in sequence; the input
    gradient is XLA's transposed convolution of the whole batch; the kernel
    gradient is XLA's, per chunk, summed (a :func:`jax.custom_vjp`). Same
    value and gradients as the plain convolution up to float summation
    order. On the 2-core development CPU (jaxlib 0.10.2) a 3x3 64->64
    convolution on 128 x 32 x 32 x 64 took 74 ms forward and 186 ms for the
    weight gradient whole, 51 ms and 60 ms in chunks of 4 images; see
    ``experiments/bench_step.py`` for whole networks. Same arguments and
    result as :func:`shifted_matmul_conv`. A convolution small enough for one
    chunk is XLA's own, with XLA's gradients (no custom VJP).
    """
    x, kernel, strides, pads = _check_conv_args(x, kernel, strides, padding)
    dtype = jnp.result_type(x.dtype, kernel.dtype)
    x, kernel = x.astype(dtype), kernel.astype(dtype)
    if _forward_chunks(x, kernel, strides, pads) == 1:
        return _xla_conv(x, kernel, strides, pads, precision)
    return _conv_batch_chunked(x, _vary_like(kernel, x), strides, pads, precision)


def _call_custom_vjp_conv(conv, x, kernel, strides, padding, precision):
    """Checks and promotes the arguments of a custom-VJP convolution ``conv``
    (its kernel made varying like ``x`` under ``shard_map``) and calls it."""
    x, kernel, strides, pads = _check_conv_args(x, kernel, strides, padding)
    dtype = jnp.result_type(x.dtype, kernel.dtype)
    kernel = _vary_like(kernel, x)
    return conv(x.astype(dtype), kernel.astype(dtype), strides, pads, precision)


def _varying_axes(a: Array) -> frozenset:
    """The shard_map mesh axes along which ``a`` varies (empty outside shard_map)."""
    aval = jax.typeof(a)
    manual = getattr(aval, "manual_axis_type", None)
    if manual is not None:
        return frozenset(manual.varying)
    return frozenset(getattr(aval, "vma", ()))


def _vary_like(kernel: Array, x: Array) -> Array:
    """Marks a replicated ``kernel`` as varying over ``x``'s shard_map axes.

    Inside ``shard_map`` (``check_vma=True``) a custom VJP must return a
    cotangent of its input's exact type. The weight gradient computed from a
    per-device batch varies over the batch axis while a replicated kernel does
    not, so the kernel is cast to varying *before* the custom VJP: the cast's
    transpose then sums the per-device weight gradients, exactly as JAX does
    for ``lax.conv_general_dilated`` itself.
    """
    missing = tuple(sorted(_varying_axes(x) - _varying_axes(kernel)))
    if not missing:
        return kernel
    return lax.pcast(kernel, missing, to="varying")


CONV_MODES = ("shifted_matmul", "matmul_wgrad", "batch_chunked")


class ShiftedMatmulConv(nn.Module):
    """Drop-in replacement for a 2-D :class:`flax.linen.Conv` (NHWC).

    Same parameters as ``nn.Conv`` (``kernel`` of shape
    ``(kh, kw, C_in, features)``, optional ``bias``, same initialisers) and the
    same result up to float summation order, computed in one of the module
    docstring's CPU modes (where the measurements behind them are).

    Attributes:
      features: number of output channels.
      kernel_size: int or ``(kh, kw)``.
      strides: int or ``(sh, sw)``.
      padding: ``'SAME'``, ``'VALID'``, an int, or explicit ``(low, high)`` pairs.
      use_bias: add a learned bias.
      mode: ``'shifted_matmul'``: everything (forward, input and weight
        gradients) is ``kh * kw`` matmuls on shifted slices
        (:func:`shifted_matmul_conv`); ``'matmul_wgrad'``: forward and input
        gradient are XLA convolutions, only the weight gradient is shifted
        matmuls (:func:`matmul_wgrad_conv`); ``'batch_chunked'``: XLA
        convolutions on batch chunks (:func:`batch_chunked_conv`).
      dtype: compute dtype (``None``: promote input and params).
      param_dtype: dtype of the parameters.
      precision: matmul/convolution precision.
      kernel_init: kernel initializer (``nn.Conv``'s default: LeCun normal).
      bias_init: bias initializer.
    """

    features: int
    kernel_size: int | Sequence[int]
    strides: int | Sequence[int] = 1
    padding: PaddingLike = "SAME"
    use_bias: bool = True
    mode: str = "shifted_matmul"
    dtype: Any = None
    param_dtype: Any = jnp.float32
    precision: Any = None
    kernel_init: Any = nn.initializers.lecun_normal()
    bias_init: Any = nn.initializers.zeros_init()

    @nn.compact
    def __call__(self, x: Array) -> Array:
        if self.mode not in CONV_MODES:
            raise ValueError(f"mode must be one of {CONV_MODES}, got {self.mode!r}")
        if x.ndim != 4:
            raise ValueError(
                f"ShiftedMatmulConv expects NHWC inputs of rank 4, got shape {x.shape}"
            )
        kh, kw = _pair(self.kernel_size, "kernel_size")
        kernel = self.param(
            "kernel", self.kernel_init, (kh, kw, x.shape[-1], self.features), self.param_dtype
        )
        bias = (
            self.param("bias", self.bias_init, (self.features,), self.param_dtype)
            if self.use_bias
            else None
        )
        x, kernel, bias = nn.dtypes.promote_dtype(x, kernel, bias, dtype=self.dtype)
        if self.mode == "shifted_matmul":
            # Low-precision inputs: accumulate the k*k partial products in float32.
            acc = jnp.float32 if jnp.finfo(x.dtype).bits < 32 else None
            y = shifted_matmul_conv(
                x, kernel, self.strides, self.padding,
                precision=self.precision, accumulation_dtype=acc,
            )
        else:
            conv = matmul_wgrad_conv if self.mode == "matmul_wgrad" else batch_chunked_conv
            y = conv(x, kernel, self.strides, self.padding, precision=self.precision)
        if bias is not None:
            y = y + bias
        return y
