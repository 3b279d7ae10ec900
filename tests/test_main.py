"""The command line: bad input ends in one line naming the problem."""

import os
import subprocess
import sys

from tests.conftest import REPO_ROOT


def _main(*args, timeout=120):
  env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=8")
  return subprocess.run(
      [sys.executable, "-m", "ssl_jax.main", *args], cwd=REPO_ROOT, env=env,
      capture_output=True, text=True, timeout=timeout)


def _single_error_line(result):
  assert result.returncode == 2, result.stderr
  lines = [l for l in result.stderr.splitlines() if l.startswith("ssl_jax: error:")]
  assert len(lines) == 1, result.stderr
  assert "Traceback" not in result.stderr
  return lines[0]


def test_unknown_override_key_names_the_key(tmp_path):
  line = _single_error_line(_main(
      "--config=configs/simclr.py:digits", "--config.train.bach_size=8",
      f"--workdir={tmp_path}"))
  assert "bach_size" in line and "batch_size" in line


def test_badly_typed_override_names_the_key(tmp_path):
  line = _single_error_line(_main(
      "--config=configs/simclr.py:digits", "--config.train.batch_size=many",
      f"--workdir={tmp_path}"))
  assert "config.train.batch_size" in line


def test_inconsistent_config_names_the_key(tmp_path):
  line = _single_error_line(_main(
      "--config=configs/simclr.py:digits", "--config.train.batch_size=12",
      f"--workdir={tmp_path}"))
  assert "config.train.batch_size=12" in line and "8 devices" in line


def test_eval_without_checkpoint_says_train_first(tmp_path):
  line = _single_error_line(_main(
      "--config=configs/simclr.py:digits", "--mode=eval",
      f"--workdir={tmp_path}"))
  assert "no checkpoint" in line


def test_eval_needs_no_config_file(tmp_path):
  # The overrides apply to the eval-only default config; the run's own
  # config.json supplies the rest (here there is none).
  line = _single_error_line(_main(
      "--mode=eval", "--config.eval.protocols=knn", f"--workdir={tmp_path}"))
  assert "no checkpoint" in line


def test_training_needs_a_config_file(tmp_path):
  line = _single_error_line(_main(f"--workdir={tmp_path}"))
  assert "--config is required" in line


def test_missing_workdir(tmp_path):
  line = _single_error_line(_main("--config=configs/simclr.py:digits"))
  assert "--workdir" in line


def test_method_setting_errors_are_one_line(tmp_path):
  line = _single_error_line(_main(
      "--config=configs/simclr_v2.py:digits", "--config.simclr.proj_layers=1",
      f"--workdir={tmp_path}"))
  assert "proj_layers=1" in line and "at least 2 layers" in line
