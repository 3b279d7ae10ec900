"""Test-wide setup: eight simulated CPU devices, so data-parallel code is
checked against one device in every test module.

The flag must be set before JAX initialises its backends, i.e. before the
first test module imports jax.
"""
import os
import tempfile

# Optimisation level 0 of XLA:CPU's LLVM backend: the tests' tiny programs
# run in milliseconds and compile in seconds, and this halves the compile
# time of the suite (measured on tests/methods/test_simsiam.py: 104 s of CPU
# -> 60 s). Both sides of every 8-vs-1 comparison use the same flags.
os.environ.setdefault(
    "XLA_FLAGS", "--xla_force_host_platform_device_count=8 "
    "--xla_backend_optimization_level=0")
os.environ.setdefault("JAX_PLATFORMS", "cpu")
# Tests that rebuild the same step (a resumed run, a second Run object) hit
# JAX's persistent compilation cache instead of compiling again; a fresh
# directory per session keeps runs independent.
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR",
                      tempfile.mkdtemp(prefix="ssl_jax_test_jit_cache_"))
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.5")

import importlib.util
import pathlib

import pytest

REPO_ROOT = pathlib.Path(__file__).resolve().parent.parent


def load_config(name, preset):
  """Loads ``configs/<name>.py`` and returns ``get_config(preset)``."""
  path = REPO_ROOT / "configs" / f"{name}.py"
  spec = importlib.util.spec_from_file_location(f"configs_{name}", path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config(preset)


def tiny_simclr_config():
  """SimCLR on the digits at the smallest size that still exercises every part."""
  config = load_config("simclr", "digits")
  config.model.depth = 10
  config.model.width_multiplier = 0.125
  config.simclr.proj_hidden_dim = 16
  config.simclr.proj_dim = 8
  config.train.batch_size = 16
  config.train.num_steps = 4
  config.train.log_every_steps = 1
  config.train.checkpoint_every_steps = 2
  config.train.progress_bar = False
  config.optim.warmup_steps = 1
  config.eval.knn_k = 20
  return config


@pytest.fixture
def tiny_config():
  return tiny_simclr_config()
