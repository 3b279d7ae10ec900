"""Jigsaw permutation sets of one size and different Hamming distances:
pretext accuracy and transfer (Noroozi & Favaro 2016, Table 1, at CPU scale).

For each permutation set -- the paper's greedy maximal-distance set
('max', mean distance about 8.0), a set steered to a mean of 6.4
('target'), and the tightest greedy set ('min', mean about 4.0 at 100
permutations) -- pretrains jigsaw on CIFAR-10 through the CLI at the budget
of ``compare_methods.py`` (ResNet-18 at width 1/8, batch 128), then reports
the set's mean and minimum pairwise Hamming distance, the jigsaw accuracy on
held-out test images, and kNN / linear accuracy of the tile features
against the random-init floor. Writes ``<out>.md`` and ``<out>.json``; a
rerun skips sets whose workdir holds ``eval.json``.

    python experiments/jigsaw_permutations.py --steps=1000 \\
        --out=experiments/results/cifar10_jigsaw_permutations

A mean distance of 4.0 exists only for small sets (``augment.permutations``:
'min' stops at 5.45 for 1000 permutations of 9 tiles), hence 100
permutations by default; the paper compares sets of 1000.
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import compare_methods  # pylint: disable=g-import-not-at-top,wrong-import-position

from ssl_jax import augment  # pylint: disable=wrong-import-position

# name -> jigsaw config fields of the set.
SETS = {
    "max": {"selection": "max"},
    "target_6.4": {"selection": "target", "target_distance": 6.4},
    "min": {"selection": "min"},
}


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--sets", default=",".join(SETS))
  parser.add_argument("--num_permutations", type=int, default=100)
  parser.add_argument("--permutation_seed", type=int, default=0)
  parser.add_argument("--preset", default="cifar10")
  parser.add_argument("--workdir_root", default="runs/jigsaw_permutations")
  parser.add_argument(
      "--out", default="experiments/results/cifar10_jigsaw_permutations")
  parser.add_argument("--width", type=float, default=0.125)
  parser.add_argument("--conv_impl", default="auto")
  parser.add_argument("--batch_size", type=int, default=128)
  parser.add_argument("--steps", type=int, default=1000)
  parser.add_argument("--eval_train", type=int, default=10000)
  parser.add_argument("--eval_test", type=int, default=2000)
  args = parser.parse_args()
  rows = {}
  for name in [n for n in args.sets.split(",") if n]:
    fields = dict(SETS[name], num_permutations=args.num_permutations,
                  permutation_seed=args.permutation_seed)
    flags = compare_methods.overrides(args, "jigsaw") + [
        f"--config.jigsaw.{key}={value}" for key, value in fields.items()]
    report = compare_methods.run_cli(
        f"configs/jigsaw.py:{args.preset}",
        os.path.join(args.workdir_root, name), flags)
    perms = augment.load_or_create_permutations(
        args.num_permutations, seed=args.permutation_seed,
        selection=fields["selection"],
        target_distance=fields.get("target_distance"))
    trained, floor = report["protocols"], report["random_init"]
    rows[name] = {
        "hamming": augment.hamming_stats(perms),
        "jigsaw_accuracy": trained["pretext"]["top1"],
        "jigsaw_chance": 1.0 / args.num_permutations,
        "knn": trained["knn"]["top1"], "linear": trained["linear"]["top1"],
        "floor_knn": floor["knn"]["top1"],
        "floor_linear": floor["linear"]["top1"],
        "steps": report["steps"], "wall_s": report["wall_s"],
    }
    compare_methods.write_results(args.out, table(rows, args), rows)


def table(rows, args):
  lines = [
      f"Jigsaw on CIFAR-10, {args.num_permutations} permutations per set "
      f"(seed {args.permutation_seed}); ResNet-18 (CIFAR stem) at width "
      f"{args.width} as the tile encoder, batch {args.batch_size}, "
      f"{args.steps} steps; jigsaw accuracy on held-out test images (chance "
      f"{1 / args.num_permutations:.3f}); kNN (k=200, t=0.1) and linear probe "
      f"of the 9 centred tiles' features on {args.eval_train} train / "
      f"{args.eval_test} test images; floor: the same encoder at random init.",
      "",
      "| set | mean Hamming | min Hamming | jigsaw accuracy | kNN top-1 | "
      "linear top-1 | floor kNN / linear | wall time |",
      "|---|---|---|---|---|---|---|---|",
  ]
  for name, r in rows.items():
    h = r["hamming"]
    lines.append(
        f"| {name} | {h['mean']:.2f} | {h['min']:.0f} | "
        f"{r['jigsaw_accuracy']:.4f} | {r['knn']:.4f} | {r['linear']:.4f} | "
        f"{r['floor_knn']:.4f} / {r['floor_linear']:.4f} | "
        f"{r['wall_s'] / 60:.1f} min |")
  return "\n".join(lines)


if __name__ == "__main__":
  main()
