r"""Context Encoders: Feature Learning by Inpainting.

Pathak, Krähenbühl, Donahue, Darrell, Efros (CVPR 2016),
https://arxiv.org/abs/1604.07379

- Networks: a convolutional encoder (the ResNet of ``config.model``, the
  network evaluated afterwards) reads the image with a region removed; a
  decoder (``image_to_image.EncoderDecoder``: upsampling convolutions from
  the encoder's last feature map, no skip connections, so the missing
  region must be described by the encoder) paints the whole image. The
  paper joins encoder and decoder by a channel-wise fully connected layer;
  here the convolutions of the decoder's first steps see the whole 4x4
  (CIFAR) map instead. An online linear probe tracks the representation.
- Views: one augmented view (crop and flip, no colour distortion), then a
  mask M (1 = removed, ``config.inpainting.mask``; Sec. 3.3 "Region
  masks"): ``'central'``, the centred square covering ``area_fraction`` of
  the image (a quarter: the paper's 64x64 hole in 128x128), or
  ``'random_blocks'``, the union of ``num_blocks`` squares of side
  ``block_fraction`` of the image at uniform random positions ("random
  block" masks; the paper's features come from random masks, as the fixed
  central hole's boundary gives the network a shortcut). Removed pixels
  are set to 0 in the normalised space, the data set's mean colour (the
  paper fills with the mean).
- Loss (eq. 1, the reconstruction term): the L2 distance on the removed
  region only,

  .. math::
     \mathcal{L}_{rec} = \frac{\sum_{b,h,w,c} M_{b,h,w}
        (F((1 - M) \odot x)_{b,h,w,c} - x_{b,h,w,c})^2}
        {\sum_{b,h,w,c} M_{b,h,w}},

  (``losses.reconstruction``; the paper sums, this averages, a constant
  factor) over the removed pixels of the whole global batch, plus the
  probe's cross-entropy. The adversarial term of eq. 2-3
  is optional in the issue and left out: the paper's own feature-learning
  results (Table 1: classification, detection, segmentation) train the
  encoder with it, but it is there for sharper pictures, not features.
  With random blocks the removed area differs per example, so each
  replica's mean is weighted by its share of the removed pixels (the
  step averages replicas equally): 8 devices give the loss of 1.
- State updates: the optimizer step and BatchNorm statistics.
"""

import jax
import jax.numpy as jnp
from jax import lax

from ssl_jax import augment
from ssl_jax import losses
from ssl_jax.methods import image_to_image

MASKS = ("central", "random_blocks")


class Inpainting(image_to_image.ImageToImageMethod):
  """Context-encoder inpainting with an online probe; see the module docstring."""

  name = "inpainting"
  panel_captions = ("original", "masked input", "prediction", "inpainted")

  def __init__(self, config, num_classes, total_steps,
               axis_name=image_to_image.base.BATCH_AXIS):
    settings = config.inpainting
    if settings.mask not in MASKS:
      raise ValueError(
          f"config.inpainting.mask={settings.mask!r}; use one of {MASKS}.")
    if settings.loss not in ("l1", "l2"):
      raise ValueError(
          f"config.inpainting.loss={settings.loss!r}; use 'l1' or 'l2'.")
    crop = config.augment.crop_size
    self.mask_kind = settings.mask
    self.area_fraction = float(settings.area_fraction)
    self.num_blocks = int(settings.num_blocks)
    self.block_size = max(1, int(round(crop * settings.block_fraction)))
    self.loss_kind = settings.loss
    super().__init__(config, num_classes, total_steps, axis_name)

  def output_channels(self, config):
    return len(config.augment.mean)

  def masks(self, keys, batch_size, height, width):
    """``(B, H, W, 1)`` float32 masks, 1 = removed, one per example key
    (the central hole needs no keys: ``keys`` may be None)."""
    if self.mask_kind == "central":
      mask = augment.central_square_mask(height, width, self.area_fraction)
      return jnp.broadcast_to(mask, (batch_size,) + mask.shape)
    return jax.vmap(lambda k: augment.random_block_mask(
        k, height, width, self.num_blocks, self.block_size))(keys)

  def corrupt(self, keys, views):
    masks = self.masks(keys, *views.shape[:3])
    inputs = views * (1.0 - masks).astype(views.dtype)  # 0 = the mean colour
    return inputs, {"mask": masks}

  def pretext_loss(self, output, views, info, state, axis_name):
    del state
    mask = info["mask"][..., 0]
    loss, aux = losses.reconstruction(output, views.astype(jnp.float32),
                                      mask=mask, kind=self.loss_kind)
    # This replica's masked mean, weighted by its share of the global
    # batch's removed pixels: the replicas' mean is then the global one.
    removed = jnp.sum(mask)
    if axis_name is not None:
      weight = removed / jnp.maximum(lax.pmean(removed, axis_name), 1.0)
      loss, aux = loss * weight, {k: v * weight for k, v in aux.items()}
    return loss, {}, {"masked_l1": aux["l1"], "masked_l2": aux["l2"],
                      "masked_fraction": jnp.mean(mask)}

  def panels(self, output, views, inputs, info):
    recipe = self.view_recipes[0]
    mask = info["mask"]
    original = image_to_image.denormalize(views, recipe)
    prediction = image_to_image.denormalize(output, recipe)
    return (original, image_to_image.denormalize(inputs, recipe), prediction,
            original * (1 - mask) + prediction * mask)
