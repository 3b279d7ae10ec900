"""Dense vs blockwise NT-Xent: time and peak memory of value + gradient.

For each batch size B (pairs; 2B anchors) of D-dim float32 embeddings, runs
``jax.value_and_grad`` of ``nt_xent`` (dense, (2B)^2 logits) and of
``nt_xent_blockwise`` on the default JAX device, each configuration in its
own subprocess (so peak RSS is per configuration and an out-of-memory kill
cannot take the benchmark down). Reported per configuration:

* compiled memory: ``memory_analysis()`` of the compiled step, temp +
  argument + output bytes -- available even for sizes that are not run;
* peak RSS of the process (``ru_maxrss``) and its RSS before compiling (JAX
  runtime + inputs), when the step is run;
* warm time: the median over repeats after one warm-up call (compile
  excluded: the step is compiled ahead of time); fewer repeats at large B
  (``--budget-s`` per configuration). If the warm-up call alone exceeds the
  budget, it is the one measurement (marked "1st call", ``warm: false``).

A configuration is not run (memory numbers still reported) when its compiled
memory exceeds ``--mem-frac`` of the available RAM ("OOM"), or when the step
time predicted from the previous size (x4 per doubling: the work is O(B^2))
exceeds ``--max-step-s`` ("slow"; the prediction is printed).

Usage:
  python experiments/bench_losses.py --out bench.json
  python experiments/bench_losses.py --sizes 1024,2048 --block-size 512
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time

DEFAULT_SIZES = (1024, 2048, 4096, 8192, 16384, 32768, 65536)
METHODS = ("dense", "blockwise")
GIB = 2.0 ** 30


def _mem_available_bytes() -> int:
  with open("/proc/meminfo") as f:
    for line in f:
      if line.startswith("MemAvailable:"):
        return int(line.split()[1]) * 1024
  return 0


def _rss_bytes() -> int:
  with open("/proc/self/statm") as f:
    return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _child(args) -> dict:
  """Compiles (and maybe runs) one configuration; returns its record."""
  import jax
  import jax.numpy as jnp
  import numpy as np

  from ssl_jax.losses import nt_xent, nt_xent_blockwise

  b, d = args.child_batch, args.dim
  if args.child_method == "dense":
    loss_fn = lambda z1, z2: nt_xent(z1, z2, 0.1)[0]  # noqa: E731
  else:
    loss_fn = lambda z1, z2: nt_xent_blockwise(  # noqa: E731
        z1, z2, 0.1, block_size=args.block_size)[0]
  step = jax.jit(jax.value_and_grad(loss_fn, argnums=(0, 1)))

  record = {"method": args.child_method, "batch": b, "dim": d,
            "block_size": args.block_size if args.child_method == "blockwise"
            else None, "device": str(jax.devices()[0])}
  spec = jax.ShapeDtypeStruct((b, d), jnp.float32)
  t0 = time.perf_counter()
  compiled = step.lower(spec, spec).compile()
  record["compile_s"] = time.perf_counter() - t0
  mem = compiled.memory_analysis()
  record["compiled_bytes"] = {
      "temp": int(mem.temp_size_in_bytes),
      "argument": int(mem.argument_size_in_bytes),
      "output": int(mem.output_size_in_bytes),
  }
  total = sum(record["compiled_bytes"].values())
  record["compiled_bytes"]["total"] = total

  if total > args.mem_frac * args.mem_available:
    record["status"] = "oom"
    return record
  if args.predicted_step_s > args.max_step_s:
    record["status"] = "slow"
    return record

  rng = np.random.default_rng(0)
  base = rng.normal(size=(b, d)).astype(np.float32)
  z1 = jnp.asarray(base + 0.5 * rng.normal(size=(b, d)).astype(np.float32))
  z2 = jnp.asarray(base + 0.5 * rng.normal(size=(b, d)).astype(np.float32))
  record["rss_before_run_bytes"] = _rss_bytes()
  t0 = time.perf_counter()
  jax.block_until_ready(compiled(z1, z2))                 # warm-up
  first = time.perf_counter() - t0
  repeats = int(min(args.max_repeats, args.budget_s // max(first, 1e-9)))
  times = []
  for _ in range(repeats):
    t0 = time.perf_counter()
    jax.block_until_ready(compiled(z1, z2))
    times.append(time.perf_counter() - t0)
  # A single call longer than the budget: report that first call (compile
  # already excluded by the ahead-of-time compile above) rather than pay
  # for a second one.
  record["warm"] = bool(times)
  times = times or [first]
  record.update(status="ok", warmup_s=first, times_s=times,
                median_s=statistics.median(times),
                rss_peak_bytes=resource.getrusage(
                    resource.RUSAGE_SELF).ru_maxrss * 1024)
  return record


def _run_child(args, method, batch, predicted_step_s) -> dict:
  cmd = [sys.executable, os.path.abspath(__file__),
         "--child-method", method, "--child-batch", str(batch),
         "--dim", str(args.dim), "--block-size", str(args.block_size),
         "--budget-s", str(args.budget_s),
         "--max-repeats", str(args.max_repeats),
         "--max-step-s", str(args.max_step_s),
         "--mem-frac", str(args.mem_frac),
         "--mem-available", str(args.mem_available),
         "--predicted-step-s", str(predicted_step_s)]
  proc = subprocess.run(cmd, capture_output=True, text=True)
  lines = [l for l in proc.stdout.splitlines() if l.startswith("{")]
  if proc.returncode != 0 or not lines:
    status = ("oom-killed" if proc.returncode in (-9, 137) else
              f"failed (rc={proc.returncode})")
    return {"method": method, "batch": batch, "dim": args.dim,
            "status": status, "stderr_tail": proc.stderr[-2000:]}
  return json.loads(lines[-1])


def _fmt_time(r) -> str:
  if r["status"] == "ok":
    n = len(r["times_s"]) if r.get("warm", True) else "1st call"
    return f"{r['median_s']:.3g} s (n={n})"
  if r["status"] == "slow":
    return f"not run (~{r['predicted_step_s']:.0f} s est.)"
  if r["status"] == "oom":
    return "not run (OOM)"
  return r["status"]


def _fmt_mem(r) -> tuple[str, str]:
  comp = r.get("compiled_bytes", {}).get("total")
  comp = f"{comp / GIB:.3g}" if comp is not None else "-"
  if "rss_peak_bytes" in r:
    rss = (f"{r['rss_peak_bytes'] / GIB:.3g} "
           f"(+{(r['rss_peak_bytes'] - r['rss_before_run_bytes']) / GIB:.3g})")
  else:
    rss = "-"
  return comp, rss


def _table(records, sizes) -> str:
  by = {(r["method"], r["batch"]): r for r in records}
  head = ("| B | dense time | dense compiled GiB | dense peak RSS GiB | "
          "blockwise time | blockwise compiled GiB | blockwise peak RSS GiB |")
  rows = [head, "|" + "---|" * 7]
  for b in sizes:
    cells = [str(b)]
    for m in METHODS:
      r = by.get((m, b))
      if r is None:
        cells += ["-", "-", "-"]
        continue
      comp, rss = _fmt_mem(r)
      cells += [_fmt_time(r), comp, rss]
    rows.append("| " + " | ".join(cells) + " |")
  return "\n".join(rows)


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  p.add_argument("--sizes", default=",".join(map(str, DEFAULT_SIZES)),
                 help="comma-separated batch sizes B (pairs)")
  p.add_argument("--dim", type=int, default=128)
  p.add_argument("--block-size", type=int, default=1024)
  p.add_argument("--methods", default=",".join(METHODS))
  p.add_argument("--budget-s", type=float, default=20.0,
                 help="timed seconds per configuration (sets the repeats)")
  p.add_argument("--max-repeats", type=int, default=5)
  p.add_argument("--max-step-s", type=float, default=60.0,
                 help="skip running a config predicted slower than this")
  p.add_argument("--mem-frac", type=float, default=0.7,
                 help="skip running a config needing more of MemAvailable")
  p.add_argument("--out", default=None, help="write the records as JSON")
  # Internal: one configuration in a subprocess.
  p.add_argument("--child-method", default=None, help=argparse.SUPPRESS)
  p.add_argument("--child-batch", type=int, default=0, help=argparse.SUPPRESS)
  p.add_argument("--mem-available", type=int, default=0,
                 help=argparse.SUPPRESS)
  p.add_argument("--predicted-step-s", type=float, default=0.0,
                 help=argparse.SUPPRESS)
  args = p.parse_args(argv)

  if args.child_method:
    print(json.dumps(_child(args)), flush=True)
    return

  args.mem_available = _mem_available_bytes()
  load_at_start = os.getloadavg()[0]
  sizes = sorted(int(s) for s in args.sizes.split(","))
  methods = [m for m in args.methods.split(",") if m]
  print(f"# {platform.node()} {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} CPUs, MemAvailable {args.mem_available / GIB:.1f} "
        f"GiB, load avg {load_at_start:.1f}; D={args.dim}, "
        f"block_size={args.block_size}", flush=True)
  records = []
  for method in methods:
    last = None                     # (batch, step seconds) of the last run
    for b in sizes:
      predicted = 0.0 if last is None else last[1] * (b / last[0]) ** 2
      r = _run_child(args, method, b, predicted)
      r["predicted_step_s"] = predicted
      records.append(r)
      if r["status"] == "ok":
        last = (b, r["median_s"])
      comp, rss = _fmt_mem(r)
      print(f"{method:9s} B={b:6d}: {_fmt_time(r):28s} compiled {comp} GiB, "
            f"peak RSS {rss} GiB", flush=True)
  print()
  print(_table(records, sizes))
  if args.out:
    meta = {"node": platform.node(), "cpus": os.cpu_count(),
            "mem_available_bytes": args.mem_available,
            "load_avg_1m_at_start": load_at_start,
            "load_avg_1m_at_end": os.getloadavg()[0], "dim": args.dim,
            "block_size": args.block_size, "sizes": sizes}
    with open(args.out, "w") as f:
      json.dump({"meta": meta, "records": records}, f, indent=1)
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
  main()
