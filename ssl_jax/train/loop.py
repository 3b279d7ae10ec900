"""The training loop: data -> compiled data-parallel step -> logs, checkpoints,
and the evaluation that ends every run.

``train_and_evaluate(config, workdir)`` is what ``python -m ssl_jax.main``
runs. Rerunning it with the same workdir resumes from the latest checkpoint,
data position included; a finished run goes straight to evaluation.
"""

import json
import os
import time

import jax
import numpy as np
from absl import logging

from ssl_jax import data
from ssl_jax import methods
from ssl_jax.eval import collapse
from ssl_jax.eval import representation
from ssl_jax.train import checkpoint as checkpoint_lib
from ssl_jax.train import metrics as metrics_lib
from ssl_jax.train import optim
from ssl_jax.train import step as step_lib


class ConfigError(ValueError):
  """A config that cannot run; the message names the key and the fix."""


def total_steps(config, num_train_examples):
  """``train.num_steps`` if set (> 0), else ``train.num_epochs`` worth of steps."""
  if config.train.num_steps > 0:
    return int(config.train.num_steps)
  steps_per_epoch = num_train_examples // config.train.batch_size
  return max(1, int(round(config.train.num_epochs * steps_per_epoch)))


def validate_config(config, num_devices, num_train_examples):
  """Raises ConfigError for settings that would fail or silently mistrain."""
  batch = config.train.batch_size
  if batch <= 0:
    raise ConfigError(f"config.train.batch_size={batch} must be positive.")
  if batch % num_devices:
    raise ConfigError(
        f"config.train.batch_size={batch} is not divisible by the {num_devices} "
        f"devices; use a multiple of {num_devices}.")
  if batch % jax.process_count():
    raise ConfigError(
        f"config.train.batch_size={batch} is not divisible by the "
        f"{jax.process_count()} hosts.")
  if batch > num_train_examples:
    raise ConfigError(
        f"config.train.batch_size={batch} is larger than the training set "
        f"({num_train_examples} examples); lower it.")
  if config.train.num_steps <= 0 and config.train.num_epochs <= 0:
    raise ConfigError(
        "set config.train.num_epochs or config.train.num_steps to a positive "
        "value.")
  steps = total_steps(config, num_train_examples)
  if not 0 <= config.optim.warmup_steps < steps:
    raise ConfigError(
        f"config.optim.warmup_steps={config.optim.warmup_steps} must be in "
        f"[0, {steps}), the run's {steps} training steps; lower it.")


def _check_workdir(config, workdir):
  """Refuses a workdir that holds a run of another method or dataset."""
  path = os.path.join(workdir, "config.json")
  current = {"method": config.method, "data": config.data.to_dict()}
  if os.path.exists(path):
    with open(path) as f:
      previous = json.load(f)
    for key in ("method", "data"):
      if previous.get(key) != current[key]:
        raise ConfigError(
            f"workdir {workdir} holds a run with {key}={previous.get(key)!r}, "
            f"not {current[key]!r}; use another --workdir.")
  if jax.process_index() == 0:
    os.makedirs(workdir, exist_ok=True)
    with open(path, "w") as f:
      json.dump(dict(current, config=json.loads(config.to_json())), f, indent=1)


def dataset_name(data_config):
  if data_config.source == "tfds":
    return data_config.name
  if data_config.source == "npz":
    return os.path.basename(os.path.normpath(data_config.data_dir))
  return data_config.source


class Run:
  """The pieces of one run, built from a config (shared by train and eval)."""

  def __init__(self, config, workdir):
    self.config = config
    self.workdir = workdir
    self.mesh = step_lib.make_mesh()
    self.train_source = data.get_source(config.data, config.data.train_split)
    self.test_source = data.get_source(config.data, config.data.test_split)
    validate_config(config, self.mesh.devices.size, len(self.train_source))
    self.num_classes = self.train_source.num_classes
    self.total_steps = total_steps(config, len(self.train_source))
    self.method = methods.get_method(config, self.num_classes, self.total_steps)
    self.tx, self.schedule = optim.make_optimizer(
        config.optim, self.total_steps, config.train.batch_size)
    self.checkpointer = checkpoint_lib.Checkpointer(
        os.path.join(os.path.abspath(workdir), "checkpoints"),
        max_to_keep=config.train.keep_checkpoints,
        save_every_steps=config.train.checkpoint_every_steps)

  def initial_state(self):
    state = self.method.init_state(
        jax.random.PRNGKey(self.config.seed),
        self.train_source.image_shape, self.tx)
    return step_lib.replicate(state, self.mesh)

  def restore_or_init(self):
    """Latest checkpoint if there is one, else the step-0 state."""
    state = self.initial_state()
    if self.checkpointer.latest_step is None:
      return state, None
    logging.info("Resuming from checkpoint at step %d.",
                 self.checkpointer.latest_step)
    return self.checkpointer.restore(checkpoint_lib.abstract_like(state))


def train(run, stop_after_step=None):
  """Trains to ``run.total_steps``; returns the final state and images/s.

  ``stop_after_step`` ends the run early, with a checkpoint, as a preempted
  run would (the schedule still spans ``run.total_steps``).
  """
  config = run.config
  state, data_state = run.restore_or_init()
  start_step = int(jax.device_get(state.step))
  loader = data.make_train_loader(
      run.train_source, config.train.batch_size, seed=config.seed,
      worker_count=config.data.worker_count)
  iterator = iter(loader)
  if data_state is not None:
    iterator.set_state(data_state)
  if start_step >= run.total_steps:
    return state, None

  train_step = step_lib.make_train_step(run.method, run.tx, run.mesh)
  is_chief = jax.process_index() == 0
  logger = metrics_lib.MetricsLogger(run.workdir, enabled=is_chief)
  progress = None
  if is_chief and config.train.progress_bar:
    from tqdm import tqdm  # pylint: disable=g-import-not-at-top
    progress = tqdm(total=run.total_steps, initial=start_step, unit="step",
                    desc=f"{config.method} pretraining", dynamic_ncols=True)
  collapse_reported = False
  timed_from = None
  timed_steps = 0
  images_per_sec = None
  end_step = run.total_steps if stop_after_step is None else min(
      stop_after_step, run.total_steps)
  for step in range(start_step, end_step):
    batch = next(iterator)
    images, labels = step_lib.shard_batch(
        (batch["image"], batch["label"]), run.mesh)
    state, metrics = train_step(state, images, labels)
    done = step + 1
    if timed_from is None:  # the first step compiles: time from its end
      jax.block_until_ready(metrics)
      timed_from = time.perf_counter()
    else:
      timed_steps += 1
    if done % config.train.log_every_steps == 0 or done == end_step:
      metrics = jax.device_get(metrics)
      if timed_steps:
        images_per_sec = (timed_steps * config.train.batch_size
                          / (time.perf_counter() - timed_from))
      scalars = dict(metrics, learning_rate=run.schedule(step))
      if images_per_sec:
        scalars["images_per_sec"] = images_per_sec
      if not np.isfinite(metrics["loss"]):
        raise FloatingPointError(
            f"loss is {metrics['loss']} at step {done}; lower "
            "config.optim.base_lr or check the data. The last good checkpoint "
            "is kept.")
      logger.write(done, scalars)
      collapse_message = collapse.collapse_warning(metrics)
      if collapse_message and not collapse_reported:
        logging.warning("step %d: %s", done, collapse_message)
        collapse_reported = True
      if progress is not None:
        progress.set_postfix(loss=f"{metrics['loss']:.3f}",
                             img_s=f"{images_per_sec or 0:.0f}")
    if progress is not None:
      progress.update(1)
    run.checkpointer.save(done, state, iterator.get_state(),
                          force=done == end_step)
  run.checkpointer.wait()
  if progress is not None:
    progress.close()
  logger.close()
  if is_chief:
    metrics_lib.plot_training_curves(
        logger.path, os.path.join(run.workdir, "training_curves.png"))
  return state, images_per_sec


def evaluate(run, state, images_per_sec=None):
  """kNN and linear probe of the trained encoder and of its random init.

  Writes ``<workdir>/results.json`` and prints a table; returns the results.
  """
  config = run.config
  extract = representation.make_feature_extractor(
      run.method.encode, step_lib.make_mesh(jax.local_devices()),
      config.eval.batch_size)
  train_arrays = data.as_arrays(run.train_source)
  test_arrays = data.as_arrays(run.test_source)

  def evaluate_state(s):
    variables = {"params": s.params, "batch_stats": s.batch_stats}
    variables = jax.tree.map(lambda x: np.asarray(x.addressable_data(0)),
                             variables)
    return representation.evaluate_encoder(
        extract, variables, train_arrays, test_arrays, run.num_classes,
        config.eval, seed=config.seed)

  trained = evaluate_state(state)
  random_init = evaluate_state(run.initial_state())
  results_path = os.path.join(run.workdir, "results.json")
  if images_per_sec is None and os.path.exists(results_path):
    with open(results_path) as f:
      images_per_sec = json.load(f).get("images_per_sec")
  online = metrics_lib.read_metrics(os.path.join(run.workdir, "metrics.jsonl"))
  results = {
      "method": config.method,
      "dataset": dataset_name(config.data),
      "steps": int(jax.device_get(state.step)),
      **trained,
      "random_init": random_init,
      "online_probe_top1": online[-1].get("probe_acc") if online else None,
      "collapse": collapse.collapse_warning(online[-1]) if online else None,
      "images_per_sec": images_per_sec,
      "protocol": {
          "knn": f"cosine, k={config.eval.knn_k}, temperature "
                 f"{config.eval.knn_temperature} weighted votes, test split",
          "linear": "offline multinomial logistic regression on frozen "
                    "features, L2 chosen on a held-out part of train, "
                    "test split",
          "online_probe": "stop-gradient linear probe trained during "
                          "pretraining, accuracy on augmented train batches",
      },
  }
  if jax.process_index() == 0:
    with open(results_path, "w") as f:
      json.dump(results, f, indent=2)
    print(format_results(results))
  return results


def format_results(results):
  """A small text table of the trained encoder against its random init."""
  rows = [("", "kNN top-1", "linear top-1"),
          (f"{results['method']} ({results['steps']} steps)",
           f"{results['knn_top1']:.4f}", f"{results['linear_top1']:.4f}"),
          ("random init", f"{results['random_init']['knn_top1']:.4f}",
           f"{results['random_init']['linear_top1']:.4f}")]
  widths = [max(len(r[i]) for r in rows) for i in range(3)]
  lines = [f"{results['dataset']} test split"]
  for row in rows:
    lines.append("  ".join(c.ljust(w) for c, w in zip(row, widths)))
  if results.get("collapse"):
    lines.append(f"at the end of pretraining: {results['collapse']}")
  if results.get("images_per_sec"):
    lines.append(f"pretraining throughput: {results['images_per_sec']:.1f} images/s")
  return "\n".join(lines)


def train_and_evaluate(config, workdir):
  """Pretrains (resuming if the workdir has a checkpoint), then evaluates."""
  run = Run(config, workdir)
  try:
    _check_workdir(config, workdir)
    state, images_per_sec = train(run)
    return evaluate(run, state, images_per_sec)
  finally:
    run.checkpointer.close()


def evaluate_checkpoint(config, workdir):
  """``--mode=eval``: evaluates the latest checkpoint in ``workdir``."""
  run = Run(config, workdir)
  try:
    _check_workdir(config, workdir)
    if run.checkpointer.latest_step is None:
      raise ConfigError(
          f"no checkpoint in {workdir}/checkpoints to evaluate; train first "
          "with --mode=train.")
    state, _ = run.restore_or_init()
    return evaluate(run, state)
  finally:
    run.checkpointer.close()
