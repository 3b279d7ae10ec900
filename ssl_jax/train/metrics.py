"""Training logs: ``metrics.jsonl``, TensorBoard event files, a PNG of the curves.

TensorBoard files are written with tensorboardX, so no TensorFlow is needed.
"""

import json
import os

import numpy as np


class MetricsLogger:
  """Appends one JSON line per logged step and mirrors scalars to TensorBoard."""

  def __init__(self, workdir, enabled=True):
    self.enabled = enabled
    self.path = os.path.join(workdir, "metrics.jsonl")
    self._tb = None
    if enabled:
      from tensorboardX import SummaryWriter  # pylint: disable=g-import-not-at-top
      self._tb = SummaryWriter(os.path.join(workdir, "tensorboard"))

  def write(self, step, scalars):
    if not self.enabled:
      return
    record = {"step": int(step)}
    record.update({k: float(v) for k, v in scalars.items()})
    with open(self.path, "a") as f:
      f.write(json.dumps(record) + "\n")
    for name, value in record.items():
      if name != "step":
        self._tb.add_scalar(name, value, int(step))
    self._tb.flush()

  def close(self):
    if self._tb is not None:
      self._tb.close()


def read_metrics(path):
  """Reads ``metrics.jsonl``, one record per step: the records of a step
  are merged, later values winning (a resumed run repeats the steps after
  its last checkpoint; a method's ``refresh`` logs its own scalars, e.g.
  DeepCluster's NMI, at the step that its training metrics also reach)."""
  by_step = {}
  if os.path.exists(path):
    with open(path) as f:
      for line in f:
        if line.strip():
          record = json.loads(line)
          by_step.setdefault(record["step"], {}).update(record)
  return [by_step[s] for s in sorted(by_step)]


def plot_training_curves(metrics_path, out_path, keys=("loss", "contrastive_acc", "probe_acc")):
  """Writes a PNG with one panel per metric in ``keys`` against the step."""
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top

  records = read_metrics(metrics_path)
  keys = [k for k in keys if any(k in r for r in records)]
  if not records or not keys:
    return None
  fig, axes = plt.subplots(1, len(keys), figsize=(4 * len(keys), 3.2))
  axes = np.atleast_1d(axes)
  for ax, key in zip(axes, keys):
    steps = [r["step"] for r in records if key in r]
    values = [r[key] for r in records if key in r]
    ax.plot(steps, values)
    ax.set_title(key)
    ax.set_xlabel("step")
    ax.grid(alpha=0.3)
  fig.tight_layout()
  fig.savefig(out_path, dpi=100)
  plt.close(fig)
  return out_path
