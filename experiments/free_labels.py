"""Free semantic labels on CIFAR-10: synthetic scenes with and without
domain alignment, and auxiliary annotators, through the CLI.

Runs each configuration (one workdir each; a rerun skips those whose
workdir holds ``eval.json``) at one budget and writes a markdown table of
the downstream scores on real CIFAR-10 beside each run's own pretext
metrics at its last logged step (depth abs-rel, segmentation mIoU, edge F1,
flow end-point error against predicting no motion, the domain classifier's
accuracy).

    python experiments/free_labels.py --out=experiments/results/free_labels
"""

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from experiments import compare_methods  # pylint: disable=g-import-not-at-top

# name: (config, extra flags, description)
RUNS = {
    "synthetic_only": ("synthetic_scenes.py:synthetic_only", [],
                       "synthetic scenes only"),
    "no_alignment": ("synthetic_scenes.py:cifar10_no_alignment", [],
                     "+ real images in the batch, classifier cut off "
                     "(lambda 0)"),
    "aligned_0.1": ("synthetic_scenes.py:cifar10",
                    ["--config.synthetic_scenes.domain.reversal_scale=0.1"],
                    "+ domain alignment, lambda 0.1"),
    "aligned_0.3": ("synthetic_scenes.py:cifar10", [],
                    "+ domain alignment, lambda 0.3 (the preset)"),
    "annotators": ("annotators.py:cifar10", [],
                   "annotators on real CIFAR-10 (Sobel, Canny, saliency)"),
}
PRETEXT = (("abs_rel", "depth abs-rel"), ("mean_iou", "seg. mIoU"),
           ("edges_f1", "edge F1"), ("canny_f1", "Canny F1"),
           ("sobel_mae", "Sobel MAE"), ("domain_acc", "domain acc."))


def last_metrics(workdir):
  row = {}
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    for line in f:
      row.update(json.loads(line))
  return row


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--runs", default=",".join(RUNS))
  parser.add_argument("--workdir_root", default="runs/free_labels")
  parser.add_argument("--out", default="experiments/results/free_labels")
  parser.add_argument("--steps", type=int, default=1500)
  parser.add_argument("--batch_size", type=int, default=64)
  args = parser.parse_args()
  shared = [f"--config.train.num_steps={args.steps}",
            f"--config.train.batch_size={args.batch_size}",
            f"--config.optim.warmup_steps={max(1, args.steps // 10)}",
            f"--config.train.checkpoint_every_steps={args.steps}",
            "--config.train.progress_bar=False"]
  lines = [
      "ResNet-18 (CIFAR stem) at width 1/8, batch "
      f"{args.batch_size}, {args.steps} steps, Adam 1e-3; evaluated on real "
      "CIFAR-10: kNN (k=200) and linear probe on class-balanced 10,000 / "
      "2,000 images, the floor the same encoder at random init. Pretext "
      "metrics: the training batch at the last logged step. Flow: end-point "
      "error in px, and that of predicting no motion. "
      "`python experiments/free_labels.py`.", "",
      "| run | kNN | linear | floor kNN / linear | effective rank | "
      "flow EPE (no motion) | other pretext metrics | wall time |",
      "|---|---|---|---|---|---|---|---|"]
  reports = {}
  for name in args.runs.split(","):
    config, flags, description = RUNS[name]
    workdir = os.path.join(args.workdir_root, name)
    report = compare_methods.run_cli(f"configs/{config}", workdir,
                                     shared + flags)
    metrics = last_metrics(workdir)
    reports[name] = dict(report, last_metrics=metrics)
    p, f = report["protocols"], report["random_init"]
    flow = (f"{metrics['flow_epe']:.3f} ({metrics['flow_zero_epe']:.3f})"
            if "flow_epe" in metrics else "-")
    others = ", ".join(f"{label} {metrics[key]:.3f}" for key, label in PRETEXT
                       if key in metrics)
    lines.append(
        f"| {description} | {p['knn']['top1']:.4f} | "
        f"{p['linear']['top1']:.4f} | {f['knn']['top1']:.4f} / "
        f"{f['linear']['top1']:.4f} | "
        f"{p['collapse']['effective_rank']:.1f} | {flow} | {others} | "
        f"{report['wall_s'] / 60:.1f} min |")
  compare_methods.write_results(args.out, "\n".join(lines), reports)


if __name__ == "__main__":
  main()
