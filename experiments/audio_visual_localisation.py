r"""Where in the picture is the sound? Localisation maps of an audio-visual
run (the AVOL-Net head of ``ssl_jax.methods.audio_visual``).

    python experiments/audio_visual_localisation.py --workdir=runs/mi/audio_visual

Loads the finished run (``ssl_jax.train.loop.load_trained``) and writes
``--out`` (default
``experiments/results/fsdd_audio_visual_localisation.png``) and a JSON of
the numbers beside it:

* one row per digit 0-9: a test image (digits' test split), its
  localisation map for a recording of the same digit and for a recording
  of another digit, both by the held-out speaker(s); every map is
  :math:`\sigma(m_c)` per cell (0-1, one colour scale), bilinearly
  upsampled over the image, with the pair's correspondence probability
  :math:`\sigma(\max_c m_c)` in the caption;
* rows of two test digits side by side (an 8x16 picture the networks never
  saw in training: a 4x8 map), with the recording of one of them: the map
  should light up that half. The JSON reports, over ``--num_pairs``
  seeded side-by-side pictures, how often the map's maximum falls in the
  spoken digit's half (chance 0.5).
"""

import argparse
import json
import os
import sys

import numpy as np

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO_ROOT not in sys.path:
  sys.path.insert(0, REPO_ROOT)

DEFAULT_OUT = os.path.join(REPO_ROOT, "experiments", "results",
                           "fsdd_audio_visual_localisation.png")


def sigmoid(x):
  return 1.0 / (1.0 + np.exp(-np.asarray(x, np.float64)))


def choose_examples(test, rng):
  """One test image per digit, a recording of its digit and one of another
  (held-out speakers), as row indices into the test split."""
  images, matching, other = [], [], []
  for digit in range(test.num_classes):
    rows = np.flatnonzero(test.labels == digit)
    images.append(rng.choice(rows))
    matching.append(rng.choice(np.flatnonzero(test.audio_label == digit)))
    other.append(rng.choice(np.flatnonzero(test.audio_label != digit)))
  return np.array(images), np.array(matching), np.array(other)


def side_by_side(test, num_pairs, rng):
  """``num_pairs`` 8x16 pictures of two different test digits, a recording
  of one of them, and which half (0 left, 1 right) it is."""
  left = rng.randint(len(test), size=num_pairs)
  right = np.array([rng.choice(np.flatnonzero(test.labels != test.labels[i]))
                    for i in left])
  spoken_half = rng.randint(2, size=num_pairs)
  spoken_digit = np.where(spoken_half == 0, test.labels[left],
                          test.labels[right])
  recordings = np.array([rng.choice(np.flatnonzero(test.audio_label == d))
                         for d in spoken_digit])
  pictures = np.concatenate([test.images[left], test.images[right]], axis=2)
  return pictures, recordings, spoken_half, spoken_digit


def localise(method, variables, images, audio, batch_size=256):
  import jax  # pylint: disable=g-import-not-at-top
  fn = jax.jit(method.localise)
  parts = [fn(variables, images[s:s + batch_size], audio[s:s + batch_size])
           for s in range(0, len(images), batch_size)]
  return tuple(np.concatenate([np.asarray(p[k]) for p in parts])
               for k in range(3))


def render(single, pairs, out_path, title, columns=2):
  """Writes the PNG: ``single`` and ``pairs`` are lists of groups of
  ``(picture (H, W) uint8, map (h, w) or None, caption)`` panels, laid
  out ``columns`` groups per row, one colour scale for every map."""
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  heats = [h for group in single + pairs for _, h, _ in group
           if h is not None]
  vmin = float(np.percentile(np.concatenate([h.ravel() for h in heats]), 1))
  vmax = float(np.percentile(np.concatenate([h.ravel() for h in heats]), 99))
  rows_single = -(-len(single) // columns)
  rows_pairs = -(-len(pairs) // columns)
  # Square panels 6 to a row above, 2:1 panels 4 to a row below.
  heights = (1.4 * rows_single, 1.3 * rows_pairs)
  fig = plt.figure(figsize=(9.0, sum(heights) + 0.7))
  top, bottom = fig.subfigures(2, 1, height_ratios=heights)
  last = None
  for subfig, groups, rows in ((top, single, rows_single),
                               (bottom, pairs, rows_pairs)):
    per_group = len(groups[0])
    axes = subfig.subplots(rows, columns * per_group, squeeze=False)
    subfig.subplots_adjust(left=0.01, right=0.93, wspace=0.08, hspace=0.35)
    for ax in axes.ravel():
      ax.set_xticks([])
      ax.set_yticks([])
      ax.axis("off")
    for g, group in enumerate(groups):
      for p, (picture, heat, caption) in enumerate(group):
        ax = axes[g // columns, (g % columns) * per_group + p]
        ax.axis("on")
        height, width = picture.shape
        extent = (0, width, height, 0)
        ax.imshow(picture, cmap="gray", vmin=0, vmax=255, extent=extent)
        if heat is not None:
          last = ax.imshow(heat, cmap="jet", vmin=vmin, vmax=vmax,
                           alpha=0.55, interpolation="bilinear",
                           extent=extent)
        ax.set_title(caption, fontsize=7)
  fig.suptitle(title, fontsize=8.5)
  if last is not None:
    colorbar = fig.colorbar(last, cax=fig.add_axes((0.925, 0.3, 0.012, 0.4)))
    colorbar.set_label("sigmoid(map)",
                       fontsize=7)
  os.makedirs(os.path.dirname(os.path.abspath(out_path)), exist_ok=True)
  fig.savefig(out_path, dpi=110)
  plt.close(fig)


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--workdir", required=True,
                      help="a finished audio_visual run")
  parser.add_argument("--out", default=DEFAULT_OUT)
  parser.add_argument("--num_pairs", type=int, default=500,
                      help="side-by-side pictures scored for the JSON")
  parser.add_argument("--num_shown", type=int, default=6,
                      help="side-by-side pictures drawn")
  parser.add_argument("--seed", type=int, default=0)
  args = parser.parse_args(argv)

  import jax  # pylint: disable=g-import-not-at-top

  from ssl_jax.train import loop  # pylint: disable=g-import-not-at-top

  run, state = loop.load_trained(args.workdir)
  if run.config.method != "audio_visual":
    raise loop.ConfigError(
        f"{args.workdir} holds a {run.config.method!r} run; the localisation "
        "maps need an audio_visual run.")
  method, test = run.method, run.test_source
  variables = jax.tree.map(
      lambda x: np.asarray(x.addressable_data(0)),
      {"params": state.params, "batch_stats": state.batch_stats})
  rng = np.random.RandomState(args.seed)
  speakers = ", ".join(test.test_speakers)

  images, matching, other = choose_examples(test, rng)
  _, match_scores, match_maps = localise(
      method, variables, test.images[images], test.audio[matching])
  _, other_scores, other_maps = localise(
      method, variables, test.images[images], test.audio[other])
  single = []
  for k in range(len(images)):
    picture = test.images[images[k], ..., 0]
    single.append([
        (picture, None, f"image: digit {test.labels[images[k]]}"),
        (picture, sigmoid(match_maps[k]),
         f"hears '{test.audio_label[matching[k]]}': "
         f"p={sigmoid(match_scores[k]):.2f}"),
        (picture, sigmoid(other_maps[k]),
         f"hears '{test.audio_label[other[k]]}': "
         f"p={sigmoid(other_scores[k]):.2f}"),
    ])

  pictures, recordings, spoken_half, spoken_digit = side_by_side(
      test, args.num_pairs, rng)
  _, pair_scores, pair_maps = localise(method, variables, pictures,
                                       test.audio[recordings])
  columns = pair_maps.shape[-1]
  peak_column = np.argmax(pair_maps.max(axis=-2), axis=-1)
  found = (peak_column >= columns // 2).astype(int) == spoken_half
  pairs = []
  for k in range(args.num_shown):
    picture = pictures[k, ..., 0]
    where = "left" if spoken_half[k] == 0 else "right"
    pairs.append([
        (picture, None, f"hears '{spoken_digit[k]}' ({where})"),
        (picture, sigmoid(pair_maps[k]),
         f"peak {'on it' if found[k] else 'elsewhere'}, "
         f"p={sigmoid(pair_scores[k]):.2f}"),
    ])

  summary = {
      "workdir": os.path.abspath(args.workdir),
      "variant": run.config.audio_visual.variant,
      "steps": int(jax.device_get(state.step)),
      "held_out_speakers": list(test.test_speakers),
      "map_shape": list(match_maps.shape[1:]),
      "single_digit": {
          "mean_p_matching": float(np.mean(sigmoid(match_scores))),
          "mean_p_other": float(np.mean(sigmoid(other_scores))),
          "digits": [int(test.labels[i]) for i in images],
      },
      "side_by_side": {
          "num_pictures": int(args.num_pairs),
          "map_shape": list(pair_maps.shape[1:]),
          "peak_on_spoken_digit": float(np.mean(found)),
          "chance": 0.5,
          "protocol": (
              "8x16 pictures of two different digits' test images, a "
              f"recording of one of them by {speakers} (seed {args.seed}); "
              "fraction whose localisation-map maximum lies in that "
              "digit's half"),
      },
  }
  title = (f"{run.config.audio_visual.variant} run ({summary['steps']} steps):"
           f" localisation maps of the AVOL head for recordings of the "
           f"held-out speaker(s) {speakers}\nabove: a test image, its map "
           f"for a recording of its digit, and for a recording of another "
           f"digit\nbelow: two digits side by side, one of them spoken; the "
           f"map's peak is on the spoken digit in "
           f"{summary['side_by_side']['peak_on_spoken_digit']:.0%} of "
           f"{args.num_pairs} such pictures (chance 50%)")
  render(single, pairs, args.out, title)
  with open(os.path.splitext(args.out)[0] + ".json", "w") as f:
    json.dump(summary, f, indent=1)
  print(json.dumps(summary, indent=1))
  print(f"wrote {args.out}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
