r"""Super-resolution as a pretext task.

The task of SRCNN (Dong, Loy, He, Tang, ECCV 2014,
https://arxiv.org/abs/1501.00092) and of SRGAN's generator (Ledig et al.,
CVPR 2017, https://arxiv.org/abs/1609.04802): recover an image from its
downsampled copy. As self-supervision the pseudo-label is the image itself
and the learnt encoder is what is kept.

- Networks: the ResNet of ``config.model`` reads the interpolated
  low-resolution image (SRCNN's input: downsampled by
  ``config.super_resolution.factor``, x2 or x4, then enlarged back); a
  decoder (``image_to_image.EncoderDecoder``, upsampling convolutions from
  the encoder's last feature map, no skip connections) predicts the
  high-resolution image. With ``config.super_resolution.residual`` (the
  default) the decoder predicts the residual added to the interpolated
  input (VDSR, Kim et al. 2016), so it learns the missing detail rather
  than the whole image. An online linear probe tracks the representation.
- Views: one augmented view (crop and flip, no colour distortion); its
  degradation is ``augment.degrade_for_super_resolution``: box
  downsampling by the factor, then ``config.super_resolution.upsample``
  (bilinear or nearest) back. Both are linear, so degrading the normalised
  view equals normalising the degraded image.
- Loss: L1 or L2 (``config.super_resolution.loss``) over all pixels of the
  (normalised) image, ``losses.reconstruction``,

  .. math::
     \mathcal{L}_2 = \frac{1}{BHWC} \sum \big(\hat x - x\big)^2, \quad
     \hat x = \mathrm{up}(\mathrm{down}(x)) + F(\mathrm{up}(\mathrm{down}(x))),

  plus the probe's cross-entropy. The metric ``interpolation_l2`` is the
  same error of the interpolated input alone, the baseline the network has
  to beat.
- State updates: the optimizer step and BatchNorm statistics.

Evaluation features come from the full-resolution test view.
"""

import jax
import jax.numpy as jnp

from ssl_jax import augment
from ssl_jax import losses
from ssl_jax.methods import image_to_image


class SuperResolution(image_to_image.ImageToImageMethod):
  """x2 / x4 super-resolution with an online probe; see the module docstring."""

  name = "super_resolution"
  panel_captions = ("low-res", "interpolated", "super-resolved", "original")

  def __init__(self, config, num_classes, total_steps,
               axis_name=image_to_image.base.BATCH_AXIS):
    settings = config.super_resolution
    crop = config.augment.crop_size
    if settings.factor < 2 or crop % settings.factor:
      raise ValueError(
          f"config.super_resolution.factor={settings.factor} must be at least "
          f"2 and divide config.augment.crop_size={crop}.")
    if settings.loss not in ("l1", "l2"):
      raise ValueError(
          f"config.super_resolution.loss={settings.loss!r}; use 'l1' or 'l2'.")
    if settings.upsample not in ("bilinear", "nearest"):
      raise ValueError(
          f"config.super_resolution.upsample={settings.upsample!r}; use "
          "'bilinear' or 'nearest'.")
    self.factor = int(settings.factor)
    self.loss_kind = settings.loss
    self.upsample = settings.upsample
    self.residual = bool(settings.residual)
    super().__init__(config, num_classes, total_steps, axis_name)

  def output_channels(self, config):
    return len(config.augment.mean)

  def corrupt(self, keys, views):
    del keys  # deterministic
    inputs = jax.vmap(lambda v: augment.degrade_for_super_resolution(
        v.astype(jnp.float32), self.factor, self.upsample))(views)
    inputs = inputs.astype(views.dtype)
    return inputs, {"inputs": inputs}

  def predict(self, output, inputs):
    """The high-resolution estimate from the decoder's output."""
    return output + inputs.astype(jnp.float32) if self.residual else output

  def pretext_loss(self, output, views, info, state, axis_name):
    del state, axis_name
    inputs = info["inputs"]
    target = views.astype(jnp.float32)
    loss, aux = losses.reconstruction(self.predict(output, inputs), target,
                                      kind=self.loss_kind)
    _, baseline = losses.reconstruction(inputs.astype(jnp.float32), target)
    return loss, {}, {"l1": aux["l1"], "l2": aux["l2"],
                      "interpolation_l2": baseline["l2"]}

  def panels(self, output, views, inputs, info):
    recipe = self.view_recipes[0]
    low = jax.vmap(lambda v: augment.upsample(
        augment.downsample(v.astype(jnp.float32), self.factor), self.factor,
        "nearest"))(views)
    return (image_to_image.denormalize(low, recipe),
            image_to_image.denormalize(inputs, recipe),
            image_to_image.denormalize(self.predict(output, inputs), recipe),
            image_to_image.denormalize(views, recipe))
