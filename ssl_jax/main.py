r"""Command line entry point.

    python -m ssl_jax.main --config=configs/simclr.py:digits --workdir=runs/digits
    python -m ssl_jax.main --config=configs/simclr.py:cifar10 \
        --config.train.batch_size=512 --workdir=runs/cifar10
    python -m ssl_jax.main --config=configs/simclr.py:cifar10 \
        --workdir=runs/cifar10 --mode=eval \
        --config.eval.protocols=knn,linear,collapse,finetune,semi_10pct,semi_1pct

``--mode=train`` (default) pretrains, resuming from the workdir's latest
checkpoint, then evaluates; ``--mode=eval`` evaluates the latest checkpoint
with the run's saved config, taking only ``config.eval`` from the command
line (``--config`` may then be left out) (protocols, fine-tuning settings, ``config.eval.data.*`` for transfer to
another dataset). Both write ``<workdir>/eval.json`` and ``eval.md``.
A bad flag, an unknown config key or an inconsistent config ends the run
with one line naming the problem (exit status 2), not a traceback.
SIGTERM or SIGINT during training (preemption) finishes the current step,
saves its checkpoint and exits with status 0; rerunning the command resumes.
A non-finite loss under ``config.train.nonfinite='stop'`` exits with status
1, naming the step; the last good checkpoint is kept.
"""

import difflib
import importlib.util
import os
import sys

from absl import app
from absl import flags
from absl import logging
from ml_collections import config_flags

# Without --config, only --mode=eval works: see ssl_jax/train/eval_only_config.py.
EVAL_ONLY_CONFIG = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "train", "eval_only_config.py")
_CONFIG = config_flags.DEFINE_config_file(
    "config", EVAL_ONLY_CONFIG,
    "Method config file and preset, e.g. configs/simclr.py:digits (optional "
    "with --mode=eval, which reads the run's saved config).",
    lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Directory for checkpoints, logs and results.")
_MODE = flags.DEFINE_enum("mode", "train", ["train", "eval"], "train (then evaluate) or eval only.")


def _fail(message):
  print(f"ssl_jax: error: {message}", file=sys.stderr)
  sys.exit(2)


def _config_keys(config, prefix=""):
  """The dotted names of every field of ``config`` (sections and leaves)."""
  keys = []
  for name, value in config.items():
    keys.append(prefix + name)
    if hasattr(value, "items") and hasattr(value, "lock"):  # a ConfigDict
      keys.extend(_config_keys(value, f"{prefix}{name}."))
  return keys


def _loaded_config(argv):
  """The config of ``--config`` (loaded again if flag parsing stopped early)."""
  try:
    config = _CONFIG.value
    if config is not None and hasattr(config, "items"):
      return config
  except Exception:  # pylint: disable=broad-except
    pass
  spec = EVAL_ONLY_CONFIG
  for arg in argv[1:]:
    if arg.startswith("--config="):
      spec = arg[len("--config="):]
  path, _, preset = spec.partition(":")
  try:
    module_spec = importlib.util.spec_from_file_location("_ssl_jax_config", path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module.get_config(preset) if preset else module.get_config()
  except Exception:  # pylint: disable=broad-except
    return None


def _unknown_override(argv):
  """One line for the first ``--config.<key>`` naming no field, or None."""
  overrides = []
  for arg in argv[1:]:
    for prefix in ("--config.", "--noconfig."):
      if arg.startswith(prefix):
        overrides.append((arg, arg[len(prefix):].split("=", 1)[0]))
  if not overrides:
    return None
  config = _loaded_config(argv)
  if config is None:
    return None
  known = _config_keys(config)
  leaves = [k for k in known if not any(o.startswith(k + ".") for o in known)]
  for arg, key in overrides:
    if key in known or "[" in key:
      continue
    # The closest fields, and those about as close (a name in two sections).
    scores = sorted(((difflib.SequenceMatcher(None, key, leaf).ratio(), leaf)
                     for leaf in leaves), reverse=True)
    close = [leaf for score, leaf in scores[:3]
             if score >= 0.6 and score >= scores[0][0] - 0.05]
    parent, _, _ = key.rpartition(".")
    if close:
      hint = "did you mean " + " or ".join(f"--config.{c}" for c in close) + "?"
    elif parent and parent in known:
      fields = [k[len(parent) + 1:] for k in leaves
                if k.startswith(parent + ".") and "." not in k[len(parent) + 1:]]
      hint = f"config.{parent} has the fields {fields}."
    else:
      hint = "see the --config file for the fields."
    return (f"unknown config key config.{key} (in {arg}); {hint}")
  return None


def parse_flags(argv):
  """absl flag parsing, with config override errors reported in one line."""
  try:
    return flags.FLAGS(argv)
  except flags.Error as e:
    _fail(_unknown_override(argv) or str(e))
  except (AttributeError, KeyError, TypeError, ValueError) as e:
    # ml_collections raises these for an override of an unknown key, with the
    # key and a "Did you mean" hint in the message.
    message = str(e).strip("'\"").replace("\\n", " ").replace("\\'", "'")
    _fail(_unknown_override(argv) or f"bad config override: {message}")


def main(argv):
  if len(argv) > 1:
    _fail(f"unexpected arguments {argv[1:]}; pass options as --name=value.")
  if _MODE.value == "train" and not _CONFIG.value.method:
    _fail("--config is required to train, e.g. "
          "--config=configs/simclr.py:digits.")
  if _WORKDIR.value is None:
    _fail("--workdir is required, e.g. --workdir=runs/simclr_digits.")
  if not flags.FLAGS["verbosity"].present:
    # Library INFO logs (orbax writes several lines per checkpoint) would
    # bury the progress bar; --verbosity=0 brings them back.
    logging.set_verbosity(logging.WARNING)
  config = _CONFIG.value
  import jax  # pylint: disable=g-import-not-at-top
  if config.distributed:
    jax.distributed.initialize()
  from ssl_jax import graph  # pylint: disable=g-import-not-at-top
  from ssl_jax.data import sources  # pylint: disable=g-import-not-at-top
  from ssl_jax.train import loop  # pylint: disable=g-import-not-at-top
  if graph.handles(config, _WORKDIR.value):  # GCC: the graph training loop
    from ssl_jax.graph import train as runner  # pylint: disable=g-import-not-at-top
  else:
    runner = loop
  logging.info("JAX devices: %s", jax.devices())
  try:
    if _MODE.value == "train":
      runner.train_and_evaluate(config, _WORKDIR.value)
    else:
      runner.evaluate_checkpoint(config, _WORKDIR.value)
  except (loop.ConfigError, FileNotFoundError, sources.DataError) as e:
    _fail(str(e))
  except loop.Preempted as e:
    print(f"ssl_jax: {e}", file=sys.stderr)
    sys.exit(0)
  except loop.NonFiniteError as e:
    print(f"ssl_jax: error: {e}", file=sys.stderr)
    sys.exit(1)


def run():
  app.run(main, flags_parser=parse_flags)


if __name__ == "__main__":
  run()
