"""Checkpoints of the train state and the input pipeline's position.

Each checkpoint is one orbax step directory holding two items:
``state`` (the TrainState pytree) and ``data`` (the grain iterator state, as
JSON), so a restarted run resumes at the same parameters *and* the same data
position. Saves are asynchronous; orbax writes to a temporary directory and
renames it when complete, so a crash never leaves a half-written step that
looks valid, and the oldest step is removed only after a newer one finished.

A checkpoint written before a TrainState field was added lacks that field:
it restores as long as the method leaves the field None (``extra``), or
with the field's starting value where it has one (``nonfinite_steps``: 0).
"""

import dataclasses
import os
from typing import Any

import flax
import jax
import jax.numpy as jnp
import orbax.checkpoint as ocp

# TrainState fields added after checkpoints were first written, with the
# value a run that predates them resumes with.
_LATER_FIELDS_START = {"nonfinite_steps": lambda: jnp.zeros((), jnp.int32)}


class Checkpointer:
  """Saves and restores ``(state, data_iterator_state)`` under ``directory``."""

  def __init__(self, directory, max_to_keep=3, save_every_steps=1000):
    options = ocp.CheckpointManagerOptions(
        max_to_keep=max_to_keep,
        save_interval_steps=save_every_steps,
        enable_async_checkpointing=True,
    )
    self._manager = ocp.CheckpointManager(
        directory, options=options,
        item_handlers={"state": ocp.StandardCheckpointHandler(),
                       "data": ocp.JsonCheckpointHandler()})

  @property
  def latest_step(self):
    return self._manager.latest_step()

  @property
  def directory(self):
    return str(self._manager.directory)

  def all_steps(self):
    """The steps of the complete checkpoints, oldest first (orbax's
    temporary directories of unfinished saves are not among them)."""
    return sorted(self._manager.all_steps())

  def should_save(self, step):
    """Whether ``save(step, ...)`` would write (without ``force``)."""
    return self._manager.should_save(step)

  def set_aside(self, step, destination):
    """Moves the checkpoint of ``step`` to ``destination`` (out of this
    manager's sight, e.g. because it does not restore) and returns where."""
    self.wait()
    source = os.path.join(self.directory, str(step))
    os.makedirs(os.path.dirname(os.path.abspath(destination)), exist_ok=True)
    os.replace(source, destination)
    self._manager.reload()
    return destination

  def save(self, step, state, data_state, force=False):
    """Saves at ``step`` if it is a save step (or ``force``). Returns whether it did."""
    return self._manager.save(
        step,
        args=ocp.args.Composite(
            state=ocp.args.StandardSave(state),
            data=ocp.args.JsonSave(_encode_data_state(data_state)),
        ),
        force=force,
    )

  def restore(self, abstract_state, step=None):
    """Restores ``(state, data_state)`` at ``step`` (default: the latest).

    ``abstract_state`` gives the structure, shapes, dtypes and shardings
    (e.g. ``jax.tree.map(ocp.utils.to_shape_dtype_struct, state)``).
    """
    step = self.latest_step if step is None else step
    saved = self._manager.item_metadata(step)["state"]
    target = _saved_fields(abstract_state,
                           None if saved is None else set(saved.keys()))
    restored = self._manager.restore(
        step,
        args=ocp.args.Composite(
            state=ocp.args.StandardRestore(target),
            data=ocp.args.JsonRestore(),
        ),
    )
    state = restored["state"]
    if target is not abstract_state:
      missing = {f.name for f in dataclasses.fields(abstract_state)} - {
          f.name for f in dataclasses.fields(target)}
      state = abstract_state.replace(
          **{f.name: getattr(state, f.name) for f in dataclasses.fields(target)},
          **{name: jax.device_put(_LATER_FIELDS_START[name](),
                                  getattr(abstract_state, name).sharding)
             for name in missing if name in _LATER_FIELDS_START})
    return state, _decode_data_state(restored["data"])

  def wait(self):
    self._manager.wait_until_finished()

  def close(self):
    self._manager.close()


def _saved_fields(abstract_state, saved_names):
  """The restore target: ``abstract_state`` without the dataclass fields a
  checkpoint lacks (written before they existed), which must be None."""
  if saved_names is None or not dataclasses.is_dataclass(abstract_state):
    return abstract_state
  names = [f.name for f in dataclasses.fields(abstract_state)]
  missing = [n for n in names if n not in saved_names]
  if not missing:
    return abstract_state
  used = [n for n in missing if getattr(abstract_state, n) is not None
          and n not in _LATER_FIELDS_START]
  if used:
    raise ValueError(
        f"the checkpoint has no TrainState field(s) {used}, which this run "
        "uses: it was written by an older version or another method; "
        "restore it with the code and config that wrote it, or start a new "
        "--workdir.")
  kept = [n for n in names if n not in missing]
  saved_class = flax.struct.dataclass(
      type("SavedTrainState", (), {"__annotations__": dict.fromkeys(kept, Any)}))
  return saved_class(**{n: getattr(abstract_state, n) for n in kept})


def abstract_like(state):
  """Shape/dtype/sharding skeleton of ``state`` for ``Checkpointer.restore``."""
  return jax.tree.map(ocp.utils.to_shape_dtype_struct, state)


def _encode_data_state(data_state):
  """grain iterator states are bytes of JSON; store them as a JSON object."""
  if isinstance(data_state, bytes):
    data_state = data_state.decode("utf-8")
  if isinstance(data_state, str):
    return {"format": "json-string", "value": data_state}
  return {"format": "object", "value": data_state}


def _decode_data_state(stored):
  value = stored["value"]
  if stored["format"] == "json-string":
    return value.encode("utf-8")
  return value


__all__ = ["Checkpointer", "abstract_like"]
