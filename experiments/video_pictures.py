r"""Pictures and test-set scores of a video run (prediction or colorization).

    python experiments/video_pictures.py --workdir=runs/video_prediction
    python experiments/video_pictures.py --workdir=runs/video_colorization \
        --out=experiments/results/moving_digits_tracking

Loads the run's saved config and latest checkpoint, and on the first
``--num_sequences`` test videos:

- ``video_prediction``: the mean squared error (pixels in [0, 1]) of the
  predicted frames against the true ones, next to repeating the last
  observed frame; a PNG with, per video, a row of observed frames, a row of
  predicted frames and a row of the true future frames.
- ``video_colorization``: tracking without labels. The generator's instance
  masks of frame 0 (background and each digit, one-hot, averaged over the
  encoder's ``stride x stride`` blocks) are carried through the grey video
  by the pointing attention (``VideoColorization.track``), enlarged
  bilinearly to the frame and read by argmax after dividing each label by
  its share of frame 0; the score is the mean IoU (Jaccard, J) of each
  digit's tracked mask with its true mask over frames 1 .. T-1, for the
  trained encoder (every frame pointing into frame 0, and pointing into the
  frame before), the same encoder at its random initialisation, the frame-0
  mask left in place (no tracking), and the oracle: every frame's true
  masks passed through the same block averaging and decoding, the ceiling
  of a tracker at the map's resolution. The PNG shows, per video, the
  frames with the tracked masks (pointing into frame 0) drawn over them and
  the true masks.

Writes ``<out>.png`` and ``<out>.json`` (default ``<workdir>/video``) and
prints the scores as a markdown table.
"""

import argparse
import json
import os
import sys

import numpy as np

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO_ROOT not in sys.path:
  sys.path.insert(0, REPO_ROOT)

from experiments import reconstructions  # pylint: disable=g-import-not-at-top,wrong-import-position

METHODS = ("video_prediction", "video_colorization")
# Overlay colours of the tracked labels: background, then one per digit.
LABEL_COLOURS = np.array([[0.0, 0.0, 0.0], [1.0, 1.0, 0.0], [0.0, 1.0, 1.0],
                          [1.0, 0.0, 1.0], [1.0, 1.0, 1.0]], np.float32)


def load_run(workdir):
  """``(run, trained variables, random-init variables, step)`` of a workdir."""
  import jax  # pylint: disable=g-import-not-at-top

  from ssl_jax.train import loop  # pylint: disable=g-import-not-at-top

  reconstructions.saved_method_config(workdir, METHODS)
  run, state = loop.load_trained(workdir)

  def host(s):
    return jax.tree.map(lambda x: np.asarray(x.addressable_data(0)),
                        {"params": s.params, "batch_stats": s.batch_stats})

  return (run, host(state), host(run.initial_state()),
          int(jax.device_get(state.step)))


def prediction_report(run, variables, num_sequences, batch_size=64):
  """Test-set errors, and ``(observed, predicted, true)`` frames of the
  first videos, pixels in [0, 1]."""
  import jax  # pylint: disable=g-import-not-at-top

  method = run.method
  predict = jax.jit(method.predict)
  o, p = method.num_observed, method.num_predicted
  squared, copy_last, pictures = [], [], None
  for start in range(0, num_sequences, batch_size):
    videos = run.test_source.read_batch(
        range(start, min(start + batch_size, num_sequences)))["image"]
    predicted = np.asarray(predict(variables, videos))
    frames = videos[:, :o + p].astype(np.float32) / 255.0
    future = frames[:, o:]
    squared.append(((predicted - future) ** 2).mean(axis=(2, 3, 4)))
    copy_last.append(((frames[:, o - 1:o] - future) ** 2).mean(axis=(2, 3, 4)))
    if pictures is None:
      pictures = (frames[:, :o], predicted, future)
  squared, copy_last = np.concatenate(squared), np.concatenate(copy_last)
  scores = {
      "num_sequences": int(len(squared)),
      "prediction_mse": float(squared.mean()),
      "copy_last_mse": float(copy_last.mean()),
      "prediction_mse_per_frame": squared.mean(0).round(5).tolist(),
      "copy_last_mse_per_frame": copy_last.mean(0).round(5).tolist(),
  }
  return scores, pictures


def first_frame_labels(masks, num_labels, stride):
  """One-hot instance masks of frame 0 ``(B, H, W)`` -> ``(B, h, w, K)``
  block means."""
  one_hot = np.eye(num_labels, dtype=np.float32)[masks]
  b, h, w, k = one_hot.shape
  return one_hot.reshape(b, h // stride, stride, w // stride, stride,
                         k).mean(axis=(2, 4))


def tracked_masks(track, variables, videos, first, frame_size,
                  reference="first"):
  """Tracked labels enlarged to the frame, ``(B, T, H, W)``.

  A pixel takes the label of largest probability divided by that label's
  share of frame 0 (a prior correction: thin digit strokes cover a small
  part of their blocks, and a plain argmax would give every block to the
  background).
  ``track``: ``VideoColorization.track``, jitted once by the caller.
  """
  labels = np.asarray(track(variables, videos, first, reference=reference))
  return decode_labels(labels, first, frame_size)


def decode_labels(labels, first, frame_size):
  """Label distributions ``(B, T, h, w, K)`` -> label maps ``(B, T, H, W)``."""
  import jax  # pylint: disable=g-import-not-at-top

  b, t, h, w, k = labels.shape
  prior = first.mean(axis=(1, 2)).reshape(b, 1, 1, 1, k)
  enlarged = jax.image.resize(labels / np.maximum(prior, 1e-6),
                              (b, t, frame_size, frame_size, k), "bilinear")
  return np.asarray(enlarged).argmax(-1)


def mean_iou(predicted, true, num_digits):
  """Mean over digits and frames 1.. of the IoU of digit masks."""
  scores = []
  for digit in range(1, num_digits + 1):
    p, t = predicted[:, 1:] == digit, true[:, 1:] == digit
    union = (p | t).sum(axis=(2, 3))
    inter = (p & t).sum(axis=(2, 3))
    scores.append(np.where(union > 0, inter / np.maximum(union, 1), 1.0))
  return np.stack(scores)  # (digits, B, T - 1)


def tracking_report(run, variables, initial, num_sequences, batch_size=32):
  """J of the trained tracker (each frame pointing into frame 0, or into the
  frame before), the random-init tracker, no tracking, and the oracle (the
  true masks of every frame at the map's resolution, decoded the same way:
  the best a tracker at that resolution can score); and the first videos'
  frames, tracked masks and true masks."""
  import jax  # pylint: disable=g-import-not-at-top

  method = run.method
  track = jax.jit(method.track, static_argnames="reference")
  source = run.test_source
  k = source.num_digits + 1
  names = ("trained", "trained_previous", "random_init", "no_tracking",
           "oracle")
  results = {name: [] for name in names}
  pictures = None
  for start in range(0, num_sequences, batch_size):
    sequences = [source.sequence(i) for i in
                 range(start, min(start + batch_size, num_sequences))]
    videos = np.stack([s["video"] for s in sequences])
    masks = np.stack([s["masks"] for s in sequences]).astype(np.int64)
    first = first_frame_labels(masks[:, 0], k, method.stride)
    size = videos.shape[2]
    trained = tracked_masks(track, variables, videos, first, size)
    oracle = np.stack([first_frame_labels(masks[:, i], k, method.stride)
                       for i in range(videos.shape[1])], axis=1)
    predictions = {
        "trained": trained,
        "trained_previous": tracked_masks(track, variables, videos, first,
                                          size, reference="previous"),
        "random_init": tracked_masks(track, initial, videos, first, size),
        "no_tracking": np.repeat(trained[:, :1], videos.shape[1], axis=1),
        "oracle": decode_labels(oracle, first, size),
    }
    for name in names:
      results[name].append(mean_iou(predictions[name], masks,
                                    source.num_digits))
    if pictures is None:
      pictures = (videos.astype(np.float32) / 255.0, trained, masks)
  scores = {"num_sequences": num_sequences}
  for name, parts in results.items():
    iou = np.concatenate(parts, axis=1)  # (digits, N, T - 1)
    scores[f"{name}_j"] = float(iou.mean())
    scores[f"{name}_j_per_frame"] = iou.mean(axis=(0, 1)).round(4).tolist()
  return scores, pictures


def overlay(frames, masks, alpha=0.5):
  """Frames ``(..., H, W, 3)`` with label colours blended where a digit is."""
  colours = LABEL_COLOURS[np.clip(masks, 0, len(LABEL_COLOURS) - 1)]
  on = (masks > 0)[..., None]
  return np.where(on, (1 - alpha) * frames + alpha * colours, frames)


def render_rows(rows, out_path, panel_size, title, columns):
  """``rows``: list of ``(caption prefix, [(caption, pixels)...])``."""
  from ssl_jax.augment import preview  # pylint: disable=g-import-not-at-top
  cells = []
  for _, row in rows:  # rows shorter than ``columns`` end in blank cells
    blank = np.ones_like(row[0][1])
    cells += list(row) + [("", blank)] * (columns - len(row))
  image = preview.render_grid(cells, panel_size, columns=columns, title=title)
  os.makedirs(os.path.dirname(os.path.abspath(out_path)), exist_ok=True)
  image.save(out_path)


def markdown(method, step, scores):
  if method == "video_prediction":
    return ("| model | test MSE of the predicted frames |\n|---|---|\n"
            f"| video_prediction, step {step} | {scores['prediction_mse']:.4f} |\n"
            f"| repeat the last observed frame | {scores['copy_last_mse']:.4f} |")
  return ("| tracker | mean J (IoU) of the digits over frames 1-19 |\n|---|---|\n"
          f"| video_colorization, step {step}, pointing into frame 0 | "
          f"{scores['trained_j']:.3f} |\n"
          f"| the same, pointing into the previous frame | "
          f"{scores['trained_previous_j']:.3f} |\n"
          f"| same encoder at random init, into frame 0 | "
          f"{scores['random_init_j']:.3f} |\n"
          f"| frame-0 mask left in place | {scores['no_tracking_j']:.3f} |\n"
          f"| oracle: true masks at the map's resolution | "
          f"{scores['oracle_j']:.3f} |")


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--workdir", required=True)
  parser.add_argument("--num_sequences", type=int, default=256,
                      help="test videos scored")
  parser.add_argument("--num_pictures", type=int, default=3,
                      help="test videos drawn")
  parser.add_argument("--panel_size", type=int, default=48)
  parser.add_argument("--out", default=None,
                      help="path prefix of the PNG and JSON (default "
                      "<workdir>/video)")
  args = parser.parse_args(argv)
  from ssl_jax.train import loop  # pylint: disable=g-import-not-at-top
  try:
    run, variables, initial, step = load_run(args.workdir)
  except (loop.ConfigError, FileNotFoundError) as e:
    print(f"video_pictures: error: {e}", file=sys.stderr)
    return 2
  method = run.config.method
  out = args.out or os.path.join(args.workdir, "video")
  rows = []
  if method == "video_prediction":
    scores, (observed, predicted, true) = prediction_report(
        run, variables, args.num_sequences)
    o = observed.shape[1]
    for v in range(min(args.num_pictures, len(observed))):
      rows.append(("observed", [(f"in {t}", observed[v, t]) for t in range(o)]))
      rows.append(("predicted", [(f"pred {o + t}", predicted[v, t])
                                 for t in range(predicted.shape[1])]))
      rows.append(("true", [(f"true {o + t}", true[v, t])
                            for t in range(true.shape[1])]))
    columns = max(o, predicted.shape[1])
    title = (f"video prediction, step {step}: rows per video = observed, "
             "predicted, true")
  else:
    scores, (frames, tracked, masks) = tracking_report(
        run, variables, initial, args.num_sequences)
    t = frames.shape[1]
    shown = list(range(0, t, 2))
    for v in range(min(args.num_pictures, len(frames))):
      rows.append(("tracked", [(f"track {i}", overlay(frames[v, i], tracked[v, i]))
                               for i in shown]))
      rows.append(("true", [(f"true {i}", overlay(frames[v, i], masks[v, i]))
                            for i in shown]))
    columns = len(shown)
    title = (f"video colorization, step {step}: masks of frame 0 tracked "
             "(odd rows) vs true (even rows)")
  render_rows(rows, out + ".png", args.panel_size, title, columns)
  report = {"workdir": args.workdir, "method": method, "step": step, **scores}
  with open(out + ".json", "w") as f:
    json.dump(report, f, indent=1)
  print(markdown(method, step, scores))
  print(out + ".png")
  return 0


if __name__ == "__main__":
  sys.exit(main())
