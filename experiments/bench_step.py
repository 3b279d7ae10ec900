r"""The compiled training step of each method: time, images/s, memory, MFU.

For every combination of ``--methods``, ``--backbones``, ``--batch_sizes``,
``--dtypes`` and ``--conv_impls`` this builds the method from its config
preset (the backbone's: ``configs/<method>.py:cifar10`` for
``resnet18_cifar``, ``:imagenet`` for ``resnet50_224``), the same
data-parallel step the CLI trains with (``train/step.py``: on-device
augmentation of uint8 images, forward, loss, backward, optimizer update,
EMA/queue updates), compiles it ahead of time on the default backend's
devices, and times ``--steps`` calls after ``--warmup`` (median). Each
combination runs in a fresh subprocess so its peak memory is its own.

Columns:
  step time, images/s  median wall time of one step; images (not views) per
                       second of the global batch.
  GFLOP/step           XLA's cost analysis of the lowered step (all devices;
                       the compiled step's misses cuDNN's convolutions on the
                       GPU; for the CPU convolution modes, of the same step
                       with XLA's convolutions, since loop bodies count once).
  MFU                  achieved FLOP/s over the devices' peak: the vendor's
                       dense bfloat16 / TF32 / float32 peak on a known GPU;
                       on CPU, the float32 matmul rate measured here
                       (``--peak_tflops`` overrides both).
  peak memory          the device's ``peak_bytes_in_use`` where the backend
                       reports it (GPU, TPU); on CPU XLA's buffer assignment
                       (arguments + outputs + temporaries of the step) and
                       the process's peak resident memory.
  vs PyTorch           with ``--torch`` (default: when torch imports), the
                       SimCLR step of ``experiments/torch_reference.py`` (the
                       same ResNet and head, eager PyTorch on the GPU when
                       one is visible, views made in advance, so augmentation
                       is free for it) at the same backbone, width, batch and
                       dtype (bfloat16: autocast): ssl_jax images/s over
                       PyTorch's (> 1: ssl_jax is faster).

    python experiments/bench_step.py                         # SimCLR R18, CIFAR
    python experiments/bench_step.py --width=0.125 --conv_impls=xla,batch_chunked
    python experiments/bench_step.py --methods=simclr,byol,moco --backbones=resnet50_224 \
        --batch_sizes=256 --dtypes=bfloat16 --out=runs/bench_step_gpu
    bash experiments/gpu_bench.sh    # the committed H200 rows, on a lent GPU

Writes ``<out>.json`` and ``<out>.md`` with ``--out``.
"""

import argparse
import importlib.util
import itertools
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO_ROOT not in sys.path:
  sys.path.insert(0, REPO_ROOT)

# backbone -> (config preset, ResNet depth, stem, stored image size, view size)
BACKBONES = {
    "resnet18_cifar": ("cifar10", 18, "cifar", 32, 32),
    "resnet50_224": ("imagenet", 50, "imagenet", 256, 224),
}
# Dense peak TFLOP/s of one device by dtype (vendor data sheets, SXM parts;
# float32 matmuls run as TF32 on the tensor cores under XLA's default
# precision).
GPU_PEAK_TFLOPS = {
    "H100": {"bfloat16": 989.4, "float32": 494.7},
    "H200": {"bfloat16": 989.4, "float32": 494.7},
    "A100": {"bfloat16": 312.0, "float32": 156.0},
}


def load_config(method, preset):
  path = os.path.join(REPO_ROOT, "configs", f"{method}.py")
  spec = importlib.util.spec_from_file_location(f"configs_{method}", path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config(preset)


def median_seconds(fn, steps, warmup):
  """Median wall time of ``fn()`` over ``steps`` calls after ``warmup``."""
  for _ in range(warmup):
    fn()
  times = []
  for _ in range(steps):
    start = time.perf_counter()
    fn()
    times.append(time.perf_counter() - start)
  return statistics.median(times)


def measured_matmul_tflops(size=2048, repeats=5):
  """float32 matmul rate of the default device, TFLOP/s (the CPU's peak)."""
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  a = jnp.ones((size, size), jnp.float32)
  matmul = jax.jit(lambda x: x @ x)
  seconds = median_seconds(lambda: matmul(a).block_until_ready(), repeats, 1)
  return 2 * size**3 / seconds / 1e12


def peak_tflops(dtype, override=None):
  """(peak TFLOP/s of all devices, where it comes from)."""
  import jax  # pylint: disable=g-import-not-at-top
  devices = jax.devices()
  if override:
    return override, "--peak_tflops"
  kind = devices[0].device_kind
  for name, peaks in GPU_PEAK_TFLOPS.items():
    if name in kind:
      return peaks[dtype] * len(devices), f"{kind} data sheet, {dtype}"
  if devices[0].platform == "cpu":
    return measured_matmul_tflops(), "measured float32 matmul, all cores"
  return None, f"unknown peak for {kind}"


def _flops(lowered):
  """XLA's FLOP count of a lowered (not yet compiled) step.

  The lowered program's analysis counts every convolution on every backend;
  the compiled one's does not on the GPU, where convolutions become cuDNN
  custom calls (ResNet-50's step: 227 of 12,263 GFLOP).
  """
  cost = lowered.cost_analysis()
  cost = cost[0] if isinstance(cost, (list, tuple)) else cost
  return float(cost.get("flops", 0.0)) if cost else 0.0


def bench_one(spec):
  """Builds, compiles and times one combination; returns its row."""
  import jax  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top

  from ssl_jax import methods  # pylint: disable=g-import-not-at-top
  from ssl_jax.train import optim  # pylint: disable=g-import-not-at-top
  from ssl_jax.train import step as step_lib  # pylint: disable=g-import-not-at-top

  preset, depth, stem, stored, view = BACKBONES[spec["backbone"]]
  config = load_config(spec["method"], preset)
  config.model.depth = depth
  config.model.stem = stem
  config.model.width_multiplier = spec["width"]
  config.model.dtype = spec["dtype"]
  config.model.conv_impl = spec["conv_impl"]
  config.train.batch_size = spec["batch_size"]
  if config.augment.crop_size != view:
    raise ValueError(f"{spec['method']}:{preset} views are "
                     f"{config.augment.crop_size} px, the backbone's {view}.")
  mesh = step_lib.make_mesh()
  num_devices = mesh.devices.size
  if spec["batch_size"] % num_devices:
    raise ValueError(f"batch {spec['batch_size']} is not divisible by the "
                     f"{num_devices} devices.")
  # The schedule's length does not change the step's cost; it only has to
  # hold the preset's warmup (ImageNet's 10 epochs are 3,120 steps).
  total_steps = max(1000, 2 * config.optim.warmup_steps)
  method = methods.get_method(config, num_classes=10, total_steps=total_steps)
  tx, _ = optim.make_optimizer(config.optim, total_steps, spec["batch_size"])
  state = step_lib.replicate(
      method.init_state(jax.random.PRNGKey(0), (stored, stored, 3), tx), mesh)
  rng = np.random.default_rng(0)
  images = rng.integers(0, 256, (spec["batch_size"], stored, stored, 3),
                        dtype=np.uint8)
  labels = rng.integers(0, 10, spec["batch_size"]).astype(np.int32)
  if method.batch_fields:
    raise ValueError(f"{spec['method']} needs batch fields "
                     f"{method.batch_fields}; the bench feeds images only.")
  images, labels = step_lib.shard_batch((images, labels), mesh)
  train_step = step_lib.make_train_step(method, tx, mesh)
  start = time.perf_counter()
  lowered = train_step.lower(state, images, labels)
  compiled = lowered.compile()
  compile_s = time.perf_counter() - start
  # The step is a shard_map: its program, and so XLA's count, is one
  # device's share of the global batch.
  flops = _flops(lowered) * num_devices
  if spec["conv_impl"] != "xla":
    # XLA's cost analysis counts a loop body once ('batch_chunked' maps its
    # forward over chunks): the model FLOPs are those of the same step with
    # XLA's plain convolutions.
    config.model.conv_impl = "xla"
    reference = methods.get_method(config, num_classes=10,
                                   total_steps=total_steps)
    flops = _flops(step_lib.make_train_step(reference, tx, mesh).lower(
        state, images, labels)) * num_devices
  memory = compiled.memory_analysis()
  xla_bytes = None
  if memory is not None:
    xla_bytes = (memory.argument_size_in_bytes + memory.output_size_in_bytes
                 + memory.temp_size_in_bytes - memory.alias_size_in_bytes)

  holder = {"state": state}

  def run():
    holder["state"], metrics = compiled(holder["state"], images, labels)
    jax.block_until_ready(metrics)

  step_s = median_seconds(run, spec["steps"], spec["warmup"])
  stats = jax.devices()[0].memory_stats() or {}
  peak, source = peak_tflops(spec["dtype"], spec.get("peak_tflops"))
  source = spec.get("peak_source", source)
  achieved = flops / step_s / 1e12
  return dict(
      spec, devices=num_devices, device_kind=jax.devices()[0].device_kind,
      step_s=step_s, images_per_sec=spec["batch_size"] / step_s,
      compile_s=compile_s, gflop_per_step=flops / 1e9,
      achieved_tflops=achieved, peak_tflops=peak, peak_source=source,
      mfu=achieved / peak if peak else None,
      device_peak_bytes=stats.get("peak_bytes_in_use"),
      xla_buffer_bytes=xla_bytes,
      process_peak_rss_bytes=resource.getrusage(
          resource.RUSAGE_SELF).ru_maxrss * 1024,
      jax_version=jax.__version__)


def torch_reference(spec):
  """The PyTorch SimCLR step at ``spec``'s backbone, width and batch."""
  sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
  import torch_reference as reference  # pylint: disable=g-import-not-at-top
  _, depth, stem, _, view = BACKBONES[spec["backbone"]]
  config = load_config("simclr", BACKBONES[spec["backbone"]][0])
  return reference.time_simclr_step(
      spec["batch_size"], view, depth=depth, width_multiplier=spec["width"],
      stem=stem, proj_hidden_dim=config.simclr.proj_hidden_dim,
      proj_dim=config.simclr.proj_dim, temperature=config.simclr.temperature,
      steps=spec["steps"], warmup=spec["warmup"], dtype=spec["dtype"])


def run_child(spec, what):
  """Runs ``what`` ('jax' or 'torch') of ``spec`` in a fresh process."""
  command = [sys.executable, os.path.abspath(__file__), f"--child={what}",
             f"--spec={json.dumps(spec)}"]
  done = subprocess.run(command, capture_output=True, text=True, check=False)
  if done.returncode:
    tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
    return dict(spec, error=" / ".join(tail))
  return json.loads(done.stdout.strip().splitlines()[-1])


def _mib(value):
  return f"{value / 2**20:.0f}" if value else "-"


def format_table(rows):
  lines = ["| method | backbone | width | batch | dtype | conv | step (ms) | "
           "images/s | GFLOP/step | TFLOP/s | MFU | device peak MiB | XLA "
           "buffers MiB | process RSS MiB | compile s | PyTorch images/s | "
           "ssl_jax / PyTorch |",
           "|" + "---|" * 17]
  for r in rows:
    head = (f"| {r['method']} | {r['backbone']} | {r['width']:g} | "
            f"{r['batch_size']} | {r['dtype']} | {r['conv_impl']} | ")
    if "error" in r:
      lines.append(head + f"error: {r['error']} |" + " |" * 10)
      continue
    torch_ips = r.get("torch_images_per_sec")
    lines.append(
        head + f"{r['step_s'] * 1e3:.1f} | {r['images_per_sec']:.1f} | "
        f"{r['gflop_per_step']:.1f} | {r['achieved_tflops']:.3f} | "
        + (f"{r['mfu']:.1%}" if r["mfu"] is not None else "-") + " | "
        f"{_mib(r['device_peak_bytes'])} | {_mib(r['xla_buffer_bytes'])} | "
        f"{_mib(r['process_peak_rss_bytes'])} | {r['compile_s']:.1f} | "
        + (f"{torch_ips:.1f} | {r['images_per_sec'] / torch_ips:.2f} |"
           if torch_ips else "- | - |"))
  return "\n".join(lines)


def _csv(text, cast=str):
  return [cast(v) for v in text.split(",") if v]


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--methods", default="simclr")
  parser.add_argument("--backbones", default="resnet18_cifar",
                      help=f"comma-separated, of {sorted(BACKBONES)}")
  parser.add_argument("--width", type=float, default=1.0)
  parser.add_argument("--batch_sizes", default="128")
  parser.add_argument("--dtypes", default="float32")
  parser.add_argument("--conv_impls", default="xla",
                      help="xla, shifted_matmul, matmul_wgrad, batch_chunked")
  parser.add_argument("--steps", type=int, default=5)
  parser.add_argument("--warmup", type=int, default=2)
  parser.add_argument("--peak_tflops", type=float, default=None)
  parser.add_argument("--torch", choices=("auto", "yes", "no"), default="auto")
  parser.add_argument("--out", default="")
  parser.add_argument("--child", choices=("jax", "torch", "peak"),
                      help=argparse.SUPPRESS)
  parser.add_argument("--spec", help=argparse.SUPPRESS)
  args = parser.parse_args(argv)
  if args.child:
    spec = json.loads(args.spec)
    row = {"jax": bench_one, "torch": torch_reference,
           "peak": lambda s: dict(zip(("peak_tflops", "peak_source"),
                                      peak_tflops(s["dtype"])))}[args.child](spec)
    print(json.dumps(row))
    return
  for backbone in _csv(args.backbones):
    if backbone not in BACKBONES:
      parser.error(f"unknown backbone {backbone!r}; use {sorted(BACKBONES)}.")
  use_torch = args.torch == "yes" or (
      args.torch == "auto" and importlib.util.find_spec("torch") is not None)
  rows, torch_rows, peaks = [], {}, {}
  for method, backbone, batch, dtype, conv in itertools.product(
      _csv(args.methods), _csv(args.backbones), _csv(args.batch_sizes, int),
      _csv(args.dtypes), _csv(args.conv_impls)):
    spec = dict(method=method, backbone=backbone, width=args.width,
                batch_size=batch, dtype=dtype, conv_impl=conv,
                steps=args.steps, warmup=args.warmup,
                peak_tflops=args.peak_tflops)
    if args.peak_tflops is None:  # measured once per dtype, in its own process
      if dtype not in peaks:
        peaks[dtype] = run_child(spec, "peak")
      spec.update({k: peaks[dtype].get(k)
                   for k in ("peak_tflops", "peak_source")})
    row = run_child(spec, "jax")
    # The reference is SimCLR's step, at the same dtype (bfloat16: autocast).
    if use_torch and "error" not in row and method == "simclr":
      key = (backbone, batch, dtype)
      if key not in torch_rows:
        torch_rows[key] = run_child(spec, "torch")
      reference = torch_rows[key]
      if "error" in reference:
        row["torch_error"] = reference["error"]
      else:
        row["torch_images_per_sec"] = reference["images_per_sec"]
        row["torch"] = reference
    rows.append(row)
    print(format_table(rows[-1:]).splitlines()[-1], flush=True)
  text = (f"{platform.node()} ({platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} CPUs); " + " ".join(sys.argv) + "\n\n"
          + format_table(rows))
  print(text)
  if args.out:
    os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
    with open(args.out + ".json", "w") as f:
      json.dump(rows, f, indent=1)
    with open(args.out + ".md", "w") as f:
      f.write(text + "\n")


if __name__ == "__main__":
  main()
