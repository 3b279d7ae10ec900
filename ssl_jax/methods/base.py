"""What every method shares: building its backbone from the config.

A method is a small object with

    init_state(rng, image_shape, tx) -> TrainState
    loss_fn(params, state, keys, images, labels, axis_name)
        -> (loss, (state_updates, metrics))
    after_update(state, axis_name) -> state
    encode(variables, images_uint8) -> features     (evaluation, no grad)

and ``ssl_jax.train.step.make_train_step`` runs it data-parallel.
"""

import jax.numpy as jnp

from ssl_jax import models

_DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}


def compute_dtype(name):
  if name not in _DTYPES:
    raise ValueError(
        f"config.model.dtype={name!r} is not supported; use one of "
        f"{sorted(_DTYPES)}.")
  return _DTYPES[name]


def build_backbone(model_config, bn_axis_name):
  """The encoder network named by ``config.model`` (ResNet family for now)."""
  if model_config.name != "resnet":
    raise ValueError(
        f"config.model.name={model_config.name!r} is not a known backbone; "
        "use 'resnet'.")
  return models.resnet(
      model_config.depth,
      width_multiplier=model_config.width_multiplier,
      stem=model_config.stem,
      conv_impl=model_config.conv_impl,
      bn_axis_name=bn_axis_name,
      dtype=compute_dtype(model_config.dtype),
  )
