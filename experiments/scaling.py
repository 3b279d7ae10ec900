r"""Scaling sweeps: a grid over any config fields, each cell a normal run.

Every cell is ``python -m ssl_jax.main --config=<config>`` with its own
workdir under ``--workdir_root`` and the cell's ``--config.<field>=<value>``
overrides, so it checkpoints, resumes and evaluates like any run. A rerun
skips cells whose workdir holds ``eval.json`` and resumes a cell that was
interrupted from its last checkpoint (its wall time is then that of the
resumed run only). The sweep writes, under ``--out``:
``results.csv``, ``results.json``, ``results.md`` (one row per cell: the
axes, steps, wall time, images/s, every protocol's top-1 in the run's
``eval.json`` with the random-init floor) and ``results.png``: top-1 against
the first axis, one line per value of the other axes (SimCLR's Figure 9
with ``train.batch_size`` then ``train.num_epochs``; accuracy against width
with ``model.width_multiplier``).

    # SimCLR's batch size x epochs grid at CPU scale (about an hour here):
    python experiments/scaling.py --preset=cpu_batch_epochs
    # any fields; "method" picks the config file:
    python experiments/scaling.py --config=configs/simclr.py:cifar10 \
        --axis=model.width_multiplier=0.0625,0.125,0.25 \
        --axis=model.depth=18,34 --set=train.num_steps=200 \
        --workdir_root=runs/width --out=experiments/results/width
    python experiments/scaling.py --axis=method=simclr,byol,vicreg ...
    # a coupled axis: fields joined by '+', each value's parts by ':'
    python experiments/scaling.py --config=configs/simclr.py:cifar10 \
        --axis=train.batch_size=64,512 \
        --axis=optim.name+optim.base_lr+optim.lr_scaling=lars:1.0:linear,adamw:0.001:none ...

``train.num_epochs`` cells are turned into ``train.num_steps`` (epochs x
``--train_examples`` / batch, at least 1), so every cell's warmup
(``--warmup_fraction`` of its steps unless ``optim.warmup_steps`` is set)
and length are explicit in its command. The learning rate follows the
config's ``optim.lr_scaling`` (linear: base x B/256, sqrt: base x sqrt(B));
put ``optim.lr_scaling`` or ``optim.name`` on an axis (coupled with
``optim.base_lr``: each rule and optimizer has its own) to compare rules and
optimizers. Label-fraction results come from the fine-tuning protocols:
``--set=eval.protocols=knn,linear,semi_10pct,semi_1pct`` adds their columns.
"""

import argparse
import csv
import itertools
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import compare_methods  # pylint: disable=g-import-not-at-top,wrong-import-position

# The committed CPU-scale grid: SimCLR on CIFAR-10, ResNet-18 (CIFAR stem)
# at width 1/8, LARS with linear scaling (lr 1.0 x B/256), evaluation on
# class-balanced 10,000 train / 2,000 test images.
PRESETS = {
    "cpu_batch_epochs": {
        "config": "configs/simclr.py:cifar10",
        "axes": ["train.batch_size=64,128,256,512",
                 "train.num_epochs=0.5,1,2"],
        "set": ["model.width_multiplier=0.125",
                "model.conv_impl=xla",
                "eval.max_train_examples=10000",
                "eval.max_test_examples=2000"],
        "train_examples": 50000,
        "workdir_root": "runs/scaling_cpu_batch_epochs",
        "out": "experiments/results/scaling_cpu_batch_epochs",
    },
}
# Protocols whose top-1 becomes a column, in this order, when present.
PROTOCOL_COLUMNS = ("knn", "linear", "finetune", "semi_10pct", "semi_1pct")


def parse_assignment(text, flag):
  """``'a.b=1,2'`` -> ``('a.b', ['1', '2'])``. A coupled axis joins fields
  with ``+`` and each value's parts with ``:`` (``'a+b=1:x,2:y'``)."""
  name, sep, values = text.partition("=")
  values = [v for v in values.split(",") if v] if flag == "--axis" else [values]
  if not sep or not name or not values:
    raise ValueError(f"{flag}={text!r}: expected {flag}=field.name="
                     + ("v1,v2,..." if flag == "--axis" else "value"))
  width = len(name.split("+"))
  if width > 1 and any(len(v.split(":")) != width for v in values):
    raise ValueError(f"{flag}={text!r}: each value of a coupled axis gives "
                     f"{width} parts joined by ':'.")
  return name.strip(), values


def expand(cell):
  """A cell's ``{field: value}``, coupled axes split into their fields."""
  fields = {}
  for name, value in cell.items():
    parts = name.split("+")
    fields.update(zip(parts, value.split(":")) if len(parts) > 1
                  else [(name, value)])
  return fields


def grid(axes):
  """Every combination of the axes' values, as ordered dicts (first axis
  slowest)."""
  names = [name for name, _ in axes]
  return [dict(zip(names, combo))
          for combo in itertools.product(*[values for _, values in axes])]


def cell_name(cell):
  return ",".join(f"{name.rpartition('.')[2]}={value}" for name, value
                  in expand(cell).items()).replace("/", "_")


def cell_fields(cell, fixed, train_examples, warmup_fraction):
  """The ``--config.*`` fields of ``cell`` (its values over the ``fixed``
  ones), with epochs turned into steps and the warmup made explicit."""
  fields = dict(fixed)
  fields.update({k: v for k, v in expand(cell).items() if k != "method"})
  fields.setdefault("train.progress_bar", "False")
  epochs = fields.pop("train.num_epochs", None)
  if epochs is not None:
    if "train.batch_size" not in fields or not train_examples:
      raise ValueError(
          "a train.num_epochs value needs train.batch_size (an axis or "
          "--set) and --train_examples to turn epochs into steps.")
    fields["train.num_steps"] = max(1, round(
        float(epochs) * train_examples / int(fields["train.batch_size"])))
  if "train.num_steps" in fields and "optim.warmup_steps" not in fields:
    fields["optim.warmup_steps"] = int(
        int(fields["train.num_steps"]) * warmup_fraction)
  return fields


def cell_config(cell, default_config):
  """The config spec of ``cell``: its ``method`` axis value (``simclr`` or
  ``simclr:digits``; the preset of ``default_config`` when none) or
  ``default_config``."""
  if "method" not in cell:
    return default_config
  method, _, preset = cell["method"].partition(":")
  return f"configs/{method}.py:{preset or default_config.partition(':')[2]}"


def result_row(cell, report):
  """One results row: the cell's axis values, then what its run measured."""
  row = dict(cell)
  row.update(steps=report["steps"],
             wall_min=round(report["wall_s"] / 60, 2),
             images_per_sec=round(report.get("images_per_sec") or 0.0, 1))
  for protocol in PROTOCOL_COLUMNS:
    if protocol in report["protocols"]:
      row[protocol] = report["protocols"][protocol]["top1"]
      floor = report.get("random_init", {}).get(protocol)
      if floor is not None:
        row[f"{protocol}_floor"] = floor["top1"]
  return row


def markdown(rows, header):
  columns = list(dict.fromkeys(k for row in rows for k in row))
  lines = [header, "", "| " + " | ".join(columns) + " |",
           "|" + "---|" * len(columns)]
  for row in rows:
    lines.append("| " + " | ".join(
        f"{row[c]:.4f}" if isinstance(row.get(c), float) and c not in
        ("wall_min", "images_per_sec") else str(row.get(c, "-"))
        for c in columns) + " |")
  return "\n".join(lines) + "\n"


def _number(value):
  try:
    return float(value)
  except ValueError:
    return None


def plot(rows, axis_names, path):
  """Top-1 (kNN, linear) against the first axis, one line per value of the
  other axes; a log-2 x axis when the first axis is numeric and positive."""
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  from matplotlib import pyplot as plt  # pylint: disable=g-import-not-at-top
  x_name, line_names = axis_names[0], axis_names[1:]
  xs = [row[x_name] for row in rows]
  numeric = all(_number(x) is not None and _number(x) > 0 for x in xs)
  metrics = [p for p in ("knn", "linear") if any(p in r for r in rows)]
  fig, panels = plt.subplots(1, len(metrics), figsize=(5 * len(metrics), 4),
                             squeeze=False)
  for panel, metric in zip(panels[0], metrics):
    groups = {}
    for row in rows:
      label = ", ".join(f"{n.rpartition('.')[2]}={row[n]}" for n in line_names)
      groups.setdefault(label, []).append(row)
    for label, group in groups.items():
      group = [r for r in group if metric in r]
      position = ([_number(r[x_name]) for r in group] if numeric
                  else [xs.index(r[x_name]) for r in group])
      panel.plot(position, [r[metric] for r in group], marker="o",
                 label=label or metric)
    floors = [r[f"{metric}_floor"] for r in rows if f"{metric}_floor" in r]
    if floors:
      panel.axhline(sum(floors) / len(floors), color="gray", linestyle=":",
                    label="random-init floor")
    if numeric:
      panel.set_xscale("log", base=2)
      ticks = sorted({_number(x) for x in xs})
      panel.set_xticks(ticks, [f"{t:g}" for t in ticks])
    else:
      names = list(dict.fromkeys(xs))
      panel.set_xticks(range(len(names)), names)
    panel.set_xlabel(x_name)
    panel.set_ylabel(f"{metric} top-1")
    panel.grid(alpha=0.3)
    panel.legend(fontsize=8)
  fig.tight_layout()
  fig.savefig(path, dpi=120)
  plt.close(fig)


def write_results(rows, axis_names, out, header):
  """``<out>/results.{csv,json,md,png}``."""
  os.makedirs(out, exist_ok=True)
  columns = list(dict.fromkeys(k for row in rows for k in row))
  with open(os.path.join(out, "results.csv"), "w", newline="") as f:
    writer = csv.DictWriter(f, columns)
    writer.writeheader()
    writer.writerows(rows)
  with open(os.path.join(out, "results.json"), "w") as f:
    json.dump(rows, f, indent=1)
  text = markdown(rows, header)
  with open(os.path.join(out, "results.md"), "w") as f:
    f.write(text)
  if rows:
    plot(rows, axis_names, os.path.join(out, "results.png"))
  return text


def sweep(config, axes, fixed, workdir_root, out, train_examples=0,
          warmup_fraction=0.1, run_cell=compare_methods.run_cli):
  """Runs (or skips, when finished) every cell, rewriting the results after
  each; returns the rows. ``run_cell(config, workdir, flags)`` returns the
  cell's ``eval.json`` report with ``wall_s``."""
  axis_names = [name for name, _ in axes]
  header = (f"`{' '.join(sys.argv)}`\n\nConfig {config}; fixed: "
            + (", ".join(f"{k}={v}" for k, v in fixed.items()) or "none")
            + "; top-1 on the run's evaluation split, floor = the same "
            "encoder at random init; wall time includes compilation and "
            "evaluation.")
  rows = []
  for cell in grid(axes):
    fields = cell_fields(cell, fixed, train_examples, warmup_fraction)
    flags = [f"--config.{k}={v}" for k, v in fields.items()]
    report = run_cell(cell_config(cell, config),
                      os.path.join(workdir_root, cell_name(cell)), flags)
    rows.append(result_row(cell, report))
    text = write_results(rows, axis_names, out, header)
  print(text, flush=True)
  return rows


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--preset", choices=sorted(PRESETS),
                      help="a named sweep; other flags add to or replace it")
  parser.add_argument("--config", help="config spec, e.g. "
                      "configs/simclr.py:cifar10 (the preset's if omitted)")
  parser.add_argument("--axis", action="append", default=[],
                      help="field=v1,v2,... (repeatable; 'method' picks the "
                      "config file)")
  parser.add_argument("--set", action="append", default=[],
                      help="field=value for every cell (repeatable)")
  parser.add_argument("--train_examples", type=int, default=0,
                      help="training-set size, to turn epochs into steps")
  parser.add_argument("--warmup_fraction", type=float, default=0.1)
  parser.add_argument("--workdir_root")
  parser.add_argument("--out", help="results folder")
  args = parser.parse_args(argv)
  preset = PRESETS.get(args.preset, {})
  config = args.config or preset.get("config")
  axis_texts = args.axis or preset.get("axes", [])
  if not config and not any(a.startswith("method=") for a in axis_texts):
    parser.error("give --config (or a 'method' axis) or --preset.")
  try:
    axes = [parse_assignment(a, "--axis") for a in axis_texts]
    fixed = dict(parse_assignment(s, "--set")
                 for s in preset.get("set", []) + args.set)
  except ValueError as e:
    parser.error(str(e))
  if not axes:
    parser.error("give at least one --axis=field=v1,v2,...")
  fixed = {k: v[0] for k, v in fixed.items()}
  workdir_root = args.workdir_root or preset.get("workdir_root")
  out = args.out or preset.get("out")
  if not workdir_root or not out:
    parser.error("give --workdir_root and --out (or --preset).")
  sweep(config or "configs/simclr.py:cifar10", axes, fixed, workdir_root, out,
        args.train_examples or preset.get("train_examples", 0),
        args.warmup_fraction)


if __name__ == "__main__":
  main()
