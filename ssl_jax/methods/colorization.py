r"""Colorful Image Colorization.

Zhang, Isola, Efros (ECCV 2016), https://arxiv.org/abs/1603.08511

- Networks: the encoder (:class:`LightnessInput` around the ResNet of
  ``config.model``, the network evaluated afterwards) sees only the
  lightness L of the CIE Lab image, scaled to [-1, 1] (``(L - 50) / 50``);
  a decoder (``image_to_image.EncoderDecoder``, upsampling convolutions, no
  skip connections) predicts the colour at ``1 / output_stride`` of the
  resolution (the paper predicts at a quarter; ``output_stride`` 2 on
  CIFAR-10). An online linear probe tracks the representation.
- Views: one augmented view (crop and flip, no colour distortion: the
  colours are the labels). Target: the ab channels of the view, averaged
  over ``output_stride x output_stride`` blocks.
- Loss, ``config.colorization.loss``:

  * ``'classification'`` (the paper's, eq. 2-4; ``losses.colorization``):
    the decoder gives logits over Q quantised ab bins (a grid of
    ``grid`` = 10 in ab units, ``losses.pretext.ab_bins``: all 23 x 23 = 529
    centres, not the paper's 313 in-gamut ones, see its docstring), the
    target is soft-encoded onto its k = 5 nearest bins (sigma 5), and the
    cross-entropy of each pixel is weighted by the rebalancing weight of its
    nearest bin, :math:`w \propto ((1 - \lambda) \tilde p + \lambda / Q)^{-1}`
    with :math:`\lambda = 1/2`, :math:`\tilde p` the empirical ab
    distribution of the training data smoothed by a Gaussian (sigma 5),
    normalised so that :math:`\mathbb{E}_{\tilde p}[w] = 1`
    (``losses.pretext.rebalancing_weights``; ``rebalance=False`` drops them). The
    paper counts :math:`p` over ImageNet beforehand; here it is the running
    mean of the per-batch bin distributions of every image trained on so
    far (summed over replicas, so the same on all of them), kept as
    ``batch_stats['ab_prior']`` next to the BatchNorm statistics, so it is
    checkpointed and resumed with them. Predictions are
    decoded by the annealed mean (eq. 5, T = 0.38).
  * ``'regression'``: the plain L2 baseline the paper compares against
    (its Sec. 2.1, which it shows gives desaturated colours): the decoder
    gives ab / 100 directly.

  Plus the probe's cross-entropy. Metrics: ``ab_rmse`` of the decoded
  colours in ab units, and for classification the bin accuracy.
- State updates: the optimizer step, BatchNorm statistics, and the running
  ab distribution.

Pictures: ``reconstruct`` gives the grey input, the predicted colour (the
decoded ab, enlarged bilinearly, joined with the true L and converted back
to RGB) and the true colour.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import lax

from ssl_jax import augment
from ssl_jax import losses
from ssl_jax.methods import image_to_image

LOSSES = ("classification", "regression")
AB_SCALE = 100.0  # the regression target is ab / AB_SCALE
PRIOR = "ab_prior"  # the running ab distribution's key in batch_stats


def lab_of_views(views, mean, std):
  """CIE Lab ``(..., 3)`` of views normalised with ``mean`` and ``std``
  (de-normalised, clipped to [0, 1], converted)."""
  rgb = jnp.clip(views.astype(jnp.float32) * jnp.asarray(std, jnp.float32)
                 + jnp.asarray(mean, jnp.float32), 0.0, 1.0)
  return augment.rgb_to_lab(rgb)


class LightnessInput(nn.Module):
  """The ResNet fed only the L channel of the normalised RGB views."""

  backbone: nn.Module
  mean: tuple
  std: tuple

  def __call__(self, views, train: bool, return_map: bool = False):
    lightness = lab_of_views(views, self.mean, self.std)[..., :1]
    return self.backbone((lightness - 50.0) / 50.0, train=train,
                         return_map=return_map)


def pool_blocks(x, factor):
  """Means over ``factor x factor`` blocks of ``(..., H, W, C)`` (any
  number of channels, unlike ``augment.downsample``'s images)."""
  if factor == 1:
    return x
  *lead, h, w, c = x.shape
  return jnp.mean(x.reshape(*lead, h // factor, factor, w // factor, factor, c),
                  axis=(-4, -2))


class Colorization(image_to_image.ImageToImageMethod):
  """Zhang et al.'s colorization with an online probe; see the module docstring."""

  name = "colorization"
  panel_captions = ("input (L)", "predicted colour", "true colour")

  def __init__(self, config, num_classes, total_steps,
               axis_name=image_to_image.base.BATCH_AXIS):
    settings = config.colorization
    if settings.loss not in LOSSES:
      raise ValueError(
          f"config.colorization.loss={settings.loss!r}; use one of {LOSSES}.")
    if len(config.augment.mean) != 3:
      raise ValueError(
          "colorization needs RGB images (3 channels); the data set has "
          f"{len(config.augment.mean)} (config.augment.mean). Use a colour "
          "data set such as CIFAR-10.")
    self.loss_kind = settings.loss
    self.output_stride = int(settings.output_stride)
    self.bins = losses.pretext.ab_bins(grid=settings.grid)
    self.sigma = float(settings.sigma)
    self.num_neighbours = int(settings.num_neighbours)
    self.rebalance = bool(settings.rebalance)
    self.rebalance_lambda = float(settings.rebalance_lambda)
    self.temperature = float(settings.temperature)
    super().__init__(config, num_classes, total_steps, axis_name)

  def output_channels(self, config):
    return self.bins.shape[0] if self.loss_kind == "classification" else 2

  def wrap_encoder(self, backbone):
    recipe = self.view_recipes[0]
    return LightnessInput(backbone, tuple(recipe.mean), tuple(recipe.std))

  def init_state(self, rng, image_shape, tx):
    """The base state, plus the uniform ab prior for the classification loss."""
    state = super().init_state(rng, image_shape, tx)
    if self.loss_kind != "classification":
      return state
    q = self.bins.shape[0]
    return state.replace(batch_stats={
        **state.batch_stats, PRIOR: jnp.full((q,), 1.0 / q, jnp.float32)})

  def lab(self, views):
    """CIE Lab of the normalised views, ``(B, H, W, 3)``."""
    recipe = self.view_recipes[0]
    return lab_of_views(views, recipe.mean, recipe.std)

  def corrupt(self, keys, views):
    del keys  # the encoder itself keeps only L (LightnessInput)
    ab = pool_blocks(self.lab(views)[..., 1:], self.output_stride)
    return views, {"ab": ab}

  def decode_ab(self, output):
    """ab estimates ``(B, h, w, 2)`` from the decoder's output."""
    if self.loss_kind == "classification":
      return losses.pretext.decode_annealed_mean(output, self.bins, self.temperature)
    return output * AB_SCALE

  def ab_distribution(self, ab, axis_name):
    """The global batch's distribution over the bins of its nearest bins."""
    d2 = jnp.sum(jnp.square(ab[..., None, :] - self.bins), axis=-1)
    nearest = jnp.argmin(d2, axis=-1).reshape(-1)
    counts = jnp.zeros(self.bins.shape[0], jnp.float32).at[nearest].add(1.0)
    if axis_name is not None:
      counts = lax.psum(counts, axis_name)
    return counts / jnp.sum(counts)

  def pretext_loss(self, output, views, info, state, axis_name):
    ab = info["ab"]
    statistics, metrics = {}, {}
    if self.loss_kind == "classification":
      # Running mean over steps 0..t of the per-batch distributions.
      step = state.step.astype(jnp.float32)
      old = state.batch_stats[PRIOR]
      prior = old + (self.ab_distribution(ab, axis_name) - old) / (step + 1.0)
      weights = (losses.pretext.rebalancing_weights(
          prior, self.rebalance_lambda, self.sigma, ab_bins=self.bins)
                 if self.rebalance else None)
      loss, aux = losses.colorization(output, ab, self.bins, weights,
                                      sigma=self.sigma, k=self.num_neighbours)
      statistics[PRIOR] = prior
      metrics.update(bin_accuracy=aux["accuracy"],
                     cross_entropy=aux["cross_entropy"])
    else:
      loss, _ = losses.reconstruction(output, ab / AB_SCALE)
    error = lax.stop_gradient(self.decode_ab(output)) - ab
    metrics["ab_rmse"] = jnp.sqrt(jnp.mean(jnp.square(error)))
    return loss, statistics, metrics

  def panels(self, output, views, inputs, info):
    del inputs, info
    lab = self.lab(views)
    lightness = lab[..., :1]
    ab = self.decode_ab(output)
    ab = jax.image.resize(ab, lab.shape[:-1] + (2,), "bilinear")
    grey = jnp.concatenate([lightness, jnp.zeros_like(ab)], axis=-1)
    return (augment.lab_to_rgb(grey),
            augment.lab_to_rgb(jnp.concatenate([lightness, ab], axis=-1)),
            image_to_image.denormalize(views, self.view_recipes[0]))
