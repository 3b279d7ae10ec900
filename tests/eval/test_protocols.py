"""The protocol runner: every protocol on a tiny encoder, each number labelled."""

import json
import os

import jax
import numpy as np
import pytest

from ssl_jax import data
from ssl_jax import methods
from ssl_jax.eval import protocols
from ssl_jax.eval import representation
from ssl_jax.train import optim
from ssl_jax.train import step as step_lib

from tests.methods.test_simclr_v2 import tiny_config


@pytest.fixture(scope="module")
def report(tmp_path_factory):
  """Random-init tiny SimCLR v2 encoder, every protocol on digits."""
  workdir = tmp_path_factory.mktemp("eval")
  config = tiny_config()
  config.eval.knn_k = 20
  config.optim.warmup_steps = 0
  config.eval.finetune.batch_size = 32
  config.eval.finetune.base_lr = 0.2  # no batch scaling: batch 32 is tiny
  config.eval.finetune.lr_scaling = "none"
  config.eval.finetune.epochs_10pct = 20.0
  config.eval.finetune.epochs_1pct = 4.0
  method = methods.get_method(config, num_classes=10, total_steps=10)
  tx, _ = optim.make_optimizer(config.optim, 10, 16)
  state = jax.device_get(
      method.init_state(jax.random.PRNGKey(0), (8, 8, 1), tx))
  variables = {"params": state.params, "batch_stats": state.batch_stats}
  train = data.as_arrays(data.load_digits("train"))
  test = data.as_arrays(data.load_digits("test"))
  names = ("knn", "linear", "collapse", "semi_10pct", "semi_1pct")
  factory = representation.extractor_factory(256)
  mesh = step_lib.make_mesh(jax.devices()[:1])
  results = protocols.evaluate(
      method, variables, train, test, 10, config.eval, names, factory, mesh,
      seed=0, subset_dir=str(workdir / "subsets"), dataset="digits",
      plot_prefix=os.path.join(str(workdir), ""))
  return workdir, config, results


def test_every_protocol_reports_labelled_numbers(report):
  _, _, results = report
  assert list(results) == ["knn", "linear", "collapse", "semi_10pct",
                           "semi_1pct"]
  for name in ("knn", "linear", "semi_10pct", "semi_1pct"):
    assert 0.0 <= results[name]["top1"] <= results[name]["top5"] <= 1.0
    assert results[name]["protocol"]
  assert "k=20" in results["knn"]["protocol"]
  assert "10% of the train labels" in results["semi_10pct"]["protocol"]
  assert "first projection layer" in results["semi_1pct"]["protocol"]


def test_semi_supervised_uses_the_stored_class_balanced_subsets(report):
  _, _, results = report
  for name, per_class in (("semi_10pct", 0.1), ("semi_1pct", 0.01)):
    with open(results[name]["subset_file"]) as f:
      stored = json.load(f)
    assert results[name]["num_labels"] == len(stored["indices"])
    assert len(stored["per_class"]) == 10
    assert all(n >= 1 for n in stored["per_class"].values())
  # 1% of 1438 digits: 14 or 15 labels, one or two per class.
  assert 10 <= results["semi_1pct"]["num_labels"] <= 20


def test_finetuning_learns_beyond_chance(report):
  _, _, results = report
  # Random-init encoder, 10% of the labels: far above chance (10%).
  assert results["semi_10pct"]["top1"] > 0.3
  assert results["semi_10pct"]["final_train_loss"] < np.log(10)


def test_collapse_report_and_spectrum_plot(report):
  workdir, _, results = report
  c = results["collapse"]
  assert len(c["spectrum"]) == c["dim"]
  assert np.all(np.diff(c["spectrum"]) <= 1e-6)
  assert 1.0 <= c["effective_rank"] <= c["dim"]
  assert os.path.getsize(os.path.join(workdir, "spectrum.png")) > 1000


def test_table_names_every_protocol(report):
  _, config, results = report
  table = protocols.format_table({
      "method": "simclr_v2", "steps": 0, "pretrain_dataset": "digits",
      "dataset": "digits", "protocols": results,
      "random_init": {"knn": results["knn"]}})
  for name in ("knn", "linear", "semi_10pct", "semi_1pct"):
    assert f"| {name} |" in table
  assert "effective rank" in table


def test_unknown_protocol_is_refused():
  with pytest.raises(ValueError, match="semi_1pct"):
    protocols.parse_protocols("knn,semi_5pct")


class _ParityMethod:
  """A pretext "classifier" right exactly on images whose first pixel is even,
  and whose draws depend on the per-example key."""

  def pretext_accuracy(self, variables, keys, images):
    del variables
    assert keys.shape[0] == images.shape[0]
    return (images[:, 0, 0, 0] % 2 == 0).astype(np.float32)


def test_pretext_accuracy_counts_every_image_once():
  # 7 images in batches of 3: the padded rows of the last batch (zeros, an
  # even first pixel) must not count.
  images = np.zeros((7, 2, 2, 1), np.uint8)
  images[[1, 4, 6], 0, 0, 0] = 1
  result = protocols.pretext_accuracy(_ParityMethod(), {}, images,
                                      batch_size=3)
  assert result["top1"] == pytest.approx(4 / 7)
  assert "7 held-out" in result["protocol"]
