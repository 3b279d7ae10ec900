r"""Pictures and the warp error of the synthetic scenes.

    python experiments/synthetic_scenes.py --textures=cifar10

Renders ``--num_scenes`` scenes of :class:`ssl_jax.data.SyntheticScenes`
('test' split) and writes a PNG grid, one scene per row, with the columns
frame t, frame t+1, depth (near bright), semantic segmentation (background
black, disc red, square green, triangle blue), instance segmentation,
occlusion edges over a dimmed frame t, and the flow in the colour wheel of
Baker et al., "A Database and Evaluation Methodology for Optical Flow",
IJCV 92 (2011): the hue is the direction (right red, down orange-yellow,
left cyan, up blue-violet), the saturation the length (saturated at 4 px),
white no motion.

It also prints the warp error over ``--num_warp_scenes`` scenes: frame t+1
sampled bilinearly at ``p + flow(p)`` against frame t, on the pixels whose
four bilinear neighbours in frame t+1 show the instance of p (mean and 99th
percentile of the absolute error, 0..255), and the time to render a scene.
"""

import argparse
import os
import sys
import time

import numpy as np

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO_ROOT not in sys.path:
  sys.path.insert(0, REPO_ROOT)

from ssl_jax.data import synthetic_scenes  # pylint: disable=g-import-not-at-top,wrong-import-position

SEMANTIC_COLOURS = np.array([[0, 0, 0], [230, 60, 60], [60, 200, 60],
                             [70, 110, 240]], np.uint8)
INSTANCE_COLOURS = np.array([[0, 0, 0], [255, 215, 0], [0, 220, 220],
                             [230, 0, 230], [255, 255, 255], [255, 128, 0],
                             [128, 128, 255], [128, 255, 128]], np.uint8)


def _colour_wheel() -> np.ndarray:
  """The Middlebury flow colour wheel, ``(55, 3)`` in [0, 1]: red, yellow,
  green, cyan, blue, magenta, back to red, in 15/6/4/11/13/6 steps."""
  segments = ((15, (1, 0, 0), (1, 1, 0)), (6, (1, 1, 0), (0, 1, 0)),
              (4, (0, 1, 0), (0, 1, 1)), (11, (0, 1, 1), (0, 0, 1)),
              (13, (0, 0, 1), (1, 0, 1)), (6, (1, 0, 1), (1, 0, 0)))
  rows = []
  for steps, start, end in segments:
    t = np.arange(steps)[:, None] / steps
    rows.append((1 - t) * np.array(start) + t * np.array(end))
  return np.concatenate(rows)


def flow_to_colour(flow: np.ndarray, max_flow: float = 0.0) -> np.ndarray:
  """A flow ``(H, W, 2)`` (u = d column, v = d row) as uint8 RGB: the hue
  is the direction, the saturation the length over ``max_flow`` (the
  largest length when 0), white for no motion."""
  u, v = flow[..., 0].astype(np.float64), flow[..., 1].astype(np.float64)
  length = np.hypot(u, v)
  scale = max_flow if max_flow > 0 else max(float(length.max()), 1e-9)
  wheel = _colour_wheel()
  n = len(wheel)
  position = (np.arctan2(-v, -u) / np.pi + 1.0) / 2.0 * (n - 1)
  i0 = np.floor(position).astype(int)
  i1 = (i0 + 1) % n
  f = (position - i0)[..., None]
  colour = (1 - f) * wheel[i0] + f * wheel[i1]
  saturation = np.minimum(length / scale, 1.0)[..., None]
  colour = 1.0 - saturation * (1.0 - colour)
  return np.round(colour * 255.0).astype(np.uint8)


def warp_errors(scene: dict) -> np.ndarray:
  """Absolute errors (0..255) of frame t+1 warped back by the flow, on the
  pixels whose target's four bilinear neighbours show the same instance."""
  from scipy import ndimage  # pylint: disable=g-import-not-at-top

  inst, nxt = scene["instances"], scene["next_instances"]
  h, w = inst.shape
  rows, cols = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
  tr = rows + scene["flow"][..., 1].astype(np.float64)
  tc = cols + scene["flow"][..., 0].astype(np.float64)
  ok = (tr >= 0) & (tr <= h - 1) & (tc >= 0) & (tc <= w - 1)
  r0 = np.clip(np.floor(tr).astype(int), 0, h - 1)
  c0 = np.clip(np.floor(tc).astype(int), 0, w - 1)
  r1, c1 = np.minimum(r0 + 1, h - 1), np.minimum(c0 + 1, w - 1)
  for r, c in ((r0, c0), (r0, c1), (r1, c0), (r1, c1)):
    ok &= nxt[r, c] == inst
  frame = scene["next_image"].astype(np.float64)
  warped = np.stack([ndimage.map_coordinates(frame[..., c], [tr, tc],
                                             order=1, mode="nearest")
                     for c in range(3)], axis=-1)
  return np.abs(warped - scene["image"])[ok].ravel()


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--textures", default="procedural",
                      choices=synthetic_scenes.TEXTURES)
  parser.add_argument("--texture_dir", default="../shared/datasets/cifar10")
  parser.add_argument("--num_scenes", type=int, default=6)
  parser.add_argument("--num_warp_scenes", type=int, default=200)
  parser.add_argument("--seed", type=int, default=0)
  parser.add_argument("--out",
                      default="experiments/results/synthetic_scenes.png")
  args = parser.parse_args(argv)
  if args.num_scenes < 1 or args.num_warp_scenes < 1:
    parser.error("--num_scenes and --num_warp_scenes must be at least 1.")

  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top

  source = synthetic_scenes.SyntheticScenes(
      "test", num_scenes=max(args.num_scenes, args.num_warp_scenes),
      textures=args.textures, texture_dir=args.texture_dir, seed=args.seed)
  source.scene(0)  # loads the textures
  start = time.perf_counter()
  scenes = [source.scene(i) for i in range(args.num_warp_scenes)]
  per_scene = (time.perf_counter() - start) / args.num_warp_scenes
  errors = np.concatenate([warp_errors(s) for s in scenes])
  print(f"{source!r}")
  print(f"render: {per_scene * 1e3:.3f} ms per scene")
  print(f"warp error over {len(scenes)} scenes ({errors.size} pixel-channels):"
        f" mean {errors.mean():.3f}, p99 {np.percentile(errors, 99):.2f}, "
        f"max {errors.max():.1f} (0..255)")

  titles = ("frame t", "frame t+1", "depth", "semantics", "instances",
            "edges", "flow")
  fig, axes = plt.subplots(args.num_scenes, len(titles),
                           figsize=(1.6 * len(titles), 1.6 * args.num_scenes),
                           squeeze=False)
  near, far = source.near_depth, source.background_depth
  for row in range(args.num_scenes):
    s = source.scene(row)
    dimmed = (s["image"] * 0.4).astype(np.uint8)
    edges = np.where(s["edges"][..., None] == 1,
                     np.array([255, 255, 0], np.uint8), dimmed)
    panels = (s["image"], s["next_image"],
              (far - s["depth"]) / (far - near),
              SEMANTIC_COLOURS[s["semantics"]],
              INSTANCE_COLOURS[s["instances"] % len(INSTANCE_COLOURS)],
              edges, flow_to_colour(s["flow"], max_flow=4.0))
    for col, panel in enumerate(panels):
      ax = axes[row, col]
      if panel.ndim == 2:
        ax.imshow(panel, cmap="magma", vmin=0.0, vmax=1.0,
                  interpolation="nearest")
      else:
        ax.imshow(panel, interpolation="nearest")
      ax.set_xticks([])
      ax.set_yticks([])
      if row == 0:
        ax.set_title(titles[col], fontsize=9)
    axes[row, 0].set_ylabel(
        f"{synthetic_scenes.CLASS_NAMES[s['label']]}", fontsize=8)
  fig.suptitle(f"synthetic scenes, {args.textures} textures (flow: colour "
               "wheel, saturated at 4 px)", fontsize=9)
  fig.tight_layout()
  os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
  fig.savefig(args.out, dpi=110)
  print(f"wrote {args.out}")


if __name__ == "__main__":
  main()
