"""What every method shares: its backbone from the config, the online network
(encoder, heads, online probe), two augmented views, the step-0 state, the
target-network update, and the metrics every method logs.

A method is an object with

    init_state(rng, image_shape, tx) -> TrainState
    loss_fn(params, state, keys, images, labels, axis_name)
        -> (loss, (state_updates, metrics))
    after_update(state, axis_name) -> state
    encode(variables, images_uint8) -> features     (evaluation, no grad)
    refresh(run, state, step) -> (state, scalars or None)   (host, between steps)

and ``ssl_jax.train.step.make_train_step`` runs it data-parallel. A method
file subclasses ``Method``, builds its networks in ``__init__`` and writes
its views, loss and state updates; everything below is the common part.
"""

from typing import Optional

import flax.linen as nn
import jax
from jax import lax
import jax.numpy as jnp

from ssl_jax import augment
from ssl_jax import models
from ssl_jax.eval import collapse
from ssl_jax.train import momentum as momentum_lib
from ssl_jax.train import probe as probe_lib
from ssl_jax.train import state as state_lib
from ssl_jax.train.step import BATCH_AXIS

_DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}


def compute_dtype(name):
  if name not in _DTYPES:
    raise ValueError(
        f"config.model.dtype={name!r} is not supported; use one of "
        f"{sorted(_DTYPES)}.")
  return _DTYPES[name]


def build_backbone(model_config, bn_axis_name):
  """The encoder network named by ``config.model``: ``'resnet'`` or ``'vit'``.

  A ViT (``ssl_jax.models.vit``) reads ``size`` (tiny | small | base |
  large | huge | custom) and ``patch_size``; ``width``, ``depth`` and
  ``num_heads`` override the size's values when set (all three for
  'custom'); ``mlp_ratio``, ``class_token`` and ``pool`` (mean | token) are
  optional. It has no BatchNorm, so ``bn_axis_name`` does not apply.
  """
  if model_config.name == "vit":
    return models.vit(
        model_config.get("size"),
        patch_size=model_config.patch_size,
        width=model_config.get("width"),
        depth=model_config.get("depth"),
        num_heads=model_config.get("num_heads"),
        mlp_ratio=model_config.get("mlp_ratio", 4.0),
        class_token=model_config.get("class_token", True),
        pool=model_config.get("pool", "mean"),
        dtype=compute_dtype(model_config.dtype),
    )
  if model_config.name != "resnet":
    raise ValueError(
        f"config.model.name={model_config.name!r} is not a known backbone; "
        "use 'resnet' or 'vit'.")
  return models.resnet(
      model_config.depth,
      width_multiplier=model_config.width_multiplier,
      stem=model_config.stem,
      conv_impl=model_config.conv_impl,
      bn_axis_name=bn_axis_name,
      dtype=compute_dtype(model_config.dtype),
      output_stride=model_config.get("output_stride"),
  )


def build_mlp(model_config, num_layers, hidden_dim, out_dim, bn_axis_name,
              last_bn=False, last_bn_scale=False, out_bias=True):
  """An MLP head of ``num_layers`` Dense layers (Dense-BN-ReLU between).

  ``last_bn`` adds BatchNorm on the output (no shift; a scale with
  ``last_bn_scale``); ``out_bias=False`` drops the output layer's bias; see
  ``ssl_jax.models.MLPHead``.
  """
  if num_layers < 1:
    raise ValueError(f"an MLP head needs at least 1 layer, got {num_layers}.")
  return models.MLPHead(
      hidden_dims=(hidden_dim,) * (num_layers - 1),
      out_dim=out_dim,
      last_bn=last_bn,
      last_bn_scale=last_bn_scale,
      out_bias=out_bias,
      bn_axis_name=bn_axis_name,
      dtype=compute_dtype(model_config.dtype),
  )


def global_loss_as_replica_mean(loss, axis_name):
  """A loss already reduced over ``axis_name``, as the step's per-replica mean.

  The step (``ssl_jax.train.step``) takes each replica's loss to be the mean
  over that replica's examples: it divides it by the replica count and sums
  the gradients over replicas. A batch-statistic loss (``losses.barlow_twins``,
  ``losses.vicreg``) is instead the global loss, identical on every replica,
  and under ``shard_map`` its gradient with respect to the replicated
  parameters comes back already summed. Casting it to a per-replica
  (varying) value keeps its value and makes the step's sum count the R
  copies once each, so that with its 1/R the gradient is that of the global
  loss: 8 devices give the same update as 1.

  Args:
    loss: scalar, the same on every replica (reduced with ``lax.psum``).
    axis_name: the step's batch axis, or None outside a mapped step.

  Returns:
    ``loss``, marked as varying over ``axis_name``.
  """
  if axis_name is None:
    return loss
  return lax.pcast(loss, axis_name, to="varying")


class SiameseNetwork(nn.Module):
  """Encoder f, projector g, optional predictor q, and the online probe.

  ``__call__`` gives ``features`` h = f(x), ``projections`` z = g(h),
  ``predictions`` q(z) (None without a predictor) and ``probe_logits`` of the
  online probe on stop_gradient(h). ``project`` is g(f(x)) alone: the path
  of a target / key network, which holds only ``encoder`` and ``projector``.
  """

  encoder: nn.Module
  projector: nn.Module
  predictor: Optional[nn.Module]
  num_classes: int

  @nn.compact
  def __call__(self, images, train: bool):
    features = self.encoder(images, train=train)
    projections = self.projector(features, train=train)
    predictions = (None if self.predictor is None
                   else self.predictor(projections, train=train))
    probe_logits = probe_lib.OnlineProbe(
        self.num_classes, name="online_probe")(features)
    return {"features": features, "projections": projections,
            "predictions": predictions, "probe_logits": probe_logits}

  def project(self, images, train: bool):
    return self.projector(self.encoder(images, train=train), train=train)

  def encode(self, images):
    return self.encoder(images, train=False)


class Method:
  """The common part of a two-view method built on a ``SiameseNetwork``.

  Subclasses set ``name``, build ``self.network`` in ``__init__`` (after
  calling this one) and write ``loss_fn``. A method with a momentum network
  sets ``target_modules`` (the submodules the EMA mirrors),
  ``self.base_momentum`` and ``self.momentum_schedule``.
  """

  name = None
  target_modules = ()
  # Record fields besides "image" and "label" that the step passes to
  # ``loss_fn``: with any, ``labels`` is the dict ``{"label": class, field:
  # the batch's field, ...}`` (every leaf split over the batch alike), e.g.
  # "index" (the record's index in the training set, int32) for methods with
  # per-example state, or the second modality of a paired source ("audio").
  # Empty: ``labels`` is the int32 class array.
  batch_fields = ()
  # True: the method keeps per-example state in ``TrainState.extra``
  # (DeepCluster's pseudo-labels; it reads the "index" field), and its
  # ``init_state`` also takes ``num_examples=``, the number of training
  # records.
  uses_example_index = False

  def __init__(self, config, num_classes, total_steps, axis_name=BATCH_AXIS):
    self.config = config
    self.num_classes = num_classes
    self.total_steps = total_steps
    self.axis_name = axis_name
    second = config.get("augment_view2") or config.augment
    self.view_recipes = (config.augment, second)
    self.network = None

  def init_inputs(self, image_shape):
    """A batch of 2 dummy network inputs for ``image_shape`` records."""
    size = self.view_recipes[0].crop_size
    return jnp.zeros((2, size, size, image_shape[-1]), jnp.float32)

  def init_state(self, rng, image_shape, tx):
    init_rng, state_rng = jax.random.split(rng)
    dummy = self.init_inputs(image_shape)
    # One compiled program: op-by-op init compiles a PRNG kernel per shape.
    variables = jax.jit(self.network.init, static_argnames="train")(
        init_rng, dummy, train=False)
    extra = self.init_extra_state(jax.random.fold_in(init_rng, 1), variables)
    return state_lib.create_train_state(state_rng, variables, tx, **extra)

  def extra_evaluation(self, run, variables):
    """Rows this method adds to its evaluation report, beside the image
    protocols: ``{name: {"top1": float, "protocol": description, ...}}``,
    computed for the trained and the random-init ``variables`` (host
    arrays) of ``run`` (``ssl_jax.train.loop.Run``). Cross-modal methods
    evaluate their other encoder here; none by default."""
    del run, variables
    return {}

  def init_extra_state(self, rng, variables):
    """TrainState fields beyond the online networks (target, queue)."""
    del rng
    if not self.target_modules:
      return {}
    ema_params, ema_batch_stats = momentum_lib.init_target(
        variables, self.target_modules)
    return {"ema_params": ema_params, "ema_batch_stats": ema_batch_stats}

  def views(self, keys, images):
    """Two augmented views of every image, from per-example keys."""
    pair_keys = jax.vmap(jax.random.split)(keys)
    view1 = augment.batch_views(pair_keys[:, 0], images, self.view_recipes[0])
    view2 = augment.batch_views(pair_keys[:, 1], images, self.view_recipes[1])
    return view1, view2

  def online_forward(self, params, batch_stats, images):
    """The online network in training mode: ``(outputs, new batch_stats)``."""
    outputs, new_vars = self.network.apply(
        {"params": params, "batch_stats": batch_stats}, images, train=True,
        mutable=["batch_stats"])
    return outputs, new_vars["batch_stats"]

  def target_forward(self, state, images):
    """Target projections g_xi(f_xi(x)), no gradient: ``(z, new stats)``."""
    return momentum_lib.target_forward(
        self.network, state, images, method=SiameseNetwork.project, train=True)

  def momentum(self, step):
    """The EMA momentum of the update that follows optimizer step ``step``."""
    return momentum_lib.momentum_at(step, self.base_momentum, self.total_steps,
                                    self.momentum_schedule)

  def after_update(self, state, axis_name):
    """The EMA update of the target networks (identity without them)."""
    del axis_name
    if not self.target_modules:
      return state
    return momentum_lib.update_target(state, self.momentum(state.step - 1))

  def refresh(self, run, state, step):
    """Host-side state update before optimizer step ``step``; identity here.

    ``ssl_jax.train.loop.train`` calls it before every step (a resumed run
    from its first step on). A method that updates its state from the
    whole training set (DeepCluster reclusters once per epoch) does it here,
    with the run's pieces (``run.tx``, ``run.mesh``, and
    ``run.training_set_features``); arrays it puts into the state go back
    replicated on ``run.mesh`` (``ssl_jax.train.step.replicate``), with the
    structure, shapes and dtypes they had, so the step does not recompile.
    Everything it does must follow from ``state`` and ``step`` alone, so
    that a resumed run repeats it exactly.

    Returns:
      ``(state, scalars)``: ``scalars`` a dict the loop logs at ``step``
      (metrics file and ``logging.info``), or None when nothing happened.
    """
    del run, step
    return state, None

  def common_metrics(self, probe_logits, labels, embeddings, axis_name):
    """The online probe's loss and the metrics every method logs.

    Returns ``(probe_loss, metrics)``: ``probe_loss`` and ``probe_acc``, and
    the collapse diagnostics of ``embeddings`` over the global batch.
    """
    loss, metrics = probe_lib.probe_loss(probe_logits, labels)
    metrics.update(collapse.collapse_metrics(
        embeddings.astype(jnp.float32), axis_name=axis_name))
    return loss, metrics

  def encode(self, variables, images):
    """Representations h of uint8 images under the test-time transform."""
    inputs = augment.batch_eval_views(images, self.view_recipes[0])
    return self.network.apply(variables, inputs, method=SiameseNetwork.encode)
