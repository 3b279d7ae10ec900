"""Tests of the scripts under experiments/ (loaded by path: not a package)."""

import importlib.util
import pathlib

EXPERIMENTS = pathlib.Path(__file__).resolve().parents[2] / "experiments"


def load_script(name):
  """Imports ``experiments/<name>.py`` as a module."""
  spec = importlib.util.spec_from_file_location(name, EXPERIMENTS / f"{name}.py")
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module
