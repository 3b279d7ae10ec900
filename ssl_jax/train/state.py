"""The immutable training state shared by every method.

One pytree holds everything a step reads and writes, so a step is a pure
function ``(state, batch) -> (state, metrics)`` and a checkpoint is the state
itself. Fields a method does not use stay ``None`` (an empty subtree: nothing
is stored for it and nothing is sharded).
"""

from typing import Any

import flax
import jax
import jax.numpy as jnp


@flax.struct.dataclass
class TrainState:
  """Everything a training step reads and writes.

  Attributes:
    step: number of optimizer updates applied so far (int32 scalar).
    rng: raw uint32 PRNG key of the run; each step folds in ``step`` and each
      example its global index, so randomness does not depend on how the
      batch is split over devices.
    params: online networks (backbone, heads, predictor, online probe).
    batch_stats: BatchNorm running statistics of the online networks.
    opt_state: optimizer state for ``params``.
    ema_params: momentum (target / key) networks, for methods that have them.
    ema_batch_stats: their BatchNorm statistics.
    queue: MoCo negative-key queue, shape (K, D), identical on every replica.
    queue_ptr: position of the next enqueue in ``queue`` (int32 scalar).
    extra: method-specific state that is neither networks nor optimizer,
      a dict of arrays (None when unused), replicated, checkpointed and
      restored like every other field. The step reads it; a method's
      ``refresh`` hook (``ssl_jax.methods.base.Method.refresh``), run by
      the loop between steps, may rewrite it. DeepCluster keeps there its
      pseudo-labels (``assignments``, int32 ``(N,)`` over the training
      records) and the per-cluster loss weights. Its structure, shapes and
      dtypes must stay those of the step-0 state (one compiled step, and
      the restore target of a checkpoint).
    nonfinite_steps: how many steps had a non-finite loss, gradient norm or
      update, and so changed nothing but ``step`` and this count (int32
      scalar; see ``ssl_jax.train.step.make_train_step``). A checkpoint
      written before the field existed restores it as 0.
  """

  step: jax.Array
  rng: jax.Array
  params: Any
  batch_stats: Any
  opt_state: Any
  ema_params: Any = None
  ema_batch_stats: Any = None
  queue: Any = None
  queue_ptr: Any = None
  extra: Any = None
  nonfinite_steps: Any = None


def create_train_state(rng, variables, tx, **extra_fields):
  """Builds the step-0 state from initialised model variables.

  Args:
    rng: raw uint32 key (``jax.random.PRNGKey``) kept in the state.
    variables: ``{'params': ..., 'batch_stats': ...}`` from ``module.init``
      (``batch_stats`` may be absent for models without BatchNorm).
    tx: the optax transformation; only its ``init`` is used here.
    **extra_fields: method-specific fields (``ema_params``, ``queue``,
      ``extra``, ...).
  """
  params = variables["params"]
  return TrainState(
      step=jnp.zeros((), jnp.int32),
      rng=rng,
      params=params,
      batch_stats=variables.get("batch_stats", {}),
      opt_state=tx.init(params),
      nonfinite_steps=jnp.zeros((), jnp.int32),
      **extra_fields,
  )
