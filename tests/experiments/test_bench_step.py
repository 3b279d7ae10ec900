"""experiments/bench_step.py: one compiled step measured, and its table."""

from tests.experiments import load_script

bench_step = load_script("bench_step")


def _resnet18_cifar_conv_gflop(width, views, size=32):
  """Forward convolution GFLOPs of ResNet-18 (CIFAR stem), by hand: 2 x
  output positions x taps x input x output channels, padding taps included."""
  channels = [int(round(c * width)) for c in (64, 128, 256, 512)]
  positions = size * size
  macs = positions * 9 * 3 * channels[0]  # stem
  previous = channels[0]
  for stage, features in enumerate(channels):
    if stage:
      positions //= 4  # each later stage starts with a stride-2 block
    macs += positions * 9 * (previous * features + 3 * features * features)
    if previous != features:
      macs += positions * previous * features  # 1x1 projection shortcut
    previous = features
  return 2 * macs * views / 1e9


def test_one_simclr_step_is_timed_costed_and_tabled():
  row = bench_step.bench_one(dict(
      method="simclr", backbone="resnet18_cifar", width=0.0625, batch_size=8,
      dtype="float32", conv_impl="xla", steps=1, warmup=0, peak_tflops=2.0))
  assert row["step_s"] > 0 and row["images_per_sec"] == 8 / row["step_s"]
  # The step's FLOPs are about three forward passes of the encoder's
  # convolutions over the 16 views (forward, input and weight gradients; XLA
  # counts only in-bounds taps, the head and augmentation add a little).
  forward = _resnet18_cifar_conv_gflop(0.0625, views=16)
  assert 2.5 * forward < row["gflop_per_step"] < 3.5 * forward
  assert row["mfu"] == row["achieved_tflops"] / 2.0
  assert row["peak_source"] == "--peak_tflops"
  assert row["xla_buffer_bytes"] > 0
  table = bench_step.format_table([row, dict(row, torch_images_per_sec=
                                             row["images_per_sec"] / 2)])
  lines = table.splitlines()
  assert len(lines) == 4 and lines[2].endswith("| - | - |")
  assert lines[3].endswith("| 2.00 |")
