"""ResNet backbones (He et al., 2016, "Deep Residual Learning for Image Recognition").

Layout is the common "ResNet v1.5": post-activation residual blocks, and in
bottleneck blocks the stride sits on the 3x3 convolution rather than the first
1x1. A projection shortcut (1x1 convolution + BatchNorm) is used whenever a
block changes the spatial size or the channel count; identity otherwise.

Two stems:

* ``'imagenet'``: 7x7 stride-2 convolution, BN, ReLU, 3x3 stride-2 max-pool
  (224x224 -> 56x56 before the first stage, 7x7 after the fourth);
* ``'cifar'``: 3x3 stride-1 convolution, BN, ReLU, no pooling, the variant
  SimCLR (Chen et al., 2020, "A Simple Framework for Contrastive Learning of
  Visual Representations", appendix B.9) uses for 32x32 images (32x32 -> 4x4
  after the fourth stage).

``width_multiplier`` scales every convolution's channel count, as in SimCLR's
ResNet-50 (2x) and (4x). All convolutions pad ``(k - 1) // 2`` pixels on each
side (the torchvision and SimCLR/TF "fixed padding" convention), so stride-2
layers align with those references, and weights ported from them compute the
same function. Convolutions have no bias; kernels use He (fan-out, normal)
initialisation as torchvision does.

Cross-replica BatchNorm: with ``bn_axis_name='batch'`` every BatchNorm averages
its batch statistics over that named axis, so inside ``jax.shard_map`` (or
``pmap``) over the batch the statistics are those of the global batch.

The forward pass returns globally average-pooled features of size
:attr:`ResNet.feature_dim`; the per-stage feature maps are sown into the
``'intermediates'`` collection (``'stem'``, ``'stage1'``, ...) for dense or
multi-scale methods.
"""
from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import flax.linen as nn

from ssl_jax.models.layers import ShiftedMatmulConv

Array = jax.Array
ModuleDef = Callable[..., nn.Module]

__all__ = ["RESNET_DEPTHS", "BasicBlock", "BottleneckBlock", "ResNet", "resnet"]

BLOCK_TYPES = ("basic", "bottleneck")
STEMS = ("imagenet", "cifar")
CONV_IMPLS = ("auto", "xla", "shifted_matmul", "matmul_wgrad", "batch_chunked")


def resolve_conv_impl(impl: str, train: bool = True) -> str:
    """The convolution ``impl`` stands for: ``'auto'`` is ``'batch_chunked'``
    for training when JAX's default backend is the CPU (XLA:CPU's
    whole-batch weight gradient and forward convolution are slower than in
    cache-sized chunks), and ``'xla'`` for inference and on GPU and TPU;
    every other name is itself."""
    if impl != "auto":
        return impl
    return "batch_chunked" if train and jax.default_backend() == "cpu" else "xla"

#: depth -> (stage_sizes, block). 10 is a small 4-stage basic-block variant for
#: demos and tests; the others are He et al. (2016), table 1.
RESNET_DEPTHS: dict[int, tuple[tuple[int, ...], str]] = {
    10: ((1, 1, 1, 1), "basic"),
    18: ((2, 2, 2, 2), "basic"),
    34: ((3, 4, 6, 3), "basic"),
    50: ((3, 4, 6, 3), "bottleneck"),
    101: ((3, 4, 23, 3), "bottleneck"),
    152: ((3, 8, 36, 3), "bottleneck"),
}

# He et al. (2015) initialisation with fan-out, the torchvision ResNet default.
_he_fan_out = nn.initializers.variance_scaling(2.0, "fan_out", "normal")


class BasicBlock(nn.Module):
    """Two 3x3 convolutions (ResNet-18/34 block).

    Attributes:
      features: output channels.
      strides: stride of the first 3x3 convolution (and of the shortcut).
      conv: convolution constructor ``conv(features, kernel_size, strides, name=...)``.
      norm: BatchNorm constructor ``norm(name=..., scale_init=...)``.
      zero_init_residual: initialise the last BN's scale to zero, so the block
        starts as the identity (Goyal et al., 2017).
    """

    features: int
    strides: int
    conv: ModuleDef
    norm: ModuleDef
    zero_init_residual: bool = False

    @nn.compact
    def __call__(self, x: Array) -> Array:
        shortcut = x
        y = self.conv(self.features, 3, self.strides, name="conv1")(x)
        y = nn.relu(self.norm(name="bn1")(y))
        y = self.conv(self.features, 3, 1, name="conv2")(y)
        y = self.norm(name="bn2", scale_init=_last_bn_scale_init(self.zero_init_residual))(y)
        if self.strides != 1 or x.shape[-1] != self.features:
            shortcut = self.conv(self.features, 1, self.strides, name="proj_conv")(x)
            shortcut = self.norm(name="proj_bn")(shortcut)
        return nn.relu(y + shortcut)


class BottleneckBlock(nn.Module):
    """1x1 -> 3x3 (strided) -> 1x1 bottleneck (ResNet-50/101/152 block, v1.5).

    Attributes:
      features: bottleneck channels; the block outputs ``4 * features``.
      strides: stride of the 3x3 convolution (and of the shortcut).
      conv, norm, zero_init_residual: as in :class:`BasicBlock`.
    """

    features: int
    strides: int
    conv: ModuleDef
    norm: ModuleDef
    zero_init_residual: bool = False

    expansion = 4

    @nn.compact
    def __call__(self, x: Array) -> Array:
        out_features = self.features * self.expansion
        shortcut = x
        y = self.conv(self.features, 1, 1, name="conv1")(x)
        y = nn.relu(self.norm(name="bn1")(y))
        y = self.conv(self.features, 3, self.strides, name="conv2")(y)
        y = nn.relu(self.norm(name="bn2")(y))
        y = self.conv(out_features, 1, 1, name="conv3")(y)
        y = self.norm(name="bn3", scale_init=_last_bn_scale_init(self.zero_init_residual))(y)
        if self.strides != 1 or x.shape[-1] != out_features:
            shortcut = self.conv(out_features, 1, self.strides, name="proj_conv")(x)
            shortcut = self.norm(name="proj_bn")(shortcut)
        return nn.relu(y + shortcut)


def _last_bn_scale_init(zero: bool):
    return nn.initializers.zeros_init() if zero else nn.initializers.ones_init()


def make_conv(
    features: int,
    kernel_size: int,
    strides: int,
    *,
    name: str,
    impl: str,
    dtype: Any,
    kernel_init: Any = None,
) -> nn.Module:
    """A bias-free ``kernel_size`` x ``kernel_size`` convolution with fixed
    padding; ``impl`` is resolved (:func:`resolve_conv_impl`), not 'auto'."""
    pad = (kernel_size - 1) // 2
    padding = ((pad, kernel_size - 1 - pad), (pad, kernel_size - 1 - pad))
    common = dict(
        features=features,
        strides=(strides, strides),
        padding=padding,
        use_bias=False,
        dtype=dtype,
        param_dtype=jnp.float32,
        kernel_init=_he_fan_out if kernel_init is None else kernel_init,
        name=name,
    )
    if impl == "xla":
        return nn.Conv(kernel_size=(kernel_size, kernel_size), **common)
    return ShiftedMatmulConv(kernel_size=kernel_size, mode=impl, **common)


class ResNet(nn.Module):
    """ResNet backbone returning globally average-pooled features.

    Attributes:
      stage_sizes: number of blocks per stage; stage ``i`` (0-based) has
        ``64 * 2**i * width_multiplier`` channels (times 4 at the output of a
        bottleneck block) and, except for the first, halves the resolution.
      block: ``'basic'`` or ``'bottleneck'``.
      width_multiplier: scales the channel count of every convolution.
      stem: ``'imagenet'`` (7x7/2 conv + 3x3/2 max-pool) or ``'cifar'``
        (3x3/1 conv, no pooling; SimCLR's CIFAR-10 variant).
      bn_axis_name: named mapped axis over which BatchNorm averages its batch
        statistics (cross-replica BN); ``None`` for per-device statistics.
      bn_momentum: decay of the BatchNorm running averages.
      bn_epsilon: BatchNorm epsilon (1e-5, as torchvision and SimCLR).
      dtype: compute dtype (e.g. ``jnp.bfloat16``); parameters and BatchNorm
        statistics stay float32.
      conv_impl: how convolutions are computed (parameters are identical, so
        checkpoints are interchangeable): ``'auto'`` (the backend's best,
        :func:`resolve_conv_impl`: ``'batch_chunked'`` for training on CPU,
        ``'xla'`` for inference and elsewhere); ``'xla'`` (``nn.Conv``, best on GPU/TPU); ``'shifted_matmul'`` (every block convolution as a sum of
        per-tap matmuls, forward and backward,
        :func:`~ssl_jax.models.layers.shifted_matmul_conv`);
        ``'matmul_wgrad'`` (XLA forward and input gradient, per-tap matmuls
        for the weight gradient only,
        :func:`~ssl_jax.models.layers.matmul_wgrad_conv`);
        ``'batch_chunked'`` (XLA's convolutions, the forward pass and the
        weight gradient on batch chunks that fit in cache,
        :func:`~ssl_jax.models.layers.batch_chunked_conv`; the fastest on
        CPU with jaxlib 0.10, see ``experiments/bench_step.py``). The CPU
        modes exist for XLA:CPU's slow convolution weight gradient; in
        ``'shifted_matmul'`` the 3-channel stem convolution uses the
        ``'matmul_wgrad'`` form (per-tap matmuls with a contraction over 3
        channels make a slow forward pass).
      zero_init_residual: zero-initialise the scale of the last BatchNorm in
        every residual block (Goyal et al., 2017).
      output_stride: the largest stride of the feature map; a stage that
        would exceed it keeps the resolution instead of halving it (dense
        tasks that need a finer map, e.g. video colorization's tracking).
        ``None``: the standard strides (8 with the CIFAR stem, 32 with the
        ImageNet stem, for four stages).
    """

    stage_sizes: Sequence[int]
    block: str
    width_multiplier: float = 1.0
    stem: str = "imagenet"
    bn_axis_name: str | None = None
    bn_momentum: float = 0.9
    bn_epsilon: float = 1e-5
    dtype: Any = jnp.float32
    conv_impl: str = "auto"
    zero_init_residual: bool = False
    output_stride: int | None = None

    def _validate(self) -> None:
        if self.block not in BLOCK_TYPES:
            raise ValueError(f"block must be one of {BLOCK_TYPES}, got {self.block!r}")
        if self.stem not in STEMS:
            raise ValueError(f"stem must be one of {STEMS}, got {self.stem!r}")
        if self.conv_impl not in CONV_IMPLS:
            raise ValueError(f"conv_impl must be one of {CONV_IMPLS}, got {self.conv_impl!r}")
        sizes = tuple(self.stage_sizes)
        if not sizes or any(int(s) != s or s < 1 for s in sizes):
            raise ValueError(f"stage_sizes must be a non-empty list of positive ints, got {sizes}")
        if not self.width_multiplier > 0:
            raise ValueError(f"width_multiplier must be positive, got {self.width_multiplier}")
        if not 0.0 <= self.bn_momentum <= 1.0:
            raise ValueError(f"bn_momentum must be in [0, 1], got {self.bn_momentum}")
        stem_stride = 4 if self.stem == "imagenet" else 1
        if self.output_stride is not None and (
                self.output_stride < stem_stride
                or self.output_stride & (self.output_stride - 1)):
            raise ValueError(
                f"output_stride must be a power of two and at least the stem's "
                f"stride {stem_stride}, got {self.output_stride}")

    def _channels(self, base: int) -> int:
        c = int(round(base * self.width_multiplier))
        if c < 1:
            raise ValueError(
                f"width_multiplier={self.width_multiplier} leaves a layer of {base} channels "
                "with none"
            )
        return c

    def stage_width(self, stage: int) -> int:
        """Bottleneck/basic-block width of 0-based ``stage``, before expansion."""
        return self._channels(64 * 2**stage)

    @property
    def expansion(self) -> int:
        """Output channels per block width: 1 (basic) or 4 (bottleneck)."""
        self._validate()
        return BottleneckBlock.expansion if self.block == "bottleneck" else 1

    @property
    def feature_dim(self) -> int:
        """Size of the pooled feature vector: 512*w (basic) or 2048*w (bottleneck)."""
        return self.stage_width(len(self.stage_sizes) - 1) * self.expansion

    @nn.compact
    def __call__(self, x: Array, train: bool, return_map: bool = False,
                 map_stage: int | None = None):
        """Maps ``(N, H, W, C)`` images to ``(N, feature_dim)`` features.

        Args:
          x: batch of images, NHWC.
          train: use batch statistics in BatchNorm and update the running
            averages (apply with ``mutable=['batch_stats']``); ``False`` uses
            the running averages and updates nothing.
          return_map: also return the last stage's feature map
            ``(N, h, w, feature_dim)`` (what a dense decoder reads): the
            result is then ``(features, feature_map)``.
          map_stage: with ``return_map``, the (1-based) stage whose output
            map is returned instead of the last one's (Deep InfoMax's local
            features come from an intermediate layer).
        """
        self._validate()
        if x.ndim != 4:
            raise ValueError(f"ResNet expects NHWC images of rank 4, got shape {x.shape}")
        conv_impl = resolve_conv_impl(self.conv_impl, train)
        conv = functools.partial(make_conv, impl=conv_impl, dtype=self.dtype)
        norm = functools.partial(
            nn.BatchNorm,
            use_running_average=not train,
            momentum=self.bn_momentum,
            epsilon=self.bn_epsilon,
            axis_name=self.bn_axis_name,
            dtype=self.dtype,
            param_dtype=jnp.float32,
        )
        block_cls = BottleneckBlock if self.block == "bottleneck" else BasicBlock

        x = jnp.asarray(x, self.dtype)
        stem_width = self._channels(64)
        # The stem sees 3 input channels: per-tap matmuls with a contraction of
        # 3 are slower than XLA's forward convolution, so 'shifted_matmul'
        # keeps the XLA forward there and only its weight gradient is per-tap.
        stem_impl = "matmul_wgrad" if conv_impl == "shifted_matmul" else conv_impl
        stem_conv = functools.partial(make_conv, impl=stem_impl, dtype=self.dtype)
        if self.stem == "imagenet":
            x = stem_conv(stem_width, 7, 2, name="stem_conv")(x)
            x = nn.relu(norm(name="stem_bn")(x))
            x = nn.max_pool(x, (3, 3), strides=(2, 2), padding=((1, 1), (1, 1)))
            stride = 4
        else:
            x = stem_conv(stem_width, 3, 1, name="stem_conv")(x)
            x = nn.relu(norm(name="stem_bn")(x))
            stride = 1
        self.sow("intermediates", "stem", x)

        if map_stage is not None and not 1 <= map_stage <= len(self.stage_sizes):
            raise ValueError(
                f"map_stage must be a stage between 1 and {len(self.stage_sizes)}, "
                f"got {map_stage}")
        feature_map = None
        for i, num_blocks in enumerate(self.stage_sizes):
            halves = i > 0 and (self.output_stride is None or stride < self.output_stride)
            stride *= 2 if halves else 1
            for j in range(num_blocks):
                x = block_cls(
                    features=self.stage_width(i),
                    strides=2 if (halves and j == 0) else 1,
                    conv=conv,
                    norm=norm,
                    zero_init_residual=self.zero_init_residual,
                    name=f"stage{i + 1}_block{j + 1}",
                )(x)
            self.sow("intermediates", f"stage{i + 1}", x)
            if map_stage == i + 1:
                feature_map = x

        # Pool in float32 so low-precision compute does not lose the average.
        features = jnp.mean(x.astype(jnp.float32), axis=(1, 2)).astype(self.dtype)
        if not return_map:
            return features
        return features, (x if feature_map is None else feature_map)


def resnet(depth: int, **kwargs: Any) -> ResNet:
    """Builds a :class:`ResNet` of standard ``depth``.

    Args:
      depth: one of ``10, 18, 34, 50, 101, 152`` (10 is a 1-1-1-1 basic-block
        variant for demos and tests).
      **kwargs: any other :class:`ResNet` field (``width_multiplier``,
        ``stem``, ``bn_axis_name``, ``dtype``, ``conv_impl``, ...).

    Example::

        model = resnet(50, width_multiplier=2, stem="imagenet", bn_axis_name="batch")
        model.feature_dim  # 4096
    """
    if depth not in RESNET_DEPTHS:
        raise ValueError(
            f"unknown ResNet depth {depth!r}; valid depths are {sorted(RESNET_DEPTHS)}"
        )
    clash = {"stage_sizes", "block"} & set(kwargs)
    if clash:
        raise TypeError(f"resnet(depth) fixes {sorted(clash)}; build ResNet(...) directly instead")
    stage_sizes, block = RESNET_DEPTHS[depth]
    return ResNet(stage_sizes=stage_sizes, block=block, **kwargs)
