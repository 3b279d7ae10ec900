"""A convolutional decoder from an encoder's feature map back to pixels.

The generation-based pretext tasks (inpainting, colorization,
super-resolution) put a decoder on the last feature map of a ResNet and ask
it to produce an image (or per-pixel logits). :class:`UpsamplingDecoder`
doubles the resolution step by step, each step a nearest-neighbour x2
upsampling, a 3x3 convolution, BatchNorm and ReLU (upsample-then-convolve,
which avoids the checkerboard artefacts of transposed convolutions; Odena
et al. 2016), and ends with a 3x3 convolution to the output channels, without bias and
initialised to zero. It has
no skip connections: whatever the output needs must pass through the
encoder's bottleneck, as in Context Encoders (Pathak et al. 2016).
"""

import functools
from typing import Any, Sequence

import flax.linen as nn
import jax.numpy as jnp

from ssl_jax.models.resnet import make_conv, resolve_conv_impl

Array = Any


def num_doublings(feature_size: int, output_size: int) -> int:
  """How many x2 steps take ``feature_size`` to ``output_size`` (exactly)."""
  steps = 0
  size = feature_size
  while size < output_size:
    size *= 2
    steps += 1
  if size != output_size:
    raise ValueError(
        f"a decoder doubling a {feature_size}-pixel feature map cannot reach "
        f"{output_size} pixels; use an image size that is the feature size "
        "times a power of two (e.g. a crop size divisible by the encoder's "
        "stride times the output stride).")
  return steps


class UpsamplingDecoder(nn.Module):
  """Feature map ``(N, h, w, C)`` -> ``(N, H, W, out_channels)``.

  Attributes:
    output_size: ``H`` (= ``W``); ``h * 2**k`` for some k >= 0.
    widths: channels of the doubling steps, first to last; when more steps
      are needed than widths given, the last width repeats.
    out_channels: channels of the output (3 for RGB, Q for colour logits).
    bn_axis_name: named axis of cross-replica BatchNorm (None: per device).
    bn_momentum: decay of the BatchNorm running averages.
    dtype: compute dtype; parameters stay float32 and the output is float32.
    conv_impl: as ``ResNet.conv_impl`` ('auto', 'xla', 'shifted_matmul',
      'matmul_wgrad', 'batch_chunked').
  """

  output_size: int
  widths: Sequence[int]
  out_channels: int
  bn_axis_name: str | None = None
  bn_momentum: float = 0.9
  dtype: Any = jnp.float32
  conv_impl: str = "auto"

  @nn.compact
  def __call__(self, feature_map: Array, train: bool) -> Array:
    if feature_map.ndim != 4 or feature_map.shape[1] != feature_map.shape[2]:
      raise ValueError(
          f"UpsamplingDecoder expects a square NHWC feature map, got shape "
          f"{feature_map.shape}.")
    if not self.widths:
      raise ValueError("UpsamplingDecoder needs at least one width.")
    steps = num_doublings(feature_map.shape[1], self.output_size)
    conv = functools.partial(make_conv, impl=resolve_conv_impl(self.conv_impl, train),
                             dtype=self.dtype)
    norm = functools.partial(
        nn.BatchNorm, use_running_average=not train, momentum=self.bn_momentum,
        epsilon=1e-5, axis_name=self.bn_axis_name, dtype=self.dtype,
        param_dtype=jnp.float32)
    x = jnp.asarray(feature_map, self.dtype)
    for i in range(steps):
      width = self.widths[min(i, len(self.widths) - 1)]
      x = jnp.repeat(jnp.repeat(x, 2, axis=1), 2, axis=2)
      x = conv(width, 3, 1, name=f"up{i + 1}_conv")(x)
      x = nn.relu(norm(name=f"up{i + 1}_bn")(x))
    # Zero-initialised: the first output is 0 (the mean image, uniform
    # logits, or no residual), not noise the loss must first undo.
    # No bias: super-resolution's residual has mean ~0, so a bias would get
    # only rounding noise as gradient, which Adam turns into steps of full
    # size that differ between 1 and 8 devices; the last BatchNorm's shift
    # lets the layer learn an offset all the same.
    x = conv(self.out_channels, 3, 1, name="out_conv",
             kernel_init=nn.initializers.zeros)(x)
    return x.astype(jnp.float32)
