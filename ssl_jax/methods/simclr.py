"""SimCLR: A Simple Framework for Contrastive Learning of Visual Representations.

Chen, Kornblith, Norouzi, Hinton (ICML 2020), https://arxiv.org/abs/2002.05709

- Networks: encoder f (ResNet) gives the representation h = f(x); projection
  head g (MLP: Dense-BN-ReLU-Dense) gives z = g(h), used by the loss only; an
  online linear probe on stop_gradient(h) tracks representation quality
  during pretraining without shaping it.
- Views: two independent draws t, t' of the augmentation recipe
  (``config.augment``) per image, made on device.
- Loss: NT-Xent over the 2N views of the global batch (2N - 2 negatives per
  anchor, from every replica), temperature ``config.simclr.temperature``;
  plus the probe's cross-entropy (its gradient reaches only the probe).
- State updates: none beyond the optimizer (no momentum encoder, no queue).
"""

import flax.linen as nn
import jax
from jax import lax
import jax.numpy as jnp
import optax

from ssl_jax import augment
from ssl_jax import losses
from ssl_jax import models
from ssl_jax.eval import collapse
from ssl_jax.methods import base
from ssl_jax.train import state as state_lib
from ssl_jax.train.step import BATCH_AXIS


class SimCLRNetwork(nn.Module):
  """h = f(x), z = g(h), and the online probe's logits on stop_gradient(h)."""

  encoder: nn.Module
  projector: nn.Module
  num_classes: int

  @nn.compact
  def __call__(self, images, train: bool):
    features = self.encoder(images, train=train)
    projections = self.projector(features, train=train)
    probe_logits = nn.Dense(self.num_classes, name="online_probe")(
        lax.stop_gradient(features).astype(jnp.float32))
    return features, projections, probe_logits

  def encode(self, images):
    return self.encoder(images, train=False)


class SimCLR:
  """SimCLR with its online probe; see the module docstring."""

  name = "simclr"

  def __init__(self, config, num_classes, axis_name=BATCH_AXIS):
    self.recipe = config.augment
    self.temperature = config.simclr.temperature
    encoder = base.build_backbone(config.model, bn_axis_name=axis_name)
    hidden = config.simclr.proj_hidden_dim
    projector = models.MLPHead(
        hidden_dims=(hidden,) * (config.simclr.proj_layers - 1),
        out_dim=config.simclr.proj_dim,
        bn_axis_name=axis_name,
        dtype=base.compute_dtype(config.model.dtype),
    )
    self.network = SimCLRNetwork(encoder, projector, num_classes)

  def init_state(self, rng, image_shape, tx):
    init_rng, state_rng = jax.random.split(rng)
    size = self.recipe.crop_size
    dummy = jnp.zeros((2, size, size, image_shape[-1]), jnp.float32)
    # One compiled program: op-by-op init compiles a PRNG kernel per shape.
    variables = jax.jit(self.network.init, static_argnames="train")(
        init_rng, dummy, train=False)
    return state_lib.create_train_state(state_rng, variables, tx)

  def views(self, keys, images):
    """Two augmented views of every image, from per-example keys."""
    pair_keys = jax.vmap(jax.random.split)(keys)
    view1 = augment.batch_views(pair_keys[:, 0], images, self.recipe)
    view2 = augment.batch_views(pair_keys[:, 1], images, self.recipe)
    return view1, view2

  def loss_fn(self, params, state, keys, images, labels, axis_name):
    view1, view2 = self.views(keys, images)
    batch_size = images.shape[0]
    (_, projections, probe_logits), new_vars = self.network.apply(
        {"params": params, "batch_stats": state.batch_stats},
        jnp.concatenate([view1, view2]), train=True, mutable=["batch_stats"])
    z1, z2 = projections[:batch_size], projections[batch_size:]
    contrastive_loss, aux = losses.nt_xent(
        z1, z2, temperature=self.temperature, axis_name=axis_name)
    probe_labels = jnp.concatenate([labels, labels])
    probe_loss = optax.softmax_cross_entropy_with_integer_labels(
        probe_logits, probe_labels).mean()
    metrics = {
        "contrastive_loss": contrastive_loss,
        "contrastive_acc": aux["contrastive_acc"],
        "pos_sim": aux["pos_sim"],
        "neg_sim": aux["neg_sim"],
        "probe_loss": probe_loss,
        "probe_acc": jnp.mean(jnp.argmax(probe_logits, -1) == probe_labels),
        "embedding_std": collapse.embedding_std(z1.astype(jnp.float32)),
    }
    state_updates = {"batch_stats": new_vars["batch_stats"]}
    return contrastive_loss + probe_loss, (state_updates, metrics)

  def after_update(self, state, axis_name):
    del axis_name
    return state

  def encode(self, variables, images):
    """Representations h of uint8 images under the test-time transform."""
    inputs = augment.batch_eval_views(images, self.recipe)
    return self.network.apply(variables, inputs, method=SimCLRNetwork.encode)
