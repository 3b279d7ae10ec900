r"""A PyTorch (eager; CPU or CUDA) reference of ssl_jax's SimCLR training step.

What it is: the same network as ssl_jax's SimCLR (``ssl_jax.models.resnet``
encoder + ``ssl_jax.models.MLPHead`` projector, as built by
``ssl_jax.methods.simclr.SimCLR``), written in plain ``torch.nn``, so that a
benchmark can report "ssl_jax step time / PyTorch step time" on the same
machine. The architecture is mirrored exactly: ResNet v1.5 (post-activation
blocks, bottleneck stride on the 3x3 convolution), projection shortcuts
(1x1 convolution + BatchNorm) wherever a block changes resolution or channel
count, the ``'cifar'`` (3x3/1 conv, no pooling) and ``'imagenet'`` (7x7/2
conv + 3x3/2 max-pool) stems, bias-free convolutions with fixed
``(k - 1) // 2`` padding, channel counts ``int(round(c * width_multiplier))``
(Python's round, as ssl_jax), and the head ``[Linear (no bias) -> BN ->
ReLU] * (proj_layers - 1) -> Linear (bias)``. BatchNorm uses momentum 0.1
(flax's 0.9) and epsilon 1e-5. ``tests/experiments/test_torch_reference.py``
checks that the parameter count and every parameter's shape equal those of
ssl_jax's network (its online linear probe excluded, see below).

What it measures: one SimCLR training step, timed eagerly (on the GPU when
one is visible, else the CPU; in float32 or under bfloat16 autocast):

1. concatenate two pre-made random "views" (``2 x batch`` float32 images,
   NCHW) and run ONE forward pass of the network in training mode over the
   ``2B`` images, as ssl_jax does (``SimCLR.loss_fn``: BatchNorm statistics
   over all 2B views);
2. the NT-Xent loss (:func:`nt_xent`) of the two halves;
3. backward;
4. an SGD update with momentum 0.9.

The reported time is the median over ``steps`` timed steps after ``warmup``
untimed ones; ``images_per_sec`` counts an image with its two views as one,
as ssl_jax's training loop does.

Differences, all of which favour PyTorch in the ratio:

* no augmentation: the views are ready-made tensors, whereas ssl_jax's step
  makes its two views on device (random crop, flip, colour jitter, ...)
  inside the timed step;
* no online linear probe (ssl_jax trains a Linear(num_classes) classifier on
  stop-gradient features beside the loss) and no collapse metrics;
* plain SGD with momentum instead of the configs' LARS (which adds per-layer
  norms and trust ratios) and no weight decay.

The memory format (``torch.channels_last`` or contiguous NCHW) is, unless
given, picked by timing both briefly and keeping the faster, so PyTorch gets
its better layout on this machine.

Usage:
  python experiments/torch_reference.py --batch_size 128 --image_size 32 \
      --depth 18 --width 0.125 --stem cifar --steps 5

Prints the result of :func:`time_simclr_step` as JSON. Needs ``torch``
(optional; not in requirements.txt).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys

import torch
from torch import nn
import torch.nn.functional as F

# depth -> (blocks per stage, block type): ssl_jax's own table.
from ssl_jax.models.resnet import RESNET_DEPTHS

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench_step  # pylint: disable=g-import-not-at-top,wrong-import-position

STEMS = ("cifar", "imagenet")
DTYPES = ("float32", "bfloat16")
_BN_MOMENTUM = 0.1  # torch's convention: flax's momentum 0.9.
_BN_EPSILON = 1e-5
# flax/jax lecun_normal: a normal truncated at +-2 std, rescaled so that the
# truncated distribution has variance 1 / fan_in.
_TRUNCATED_NORMAL_STDDEV = 0.87962566103423978


def _channels(base, width_multiplier):
  """``int(round(base * width_multiplier))``, exactly as ssl_jax's ResNet."""
  c = int(round(base * width_multiplier))
  if c < 1:
    raise ValueError(
        f"width_multiplier={width_multiplier} leaves a layer of {base} "
        "channels with none")
  return c


def _conv(in_channels, out_channels, kernel_size, stride):
  """Bias-free convolution with ``(k - 1) // 2`` padding on each side."""
  return nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride,
                   padding=(kernel_size - 1) // 2, bias=False)


def _bn2d(channels):
  return nn.BatchNorm2d(channels, eps=_BN_EPSILON, momentum=_BN_MOMENTUM)


class BasicBlock(nn.Module):
  """Two 3x3 convolutions (ResNet-18/34), as ssl_jax's ``BasicBlock``."""

  expansion = 1

  def __init__(self, in_channels, features, stride):
    super().__init__()
    self.conv1 = _conv(in_channels, features, 3, stride)
    self.bn1 = _bn2d(features)
    self.conv2 = _conv(features, features, 3, 1)
    self.bn2 = _bn2d(features)
    self.shortcut = None
    if stride != 1 or in_channels != features:
      self.shortcut = nn.Sequential(_conv(in_channels, features, 1, stride),
                                    _bn2d(features))

  def forward(self, x):
    y = F.relu(self.bn1(self.conv1(x)))
    y = self.bn2(self.conv2(y))
    shortcut = x if self.shortcut is None else self.shortcut(x)
    return F.relu(y + shortcut)


class BottleneckBlock(nn.Module):
  """1x1 -> 3x3 (strided) -> 1x1, outputs ``4 * features`` (v1.5)."""

  expansion = 4

  def __init__(self, in_channels, features, stride):
    super().__init__()
    out_channels = features * self.expansion
    self.conv1 = _conv(in_channels, features, 1, 1)
    self.bn1 = _bn2d(features)
    self.conv2 = _conv(features, features, 3, stride)
    self.bn2 = _bn2d(features)
    self.conv3 = _conv(features, out_channels, 1, 1)
    self.bn3 = _bn2d(out_channels)
    self.shortcut = None
    if stride != 1 or in_channels != out_channels:
      self.shortcut = nn.Sequential(
          _conv(in_channels, out_channels, 1, stride), _bn2d(out_channels))

  def forward(self, x):
    y = F.relu(self.bn1(self.conv1(x)))
    y = F.relu(self.bn2(self.conv2(y)))
    y = self.bn3(self.conv3(y))
    shortcut = x if self.shortcut is None else self.shortcut(x)
    return F.relu(y + shortcut)


class ResNet(nn.Module):
  """ssl_jax's ResNet: NCHW images -> ``(N, feature_dim)`` pooled features.

  Args:
    depth: a key of :data:`RESNET_DEPTHS`.
    width_multiplier: scales every convolution's channel count.
    stem: ``'cifar'`` (3x3/1 conv, BN, ReLU) or ``'imagenet'`` (7x7/2 conv,
      BN, ReLU, 3x3/2 max-pool with padding 1).
    in_channels: channels of the input images.
  """

  def __init__(self, depth=18, width_multiplier=1.0, stem="cifar",
               in_channels=3):
    super().__init__()
    if depth not in RESNET_DEPTHS:
      raise ValueError(f"unknown ResNet depth {depth!r}; valid depths are "
                       f"{sorted(RESNET_DEPTHS)}")
    if stem not in STEMS:
      raise ValueError(f"stem must be one of {STEMS}, got {stem!r}")
    if not width_multiplier > 0:
      raise ValueError(
          f"width_multiplier must be positive, got {width_multiplier}")
    stage_sizes, block = RESNET_DEPTHS[depth]
    block_cls = BottleneckBlock if block == "bottleneck" else BasicBlock
    stem_width = _channels(64, width_multiplier)
    if stem == "imagenet":
      self.stem = nn.Sequential(
          _conv(in_channels, stem_width, 7, 2), _bn2d(stem_width),
          nn.ReLU(inplace=True), nn.MaxPool2d(3, stride=2, padding=1))
    else:
      self.stem = nn.Sequential(
          _conv(in_channels, stem_width, 3, 1), _bn2d(stem_width),
          nn.ReLU(inplace=True))
    blocks = []
    channels = stem_width
    for i, num_blocks in enumerate(stage_sizes):
      features = _channels(64 * 2**i, width_multiplier)
      for j in range(num_blocks):
        stride = 2 if (i > 0 and j == 0) else 1
        blocks.append(block_cls(channels, features, stride))
        channels = features * block_cls.expansion
    self.blocks = nn.Sequential(*blocks)
    self.feature_dim = channels
    for module in self.modules():
      if isinstance(module, nn.Conv2d):
        # He (fan-out, normal) initialisation, as ssl_jax and torchvision.
        nn.init.kaiming_normal_(module.weight, mode="fan_out",
                                nonlinearity="relu")

  def forward(self, x):
    x = self.blocks(self.stem(x))
    return torch.mean(x, dim=(2, 3))


class MLPHead(nn.Module):
  """``[Linear (no bias) -> BN -> ReLU] * len(hidden_dims) -> Linear``.

  ssl_jax's ``MLPHead`` with SimCLR's settings (BatchNorm in the hidden
  layers, a biased output layer, no output BatchNorm).

  Args:
    in_dim: input width (the encoder's ``feature_dim``).
    hidden_dims: width of each hidden layer.
    out_dim: output width.
  """

  def __init__(self, in_dim, hidden_dims, out_dim):
    super().__init__()
    layers = []
    for width in hidden_dims:
      layers += [nn.Linear(in_dim, width, bias=False),
                 nn.BatchNorm1d(width, eps=_BN_EPSILON, momentum=_BN_MOMENTUM),
                 nn.ReLU(inplace=True)]
      in_dim = width
    layers.append(nn.Linear(in_dim, out_dim, bias=True))
    self.layers = nn.Sequential(*layers)
    for module in self.modules():
      if isinstance(module, nn.Linear):
        # flax's lecun_normal (truncated normal, variance 1 / fan_in), zero bias.
        std = math.sqrt(1.0 / module.in_features) / _TRUNCATED_NORMAL_STDDEV
        nn.init.trunc_normal_(module.weight, std=std, a=-2 * std, b=2 * std)
        if module.bias is not None:
          nn.init.zeros_(module.bias)

  def forward(self, x):
    return self.layers(x)


class SimCLRNetwork(nn.Module):
  """Encoder f and projection head g: ``forward(x) = g(f(x))``."""

  def __init__(self, encoder, projector):
    super().__init__()
    self.encoder = encoder
    self.projector = projector

  def forward(self, images):
    return self.projector(self.encoder(images))


def build_simclr_model(depth=18, width_multiplier=1.0, stem="cifar",
                       proj_layers=2, proj_hidden_dim=512, proj_dim=128):
  """SimCLR's network as ssl_jax builds it, without the online probe.

  Args:
    depth: ResNet depth (18 and 34: basic blocks; 50, 101, 152: bottleneck).
    width_multiplier: ResNet width multiplier.
    stem: ``'cifar'`` or ``'imagenet'``.
    proj_layers: number of Linear layers of the head (``config.simclr``).
    proj_hidden_dim: width of the head's hidden layers.
    proj_dim: output width of the head.

  Returns:
    A ``torch.nn.Module`` mapping NCHW float images to ``(N, proj_dim)``
    projections.
  """
  if proj_layers < 1:
    raise ValueError(f"an MLP head needs at least 1 layer, got {proj_layers}.")
  encoder = ResNet(depth, width_multiplier, stem)
  projector = MLPHead(encoder.feature_dim,
                      (proj_hidden_dim,) * (proj_layers - 1), proj_dim)
  return SimCLRNetwork(encoder, projector)


def count_parameters(model):
  """Number of trainable parameters (BatchNorm running stats are buffers)."""
  return sum(p.numel() for p in model.parameters())


def nt_xent(z1, z2, temperature):
  """SimCLR's NT-Xent loss, as ``ssl_jax.losses.nt_xent`` (single device).

  The 2B projections ``[z1; z2]`` are L2-normalised; anchor ``j``'s logits
  are its cosine similarities to all 2B projections over ``temperature``,
  its own similarity excluded, and its positive is the other view of the
  same image, ``(j + B) mod 2B``. The loss is the cross-entropy averaged over
  the 2B anchors, computed in float32 (float64 for float64 inputs).

  Args:
    z1: ``(B, D)`` projections of the first views.
    z2: ``(B, D)`` projections of the second views (row i: same image).
    temperature: softmax temperature, > 0.

  Returns:
    The scalar loss.
  """
  if z1.ndim != 2 or z1.shape != z2.shape:
    raise ValueError("nt_xent expects z1 and z2 of the same shape (batch, "
                     f"dim); got {tuple(z1.shape)} and {tuple(z2.shape)}")
  b = z1.shape[0]
  dtype = torch.promote_types(torch.promote_types(z1.dtype, z2.dtype),
                              torch.float32)
  z = torch.cat([z1, z2]).to(dtype)
  # x / max(|x|, 1e-12): ssl_jax's x * rsqrt(max(|x|^2, 1e-24)).
  z = F.normalize(z, dim=1, eps=1e-12)
  logits = (z @ z.T) / temperature
  self_mask = torch.eye(2 * b, dtype=torch.bool, device=z.device)
  logits = logits.masked_fill(self_mask, float("-inf"))
  positives = (torch.arange(2 * b, device=z.device) + b) % (2 * b)
  return F.cross_entropy(logits, positives)


def _make_step(batch_size, image_size, depth, width_multiplier, stem,
               proj_hidden_dim, proj_dim, temperature, channels_last, seed,
               device="cpu", dtype="float32", lr=1e-3):
  """Builds model, optimizer and views; returns ``(model, step)``.

  ``dtype='bfloat16'`` runs the forward pass and the loss under
  ``torch.autocast`` (bfloat16 compute, float32 master weights), PyTorch's
  counterpart of ssl_jax's ``model.dtype='bfloat16'``.
  """
  if dtype not in DTYPES:
    raise ValueError(f"dtype must be one of {DTYPES}, got {dtype!r}")
  torch.manual_seed(seed)
  model = build_simclr_model(depth, width_multiplier, stem,
                             proj_hidden_dim=proj_hidden_dim, proj_dim=proj_dim)
  memory_format = (torch.channels_last if channels_last
                   else torch.contiguous_format)
  model = model.to(device=device, memory_format=memory_format).train()
  optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
  shape = (batch_size, 3, image_size, image_size)
  view1 = torch.randn(shape, device=device).contiguous(
      memory_format=memory_format)
  view2 = torch.randn(shape, device=device).contiguous(
      memory_format=memory_format)
  autocast = torch.autocast(device_type=torch.device(device).type,
                            dtype=torch.bfloat16,
                            enabled=dtype == "bfloat16")

  def step():
    optimizer.zero_grad(set_to_none=True)
    with autocast:
      # One forward over both views: BatchNorm statistics over all 2B images.
      projections = model(torch.cat([view1, view2]))
      loss = nt_xent(projections[:batch_size].float(),
                     projections[batch_size:].float(), temperature)
    loss.backward()
    optimizer.step()
    if view1.is_cuda:  # the timer reads the host clock: wait for the device
      torch.cuda.synchronize()
    return loss.detach()

  return model, step


def time_simclr_step(batch_size, image_size, depth=18, width_multiplier=1.0,
                     stem="cifar", proj_hidden_dim=512, proj_dim=128,
                     temperature=0.5, steps=5, warmup=2, threads=None,
                     channels_last=None, seed=0, device=None,
                     dtype="float32"):
  """Times PyTorch's eager SimCLR training step.

  Args:
    batch_size: images per step B (the network sees 2B views).
    image_size: height and width of the (square) views.
    depth, width_multiplier, stem: the ResNet.
    proj_hidden_dim, proj_dim: the 2-layer projection head.
    temperature: NT-Xent temperature.
    steps: timed steps; the result is their median.
    warmup: untimed steps before them.
    threads: intra-op threads (``torch.set_num_threads``, restored after);
      None keeps torch's default (all cores).
    channels_last: True: ``torch.channels_last`` model and inputs; False:
      contiguous NCHW; None: time both (``warmup`` steps and then 2 timed
      steps each) and use the faster one.
    seed: torch seed for the initialisation and the random views.
    device: 'cpu' or 'cuda'; None: 'cuda' when a GPU is visible. On CUDA,
      cuDNN autotuning (``cudnn.benchmark``) and TF32 matmuls are on, as
      XLA's defaults are for float32 on the GPU.
    dtype: 'float32', or 'bfloat16' (autocast, float32 master weights).

  Returns:
    A dict: ``step_s`` (median seconds per step), ``images_per_sec``
    (``batch_size / step_s``, an image being its two views), ``num_params``,
    ``channels_last`` (the memory format used), ``threads``, ``device``,
    ``dtype``, ``torch_version``; plus the setting (``batch_size``, ``image_size``,
    ``depth``, ``width_multiplier``, ``stem``, ``steps``, ``warmup``) and,
    when the format was chosen, ``format_probe_s`` (the probe's times).
  """
  if steps < 1 or warmup < 0:
    raise ValueError(f"need steps >= 1 and warmup >= 0, got {steps}, {warmup}")
  if device is None:
    device = "cuda" if torch.cuda.is_available() else "cpu"
  if device == "cuda":
    torch.backends.cudnn.benchmark = True
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
  previous_threads = torch.get_num_threads()
  if threads is not None:
    torch.set_num_threads(threads)
  try:
    setting = dict(batch_size=batch_size, image_size=image_size, depth=depth,
                   width_multiplier=width_multiplier, stem=stem,
                   proj_hidden_dim=proj_hidden_dim, proj_dim=proj_dim,
                   temperature=temperature, seed=seed, device=device,
                   dtype=dtype)
    probe = None
    if channels_last is None:
      probe = {}
      for fmt in (False, True):
        _, step = _make_step(channels_last=fmt, **setting)
        probe["channels_last" if fmt else "contiguous"] = bench_step.median_seconds(
            step, steps=2, warmup=max(warmup, 1))
      channels_last = probe["channels_last"] < probe["contiguous"]
    model, step = _make_step(channels_last=bool(channels_last), **setting)
    step_s = bench_step.median_seconds(step, steps, warmup)
    result = {
        "step_s": step_s,
        "images_per_sec": batch_size / step_s,
        "num_params": count_parameters(model),
        "channels_last": bool(channels_last),
        "threads": torch.get_num_threads(),
        "device": device,
        "dtype": dtype,
        "torch_version": torch.__version__,
        "batch_size": batch_size,
        "image_size": image_size,
        "depth": depth,
        "width_multiplier": width_multiplier,
        "stem": stem,
        "steps": steps,
        "warmup": warmup,
    }
    if probe is not None:
      result["format_probe_s"] = probe
    return result
  finally:
    torch.set_num_threads(previous_threads)


def main(argv=None):
  """Command line: times the step and prints the result as JSON."""
  parser = argparse.ArgumentParser(
      description=__doc__.split("\n\n", 1)[0],
      formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--batch_size", type=int, default=128)
  parser.add_argument("--image_size", type=int, default=32)
  parser.add_argument("--depth", type=int, default=18,
                      choices=sorted(RESNET_DEPTHS))
  parser.add_argument("--width", type=float, default=1.0,
                      help="ResNet width multiplier")
  parser.add_argument("--stem", default="cifar", choices=STEMS)
  parser.add_argument("--proj_hidden_dim", type=int, default=512)
  parser.add_argument("--proj_dim", type=int, default=128)
  parser.add_argument("--temperature", type=float, default=0.5)
  parser.add_argument("--steps", type=int, default=5,
                      help="timed steps (the median is reported)")
  parser.add_argument("--warmup", type=int, default=2,
                      help="untimed steps before the timed ones")
  parser.add_argument("--threads", type=int, default=None,
                      help="torch intra-op threads (default: torch's, all cores)")
  parser.add_argument("--device", default=None, choices=("cpu", "cuda"),
                      help="default: cuda when a GPU is visible")
  parser.add_argument("--dtype", default="float32", choices=DTYPES)
  parser.add_argument("--memory_format", default="auto",
                      choices=("auto", "contiguous", "channels_last"),
                      help="auto: time both briefly and keep the faster")
  args = parser.parse_args(argv)
  channels_last = {"auto": None, "contiguous": False,
                   "channels_last": True}[args.memory_format]
  result = time_simclr_step(
      args.batch_size, args.image_size, depth=args.depth,
      width_multiplier=args.width, stem=args.stem,
      proj_hidden_dim=args.proj_hidden_dim, proj_dim=args.proj_dim,
      temperature=args.temperature, steps=args.steps, warmup=args.warmup,
      threads=args.threads, channels_last=channels_last, device=args.device,
      dtype=args.dtype)
  print(json.dumps(result, indent=2))
  return result


if __name__ == "__main__":
  main()
