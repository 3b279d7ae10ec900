"""Optimizers and learning-rate schedules for self-supervised pretraining.

* Learning-rate scaling with the global batch size (linear, or square-root as
  in SimCLR, Chen et al. 2020, appendix B.1).
* Linear warmup followed by cosine decay to zero (Loshchilov & Hutter 2017,
  "SGDR"; warmup as in Goyal et al. 2017).
* LARS (You, Gitman, Ginsburg 2017, "Large Batch Training of Convolutional
  Networks"), SGD with momentum, and AdamW (Loshchilov & Hutter 2019), all
  with weight decay (and, for LARS, the layer-wise trust ratio) skipped for
  biases and normalisation parameters.

Everything here is a pure constructor: it returns ``optax`` objects and holds
no state.
"""

from __future__ import annotations

import math
from typing import Any, Mapping

import jax
import optax

__all__ = [
    "LR_SCALINGS",
    "OPTIMIZERS",
    "exclude_bias_and_norm",
    "make_optimizer",
    "scaled_learning_rate",
    "warmup_cosine_schedule",
]

LR_SCALINGS = ("linear", "sqrt", "none")
OPTIMIZERS = ("lars", "sgd", "adamw")


def scaled_learning_rate(base_lr: float, global_batch_size: int,
                         scaling: str) -> float:
  r"""Peak learning rate for a global batch size.

  * ``'linear'``: :math:`\mathrm{lr} = \mathrm{base} \cdot B / 256`
    (Goyal et al. 2017; SimCLR's default, base 0.3 for LARS).
  * ``'sqrt'``: :math:`\mathrm{lr} = \mathrm{base} \cdot \sqrt{B}`
    (SimCLR appendix B.1: 0.075 * sqrt(B), better for small batches or
    long training).
  * ``'none'``: :math:`\mathrm{lr} = \mathrm{base}`.

  Args:
    base_lr: the base learning rate.
    global_batch_size: B, the batch size summed over all replicas and hosts.
    scaling: one of ``LR_SCALINGS``.

  Returns:
    The scaled learning rate, a Python float.

  Raises:
    ValueError: unknown ``scaling`` or a non-positive batch size.
  """
  if global_batch_size <= 0:
    raise ValueError(
        f"global_batch_size must be positive, got {global_batch_size}")
  if scaling == "linear":
    return base_lr * global_batch_size / 256.0
  if scaling == "sqrt":
    return base_lr * math.sqrt(global_batch_size)
  if scaling == "none":
    return float(base_lr)
  raise ValueError(
      f"unknown lr scaling {scaling!r}; valid: {', '.join(LR_SCALINGS)}")


def warmup_cosine_schedule(peak_lr: float, total_steps: int,
                           warmup_steps: int) -> optax.Schedule:
  r"""Linear warmup from 0 to ``peak_lr``, then cosine decay to 0.

  .. math::
     \eta(t) = \begin{cases}
       \eta_{\max}\, t / W & t < W \\
       \tfrac12 \eta_{\max} \big(1 + \cos(\pi \tfrac{t - W}{T - W})\big)
         & W \le t \le T \\
       0 & t > T
     \end{cases}

  with W = ``warmup_steps`` and T = ``total_steps`` (SimCLR: 10 warmup
  epochs, then cosine decay without restarts).

  Args:
    peak_lr: :math:`\eta_{\max}`, reached at step W.
    total_steps: T > 0, the step at which the rate reaches 0.
    warmup_steps: 0 <= W < T.

  Returns:
    An ``optax`` schedule: step count -> learning rate.

  Raises:
    ValueError: if the step counts are inconsistent.
  """
  if total_steps <= 0:
    raise ValueError(f"total_steps must be positive, got {total_steps}")
  if not 0 <= warmup_steps < total_steps:
    raise ValueError(
        f"warmup_steps must be in [0, total_steps={total_steps}), got "
        f"{warmup_steps}")
  return optax.warmup_cosine_decay_schedule(
      init_value=0.0, peak_value=peak_lr, warmup_steps=warmup_steps,
      decay_steps=total_steps, end_value=0.0)


def exclude_bias_and_norm(params: Any) -> Any:
  """Mask that is True for parameters to decay / adapt, False for the rest.

  Rule: a parameter with ``ndim <= 1`` -- biases, and the scale and bias of
  BatchNorm / LayerNorm / GroupNorm -- is excluded (False); weight matrices
  and convolution kernels (``ndim >= 2``) are included (True). This is the
  SimCLR / BYOL convention: such parameters get neither weight decay nor the
  LARS trust ratio. Note that multi-dimensional non-weight parameters (e.g.
  a ViT's position embedding or class token) are included by this rule.

  Args:
    params: a pytree of arrays (e.g. Flax ``params``).

  Returns:
    A pytree of Python bools with the structure of ``params``, usable as an
    ``optax`` mask.
  """
  return jax.tree.map(lambda p: p.ndim > 1, params)


def _get(config: Mapping[str, Any], key: str, default: Any = None,
         required: bool = False) -> Any:
  if key in config and config[key] is not None:
    return config[key]
  if required:
    raise ValueError(
        f"optimizer config is missing required field {key!r} "
        f"(has: {sorted(config.keys())})")
  return default


def make_optimizer(
    optim_config: Mapping[str, Any],
    total_steps: int,
    global_batch_size: int,
) -> tuple[optax.GradientTransformation, optax.Schedule]:
  """Builds the optimizer and its learning-rate schedule from a config.

  The peak rate is ``scaled_learning_rate(base_lr, global_batch_size,
  lr_scaling)``; the schedule is ``warmup_cosine_schedule``. Weight decay
  (and LARS's trust ratio) use the ``exclude_bias_and_norm`` mask, so biases
  and normalisation parameters get plain (momentum) updates without decay.

  * ``'lars'``: ``optax.lars``. Per included parameter w with gradient g:
    ``u = g + wd * w``; ``u *= eta * ||w|| / ||u||`` (1 if either norm is 0);
    ``v = momentum * v + lr_t * u``; ``w -= v``. This is the form of SimCLR's
    LARS implementation (the trust ratio uses the norm of the decayed
    gradient; You et al.'s paper writes ``||g|| + wd * ||w||``). Excluded
    parameters: ``v = momentum * v + lr_t * g``; ``w -= v``.
  * ``'sgd'``: coupled L2 decay ``u = g + wd * w`` on included params (plain
    ``u = g`` on excluded ones), then ``optax.sgd`` with momentum:
    ``v = momentum * v + u``; ``w -= lr_t * v``.
  * ``'adamw'``: ``optax.adamw`` with decoupled weight decay on included
    params; optional fields ``b1`` (0.9), ``b2`` (0.999). ``momentum`` and
    ``trust_coefficient`` are not used.

  The returned transformation needs ``params`` in ``tx.update(grads, state,
  params)`` (weight decay and the trust ratio read them).

  Args:
    optim_config: ``ml_collections.ConfigDict`` (or mapping) with fields
      ``name`` (one of ``OPTIMIZERS``), ``base_lr``, ``lr_scaling`` (one of
      ``LR_SCALINGS``), ``warmup_steps``, ``weight_decay``, and for lars/sgd
      ``momentum`` (default 0.9), for lars ``trust_coefficient`` (LARS eta,
      default 0.001), and optionally ``fixed_lr_modules``: names of
      top-level param modules (e.g. SimSiam's ``('predictor',)``) that keep
      the peak rate with no warmup or decay. A ``warmup_epochs`` field must be converted to
      ``warmup_steps`` by the caller (it knows the steps per epoch).
    total_steps: total number of optimizer steps of the run.
    global_batch_size: batch size over all replicas, for lr scaling.

  Returns:
    ``(tx, schedule)``: the ``optax.GradientTransformation`` and the
    learning-rate schedule it uses (step -> lr, for logging).

  Raises:
    ValueError: unknown optimizer or lr scaling name, missing fields, or
      inconsistent step counts.
  """
  name = _get(optim_config, "name", required=True)
  if name not in OPTIMIZERS:
    raise ValueError(
        f"unknown optimizer {name!r}; valid: {', '.join(OPTIMIZERS)}")
  if _get(optim_config, "warmup_steps") is None and _get(
      optim_config, "warmup_epochs") is not None:
    raise ValueError(
        "optimizer config has warmup_epochs but no warmup_steps; convert "
        "epochs to steps (warmup_epochs * steps_per_epoch) before calling "
        "make_optimizer")
  base_lr = _get(optim_config, "base_lr", required=True)
  scaling = _get(optim_config, "lr_scaling", required=True)
  warmup_steps = int(_get(optim_config, "warmup_steps", required=True))
  weight_decay = float(_get(optim_config, "weight_decay", required=True))

  peak_lr = scaled_learning_rate(base_lr, global_batch_size, scaling)
  schedule = warmup_cosine_schedule(peak_lr, total_steps, warmup_steps)

  tx = _base_optimizer(name, optim_config, schedule, weight_decay)
  fixed_modules = tuple(_get(optim_config, "fixed_lr_modules", ()))
  if fixed_modules:
    # SimSiam (Sec. 4.2, "predictor with a fixed lr"): these modules keep the
    # peak rate; warmup and decay apply to the rest.
    fixed_tx = _base_optimizer(name, optim_config, peak_lr, weight_decay)

    def labels(params):
      unknown = [m for m in fixed_modules if m not in params]
      if unknown:
        raise ValueError(
            f"config.optim.fixed_lr_modules names {unknown}, which are not "
            f"top-level modules of the params ({sorted(params)}).")
      return {k: jax.tree.map(lambda _, k=k: "fixed" if k in fixed_modules
                              else "scheduled", v)
              for k, v in params.items()}

    tx = optax.multi_transform({"scheduled": tx, "fixed": fixed_tx}, labels)
  return tx, schedule


def _base_optimizer(name, optim_config, learning_rate, weight_decay):
  """The optimizer ``name`` with ``learning_rate`` (a float or a schedule)."""
  if name == "lars":
    return optax.lars(
        learning_rate=learning_rate,
        weight_decay=weight_decay,
        weight_decay_mask=exclude_bias_and_norm,
        trust_coefficient=float(
            _get(optim_config, "trust_coefficient", 0.001)),
        trust_ratio_mask=exclude_bias_and_norm,
        momentum=float(_get(optim_config, "momentum", 0.9)),
    )
  if name == "sgd":
    return optax.chain(
        optax.add_decayed_weights(weight_decay, mask=exclude_bias_and_norm),
        optax.sgd(learning_rate=learning_rate,
                  momentum=float(_get(optim_config, "momentum", 0.9))),
    )
  return optax.adamw(
      learning_rate=learning_rate,
      b1=float(_get(optim_config, "b1", 0.9)),
      b2=float(_get(optim_config, "b2", 0.999)),
      weight_decay=weight_decay,
      mask=exclude_bias_and_norm,
  )
