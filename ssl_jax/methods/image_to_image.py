r"""What the image-to-image pretext tasks share: a ResNet encoder, a decoder.

Inpainting (``inpainting.py``), colorization (``colorization.py``) and
super-resolution (``super_resolution.py``) all remove something from an
image by a fixed rule and train a network to put it back; the pseudo-label
is the original. Each is one subclass of :class:`ImageToImageMethod` that
says what it removes (``corrupt``), what it predicts and how that is scored
(``pretext_loss``), and how its pictures are drawn (``panels``).

- Networks (:class:`EncoderDecoder`): the encoder is the ResNet of
  ``config.model`` (the network that is evaluated afterwards), here read at
  its last feature map (stride 8 with the CIFAR stem, 32 with the ImageNet
  stem); the decoder (``ssl_jax.models.UpsamplingDecoder``) doubles that
  map's resolution step by step back to the image (or to
  ``1 / output_stride`` of it), its widths the encoder's stage widths in
  reverse, with no skip connections, so everything the output needs passes
  through the encoder. An online linear probe on the stop-gradient pooled
  features tracks the representation (its gradient reaches only the probe),
  and the collapse diagnostics read the same features.
- Views: one augmented view per image (``config.augment``; the presets use
  crop and flip without colour distortion, which would change the target).
  The corruption is drawn per example from its own key, independent of the
  view's.
- Evaluation: ``encode`` gives the pooled features of the *uncorrupted*
  test-time view (what Context Encoders and Zhang et al. evaluate).
"""

import flax.linen as nn
import jax
import jax.numpy as jnp

from ssl_jax import augment
from ssl_jax import models
from ssl_jax.methods import base
from ssl_jax.train import probe as probe_lib


class EncoderDecoder(nn.Module):
  """Encoder (its pooled features and last map), decoder, online probe.

  ``__call__(inputs, train)`` gives ``output`` (the decoder's, float32),
  ``features`` (pooled encoder features) and ``probe_logits``; ``encode``
  is the evaluation encoder.
  """

  encoder: nn.Module
  decoder: nn.Module
  num_classes: int

  @nn.compact
  def __call__(self, inputs, train: bool):
    features, feature_map = self.encoder(inputs, train=train, return_map=True)
    output = self.decoder(feature_map, train=train)
    probe_logits = probe_lib.OnlineProbe(
        self.num_classes, name="online_probe")(features)
    return {"output": output, "features": features,
            "probe_logits": probe_logits}

  def encode(self, images):
    return self.encoder(images, train=False)


def build_decoder(backbone, model_config, output_size, out_channels,
                  bn_axis_name):
  """The upsampling decoder from ``backbone``'s last map to ``output_size``
  pixels: its widths are the ResNet's stage widths in reverse."""
  stages = len(backbone.stage_sizes)
  widths = [backbone.stage_width(i) for i in reversed(range(stages - 1))]
  return models.UpsamplingDecoder(
      output_size=output_size,
      widths=widths or [backbone.stage_width(0)],
      out_channels=out_channels,
      bn_axis_name=bn_axis_name,
      dtype=base.compute_dtype(model_config.dtype),
      conv_impl=model_config.conv_impl)


def denormalize(views, recipe):
  """Normalised views -> pixels in [0, 1] (``x * std + mean``)."""
  mean = jnp.asarray(recipe.mean, jnp.float32)
  std = jnp.asarray(recipe.std, jnp.float32)
  return views.astype(jnp.float32) * std + mean


class ImageToImageMethod(base.Method):
  """Corrupt one view, encode, decode, score against the original.

  Subclasses set ``name`` and ``panel_captions`` and write
  ``output_channels``, ``corrupt``, ``pretext_loss`` and ``panels``; they may set ``output_stride`` (the
  decoder stops at ``crop_size / output_stride``) and override
  ``wrap_encoder`` (e.g. to feed the ResNet only the L channel).
  """

  output_stride = 1
  panel_captions = ()  # the columns of ``reconstruct``'s pictures

  def __init__(self, config, num_classes, total_steps, axis_name=base.BATCH_AXIS):
    super().__init__(config, num_classes, total_steps, axis_name)
    self.view_recipes = (config.augment,)  # one view per image
    if config.model.name != "resnet":
      raise ValueError(
          f"{self.name} needs a convolutional encoder (config.model.name="
          f"'resnet'), got config.model.name={config.model.name!r}.")
    backbone = base.build_backbone(config.model, bn_axis_name=axis_name)
    crop = config.augment.crop_size
    if crop % self.output_stride:
      raise ValueError(
          f"config.augment.crop_size={crop} is not a multiple of the output "
          f"stride {self.output_stride} of {self.name}.")
    self.network = EncoderDecoder(
        encoder=self.wrap_encoder(backbone),
        decoder=build_decoder(backbone, config.model, crop // self.output_stride,
                              self.output_channels(config), axis_name),
        num_classes=num_classes)

  # -- What a subclass defines. ---------------------------------------------
  def output_channels(self, config):
    raise NotImplementedError

  def wrap_encoder(self, backbone):
    """The encoder the network and the evaluation use (default: as is)."""
    return backbone

  def corrupt(self, keys, views):
    """``(inputs, info)``: the network's inputs, and what the loss needs."""
    raise NotImplementedError

  def pretext_loss(self, output, views, info, state, axis_name):
    """``(loss, statistics, metrics)`` of the decoder's ``output``.

    ``statistics``: running statistics of the training data that the loss
    keeps (colorization's ab distribution), stored as top-level entries of
    the BatchNorm statistics collection, so they are replicated,
    checkpointed and restored with them; ``{}`` for none.
    """
    raise NotImplementedError

  def panels(self, output, views, inputs, info):
    """``(B, H, W, C)`` pixels in [0, 1], one per ``panel_captions``."""
    raise NotImplementedError

  # -- The shared step. -----------------------------------------------------
  def views(self, keys, images):
    """One augmented view of every image, from per-example keys."""
    return augment.batch_views(keys, images, self.view_recipes[0])

  def split_keys(self, keys):
    """Per-example keys -> ``(view keys, corruption keys)``."""
    split = jax.vmap(jax.random.split)(keys)
    return split[:, 0], split[:, 1]

  def loss_fn(self, params, state, keys, images, labels, axis_name):
    view_keys, corrupt_keys = self.split_keys(keys)
    views = self.views(view_keys, images)
    inputs, info = self.corrupt(corrupt_keys, views)
    outputs, batch_stats = self.online_forward(params, state.batch_stats,
                                               inputs)
    pretext_loss, statistics, metrics = self.pretext_loss(
        outputs["output"], views, info, state, axis_name)
    probe_loss, common = self.common_metrics(
        outputs["probe_logits"], labels, outputs["features"], axis_name)
    metrics.update(common, pretext_loss=pretext_loss)
    return pretext_loss + probe_loss, (
        {"batch_stats": {**batch_stats, **statistics}}, metrics)

  def encode(self, variables, images):
    """Pooled encoder features of the uncorrupted test-time view."""
    inputs = augment.batch_eval_views(images, self.view_recipes[0])
    return self.network.apply(variables, inputs, method=EncoderDecoder.encode)

  def reconstruct(self, variables, images, key):
    """The pictures of uint8 ``images`` (test-time view, corruption drawn
    from ``key``): a tuple of ``(B, H, W, C)`` arrays in [0, 1], one per
    ``panel_captions`` (BatchNorm in inference mode)."""
    views = augment.batch_eval_views(images, self.view_recipes[0])
    keys = jax.random.split(key, images.shape[0])
    inputs, info = self.corrupt(keys, views)
    outputs = self.network.apply(variables, inputs, train=False)
    panels = self.panels(outputs["output"], views, inputs, info)
    return tuple(jnp.clip(pixels.astype(jnp.float32), 0.0, 1.0)
                 for pixels in panels)
