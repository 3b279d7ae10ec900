"""What the context methods share: parts of an example in, a shared encoder,
a classifier over the pretext labels.

Rotation prediction, relative patch position, jigsaw puzzles and temporal
order are all the same machine (Doersch et al. 2015 call it a "siamese"
or late-fusion network; Noroozi & Favaro the context-free network): a method
cuts each example into ``n`` parts (four rotated views, two patches, nine
tiles, three or four frames) and gives it a pretext label; the encoder f
(the ResNet of ``config.model``, shared by all parts) embeds every part on
its own; the classifier c sees either each part's features alone (rotation:
one label per rotated view) or their concatenation (one label per example),
and is trained with cross-entropy (``losses.classification``).

A method file subclasses :class:`ContextMethod` and writes

    pretext_batch(keys, images) -> (parts (B, n, h, w, C), targets (B, G))
    num_pretext_classes() -> int

(G = n with ``classify_each_part``, else 1), and may override
``eval_parts`` to evaluate on parts rather than on the whole image.

Evaluation. ``encode`` gives f's pooled features of the test-time view of
the whole image, or, where ``eval_parts`` returns parts (the patch-based
methods, whose encoder only ever saw small tiles), the concatenation of the
features of those parts: the representation the classifier itself reads.
``pretext_accuracy`` scores the pretext task on held-out data (the training
loop reports it next to kNN and linear).
"""

import flax.linen as nn
import jax
import jax.numpy as jnp

from ssl_jax import augment
from ssl_jax import losses
from ssl_jax.eval import collapse
from ssl_jax.methods import base
from ssl_jax.train import probe as probe_lib


class ContextNetwork(nn.Module):
  """Shared encoder f over the parts of an example, classifier c on top.

  ``__call__(parts (B, n, h, w, C))`` gives ``features`` (B, n, D),
  ``logits`` (B, G, classes) with G = n when ``classify_each_part`` (c on
  each part's features) and G = 1 otherwise (c on the n features
  concatenated), and, with ``num_probe_classes``, ``probe_logits`` of the
  online probe on stop_gradient of part 0's features.
  """

  encoder: nn.Module
  classifier: nn.Module
  classify_each_part: bool
  num_probe_classes: int = 0

  @nn.compact
  def __call__(self, parts, train: bool):
    features = self.encode_parts(parts, train=train)
    b, n, d = features.shape
    rows = features.reshape((b * n, d) if self.classify_each_part
                            else (b, n * d))
    logits = self.classifier(rows, train=train)
    outputs = {"features": features,
               "logits": logits.reshape((b, -1, logits.shape[-1]))}
    if self.num_probe_classes:
      outputs["probe_logits"] = probe_lib.OnlineProbe(
          self.num_probe_classes, name="online_probe")(features[:, 0])
    return outputs

  def encode_parts(self, parts, train: bool = False):
    """f of every part: ``(B, n, h, w, C)`` -> ``(B, n, D)``."""
    b, n = parts.shape[:2]
    features = self.encoder(parts.reshape((b * n,) + parts.shape[2:]),
                            train=train)
    return features.reshape((b, n, -1))

  def encode(self, images):
    return self.encoder(images, train=False)


class ContextMethod(base.Method):
  """The common part of a context method; see the module docstring.

  Subclasses set ``name`` (also the name of their config section, which
  holds ``head_layers`` and ``head_hidden_dim``), ``classify_each_part``
  and ``online_probe``, and write ``pretext_batch`` and
  ``num_pretext_classes``.
  """

  classify_each_part = False
  # An online probe on part 0's features: only where part 0 is the whole
  # image (rotation's upright view); a tile or a frame of two digits says
  # little about the image's class.
  online_probe = False

  def __init__(self, config, num_classes, total_steps, axis_name=base.BATCH_AXIS):
    super().__init__(config, num_classes, total_steps, axis_name)
    self.view_recipes = (config.augment,)
    section = config[self.name]
    self.network = ContextNetwork(
        encoder=base.build_backbone(config.model, bn_axis_name=axis_name),
        classifier=base.build_mlp(
            config.model, section.head_layers, section.head_hidden_dim,
            self.num_pretext_classes(), bn_axis_name=axis_name),
        classify_each_part=self.classify_each_part,
        num_probe_classes=num_classes if self.online_probe else 0)

  def num_pretext_classes(self):
    raise NotImplementedError

  def pretext_batch(self, keys, images):
    """``(parts, targets)`` of a batch, from one PRNG key per example."""
    raise NotImplementedError

  def eval_parts(self, views):
    """Parts that evaluation encodes instead of the whole view (None)."""
    del views
    return None

  def init_inputs(self, image_shape):
    """Dummy parts of the shape ``pretext_batch`` gives for 2 records."""
    keys = jax.random.split(jax.random.PRNGKey(0), 2)
    images = jax.ShapeDtypeStruct((2,) + tuple(image_shape), jnp.uint8)
    parts, _ = jax.eval_shape(self.pretext_batch, keys, images)
    return jnp.zeros(parts.shape, jnp.float32)

  def loss_fn(self, params, state, keys, images, labels, axis_name):
    parts, targets = self.pretext_batch(keys, images)
    outputs, batch_stats = self.online_forward(params, state.batch_stats,
                                               parts)
    pretext_loss, aux = losses.classification(outputs["logits"], targets)
    features = outputs["features"][:, 0]
    if self.online_probe:
      probe_loss, metrics = self.common_metrics(
          outputs["probe_logits"], labels, features, axis_name)
    else:
      probe_loss = 0.0
      metrics = collapse.collapse_metrics(features.astype(jnp.float32),
                                          axis_name=axis_name)
    metrics.update(pretext_loss=pretext_loss, pretext_acc=aux["accuracy"])
    return pretext_loss + probe_loss, ({"batch_stats": batch_stats}, metrics)

  def pretext_accuracy(self, variables, keys, images):
    """Per example, the fraction of its pretext targets the classifier
    gets right, in evaluation mode (running BatchNorm statistics): ``(B,)``."""
    parts, targets = self.pretext_batch(keys, images)
    logits = self.network.apply(variables, parts, train=False)["logits"]
    return jnp.mean(jnp.argmax(logits, -1) == targets, axis=-1)

  def encode(self, variables, images):
    views = augment.batch_eval_views(images, self.view_recipes[0])
    parts = self.eval_parts(views)
    if parts is None:
      return self.network.apply(variables, views, method="encode")
    features = self.network.apply(variables, parts,
                                  method=ContextNetwork.encode_parts)
    return features.reshape((features.shape[0], -1))


def split_keys(keys, num):
  """``num`` independent keys per example: ``(B, num)`` keys from ``(B,)``."""
  return jax.vmap(lambda k: jax.random.split(k, num))(keys)


def centred_tiles(views, tile_size, normalize_tiles):
  """The 3x3 grid of centred ``tile_size`` tiles of every view, in reading
  order: ``(B, 9, tile, tile, C)`` (``augment.jigsaw_tiles`` without
  jitter and with the identity permutation)."""
  identity = jnp.arange(9)
  unused_key = jax.random.PRNGKey(0)
  return jax.vmap(lambda v: augment.jigsaw_tiles(
      unused_key, v, identity, tile_size, jitter=False,
      normalize_tiles=normalize_tiles))(views)

