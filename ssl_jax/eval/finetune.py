r"""Fine-tuning a pretrained encoder with a new linear classifier.

The protocol of SimCLR (Chen et al. 2020, Sec. 4.2 and Appendix B.5) and
SimCLR v2 (Chen et al. 2020b, Sec. 2.2): the whole encoder is trained
together with a new zero-initialised linear head, by cross-entropy on the
labelled examples, with light augmentation (random resized crop and
horizontal flip, no colour distortion), SGD with momentum and no weight
decay by default, and evaluated on the test split with the test-time
transform. Starting from ``'projection_layer'`` (SimCLR v2: "fine-tune from the
first layer of the projection head") the classifier sits on the output of
the projection head's first layer instead of on the encoder's features.

The training runs data-parallel through the same step as pretraining
(``ssl_jax.train.step.make_train_step``): ``FineTuneTask`` is a method
whose loss is the cross-entropy.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from ssl_jax import augment
from ssl_jax.train import optim
from ssl_jax.train import state as state_lib
from ssl_jax.train import step as step_lib


class FineTuneNetwork(nn.Module):
  """Pretrained encoder [+ first projection layer] + new linear classifier."""

  encoder: nn.Module
  projector: nn.Module | None  # set: classify the head's first layer
  num_classes: int

  @nn.compact
  def __call__(self, images, train: bool):
    x = self.encoder(images, train=train)
    if self.projector is not None:
      _, hiddens = self.projector(x, train=train, return_hidden=True)
      x = hiddens[1]  # hiddens[0] is the head's input
    return nn.Dense(self.num_classes, kernel_init=nn.initializers.zeros,
                    name="classifier")(x.astype(jnp.float32))


def finetune_recipe(recipe):
  """``recipe``'s crop, resize and flip without its colour distortions."""
  return augment.recipes.geometric_only(recipe)


class FineTuneTask:
  """Cross-entropy of the fine-tuning network, as a method for the train step."""

  def __init__(self, network, recipe):
    self.network = network
    self.recipe = recipe

  def loss_fn(self, params, state, keys, images, labels, axis_name):
    del axis_name
    views = augment.batch_views(keys, images, self.recipe)
    logits, new_vars = self.network.apply(
        {"params": params, "batch_stats": state.batch_stats}, views,
        train=True, mutable=["batch_stats"])
    loss = optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()
    metrics = {"accuracy": jnp.mean(jnp.argmax(logits, -1) == labels)}
    return loss, ({"batch_stats": new_vars["batch_stats"]}, metrics)

  def after_update(self, state, axis_name):
    del axis_name
    return state

  def logits(self, variables, images):
    inputs = augment.batch_eval_views(images, self.recipe)
    return self.network.apply(variables, inputs, train=False)


def _init_variables(network, pretrained, image_shape, rng):
  """New classifier from ``rng``; encoder (and projector) from ``pretrained``."""
  dummy = jnp.zeros((2,) + tuple(image_shape), jnp.float32)
  variables = jax.jit(network.init, static_argnames="train")(
      rng, dummy, train=False)
  variables = jax.tree.map(np.asarray, variables)
  params = dict(variables["params"])
  stats = dict(variables.get("batch_stats", {}))
  for module in ("encoder", "projector"):
    if module in params:
      params[module] = pretrained["params"][module]
      if module in pretrained.get("batch_stats", {}):
        stats[module] = pretrained["batch_stats"][module]
  return {"params": params, "batch_stats": stats}


def finetune(method, pretrained, train_arrays, test_arrays, num_classes,
             finetune_config, mesh, seed, extract_factory, num_epochs):
  """Fine-tunes ``method``'s pretrained encoder on ``train_arrays``.

  Args:
    method: the pretraining method (its ``network.encoder`` / ``projector``
      and first view recipe are reused).
    pretrained: ``{'params', 'batch_stats'}`` host arrays of the method.
    train_arrays: ``(images_uint8, labels)`` labelled examples to train on.
    test_arrays: ``(images_uint8, labels)`` of the test split.
    num_classes: classes of the classifier.
    finetune_config: ``config.eval.finetune`` (batch_size, optimizer fields
      as ``config.optim``, start: 'auto' | 'encoder' | 'projection_layer').
    mesh: devices to run on (the batch is split over them).
    seed: seeds the classifier init, the data order and the augmentations.
    extract_factory: ``representation.make_feature_extractor``-like
      ``(fn, mesh) -> extract(variables, images)``, for test-set logits.
    num_epochs: passes over ``train_arrays``.

  Returns:
    dict: ``top1``, ``top5`` (test split), ``steps``, ``batch_size``,
    ``num_labels``, ``from_projection_layer``, ``final_train_loss``.
  """
  images, labels = train_arrays
  num_devices = mesh.devices.size
  batch_size = min(finetune_config.batch_size,
                   len(images) // num_devices * num_devices)
  if batch_size < num_devices:
    raise ValueError(
        f"fine-tuning on {len(images)} labelled examples cannot fill one "
        f"batch on {num_devices} devices; use a larger label fraction.")
  steps_per_epoch = len(images) // batch_size
  total_steps = max(1, int(round(num_epochs * steps_per_epoch)))

  start = finetune_config.start
  if start not in ("auto", "encoder", "projection_layer"):
    raise ValueError(
        f"config.eval.finetune.start={start!r}; use 'auto' (the first "
        "projection layer for methods that define finetune_features, such as "
        "SimCLR v2), 'encoder' or 'projection_layer'.")
  from_projection = (hasattr(method, "finetune_features") if start == "auto"
                     else start == "projection_layer")
  projector = method.network.projector if from_projection else None
  network = FineTuneNetwork(method.network.encoder, projector, num_classes)
  task = FineTuneTask(network, finetune_recipe(method.view_recipes[0]))

  optim_config = finetune_config.copy_and_resolve_references()
  optim_config.warmup_steps = min(optim_config.warmup_steps, total_steps - 1)
  tx, _ = optim.make_optimizer(optim_config, total_steps, batch_size)
  rng = jax.random.PRNGKey(seed)
  init_rng, state_rng = jax.random.split(rng)
  crop = task.recipe.crop_size
  variables = _init_variables(network, pretrained,
                              (crop, crop, images.shape[-1]), init_rng)
  state = state_lib.create_train_state(state_rng, variables, tx)
  state = step_lib.replicate(state, mesh)
  train_step = step_lib.make_train_step(task, tx, mesh)

  order_rng = np.random.default_rng(seed)
  order = np.zeros((0,), np.int64)
  for _ in range(total_steps):
    if len(order) < batch_size:
      order = order_rng.permutation(len(images))
    batch, order = order[:batch_size], order[batch_size:]
    batch_images, batch_labels = step_lib.shard_batch(
        (images[batch], labels[batch].astype(np.int32)), mesh)
    state, metrics = train_step(state, batch_images, batch_labels)
  loss = float(jax.device_get(metrics["loss"]))

  final = {"params": state.params, "batch_stats": state.batch_stats}
  final = jax.tree.map(lambda x: np.asarray(x.addressable_data(0)), final)
  logits = extract_factory(task.logits, mesh)(final, test_arrays[0])
  test_labels = np.asarray(test_arrays[1])
  ranked = np.argsort(-logits, axis=1)[:, :5]
  hits = ranked == test_labels[:, None]
  return {"top1": float(np.mean(hits[:, 0])),
          "top5": float(np.mean(np.any(hits, axis=1))),
          "steps": total_steps, "batch_size": batch_size,
          "num_labels": int(len(images)),
          "from_projection_layer": bool(from_projection),
          "final_train_loss": loss}
