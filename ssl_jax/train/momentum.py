r"""Momentum (target / key) networks: the EMA update, its schedule, and the
forward pass of the target network, which no gradient reaches.

MoCo's key encoder (He et al. 2020, eq. 2) and BYOL's target network (Grill
et al. 2020, Sec. 3.1) are the same object: parameters :math:`\xi` that follow
the online parameters :math:`\theta` by an exponential moving average

.. math::  \xi \leftarrow m\,\xi + (1 - m)\,\theta,

applied after every optimizer step. MoCo keeps m = 0.999 constant; BYOL
raises it from :math:`m_0` = 0.996 to 1 along a cosine,
:math:`m_k = 1 - (1 - m_0)(\cos(\pi k / K) + 1) / 2` for step k of K.

The target holds only the networks it mirrors (``init_target`` picks the
top-level modules, e.g. encoder and projector; never the predictor or the
online probe). Its BatchNorm statistics are its own: the target forward
pass runs BatchNorm in training mode on the batch, as both papers do, and
its running averages land in ``TrainState.ema_batch_stats``.
"""

import jax
from jax import lax
import jax.numpy as jnp

MOMENTUM_SCHEDULES = ("constant", "cosine")


def init_target(variables, modules):
  """Target parameters and BatchNorm statistics: copies of ``modules``.

  Args:
    variables: ``{'params': ..., 'batch_stats': ...}`` of the online network.
    modules: names of the top-level submodules the target mirrors.

  Returns:
    ``(ema_params, ema_batch_stats)``, equal to the online values at step 0.
  """
  params = variables["params"]
  stats = variables.get("batch_stats", {})
  missing = [m for m in modules if m not in params]
  if missing:
    raise ValueError(
        f"target modules {missing} are not in the network's params "
        f"(has {sorted(params)}).")
  copy = lambda tree: jax.tree.map(jnp.array, tree)
  return ({m: copy(params[m]) for m in modules},
          {m: copy(stats[m]) for m in modules if m in stats})


def ema_update(target, online, momentum):
  r"""``momentum * target + (1 - momentum) * online``, leaf by leaf."""
  return jax.tree.map(
      lambda t, o: (momentum * t + (1.0 - momentum) * o).astype(t.dtype),
      target, online)


def momentum_at(step, base_momentum, total_steps, schedule):
  r"""The EMA momentum :math:`m_k` for step ``step`` (traceable).

  ``'constant'``: :math:`m_0`. ``'cosine'`` (BYOL, Sec. 3.2):
  :math:`1 - (1 - m_0)(\cos(\pi k / K) + 1)/2`, from :math:`m_0` at k = 0
  to 1 at k = K.
  """
  if schedule == "constant":
    return jnp.asarray(base_momentum, jnp.float32)
  if schedule == "cosine":
    progress = jnp.minimum(step / total_steps, 1.0)
    return 1.0 - (1.0 - base_momentum) * (jnp.cos(jnp.pi * progress) + 1) / 2
  raise ValueError(
      f"momentum schedule {schedule!r} is not known; use one of "
      f"{MOMENTUM_SCHEDULES}.")


def update_target(state, momentum):
  """Moves ``state.ema_params`` toward the online params they mirror."""
  online = {m: state.params[m] for m in state.ema_params}
  return state.replace(ema_params=ema_update(state.ema_params, online, momentum))


def target_forward(module, state, images, method, **kwargs):
  """The target network's outputs, with no gradient, and its new BN stats.

  Args:
    module: the Flax module whose ``method`` uses only the target's
      submodules (e.g. ``encoder`` and ``projector``).
    state: the TrainState holding ``ema_params`` / ``ema_batch_stats``.
    images: the target's input views.
    method: the module method to apply (e.g. ``SiameseNetwork.project``).
    **kwargs: passed to ``method`` (e.g. ``train=True``).

  Returns:
    ``(outputs, ema_batch_stats)``; outputs under ``lax.stop_gradient``.
  """
  variables = {"params": lax.stop_gradient(state.ema_params),
               "batch_stats": state.ema_batch_stats}
  outputs, new_vars = module.apply(variables, images, method=method,
                                   mutable=["batch_stats"], **kwargs)
  return lax.stop_gradient(outputs), new_vars.get("batch_stats", {})
