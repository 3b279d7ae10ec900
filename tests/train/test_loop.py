"""The loop: resume equals no resume, results and logs are written."""

import json
import os

import jax
import numpy as np
import pytest

from ssl_jax import data
from ssl_jax.train import eval_only_config
from ssl_jax.train import loop


def _params(state):
  return jax.tree.leaves(jax.device_get(state.params))


def test_resume_equals_uninterrupted_and_writes_results(tiny_config, tmp_path):
  straight_dir = str(tmp_path / "straight")
  run = loop.Run(tiny_config, straight_dir)
  straight, _ = loop.train(run)
  results = loop.evaluate(run, straight, images_per_sec=1.0)
  run.checkpointer.close()

  resumed_dir = str(tmp_path / "resumed")
  first = loop.Run(tiny_config, resumed_dir)
  half, _ = loop.train(first, stop_after_step=2)
  first.checkpointer.close()
  assert int(jax.device_get(half.step)) == 2
  second = loop.Run(tiny_config, resumed_dir)  # a fresh process would do this
  assert second.checkpointer.latest_step == 2
  resumed, _ = loop.train(second)
  second.checkpointer.close()

  assert int(jax.device_get(resumed.step)) == 4
  for a, b in zip(_params(resumed), _params(straight)):
    np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)

  with open(os.path.join(straight_dir, "eval.json")) as f:
    written = json.load(f)
  assert written == json.loads(json.dumps(results))
  assert written["method"] == "simclr" and written["dataset"] == "digits"
  assert written["steps"] == 4 and written["images_per_sec"] == 1.0
  trained, floor = written["protocols"], written["random_init"]
  assert set(trained) == {"knn", "linear", "collapse", "online"}
  assert set(floor) == {"knn", "linear", "collapse"}
  for result in (trained["knn"], trained["linear"], floor["knn"],
                 floor["linear"]):
    assert 0.0 <= result["top1"] <= result["top5"] <= 1.0
    assert result["protocol"]
  assert "k=20" in trained["knn"]["protocol"]
  assert trained["online"]["protocol"].startswith("online probe")
  # Random init of a CNN on digits is far above chance already; both are real.
  assert floor["knn"]["top1"] > 0.3
  assert os.path.exists(os.path.join(straight_dir, "spectrum.png"))
  with open(os.path.join(straight_dir, "eval.md")) as f:
    table = f.read()
  assert "| knn |" in table and "| linear |" in table and "| online |" in table

  # --mode=eval on the finished run's checkpoint reproduces its numbers.
  reevaluated = loop.evaluate_checkpoint(tiny_config, straight_dir)
  assert reevaluated["steps"] == 4 and reevaluated["images_per_sec"] == 1.0
  for name in ("knn", "linear"):
    assert reevaluated["protocols"][name] == results["protocols"][name], name
  # The same without a method config (the CLI's default without --config).
  eval_only = eval_only_config.get_config()
  eval_only.eval = tiny_config.eval
  without_config = loop.evaluate_checkpoint(eval_only, straight_dir)
  assert without_config["protocols"]["knn"] == results["protocols"]["knn"]

  # Transfer: the digits encoder evaluated on another dataset, here RGB
  # 16x16 images (digits upsampled and tinted), converted to its 1 channel.
  transfer_data = tmp_path / "rgb_digits"
  transfer_data.mkdir()
  for split in ("train", "test"):
    images, labels = data.as_arrays(data.load_digits(split))
    big = np.repeat(np.repeat(images, 2, axis=1), 2, axis=2)
    rgb = (big * np.array([1.0, 0.5, 0.25])).astype(np.uint8)
    np.savez(transfer_data / f"{split}.npz", image=rgb, label=labels)
  transfer_config = tiny_config.copy_and_resolve_references()
  transfer_config.eval.data.source = "npz"
  transfer_config.eval.data.data_dir = str(transfer_data)
  transfer_config.eval.protocols = "knn"
  transferred = loop.evaluate_checkpoint(transfer_config, straight_dir)
  assert transferred["dataset"] == "rgb_digits"
  assert transferred["pretrain_dataset"] == "digits"
  assert set(transferred["protocols"]) == {"knn"}  # no online probe: other data
  assert transferred["protocols"]["knn"]["top1"] > 0.3

  with open(os.path.join(straight_dir, "metrics.jsonl")) as f:
    steps = [json.loads(line)["step"] for line in f]
  assert steps == [1, 2, 3, 4]
  assert os.path.exists(os.path.join(straight_dir, "training_curves.png"))
  assert os.listdir(os.path.join(straight_dir, "tensorboard"))


def test_workdir_of_another_method_is_refused(tiny_config, tmp_path):
  workdir = tmp_path / "run"
  workdir.mkdir()
  (workdir / "config.json").write_text(json.dumps({"method": "byol"}))
  try:
    loop.train_and_evaluate(tiny_config, str(workdir))
  except loop.ConfigError as e:
    assert "method" in str(e) and "another --workdir" in str(e)
  else:
    raise AssertionError("expected ConfigError")


def test_batch_not_divisible_by_devices_is_a_config_error(tiny_config, tmp_path):
  tiny_config.train.batch_size = 12  # 8 devices
  try:
    loop.Run(tiny_config, str(tmp_path))
  except loop.ConfigError as e:
    assert "config.train.batch_size=12" in str(e)
  else:
    raise AssertionError("expected ConfigError")


def test_workdir_check_accepts_its_own_record_with_tuples(tiny_config, tmp_path):
  """A tuple in config.data is saved as a JSON list; the resumed run's own
  tuple must still match it, and a different dataset must not."""
  with tiny_config.unlocked():
    tiny_config.data.test_speakers = ("theo",)
  assert loop.check_workdir(tiny_config, str(tmp_path)) is None
  previous = loop.check_workdir(tiny_config, str(tmp_path))
  assert previous["data"]["test_speakers"] == ["theo"]
  with tiny_config.unlocked():
    tiny_config.data.test_speakers = ("jackson",)
  with pytest.raises(loop.ConfigError, match="another --workdir"):
    loop.check_workdir(tiny_config, str(tmp_path), write=False)
