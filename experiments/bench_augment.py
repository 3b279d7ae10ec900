r"""Throughput of the on-device SimCLR views against a per-image PIL pipeline.

    python experiments/bench_augment.py
    python experiments/bench_augment.py --configs=32:512,224:128 --repeats=7 \
        --workers=8 --out=bench_augment.json

For every ``SIZE:BATCH`` in ``--configs`` (default ``32:256,224:64``) it times
one batch of two SimCLR views per image, three ways, on the same machine:

``device``
  ``jax.jit`` of two :func:`ssl_jax.augment.batch_views` calls (the ``vmap``
  pipeline of :mod:`ssl_jax.augment.recipes`) with the recipe
  ``simclr_cifar`` at 32 pixels and ``simclr_imagenet`` otherwise, on JAX's
  default backend (the CPU here unless an accelerator is present). Timed:
  host-to-device copy of the uint8 batch, both views, ``block_until_ready``.
``pil``
  What a torchvision user runs per image in a ``Dataset.__getitem__``, written
  with PIL/numpy so that torch is not needed: torchvision's
  ``RandomResizedCrop`` sampling (10 tries, fallback central crop) with
  ``Image.crop`` + ``Image.resize(BILINEAR)``, horizontal flip,
  ``ColorJitter`` in a random order (``ImageEnhance`` Brightness, Contrast,
  Color; hue as torchvision does it on PIL images: HSV via PIL, the hue
  byte shifted in numpy), ``ImageOps.grayscale``, ``ImageFilter.GaussianBlur``
  with sigma ``U[0.1, 2]``, ``ImageOps.solarize``, then ``ToTensor`` +
  ``Normalize`` as float32 numpy. The same probabilities and strengths as the
  device recipe. One process.
``pil_poolN``
  The same in a ``multiprocessing`` pool of ``N = --workers`` processes
  (default: the CPU count), the batch split into chunks, float32 views
  pickled back, as a ``DataLoader`` with ``num_workers=N`` would.

Every number is the median over ``--repeats`` timed batches after one warm-up
batch (the device compile is reported apart). ``images/s`` counts source
images; each yields two views. ``ratio`` is images/s of the device pipeline
divided by that row's. Images: the CIFAR-10 test set (``--data_dir``, by
default ``../shared/datasets/cifar10`` beside the repository), enlarged with
PIL bilinear for sizes above 32; random pixels when it is missing.
"""
from __future__ import annotations

import argparse
import json
import math
import multiprocessing
import os
import pathlib
import platform
import statistics
import sys
import time
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
from PIL import Image
from PIL import ImageEnhance
from PIL import ImageFilter
from PIL import ImageOps

# JAX is imported only in the parent process (see _device_pipeline), so the
# spawned pool workers start quickly and never touch an accelerator.

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
DEFAULT_DATA_DIR = REPO_ROOT.parent / "shared" / "datasets" / "cifar10"

# The SimCLR recipes' numbers, as plain data for the worker processes
# (checked against ssl_jax.augment at start-up, see _check_params).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)


def cpu_params(size: int) -> Dict:
  """SimCLR view parameters: CIFAR-10 recipe at 32 pixels, ImageNet's above."""
  strength, blur_prob = (0.5, 0.0) if size <= 32 else (1.0, 0.5)
  mean, std = ((CIFAR10_MEAN, CIFAR10_STD) if size <= 32
               else (IMAGENET_MEAN, IMAGENET_STD))
  return dict(crop_size=size, crop_scale=(0.08, 1.0), crop_ratio=(3 / 4, 4 / 3),
              flip_prob=0.5, jitter_prob=0.8, brightness=0.8 * strength,
              contrast=0.8 * strength, saturation=0.8 * strength,
              hue=0.2 * strength, grayscale_prob=0.2, blur_prob=blur_prob,
              blur_sigma=(0.1, 2.0), solarize_prob=0.0, mean=mean, std=std)


def recipe_name(size: int) -> str:
  return "simclr_cifar" if size <= 32 else "simclr_imagenet"


# ---------------------------------------------------------------------------
# The per-image CPU pipeline (torchvision semantics on PIL images).
# ---------------------------------------------------------------------------


def crop_params(rng: np.random.Generator, height: int, width: int,
                scale: Tuple[float, float],
                ratio: Tuple[float, float]) -> Tuple[int, int, int, int]:
  """``RandomResizedCrop.get_params``: ``(top, left, h, w)``."""
  area = height * width
  log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
  for _ in range(10):
    target = area * rng.uniform(scale[0], scale[1])
    aspect = math.exp(rng.uniform(log_ratio[0], log_ratio[1]))
    w = int(round(math.sqrt(target * aspect)))
    h = int(round(math.sqrt(target / aspect)))
    if 0 < w <= width and 0 < h <= height:
      top = int(rng.integers(0, height - h + 1))
      left = int(rng.integers(0, width - w + 1))
      return top, left, h, w
  in_ratio = width / height
  if in_ratio < min(ratio):
    w, h = width, int(round(width / min(ratio)))
  elif in_ratio > max(ratio):
    h, w = height, int(round(height * max(ratio)))
  else:
    w, h = width, height
  return (height - h) // 2, (width - w) // 2, h, w


def _adjust_hue(img: Image.Image, hue_factor: float) -> Image.Image:
  """torchvision ``F.adjust_hue`` on a PIL image: the HSV hue byte shifted by
  ``hue_factor * 255`` modulo 256 (torchvision's uint8 wrap-around)."""
  h, s, v = img.convert("HSV").split()
  np_h = np.array(h, dtype=np.uint8)
  np_h += np.uint8(int(hue_factor * 255) % 256)  # uint8 arithmetic wraps.
  h = Image.fromarray(np_h, "L")
  return Image.merge("HSV", (h, s, v)).convert("RGB")


def pil_view(img: Image.Image, rng: np.random.Generator,
             params: Dict) -> np.ndarray:
  """One normalised float32 HWC view of an RGB PIL image."""
  p = params
  top, left, h, w = crop_params(rng, img.height, img.width, p["crop_scale"],
                                p["crop_ratio"])
  size = p["crop_size"]
  img = img.crop((left, top, left + w, top + h)).resize((size, size),
                                                        Image.BILINEAR)
  if rng.random() < p["flip_prob"]:
    img = img.transpose(Image.FLIP_LEFT_RIGHT)
  if rng.random() < p["jitter_prob"]:
    factors = (rng.uniform(max(0.0, 1 - p["brightness"]), 1 + p["brightness"]),
               rng.uniform(max(0.0, 1 - p["contrast"]), 1 + p["contrast"]),
               rng.uniform(max(0.0, 1 - p["saturation"]), 1 + p["saturation"]),
               rng.uniform(-p["hue"], p["hue"]))
    for op in rng.permutation(4):
      if op == 0:
        img = ImageEnhance.Brightness(img).enhance(factors[0])
      elif op == 1:
        img = ImageEnhance.Contrast(img).enhance(factors[1])
      elif op == 2:
        img = ImageEnhance.Color(img).enhance(factors[2])
      else:
        img = _adjust_hue(img, factors[3])
  if rng.random() < p["grayscale_prob"]:
    img = ImageOps.grayscale(img).convert("RGB")
  if rng.random() < p["blur_prob"]:
    sigma = rng.uniform(*p["blur_sigma"])
    img = img.filter(ImageFilter.GaussianBlur(radius=sigma))
  if rng.random() < p["solarize_prob"]:
    img = ImageOps.solarize(img, 128)
  x = np.asarray(img, np.float32) / 255.0
  return (x - np.asarray(p["mean"], np.float32)) / np.asarray(p["std"],
                                                             np.float32)


def pil_two_views(images: np.ndarray, seed: int, params: Dict) -> np.ndarray:
  """``(B, 2, S, S, 3)`` float32 views of a uint8 NHWC batch."""
  rng = np.random.default_rng(seed)
  out = []
  for pixels in images:
    img = Image.fromarray(pixels)
    out.append(np.stack([pil_view(img, rng, params),
                         pil_view(img, rng, params)]))
  return np.stack(out)


def _pool_task(args):
  return pil_two_views(*args)


# ---------------------------------------------------------------------------
# Timing.
# ---------------------------------------------------------------------------


def _median_seconds(fn, repeats: int) -> Tuple[float, List[float]]:
  fn(-1)  # Warm-up.
  times = []
  for i in range(repeats):
    start = time.perf_counter()
    fn(i)
    times.append(time.perf_counter() - start)
  return statistics.median(times), times


def _device_pipeline(images: np.ndarray, size: int, repeats: int) -> Dict:
  import jax  # pylint: disable=g-import-not-at-top
  from ssl_jax import augment  # pylint: disable=g-import-not-at-top

  recipe = augment.get_recipe(recipe_name(size), size)
  _check_params(recipe, cpu_params(size))
  batch = images.shape[0]

  @jax.jit
  def two_views(key, x):
    k1, k2 = jax.random.split(key)
    return (augment.batch_views(jax.random.split(k1, batch), x, recipe),
            augment.batch_views(jax.random.split(k2, batch), x, recipe))

  base = jax.random.key(0)
  start = time.perf_counter()
  compiled = two_views.lower(base, images).compile()
  compile_s = time.perf_counter() - start

  def run(i):
    x = jax.device_put(images)
    jax.block_until_ready(compiled(jax.random.fold_in(base, i + 1), x))

  median, times = _median_seconds(run, repeats)
  device = jax.devices()[0]
  return dict(pipeline="device", seconds=median, times=times,
              compile_s=compile_s,
              backend=f"{device.platform}:{device.device_kind}")


def _check_params(recipe, params: Dict) -> None:
  """The CPU pipeline must run the device recipe's numbers."""
  for name, value in params.items():
    expected = recipe[name]
    if isinstance(value, tuple):
      ok = np.allclose(value, tuple(expected))
    else:
      ok = np.isclose(value, expected)
    if not ok:
      raise AssertionError(f"CPU pipeline {name}={value} but the recipe has "
                           f"{expected}")


def _pil_pipeline(images: np.ndarray, size: int, repeats: int) -> Dict:
  params = cpu_params(size)
  median, times = _median_seconds(
      lambda i: pil_two_views(images, 1000 + i, params), repeats)
  return dict(pipeline="pil", seconds=median, times=times)


def _pool_pipeline(pool, workers: int, images: np.ndarray, size: int,
                   repeats: int) -> Dict:
  params = cpu_params(size)
  num_chunks = min(len(images), 2 * workers)
  chunks = np.array_split(images, num_chunks)

  def run(i):
    tasks = [(chunk, 10_000 * (i + 2) + j, params)
             for j, chunk in enumerate(chunks)]
    np.concatenate(pool.map(_pool_task, tasks))

  median, times = _median_seconds(run, repeats)
  return dict(pipeline=f"pil_pool{workers}", seconds=median, times=times)


# ---------------------------------------------------------------------------
# Data, table, CLI.
# ---------------------------------------------------------------------------


def load_images(size: int, batch: int, data_dir: pathlib.Path
                ) -> Tuple[np.ndarray, str]:
  path = pathlib.Path(data_dir) / "test.npz"
  if path.exists():
    with np.load(path) as data:
      images = np.asarray(data["image"][:batch])
    if len(images) < batch:
      images = np.resize(images, (batch,) + images.shape[1:])
    source = "cifar10"
    if size != images.shape[1]:
      images = np.stack([
          np.asarray(Image.fromarray(x).resize((size, size), Image.BILINEAR))
          for x in images])
      source = f"cifar10 enlarged to {size}"
    return images, source
  rng = np.random.default_rng(0)
  return rng.integers(0, 256, (batch, size, size, 3), np.uint8), "random"


def parse_configs(text: str) -> List[Tuple[int, int]]:
  configs = []
  for item in text.split(","):
    try:
      size, batch = (int(v) for v in item.split(":"))
    except ValueError as e:
      raise argparse.ArgumentTypeError(
          f"bad --configs entry {item!r}; expected SIZE:BATCH, e.g. "
          "32:256,224:64") from e
    if size < 8 or batch < 1:
      raise argparse.ArgumentTypeError(f"bad --configs entry {item!r}: need "
                                       "SIZE >= 8 and BATCH >= 1")
    configs.append((size, batch))
  return configs


def format_table(rows: Sequence[Dict]) -> str:
  header = ("pipeline", "backend", "size", "batch", "images/s", "ms/batch",
            "device/this")
  lines = [header]
  for r in rows:
    lines.append((r["pipeline"], r["backend"], str(r["size"]), str(r["batch"]),
                  f"{r['images_per_s']:.0f}", f"{r['ms_per_batch']:.1f}",
                  f"{r['ratio']:.2f}"))
  widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
  out = []
  for n, line in enumerate(lines):
    out.append("  ".join(c.rjust(w) if i >= 2 else c.ljust(w)
                         for i, (c, w) in enumerate(zip(line, widths))))
    if n == 0:
      out.append("  ".join("-" * w for w in widths))
  return "\n".join(out)


def _make_parser() -> argparse.ArgumentParser:
  parser = argparse.ArgumentParser(
      prog="python experiments/bench_augment.py",
      description="images/s of the device SimCLR views vs a PIL pipeline.")
  parser.add_argument("--configs", type=parse_configs,
                      default=parse_configs("32:256,224:64"),
                      help="comma-separated SIZE:BATCH (default 32:256,224:64)")
  parser.add_argument("--repeats", type=int, default=5,
                      help="timed batches per pipeline (median reported)")
  parser.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                      help="processes of the PIL pool; 0 skips the pool")
  parser.add_argument("--skip_device", action="store_true",
                      help="time only the CPU pipelines")
  parser.add_argument("--data_dir", default=str(DEFAULT_DATA_DIR),
                      help="folder with CIFAR-10 test.npz")
  parser.add_argument("--out", default=None, help="write the results as JSON")
  return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
  args = _make_parser().parse_args(sys.argv[1:] if argv is None else argv)
  if args.repeats < 1:
    raise SystemExit("--repeats must be >= 1")
  # Spawned (not forked) before JAX starts its threads in this process.
  pool = (multiprocessing.get_context("spawn").Pool(args.workers)
          if args.workers > 0 else None)
  rows = []
  try:
    if pool is not None:  # Start the workers before any timing.
      pool.map(_pool_task, [(np.zeros((1, 32, 32, 3), np.uint8), 0,
                             cpu_params(32))] * args.workers)
    for size, batch in args.configs:
      images, source = load_images(size, batch, args.data_dir)
      results = []
      if not args.skip_device:
        results.append(_device_pipeline(images, size, args.repeats))
      results.append(_pil_pipeline(images, size, args.repeats))
      if pool is not None:
        results.append(_pool_pipeline(pool, args.workers, images, size,
                                      args.repeats))
      device_rate = (batch / results[0]["seconds"]
                     if not args.skip_device else float("nan"))
      for r in results:
        rate = batch / r["seconds"]
        rows.append(dict(
            pipeline=r["pipeline"], backend=r.get("backend", "cpu:PIL"),
            size=size, batch=batch, recipe=recipe_name(size), images=source,
            images_per_s=rate, ms_per_batch=1000 * r["seconds"],
            ratio=device_rate / rate, times_s=r["times"],
            compile_s=r.get("compile_s")))
      print(f"done {size}px batch {batch}", file=sys.stderr, flush=True)
  finally:
    if pool is not None:
      pool.terminate()
  print(format_table(rows))
  if hasattr(os, "getloadavg"):
    load = os.getloadavg()
    print(f"cpus: {os.cpu_count()}, load average during the run: "
          f"{load[0]:.2f}, {load[1]:.2f}, {load[2]:.2f}")
  for r in rows:
    if r["compile_s"] is not None:
      print(f"device compile, {r['size']}px batch {r['batch']}: "
            f"{r['compile_s']:.1f} s (not in the rates)")
  if args.out:
    report = dict(
        machine=dict(platform=platform.platform(), cpus=os.cpu_count(),
                     python=platform.python_version(),
                     load_average=list(os.getloadavg())
                     if hasattr(os, "getloadavg") else None),
        repeats=args.repeats, workers=args.workers, rows=rows)
    pathlib.Path(args.out).write_text(json.dumps(report, indent=2))
    print(f"wrote {args.out}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
