"""Interrupted runs lose nothing: a MoCo run killed (SIGKILL) at any moment
or preempted (SIGTERM) and started again ends with the state of an
uninterrupted run (parameters, momentum encoder, queue, optimizer).

The test drives the real CLI (``python -m ssl_jax.main``) in a subprocess:
one run preempted, resumed, killed and resumed again, against one
uninterrupted run of the same command.
``test_reliability.py`` has the in-process checks (corrupt checkpoints,
non-finite steps, determinism).
"""

import json
import os
import signal
import subprocess
import sys
import time

import jax
import numpy as np

from ssl_jax.train import loop

from tests.conftest import REPO_ROOT

NUM_STEPS = 30
CLI_FLAGS = [
    # MoCo: its state also holds the momentum encoder and the negative queue.
    "--config=configs/moco.py:digits",
    "--config.model.depth=10", "--config.model.width_multiplier=0.125",
    "--config.moco.proj_hidden_dim=16", "--config.moco.dim=8",
    "--config.moco.queue_size=64",
    "--config.train.batch_size=16", f"--config.train.num_steps={NUM_STEPS}",
    "--config.train.log_every_steps=1",
    "--config.train.checkpoint_every_steps=10",
    "--config.train.progress_bar=False", "--config.optim.warmup_steps=1",
    "--config.eval.protocols=knn", "--config.eval.random_init_protocols=knn",
    "--config.eval.max_train_examples=200",
    "--config.eval.max_test_examples=100",
]


def _start(workdir):
  """The CLI on ``workdir``, its output in ``<workdir>.log`` (a pipe that
  nobody reads while it runs could fill and stall it)."""
  log = open(f"{workdir}.log", "a")  # pylint: disable=consider-using-with
  process = subprocess.Popen(
      [sys.executable, "-m", "ssl_jax.main", f"--workdir={workdir}",
       *CLI_FLAGS], cwd=REPO_ROOT, stdout=log, stderr=subprocess.STDOUT,
      text=True)
  process.log = log
  return process


def _finish(process, timeout=300):
  process.wait(timeout=timeout)
  process.log.close()
  with open(process.log.name) as f:
    return process.returncode, f.read()


def _last_logged_step(workdir):
  path = os.path.join(workdir, "metrics.jsonl")
  if not os.path.exists(path):
    return 0
  with open(path) as f:
    lines = [line for line in f.read().splitlines() if line.strip()]
  try:
    return json.loads(lines[-1])["step"] if lines else 0
  except json.JSONDecodeError:  # a line being written
    return 0


def _wait_for_step(process, workdir, step, timeout=300):
  """Waits until the run has logged ``step``; fails if it ended first."""
  deadline = time.monotonic() + timeout
  while _last_logged_step(workdir) < step:
    assert process.poll() is None, _finish(process)[1]
    assert time.monotonic() < deadline, f"no step {step} after {timeout} s"
    time.sleep(0.02)


def _final_params(workdir):
  saved = loop.read_json(os.path.join(workdir, "config.json"))
  assert saved is not None
  _, state = loop.load_trained(workdir)
  assert int(jax.device_get(state.step)) == NUM_STEPS
  return jax.tree.leaves(jax.device_get(state))  # networks, EMA, queue, ...


def _assert_same(a, b):
  assert len(a) == len(b)
  for x, y in zip(a, b):
    np.testing.assert_array_equal(x, y)


def _checkpoint_steps(workdir):
  return sorted(int(name) for name in
                os.listdir(os.path.join(workdir, "checkpoints"))
                if name.isdigit())


def test_preempted_then_killed_run_resumes_to_the_uninterrupted_state(
    tmp_path):
  reference = str(tmp_path / "uninterrupted")
  code, output = _finish(_start(reference))
  assert code == 0, output
  uninterrupted = _final_params(reference)

  workdir = str(tmp_path / "interrupted")
  # SIGTERM: the step in progress finishes, is saved, and the CLI exits 0
  # without evaluating.
  process = _start(workdir)
  _wait_for_step(process, workdir, 12)
  process.send_signal(signal.SIGTERM)
  code, output = _finish(process)
  assert code == 0, output
  assert "SIGTERM received: stopped after step" in output
  assert "rerun the same command to resume" in output
  stopped_at = int(output.split("stopped after step ")[1].split()[0])
  assert 12 <= stopped_at < 20
  # Its checkpoint is that very step, not one of the every-10 saves.
  assert _checkpoint_steps(workdir)[-1] == stopped_at, output
  assert not os.path.exists(os.path.join(workdir, "eval.json"))

  # SIGKILL between checkpoints (every 10 steps), while steps and async
  # saves are in flight: the restart resumes from step 20.
  process = _start(workdir)
  _wait_for_step(process, workdir, 25)
  process.send_signal(signal.SIGKILL)
  code, _ = _finish(process)
  assert code == -signal.SIGKILL
  assert _last_logged_step(workdir) < NUM_STEPS
  assert not os.path.exists(os.path.join(workdir, "eval.json"))

  code, output = _finish(_start(workdir))
  assert code == 0, output
  _assert_same(_final_params(workdir), uninterrupted)
  assert os.path.exists(os.path.join(workdir, "eval.json"))
