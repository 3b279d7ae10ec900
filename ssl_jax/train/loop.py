"""The training loop: data -> compiled data-parallel step -> logs, checkpoints,
and the evaluation that ends every run.

``train_and_evaluate(config, workdir)`` is what ``python -m ssl_jax.main``
runs. Rerunning it with the same workdir resumes from the latest checkpoint,
data position included; a finished run goes straight to evaluation.
"""

import json
import os
import signal
import threading
import time

import jax
import ml_collections
import numpy as np
from absl import logging

from ssl_jax import data
from ssl_jax import methods
from ssl_jax.eval import collapse
from ssl_jax.eval import protocols
from ssl_jax.eval import representation
from ssl_jax.eval import subsets
from ssl_jax.train import checkpoint as checkpoint_lib
from ssl_jax.train import metrics as metrics_lib
from ssl_jax.train import optim
from ssl_jax.train import step as step_lib


class ConfigError(ValueError):
  """A config that cannot run; the message names the key and the fix."""


class Preempted(Exception):
  """SIGTERM or SIGINT ended training after a step; its checkpoint is saved.

  The message says at which step and how to resume (rerun the same command).
  """


class NonFiniteError(FloatingPointError):
  """A step's loss, gradient norm or update was not finite and
  ``config.train.nonfinite='stop'``; the state and checkpoints are the last
  good ones."""

NONFINITE_POLICIES = ("stop", "skip")


def total_steps(config, num_train_examples):
  """``train.num_steps`` if set (> 0), else ``train.num_epochs`` worth of steps."""
  if config.train.num_steps > 0:
    return int(config.train.num_steps)
  steps_per_epoch = num_train_examples // config.train.batch_size
  return max(1, int(round(config.train.num_epochs * steps_per_epoch)))


def validate_config(config, num_devices, num_train_examples, image_shape=None):
  """Raises ConfigError for settings that would fail or silently mistrain.

  With ``image_shape`` (the training source's), also checks that the view
  recipes' mean/std fit its channel count.
  """
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
  if num_train_examples <= 0:
    raise ConfigError(
        f"the training split config.data.train_split="
        f"{config.data.train_split!r} of config.data.source="
        f"{config.data.source!r} holds no examples; point config.data at a "
        "dataset that has some.")
  if batch > num_train_examples:
    raise ConfigError(
        f"config.train.batch_size={batch} is larger than the training set "
        f"({num_train_examples} examples); lower it.")
  if config.train.num_steps <= 0 and config.train.num_epochs <= 0:
    raise ConfigError(
        "set config.train.num_epochs or config.train.num_steps to a positive "
        "value.")
  if config.train.nonfinite not in NONFINITE_POLICIES:
    raise ConfigError(
        f"config.train.nonfinite={config.train.nonfinite!r}; use one of "
        f"{NONFINITE_POLICIES}.")
  if image_shape is not None:
    channels = int(image_shape[-1])
    for name in ("augment", "augment_view2"):
      recipe = config.get(name)
      mean = recipe.get("mean") if hasattr(recipe, "get") else None
      if mean is not None and len(mean) not in (1, channels):
        raise ConfigError(
            f"config.{name}.mean has {len(mean)} entries but the training "
            f"images have {channels} channel(s) (shape {tuple(image_shape)}); "
            "use the preset made for this data (e.g. :digits for 1-channel "
            f"images) or set config.{name}.mean and .std to {channels} "
            "values.")
  steps = total_steps(config, num_train_examples)
  if not 0 <= config.optim.warmup_steps < steps:
    raise ConfigError(
        f"config.optim.warmup_steps={config.optim.warmup_steps} must be in "
        f"[0, {steps}), the run's {steps} training steps; lower it.")


def check_workdir(config, workdir, write=True, data_record=None):
  """Refuses a workdir that holds a run of another method or dataset.

  The dataset is ``config.data`` unless ``data_record`` (JSON-able) names it
  (the graph loop's pretraining graphs). Returns the saved record (None for
  a new workdir); with ``write``, saves ``config`` as the workdir's
  ``config.json``.
  """
  path = os.path.join(workdir, "config.json")
  if os.path.exists(workdir) and not os.path.isdir(workdir):
    raise ConfigError(
        f"--workdir {workdir} is a file, not a folder; use another --workdir.")
  data = config.data.to_dict() if data_record is None else data_record
  # Through JSON, so tuples compare equal to the lists read back on resume.
  current = {"method": config.method, "data": json.loads(json.dumps(data))}
  try:
    previous = read_json(path)
  except (OSError, ValueError) as e:  # e.g. cut short by a crash
    raise ConfigError(
        f"workdir {workdir} has a config.json that cannot be read ({e}); use "
        "another --workdir, or move that file away if the workdir holds no "
        "run.") from None
  if previous is not None:
    if not isinstance(previous, dict):
      raise ConfigError(
          f"workdir {workdir} has a config.json that is not a run's record; "
          "use another --workdir.")
    saved = dict(previous)
    if data_record is None and isinstance(saved.get("data"), dict):
      # config.data fields added since that run was made (image_size,
      # on_corrupt) are absent from its record: they had their defaults.
      from ssl_jax.train import defaults  # pylint: disable=g-import-not-at-top
      added = json.loads(json.dumps(defaults.base_config("").data.to_dict()))
      saved["data"] = dict(
          {k: v for k, v in added.items() if k not in saved["data"]},
          **saved["data"])
    for key in ("method", "data"):
      if saved.get(key) == current[key]:
        continue
      if key == "data" and isinstance(saved.get(key), dict):
        what = ", ".join(
            f"data.{k}={saved[key].get(k)!r} (this run: "
            f"{current[key].get(k)!r})"
            for k in sorted(set(saved[key]) | set(current[key]))
            if saved[key].get(k) != current[key].get(k))
      else:
        what = f"{key}={saved.get(key)!r} (this run: {current[key]!r})"
      raise ConfigError(
          f"workdir {workdir} holds a run with {what}; use another --workdir "
          "for this run (or that run's settings to resume it).")
  if write and jax.process_index() == 0:
    os.makedirs(workdir, exist_ok=True)
    with open(path, "w") as f:
      json.dump(dict(current, config=json.loads(config.to_json())), f, indent=1)
  return previous


def dataset_name(data_config):
  if data_config.source == "tfds":
    return data_config.name
  if data_config.source in ("npz", "image_folder"):
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
    # Transfer: config.eval.data names another dataset to evaluate on.
    self.eval_is_pretraining_data = not config.eval.data.source
    self.eval_data_config = (config.data if self.eval_is_pretraining_data
                             else config.eval.data)
    if self.eval_is_pretraining_data:
      self.eval_train_source, self.eval_test_source = (self.train_source,
                                                       self.test_source)
    else:
      self.eval_train_source = data.get_source(
          config.eval.data, config.eval.data.train_split)
      self.eval_test_source = data.get_source(
          config.eval.data, config.eval.data.test_split)
    self.eval_num_classes = self.eval_train_source.num_classes
    try:
      protocols.parse_protocols(config.eval.protocols)
      protocols.parse_protocols(config.eval.random_init_protocols)
    except ValueError as e:
      raise ConfigError(str(e)) from None
    self.extractor_factory = representation.extractor_factory(
        config.eval.batch_size)
    self._local_mesh = None  # built by training_set_features
    validate_config(config, self.mesh.devices.size, len(self.train_source),
                    image_shape=self.train_source.image_shape)
    self.num_classes = self.train_source.num_classes
    self.total_steps = total_steps(config, len(self.train_source))
    try:
      # Methods and optimizers check their own settings (queue sizes, BN
      # groups, layer counts ...) and say what to change.
      self.method = methods.get_method(config, self.num_classes,
                                       self.total_steps)
      self.tx, self.schedule = optim.make_optimizer(
          config.optim, self.total_steps, config.train.batch_size)
    except ValueError as e:
      raise ConfigError(str(e)) from e
    # Refuse another run's workdir before anything (orbax's checkpoints/
    # folder) is created in it; train() records this run's config.
    check_workdir(config, workdir, write=False)
    self.checkpointer = checkpoint_lib.Checkpointer(
        os.path.join(os.path.abspath(workdir), "checkpoints"),
        max_to_keep=config.train.keep_checkpoints,
        save_every_steps=config.train.checkpoint_every_steps)

  def initial_state(self):
    # A method with per-example state sizes it by the training set.
    per_example = ({"num_examples": len(self.train_source)}
                   if self.method.uses_example_index else {})
    state = self.method.init_state(
        jax.random.PRNGKey(self.config.seed),
        self.train_source.image_shape, self.tx, **per_example)
    return step_lib.replicate(state, self.mesh)

  def training_set_features(self, encode_fn, variables, chunk_size=8192):
    """Features of every training record, in index order, and its labels.

    ``encode_fn(variables, images_uint8) -> (B, D)`` runs compiled once on
    this host's devices (``run.extractor_factory``, batches of
    ``config.eval.batch_size``) over the records read ``chunk_size`` at a
    time (``data.read_records``), so the images are never all in memory.
    ``variables`` are host arrays. Every host computes all N rows.

    Returns:
      ``(features float32 (N, D), labels int32 (N,))``.
    """
    if self._local_mesh is None:
      self._local_mesh = step_lib.make_mesh(jax.local_devices())
    extract = self.extractor_factory(encode_fn, self._local_mesh)
    features, labels = [], []
    num_records = len(self.train_source)
    for start in range(0, num_records, chunk_size):
      records = data.read_records(
          self.train_source,
          np.arange(start, min(start + chunk_size, num_records)))
      features.append(extract(variables, records["image"]))
      labels.append(records["label"])
    return np.concatenate(features), np.concatenate(labels)

  def restore_or_init(self):
    """The latest checkpoint that restores, else the step-0 state.

    A checkpoint that fails to restore while an older one restores is
    corrupt (the config is the same, since the older one fits it): it is
    moved to ``<workdir>/corrupt_checkpoints/<step>`` with a warning, and
    the run goes on from the older one. If none restores, the first error
    is raised and nothing is moved (a changed config fails on every
    checkpoint alike).
    """
    state = self.initial_state()
    steps = self.checkpointer.all_steps()
    abstract = checkpoint_lib.abstract_like(state)
    failed = []
    for step in reversed(steps):
      try:
        restored = self.checkpointer.restore(abstract, step)
      except Exception as e:  # pylint: disable=broad-except
        # orbax and tensorstore raise many types for unreadable files.
        failed.append((step, e))
        continue
      for bad_step, error in failed:
        where = self.checkpointer.set_aside(bad_step, os.path.join(
            self.workdir, "corrupt_checkpoints", str(bad_step)))
        logging.warning(
            "The checkpoint at step %d does not restore (%s: %s); moved it to "
            "%s and resuming from step %d.", bad_step, type(error).__name__,
            error, where, step)
      if not failed:
        logging.info("Resuming from checkpoint at step %d.", step)
      return restored
    if failed:
      step, error = failed[0]
      raise ConfigError(
          f"no checkpoint in {self.checkpointer.directory} restores (steps "
          f"{steps}); the latest, {step}, fails with "
          f"{type(error).__name__}: {error}. If the config changed since, "
          "rerun with the run's own config (<workdir>/config.json) or use a "
          "new --workdir.") from error
    return state, None


class _StopRequests:
  """Turns SIGTERM / SIGINT into a request the loop honours after the step.

  Installed only in the main thread (where Python delivers signals); the
  first signal is recorded and the previous handlers come back, so a second
  one acts as usual (e.g. Ctrl-C twice interrupts at once).
  """

  SIGNALS = (signal.SIGTERM, signal.SIGINT)

  def __init__(self):
    self.received = None
    self._previous = {}

  def __enter__(self):
    if threading.current_thread() is threading.main_thread():
      for signum in self.SIGNALS:
        self._previous[signum] = signal.signal(signum, self._handle)
    return self

  def _handle(self, signum, frame):
    del frame
    self.received = signal.Signals(signum).name
    self._restore()

  def _restore(self):
    for signum, handler in self._previous.items():
      signal.signal(signum, handler)
    self._previous = {}

  def __exit__(self, *exc):
    self._restore()


def _nonfinite_message(step, metrics, policy):
  """Names the step and the metric that went non-finite."""
  if not np.isfinite(metrics["loss"]):
    what = f"loss is {metrics['loss']}"
  elif not np.isfinite(metrics["grad_norm"]):
    what = f"gradient norm is {metrics['grad_norm']} (loss {metrics['loss']:.4g})"
  else:
    what = "the update is not finite (a learning rate or optimizer state gone bad)"
  return f"step {step}: {what}; the update was not applied" + (
      "" if policy == "skip" else
      ". Lower config.optim.base_lr, check the data, or set "
      "config.train.nonfinite=skip to skip such steps.")


def train(run, stop_after_step=None):
  """Trains to ``run.total_steps``; returns the final state and images/s.

  Before every step the method's ``refresh`` hook may update the state
  (DeepCluster reclusters once per epoch); the scalars it returns are logged
  at that step. ``stop_after_step`` ends the run early, with a checkpoint,
  as a preempted run would (the schedule still spans ``run.total_steps``).

  SIGTERM or SIGINT (preemption, Ctrl-C) ends training after the current
  step with a checkpoint of it and raises :class:`Preempted`; rerunning
  resumes there. A step with a non-finite loss, gradient norm or update
  applies no update (``train/step.py``); at the next log or checkpoint step
  the loop raises :class:`NonFiniteError` naming it
  (``config.train.nonfinite='stop'``, before any checkpoint of later steps)
  or warns and goes on (``'skip'``).
  """
  config = run.config
  check_workdir(config, run.workdir)
  # What the data needs to be read again (a text source's tokenizer).
  save_with_run = getattr(run.train_source, "save_with_run", None)
  if save_with_run is not None and jax.process_index() == 0:
    save_with_run(run.workdir)
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
  unchecked = []  # (step, metrics on device) not yet checked for non-finite
  end_step = run.total_steps if stop_after_step is None else min(
      stop_after_step, run.total_steps)
  with _StopRequests() as stop_requests:
    for step in range(start_step, end_step):
      state, refreshed = run.method.refresh(run, state, step)
      if refreshed:
        logger.write(step, refreshed)
        logging.info("step %d: %s", step, ", ".join(
            f"{k}={v:.4g}" for k, v in sorted(refreshed.items())))
      batch = next(iterator)
      labels = batch["label"]
      if run.method.batch_fields:
        labels = {"label": labels,
                  **{field: batch[field] for field in run.method.batch_fields}}
      images, labels = step_lib.shard_batch((batch["image"], labels), run.mesh)
      state, metrics = train_step(state, images, labels)
      done = step + 1
      unchecked.append((done, metrics))
      if timed_from is None:  # the first step compiles: time from its end
        jax.block_until_ready(metrics)
        timed_from = time.perf_counter()
      else:
        timed_steps += 1
      # Read once: a signal arriving later in this step is honoured after
      # the next one, so the step that stops is always the one saved.
      preempted = stop_requests.received is not None
      stopping = preempted or done == end_step
      if (done % config.train.log_every_steps == 0 or stopping
          or run.checkpointer.should_save(done)):
        _check_finite(jax.device_get(unchecked), config.train.nonfinite)
        unchecked = []
      if done % config.train.log_every_steps == 0 or done == end_step:
        metrics = jax.device_get(metrics)
        if timed_steps:
          images_per_sec = (timed_steps * config.train.batch_size
                            / (time.perf_counter() - timed_from))
        scalars = dict(metrics, learning_rate=run.schedule(step))
        if images_per_sec:
          scalars["images_per_sec"] = images_per_sec
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
                            force=stopping)
      if preempted:
        break
  run.checkpointer.wait()
  if progress is not None:
    progress.close()
  logger.close()
  if stop_requests.received is not None:  # the last step saved is `done`
    raise Preempted(
        f"{stop_requests.received} received: stopped after step {done} of "
        f"{run.total_steps} and saved its checkpoint in "
        f"{run.checkpointer.directory}; rerun the same command to resume.")
  if is_chief:
    metrics_lib.plot_training_curves(
        logger.path, os.path.join(run.workdir, "training_curves.png"))
  return state, images_per_sec


def _check_finite(history, policy):
  """Raises NonFiniteError for the first non-finite step of ``history``
  (``(step, metrics)`` pairs) under ``policy='stop'``; warns under 'skip'."""
  bad = [(step, metrics) for step, metrics in history if metrics["nonfinite"]]
  if not bad:
    return
  if policy == "stop":
    raise NonFiniteError(_nonfinite_message(*bad[0], policy))
  for step, metrics in bad:
    logging.warning("Skipped %s", _nonfinite_message(step, metrics, policy))


def evaluate(run, state, images_per_sec=None):
  """Runs ``config.eval.protocols`` on the trained encoder and on its random
  init (``config.eval.random_init_protocols``, the floor).

  Writes ``<workdir>/eval.json`` and ``<workdir>/eval.md`` (the markdown
  table, also printed); returns the report.
  """
  config = run.config
  eval_config = config.eval
  requested = protocols.parse_protocols(eval_config.protocols)
  floor_protocols = [p for p in protocols.parse_protocols(
      eval_config.random_init_protocols) if p in requested]
  mesh = step_lib.make_mesh(jax.local_devices())
  channels = run.train_source.image_shape[-1]
  train_arrays, test_arrays = (
      _eval_subset(representation.match_channels(images, channels), labels,
                   limit, eval_config.subset_seed)
      for (images, labels), limit in (
          (data.as_arrays(run.eval_train_source),
           eval_config.max_train_examples),
          (data.as_arrays(run.eval_test_source),
           eval_config.max_test_examples)))
  subset_dir = eval_config.subset_dir or os.path.join(run.workdir,
                                                      "label_subsets")
  eval_dataset = dataset_name(run.eval_data_config)

  pretext_images = None
  if hasattr(run.method, "pretext_accuracy"):
    pretext_images, _ = _eval_subset(
        *data.as_arrays(run.test_source), eval_config.max_test_examples,
        eval_config.subset_seed)

  def evaluate_state(s, names, plot_prefix):
    variables = {"params": s.params, "batch_stats": s.batch_stats}
    variables = jax.tree.map(lambda x: np.asarray(x.addressable_data(0)),
                             variables)
    results = protocols.evaluate(
        run.method, variables, train_arrays, test_arrays,
        run.eval_num_classes, eval_config, names, run.extractor_factory, mesh,
        seed=config.seed, subset_dir=subset_dir, dataset=eval_dataset,
        plot_prefix=plot_prefix)
    if pretext_images is not None:
      results["pretext"] = protocols.pretext_accuracy(
          run.method, variables, pretext_images, eval_config.batch_size,
          seed=config.seed)
    results.update(run.method.extra_evaluation(run, variables))
    return results

  trained = evaluate_state(state, requested,
                           os.path.join(run.workdir, ""))
  random_init = evaluate_state(run.initial_state(), floor_protocols,
                               os.path.join(run.workdir, "random_init_"))
  previous = read_json(os.path.join(run.workdir, "eval.json")) or {}
  if images_per_sec is None:
    images_per_sec = previous.get("images_per_sec")
  online = metrics_lib.read_metrics(os.path.join(run.workdir, "metrics.jsonl"))
  if online and "probe_acc" in online[-1] and run.eval_is_pretraining_data:
    trained["online"] = {"top1": online[-1]["probe_acc"],
                         "protocol": protocols.describe("online", eval_config)}
  report = {
      "method": config.method,
      "pretrain_dataset": dataset_name(config.data),
      "dataset": eval_dataset,
      "steps": int(jax.device_get(state.step)),
      "train_examples": len(train_arrays[1]),
      "test_examples": len(test_arrays[1]),
      "protocols": trained,
      "random_init": random_init,
      "collapse_during_pretraining": (
          collapse.collapse_warning(online[-1])
          if online and "effective_rank" in online[-1] else None),
      "images_per_sec": images_per_sec,
  }
  if jax.process_index() == 0:
    protocols.write_report(report, run.workdir)
    print(protocols.format_table(report))
  return report


def _eval_subset(images, labels, limit, seed):
  """A class-balanced subset of about ``limit`` examples (all if limit <= 0)."""
  if limit <= 0 or limit >= len(labels):
    return images, labels
  indices = subsets.class_balanced_subset(labels, limit / len(labels), seed)
  return images[indices], labels[indices]


def read_json(path):
  """The JSON document at ``path``, or None where there is no file."""
  if not os.path.exists(path):
    return None
  with open(path) as f:
    return json.load(f)


def train_and_evaluate(config, workdir):
  """Pretrains (resuming if the workdir has a checkpoint), then evaluates."""
  run = Run(config, workdir)
  try:
    state, images_per_sec = train(run)
    return evaluate(run, state, images_per_sec)
  finally:
    run.checkpointer.close()


def load_trained(workdir, eval_config=None):
  """``(run, state)``: the run saved in ``workdir`` at its latest checkpoint.

  The networks, data and method come from the run's ``config.json``; with
  ``eval_config``, it replaces the saved ``config.eval``. The run's
  checkpointer is closed. Raises ConfigError when ``workdir`` holds no run
  or no checkpoint.
  """
  saved = read_json(os.path.join(workdir, "config.json"))
  if saved is None or "config" not in saved:
    raise ConfigError(
        f"no checkpoint in {workdir} (it holds no run's config.json); train "
        "first with --mode=train.")
  run_config = ml_collections.ConfigDict(saved["config"])
  if eval_config is not None:
    run_config.eval = eval_config
  run = Run(run_config, workdir)
  try:
    if run.checkpointer.latest_step is None:
      raise ConfigError(
          f"no checkpoint in {workdir}/checkpoints; train first with "
          "--mode=train.")
    state, _ = run.restore_or_init()
  finally:
    run.checkpointer.close()
  return run, state


def evaluate_checkpoint(config, workdir):
  """``--mode=eval``: evaluates the latest checkpoint in ``workdir``.

  The networks, data and method come from the run's saved ``config.json``;
  only ``config.eval`` (protocols, transfer dataset, fine-tuning settings)
  comes from ``config``, so ``--config.eval.protocols=...`` picks what to run.
  A ``config`` without a method (``ssl_jax/train/eval_only_config.py``, the
  CLI's default) matches any run.
  """
  if config.method:
    check_workdir(config, workdir, write=False)
  run, state = load_trained(workdir, config.eval)
  return evaluate(run, state)
