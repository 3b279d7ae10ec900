"""experiments/bench_step.py: one compiled step measured, and its table."""

from tests.experiments import load_script

bench_step = load_script("bench_step")


def test_one_simclr_step_is_timed_costed_and_tabled():
  row = bench_step.bench_one(dict(
      method="simclr", backbone="resnet18_cifar", width=0.0625, batch_size=8,
      dtype="float32", conv_impl="xla", steps=1, warmup=0, peak_tflops=2.0))
  assert row["step_s"] > 0 and row["images_per_sec"] == 8 / row["step_s"]
  # The step's FLOPs: more than the encoder's forward on 16 views (2 views
  # of 8 images), so backward and the rest are counted.
  assert row["gflop_per_step"] > 0.01
  assert row["mfu"] == row["achieved_tflops"] / 2.0
  assert row["peak_source"] == "--peak_tflops"
  assert row["xla_buffer_bytes"] > 0
  table = bench_step.format_table([row, dict(row, torch_images_per_sec=
                                             row["images_per_sec"] / 2)])
  lines = table.splitlines()
  assert len(lines) == 4 and lines[2].endswith("| - | - |")
  assert lines[3].endswith("| 2.00 |")
