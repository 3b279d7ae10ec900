"""How good are the free annotators? Measured against a renderer's exact labels.

The auxiliary annotators (``ssl_jax.augment.annotators``, Horn--Schunck flow
in ``ssl_jax.augment.flow``) label real images where nothing is known
exactly. On rendered scenes (``ssl_jax.data.synthetic_scenes``, CIFAR-10
textures, 'test' split) every label is exact, so their errors can be
counted:

* optical flow: Horn--Schunck from frame t to t + 1 against the exact flow
  (end-point error, and the error of predicting no motion);
* edges: Canny on frame t against the exact occlusion boundaries
  (precision, recall, F1 with a one-pixel tolerance; Canny also fires on
  texture edges, which are not occlusions);
* relative depth by a formula: for a static scene seen by a camera moving
  sideways by a known ``s = f T``, a point at depth z moves by ``-s / z``,
  so ``z = |s| / (-w . s / |s|)`` (``annotators.relative_depth_from_parallax``).
  Scenes are rendered with still objects (``object_speed=0``,
  ``max_rotation_deg=0``: only the camera moves), the depth is computed
  from the Horn--Schunck flow and the known camera shift, and compared with
  the exact depth: Spearman's rank correlation per scene, and how often the
  order of two surfaces (median depth over each surface's pixels) is right.
  With the exact flow the formula is exact (the first row).

    python experiments/annotator_quality.py --out=experiments/results/annotator_quality.md
"""

import argparse
import itertools
import os
import sys

import jax
import jax.numpy as jnp
import numpy as np
from scipy import ndimage
from scipy import stats

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from ssl_jax.augment import annotators  # pylint: disable=g-import-not-at-top
from ssl_jax.augment import flow as flow_lib
from ssl_jax.data import synthetic_scenes


def render(num_scenes, still, texture_dir):
  """Records and camera shifts of ``num_scenes`` 'test' scenes."""
  extra = dict(object_speed=0.0, max_rotation_deg=0.0) if still else {}
  source = synthetic_scenes.SyntheticScenes(
      "test", num_scenes=num_scenes, textures="cifar10",
      texture_dir=texture_dir, **extra)
  scenes = [source.scene(i) for i in range(num_scenes)]
  batch = {key: np.stack([s[key] for s in scenes]) for key in (
      "image", "next_image", "depth", "instances", "edges", "flow",
      "camera_translation")}
  return batch


def horn_schunck(images, next_images, **settings):
  frames = [jnp.asarray(x, jnp.float32) / 255.0 for x in (images, next_images)]
  return np.asarray(jax.jit(jax.vmap(
      lambda a, b: flow_lib.horn_schunck(a, b, **settings)))(*frames))


def flow_rows(batch, settings):
  rows = []
  truth = batch["flow"]
  zero = np.mean(np.linalg.norm(truth, axis=-1))
  for name, kwargs in settings.items():
    estimate = horn_schunck(batch["image"], batch["next_image"], **kwargs)
    epe = np.mean(np.linalg.norm(estimate - truth, axis=-1))
    rows.append(f"| Horn--Schunck ({name}) | flow t -> t+1 | EPE {epe:.3f} px "
                f"| no motion: EPE {zero:.3f} px |")
  return rows


def edge_row(batch, low, high):
  canny = np.asarray(jax.vmap(lambda x: annotators.canny(x, low, high))(
      jnp.asarray(batch["image"], jnp.float32) / 255.0))
  truth = batch["edges"].astype(bool)
  near_truth = np.stack([ndimage.binary_dilation(t, np.ones((3, 3)))
                         for t in truth])
  near_canny = np.stack([ndimage.binary_dilation(c, np.ones((3, 3)))
                         for c in canny])
  precision = np.sum(canny & near_truth) / max(np.sum(canny), 1)
  recall = np.sum(truth & near_canny) / max(np.sum(truth), 1)
  f1 = 2 * precision * recall / max(precision + recall, 1e-12)
  return (f"| Canny ({low:g} / {high:g}) | occlusion edges | precision "
          f"{precision:.3f}, recall {recall:.3f}, F1 {f1:.3f} (1-px tolerance) "
          f"| edge pixels: {truth.mean():.3f} of all |")


def depth_scores(flow, batch):
  """Median Spearman rho over scenes, and the fraction of surface pairs in
  the right depth order."""
  rhos, right, pairs = [], 0, 0
  for i in range(len(flow)):
    depth = np.asarray(annotators.relative_depth_from_parallax(
        flow[i], batch["camera_translation"][i]))
    truth, instances = batch["depth"][i], batch["instances"][i]
    rhos.append(stats.spearmanr(depth.ravel(), truth.ravel()).statistic)
    surfaces = np.unique(instances)
    medians = {s: (np.median(depth[instances == s]), truth[instances == s][0])
               for s in surfaces}
    for a, b in itertools.combinations(surfaces, 2):
      (est_a, true_a), (est_b, true_b) = medians[a], medians[b]
      if true_a == true_b:
        continue
      pairs += 1
      right += (est_a < est_b) == (true_a < true_b)
  return float(np.nanmedian(rhos)), right / max(pairs, 1), pairs


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--num_scenes", type=int, default=200)
  parser.add_argument("--texture_dir", default="../shared/datasets/cifar10")
  parser.add_argument("--out", default="experiments/results/annotator_quality.md")
  args = parser.parse_args()
  settings = {
      "the annotators preset: alpha 0.3, 1 scale, 3 warps x 10 iterations":
          dict(alpha=0.3, num_iters=10, num_scales=1, num_warps=3),
      "alpha 0.1, 2 scales, 3 warps x 50 iterations":
          dict(alpha=0.1, num_iters=50, num_scales=2, num_warps=3),
  }
  moving = render(args.num_scenes, still=False, texture_dir=args.texture_dir)
  still = render(args.num_scenes, still=True, texture_dir=args.texture_dir)
  lines = [
      f"Annotators against the exact labels of {args.num_scenes} rendered "
      "'test' scenes (32 px, CIFAR-10 textures); "
      "`python experiments/annotator_quality.py`.", "",
      "| annotator | against | score | floor / context |", "|---|---|---|---|"]
  lines += flow_rows(moving, settings)
  lines.append(edge_row(moving, 50.0, 150.0))
  lines += ["", "Relative depth by the parallax formula, scenes whose objects "
            "stand still while the camera moves sideways by a known s = f T:",
            "", "| flow used | median Spearman rho (pixels) | surface pairs in "
            "the right order |", "|---|---|---|"]
  rho, order, pairs = depth_scores(still["flow"], still)
  lines.append(f"| exact (renderer) | {rho:.3f} | {order:.3f} of {pairs} |")
  for name, kwargs in settings.items():
    estimate = horn_schunck(still["image"], still["next_image"], **kwargs)
    rho, order, pairs = depth_scores(estimate, still)
    lines.append(f"| Horn--Schunck ({name}) | {rho:.3f} | {order:.3f} of "
                 f"{pairs} |")
  text = "\n".join(lines) + "\n"
  print(text)
  os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
  with open(args.out, "w") as f:
    f.write(text)


if __name__ == "__main__":
  main()
