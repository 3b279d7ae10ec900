"""Every method pretrained on CIFAR-10 through the CLI, at one small budget.

Runs ``python -m ssl_jax.main --config=configs/<method>.py:cifar10`` for each
method (``method:preset`` names another preset, e.g.
``temporal_order:prediction``, whose workdir is ``method_preset``) with the
same overrides (backbone width, batch, steps, evaluation
subset), one workdir per method, and writes a markdown table (method, steps,
wall time, kNN, linear, random-init floor, online probe, held-out pretext
accuracy for the context methods, collapse) and a JSON file. A rerun skips methods whose workdir already holds ``eval.json``.

    python experiments/compare_methods.py --out=experiments/results/cifar10_methods

The defaults are the CPU budget of the README's table: ResNet-18 at width
1/8 with the CIFAR stem, batch 128, 100 steps, evaluation on class-balanced
10,000 train / 2,000 test images. Every preset's own head, loss,
augmentation, optimizer and learning rate are kept, except where
``METHOD_DEPARTURES`` names a field (the table prints them).
"""

import argparse
import json
import os
import subprocess
import sys
import time

METHODS = ("simclr", "simclr_v2", "moco", "byol", "simsiam", "barlow_twins",
           "vicreg", "simsiam_no_stopgrad")


# Departures from the shared budget that a method needs to show what it does
# at this scale; the table prints them in its "departures" column.
# SimSiam barely moves in 100 steps at its paper learning rate (0.03 x B/256,
# tuned for 800 epochs): it gets 1000 steps at 0.1 x B/256, and the
# no-stop-gradient ablation the same learning rate (it collapses within a
# few hundred steps, so 300 of them). With the paper's 2048-wide projector
# and 512-wide predictor bottleneck on this 64-dimensional encoder, SimSiam
# ends below its random-init floor (kNN 0.2245 / linear 0.1965 against
# 0.2455 / 0.2885, effective rank 1.46); with those widths scaled by the
# backbone's width (1/8: 256 and 64) it ends above it.
# BYOL's target momentum 0.996 (tuned for 1000 epochs) barely moves the
# target in 100 steps, and it ended below its floor (kNN 0.2195); it gets
# 500 steps with the short-run momentum and lr of its `:digits` preset.
SIMSIAM_WIDTHS = {"simsiam.proj_hidden_dim": 256, "simsiam.proj_dim": 256,
                  "simsiam.pred_hidden_dim": 64}
# Rotation classifies 4 rotated views of each image (512 views a step at
# batch 128), so it gets 300 steps. Temporal order reads 3 or 4 frames of
# each video; batch 32 and 600 steps keep it near the others' cost.
# CPC encodes 49 patches of each image (57 images/s here): 500 steps.
METHOD_DEPARTURES = {
    "cpc": {"train.num_steps": 500},
    "rotation": {"train.num_steps": 300},
    "temporal_order": {"train.batch_size": 32, "train.num_steps": 600},
    "byol": {"train.num_steps": 500, "byol.base_momentum": 0.99,
             "optim.base_lr": 1.0},
    "simsiam": {"train.num_steps": 1000, "optim.base_lr": 0.1,
                **SIMSIAM_WIDTHS},
    "simsiam_no_stopgrad": {"train.num_steps": 300, "optim.base_lr": 0.1,
                            **SIMSIAM_WIDTHS},
}


def overrides(args, method):
  """The ``--config.*`` values of ``method``'s run, shared ones first."""
  fields = {
      "model.width_multiplier": args.width,
      "model.conv_impl": args.conv_impl,
      "train.batch_size": args.batch_size,
      "train.num_steps": args.steps,
      "train.progress_bar": False,
      "eval.max_train_examples": args.eval_train,
      "eval.max_test_examples": args.eval_test,
  }
  fields.update(METHOD_DEPARTURES.get(method, {}))
  steps = fields["train.num_steps"]
  fields.setdefault("optim.warmup_steps", max(1, steps // 10))
  fields.setdefault("train.checkpoint_every_steps", steps)
  return [f"--config.{name}={value}" for name, value in fields.items()]


def run_cli(config, workdir, flags):
  """Runs ``python -m ssl_jax.main --config=<config>`` in ``workdir`` unless
  the workdir already holds ``eval.json``; returns that report with the run's
  wall time (``wall_s``)."""
  report_path = os.path.join(workdir, "eval.json")
  timing_path = os.path.join(workdir, "wall_time.json")
  if not os.path.exists(report_path):
    command = [sys.executable, "-m", "ssl_jax.main", f"--config={config}",
               f"--workdir={workdir}", *flags]
    print(" ".join(command), flush=True)
    start = time.perf_counter()
    subprocess.run(command, check=True)
    os.makedirs(workdir, exist_ok=True)
    with open(timing_path, "w") as f:
      json.dump({"wall_s": time.perf_counter() - start, "command": command}, f)
  with open(report_path) as f:
    report = json.load(f)
  with open(timing_path) as f:
    report["wall_s"] = json.load(f)["wall_s"]
  return report


def run_method(spec, args):
  """Runs ``spec``: a method (its ``--preset``) or ``method:preset``."""
  method, _, preset = spec.partition(":")
  return run_cli(f"configs/{method}.py:{preset or args.preset}",
                 os.path.join(args.workdir_root, spec.replace(":", "_")),
                 overrides(args, method))


def departures(spec):
  items = METHOD_DEPARTURES.get(spec.partition(":")[0], {}).items()
  return ", ".join(f"{name}={value}" for name, value in items) or "-"


def table(reports, args):
  lines = [
      f"Pretrained on {args.preset} unless the data column says otherwise; "
      f"ResNet-18 (CIFAR stem) at width {args.width}, batch "
      f"{args.batch_size}, {args.steps} steps unless the departures column "
      "says otherwise; kNN (k=200, t=0.1) and linear "
      f"probe on {args.eval_train} train / {args.eval_test} test images "
      "(class-balanced subsets); the floor is the same encoder at random "
      "init; wall time includes compilation and evaluation.",
      "",
      "| method | data | steps | wall time | kNN top-1 | linear top-1 | floor kNN / "
      "linear | online probe | pretext (floor) | effective rank | collapse | "
      "departures |",
      "|---|---|---|---|---|---|---|---|---|---|---|---|",
  ]
  for method, r in reports.items():
    p, f = r["protocols"], r["random_init"]
    c = p.get("collapse", {})
    online = f"{p['online']['top1']:.4f}" if "online" in p else "-"
    pretext = "-"
    if "pretext" in p:
      pretext = f"{p['pretext']['top1']:.4f} ({f['pretext']['top1']:.4f})"
    lines.append(
        f"| {method} | {r['pretrain_dataset']} | {r['steps']} | "
        f"{r['wall_s'] / 60:.1f} min | "
        f"{p['knn']['top1']:.4f} | {p['linear']['top1']:.4f} | "
        f"{f['knn']['top1']:.4f} / {f['linear']['top1']:.4f} | "
        f"{online} | {pretext} | "
        f"{c.get('effective_rank', float('nan')):.1f} of {c.get('dim', '?')} | "
        f"{'yes' if r.get('collapse_during_pretraining') else 'no'} | "
        f"{departures(method)} |")
  return "\n".join(lines)


def write_results(out, text, rows):
  """Writes the table ``<out>.md`` and ``rows`` as ``<out>.json``, and
  prints the table."""
  os.makedirs(os.path.dirname(out) or ".", exist_ok=True)
  with open(out + ".md", "w") as f:
    f.write(text + "\n")
  with open(out + ".json", "w") as f:
    json.dump(rows, f, indent=1)
  print(text, flush=True)


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--methods", default=",".join(METHODS))
  parser.add_argument("--preset", default="cifar10")
  parser.add_argument("--workdir_root", default="runs/compare_methods")
  parser.add_argument("--out", default="experiments/results/cifar10_methods")
  parser.add_argument("--width", type=float, default=0.125)
  parser.add_argument("--conv_impl", default="auto")
  parser.add_argument("--batch_size", type=int, default=128)
  parser.add_argument("--steps", type=int, default=100)
  parser.add_argument("--eval_train", type=int, default=10000)
  parser.add_argument("--eval_test", type=int, default=2000)
  parser.add_argument(
      "--from_previous", default="",
      help="comma-separated methods whose rows are copied from the JSON of "
      "the previous table (<out>.json) instead of run")
  args = parser.parse_args()
  copied = [m for m in args.from_previous.split(",") if m]
  previous = {}
  if copied:
    with open(args.out + ".json") as f:
      previous = json.load(f)
    missing = [m for m in copied if m not in previous]
    if missing:
      parser.error(f"{args.out}.json has no row for {missing}.")
  reports = {}
  for method in [m for m in args.methods.split(",") if m]:
    reports[method] = (previous[method] if method in copied
                       else run_method(method, args))
    write_results(args.out, table(reports, args), reports)


if __name__ == "__main__":
  main()
