"""experiments/scaling.py: the grid, epochs -> steps, and resumption."""

import json
import os
import subprocess

import pytest

from tests.experiments import load_script

scaling = load_script("scaling")


def test_grid_is_the_product_with_the_first_axis_slowest():
  axes = [scaling.parse_assignment("train.batch_size=64,128", "--axis"),
          scaling.parse_assignment("train.num_epochs=1,2,4", "--axis")]
  cells = scaling.grid(axes)
  assert [(c["train.batch_size"], c["train.num_epochs"]) for c in cells] == [
      ("64", "1"), ("64", "2"), ("64", "4"),
      ("128", "1"), ("128", "2"), ("128", "4")]
  assert scaling.cell_name(cells[0]) == "batch_size=64,num_epochs=1"


def test_epochs_become_steps_with_an_explicit_warmup():
  cell = {"train.batch_size": "256", "train.num_epochs": "0.5"}
  fields = scaling.cell_fields(cell, {"model.depth": "18"}, 50000, 0.1)
  assert fields["train.num_steps"] == 98  # round(0.5 * 50000 / 256)
  assert fields["optim.warmup_steps"] == 9
  assert "train.num_epochs" not in fields and fields["model.depth"] == "18"
  fixed_warmup = scaling.cell_fields(cell, {"optim.warmup_steps": "0"},
                                     50000, 0.1)
  assert fixed_warmup["optim.warmup_steps"] == "0"
  with pytest.raises(ValueError, match="--train_examples"):
    scaling.cell_fields(cell, {}, 0, 0.1)


def test_coupled_axis_sets_its_fields_together():
  name, values = scaling.parse_assignment(
      "optim.name+optim.base_lr=lars:1.0,adamw:0.001", "--axis")
  cells = scaling.grid([(name, values)])
  fields = scaling.cell_fields(cells[1], {"optim.name": "sgd"}, 0, 0.1)
  assert fields["optim.name"] == "adamw" and fields["optim.base_lr"] == "0.001"
  assert scaling.cell_name(cells[0]) == "name=lars,base_lr=1.0"
  with pytest.raises(ValueError, match="2 parts joined by ':'"):
    scaling.parse_assignment("optim.name+optim.base_lr=lars", "--axis")


def test_method_axis_picks_the_config_file():
  assert (scaling.cell_config({"method": "byol"}, "configs/simclr.py:cifar10")
          == "configs/byol.py:cifar10")
  assert (scaling.cell_config({"method": "vicreg:digits"}, "x.py:cifar10")
          == "configs/vicreg.py:digits")
  with pytest.raises(ValueError, match="--axis=field.name=v1,v2"):
    scaling.parse_assignment("train.batch_size", "--axis")


def test_rerun_skips_finished_cells_and_reruns_unfinished_ones(
    tmp_path, monkeypatch):
  """Cells run through compare_methods.run_cli with a stand-in for the
  training subprocess that writes the cell's eval.json; a rerun starts no
  subprocess for finished cells and one for a cell without eval.json."""
  launched = []

  def fake_training(command, check):
    assert check
    workdir = next(a.split("=", 1)[1] for a in command
                   if a.startswith("--workdir="))
    batch = int(next(a.split("=", 1)[1] for a in command
                     if a.startswith("--config.train.batch_size=")))
    launched.append(workdir)
    os.makedirs(workdir, exist_ok=True)
    report = {"steps": 3, "images_per_sec": 10.0,
              "protocols": {"knn": {"top1": batch / 1000},
                            "linear": {"top1": batch / 500}},
              "random_init": {"knn": {"top1": 0.1}, "linear": {"top1": 0.1}}}
    with open(os.path.join(workdir, "eval.json"), "w") as f:
      json.dump(report, f)

  monkeypatch.setattr(subprocess, "run", fake_training)
  args = ["--config=configs/simclr.py:digits",
          "--axis=train.batch_size=32,64", "--axis=model.depth=10,18",
          "--set=train.num_steps=3", f"--workdir_root={tmp_path / 'runs'}",
          f"--out={tmp_path / 'out'}"]
  scaling.main(args)
  assert len(launched) == 4
  rows = json.loads((tmp_path / "out" / "results.json").read_text())
  assert [(r["train.batch_size"], r["model.depth"], r["knn"]) for r in rows] == [
      ("32", "10", 0.032), ("32", "18", 0.032), ("64", "10", 0.064),
      ("64", "18", 0.064)]
  assert (tmp_path / "out" / "results.png").stat().st_size > 0
  csv_lines = (tmp_path / "out" / "results.csv").read_text().splitlines()
  assert csv_lines[0].startswith("train.batch_size,model.depth,steps")
  assert len(csv_lines) == 5

  launched.clear()
  scaling.main(args)
  assert launched == []
  os.remove(tmp_path / "runs" / "batch_size=64,depth=10" / "eval.json")
  scaling.main(args)
  assert launched == [str(tmp_path / "runs" / "batch_size=64,depth=10")]
