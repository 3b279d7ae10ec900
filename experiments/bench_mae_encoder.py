r"""MAE's encoder on the visible patches only vs the full image: time per step.

MAE (He et al. 2021, Sec. 3, "MAE encoder") runs the ViT encoder on the 25%
visible patches only, which is what makes its pretraining cheap. This
measures it on the current default JAX device: the ViT encoder's forward
pass, and forward + backward (gradient of a scalar of the pooled features
with respect to every parameter), at ``--mask_ratio`` (per-sample random
masks, MAE's argsort of uniform noise) and at mask ratio 0 (all patches,
no gather). Each function is compiled ahead of time; the time is the
median over ``--repeats`` calls after one warm-up call. Also printed: XLA's
compiled FLOP count (``cost_analysis``) of each program.

Usage:
  python experiments/bench_mae_encoder.py                      # ViT-Ti/4, 32 px, batch 128
  python experiments/bench_mae_encoder.py --size base --patch 16 --image 224 --batch 64

Prints a markdown table: pass, mask ratio, tokens per image seen by the
transformer (class token included), step time, images/s, speed-up over the
full pass, and the FLOP ratio.
"""

import argparse
import os
import platform
import statistics
import sys
import time

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO_ROOT not in sys.path:
  sys.path.insert(0, REPO_ROOT)


def _time(fn, args, repeats):
  import jax  # pylint: disable=g-import-not-at-top
  jax.block_until_ready(fn(*args))  # warm-up
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    jax.block_until_ready(fn(*args))
    times.append(time.perf_counter() - start)
  return statistics.median(times)


def benchmark(size="tiny", patch=4, image=32, batch=128, channels=3,
              mask_ratio=0.75, repeats=5, dtype="float32", seed=0):
  """Returns a list of result rows (dicts), forward and forward+backward,
  masked and full."""
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top

  from ssl_jax import augment  # pylint: disable=g-import-not-at-top
  from ssl_jax import models  # pylint: disable=g-import-not-at-top

  compute = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}[dtype]
  model = models.vit(size, patch_size=patch, dtype=compute)
  key = jax.random.PRNGKey(seed)
  images = jax.random.normal(key, (batch, image, image, channels))
  params = jax.jit(model.init)(key, images[:2])
  num_patches = (image // patch) ** 2
  masks = jax.jit(jax.vmap(lambda k: augment.random_patch_mask(
      k, num_patches, mask_ratio)))(jax.random.split(key, batch))
  ids_keep = masks[1]
  cls = 1 if model.class_token else 0

  def forward(params, images, ids):
    return model.apply(params, images, ids_keep=ids)

  def forward_full(params, images):
    return model.apply(params, images)

  def loss(fn):
    return lambda p, *a: jnp.mean(jnp.square(fn(p, *a).astype(jnp.float32)))

  programs = {
      ("forward", "masked"): (forward, (params, images, ids_keep)),
      ("forward", "full"): (forward_full, (params, images)),
      ("forward+backward", "masked"): (
          jax.value_and_grad(loss(forward)), (params, images, ids_keep)),
      ("forward+backward", "full"): (
          jax.value_and_grad(loss(forward_full)), (params, images)),
  }
  measured = {}
  for name, (fn, args) in programs.items():
    compiled = jax.jit(fn).lower(*args).compile()
    cost = compiled.cost_analysis() or {}
    if isinstance(cost, list):  # older jax: one dict per computation
      cost = cost[0] if cost else {}
    measured[name] = (_time(compiled, args, repeats), cost.get("flops"))
  rows = []
  for (kind, variant), (seconds, flops) in measured.items():
    full_seconds, full_flops = measured[(kind, "full")]
    rows.append({
        "pass": kind,
        "mask_ratio": mask_ratio if variant == "masked" else 0.0,
        "tokens": (ids_keep.shape[1] if variant == "masked"
                   else num_patches) + cls,
        "step_ms": 1e3 * seconds,
        "images_per_s": batch / seconds,
        "speedup": full_seconds / seconds,
        "flop_ratio": (flops / full_flops if flops and full_flops else None),
    })
  return rows, {"device": str(jax.devices()[0]),
                "platform": platform.processor() or platform.machine(),
                "model": f"ViT-{size}/{patch}", "image": image,
                "batch": batch, "dtype": dtype, "repeats": repeats}


def format_table(rows, info):
  lines = [
      f"{info['model']} encoder, {info['image']}x{info['image']} images, "
      f"batch {info['batch']}, {info['dtype']}, on {info['device']}; median "
      f"of {info['repeats']} calls after a warm-up",
      "",
      "| pass | mask ratio | tokens / image | step time | images/s | "
      "speed-up | FLOPs vs full |",
      "|---|---|---|---|---|---|---|",
  ]
  for r in rows:
    flops = "" if r["flop_ratio"] is None else f"{r['flop_ratio']:.2f}"
    lines.append(
        f"| {r['pass']} | {r['mask_ratio']:g} | {r['tokens']} | "
        f"{r['step_ms']:.1f} ms | {r['images_per_s']:.0f} | "
        f"{r['speedup']:.2f}x | {flops} |")
  return "\n".join(lines)


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--size", default="tiny",
                      help="tiny | small | base | large | huge")
  parser.add_argument("--patch", type=int, default=4)
  parser.add_argument("--image", type=int, default=32)
  parser.add_argument("--batch", type=int, default=128)
  parser.add_argument("--channels", type=int, default=3)
  parser.add_argument("--mask_ratio", type=float, default=0.75)
  parser.add_argument("--repeats", type=int, default=5)
  parser.add_argument("--dtype", default="float32",
                      choices=("float32", "bfloat16"))
  args = parser.parse_args(argv)
  rows, info = benchmark(args.size, args.patch, args.image, args.batch,
                         args.channels, args.mask_ratio, args.repeats,
                         args.dtype)
  print(format_table(rows, info))
  return 0


if __name__ == "__main__":
  sys.exit(main())
