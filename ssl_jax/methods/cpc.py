r"""CPC for images: Contrastive Predictive Coding over a grid of patches.

van den Oord, Li, Vinyals (2018), https://arxiv.org/abs/1807.03748 (Sec. 3.2,
images) and Hénaff et al., "Data-Efficient Image Recognition with
Contrastive Predictive Coding" (ICML 2020, CPC v2),
https://arxiv.org/abs/1905.09272

- Views: one augmented view of each image (``config.augment``), cut into a
  G x G grid of overlapping square patches (``cpc.patch_size`` pixels every
  ``cpc.patch_stride``: 8 every 4 on a 32 px CIFAR view gives the 7 x 7
  grid of the papers' 64-every-32 on 256 px).
- Networks: the patch encoder :math:`g_{enc}` (the ResNet of
  ``config.model`` on each patch, average-pooled) gives a latent
  :math:`z_{i,j}` per patch; the context network :math:`g_{ar}` (a stack of
  residual convolutions masked so that row i sees only rows <= i, the
  PixelCNN-style network of the papers) gives :math:`c_{i,j}`, a summary of
  the rows above and at i; one linear prediction :math:`W_k` per step
  ahead k = 1..K (``cpc.prediction_steps``). An online linear probe reads
  the stop-gradient of the grid-averaged latents.
- Loss (InfoNCE, eq. 4 of van den Oord et al., ``losses.cpc``):

  .. math::
     \mathcal{L} = -\mathbb{E}_{i,j,k}\Big[\log
       \frac{\exp(z_{i+k,j}^\top W_k c_{i,j} / \tau)}
            {\sum_{z'} \exp(z'^\top W_k c_{i,j} / \tau)}\Big],

  the candidates :math:`z'` every patch latent of every image of the
  global batch (other positions and other images, CPC v2's negatives);
  predictions past the last row are dropped. Plus the probe's
  cross-entropy. With ``cpc.normalize``, predictions and latents are
  L2-normalised first (cosine scores, SimCLR's scale), which keeps the
  scores bounded where raw dot products of ReLU latents start large.
- Representation (evaluation): the patch latents averaged over the grid
  (CPC v2's linear evaluation pools the encoder's patch features).
- State updates: the optimizer step and BatchNorm statistics. CPC v2
  replaces batch norm by layer norm in the encoder because statistics
  shared across the patches of one image can leak information; this
  library's ResNet keeps its BatchNorm (over all patches of the batch).
"""

import flax.linen as nn
import jax.numpy as jnp

from ssl_jax import augment
from ssl_jax import losses
from ssl_jax.losses.contrastive import _l2_normalize
from ssl_jax.methods import base
from ssl_jax.train import probe as probe_lib


def patch_grid(images, patch_size, stride):
  """``(B, H, W, C)`` -> ``(B, G, G', patch, patch, C)`` overlapping patches,
  patch ``(i, j)`` starting at pixel ``(i * stride, j * stride)``."""
  _, height, width, _ = images.shape
  rows = (height - patch_size) // stride + 1
  cols = (width - patch_size) // stride + 1
  row_patches = jnp.stack([images[:, i * stride:i * stride + patch_size]
                           for i in range(rows)], axis=1)
  return jnp.stack([row_patches[:, :, :, j * stride:j * stride + patch_size]
                    for j in range(cols)], axis=2)


class RowCausalConv(nn.Module):
  """A convolution whose output row i reads input rows i - k + 1 .. i only
  (zero padding above, none below) and ``kernel_size`` columns around."""

  features: int
  kernel_size: int = 3

  @nn.compact
  def __call__(self, x):
    k = self.kernel_size
    x = jnp.pad(x, ((0, 0), (k - 1, 0), (k // 2, k // 2), (0, 0)))
    return nn.Conv(self.features, (k, k), padding="VALID")(x)


class ContextNetwork(nn.Module):
  """:math:`g_{ar}`: a 1x1 projection then residual blocks of row-causal
  convolutions, ``c = c + conv(relu(conv(relu(c))))``."""

  hidden_dim: int
  num_blocks: int

  @nn.compact
  def __call__(self, latents):
    context = nn.Dense(self.hidden_dim, name="in")(latents)
    for i in range(self.num_blocks):
      update = RowCausalConv(self.hidden_dim, name=f"block{i}_a")(
          nn.relu(context))
      update = RowCausalConv(self.hidden_dim, name=f"block{i}_b")(
          nn.relu(update))
      context = context + update
    return context


class CPCNetwork(nn.Module):
  """Patch encoder, context network, the K predictions and the probe."""

  encoder: nn.Module
  context_network: nn.Module
  prediction_steps: int
  patch_size: int
  patch_stride: int
  num_classes: int

  def latents(self, images, train):
    patches = patch_grid(images, self.patch_size, self.patch_stride)
    b, rows, cols = patches.shape[:3]
    z = self.encoder(patches.reshape(b * rows * cols, *patches.shape[3:]),
                     train=train)
    return z.reshape(b, rows, cols, -1)

  @nn.compact
  def __call__(self, images, train: bool):
    z = self.latents(images, train)
    context = self.context_network(z.astype(jnp.float32))
    # predictions[b, i, j, k] = W_{k+1} c_{i,j}, in the latents' space.
    predictions = jnp.stack(
        [nn.Dense(z.shape[-1], name=f"predict_{k + 1}")(context)
         for k in range(self.prediction_steps)], axis=3)
    pooled = jnp.mean(z, axis=(1, 2))
    return {"latents": z, "predictions": predictions, "pooled": pooled,
            "probe_logits": probe_lib.OnlineProbe(
                self.num_classes, name="online_probe")(pooled)}

  def encode(self, images):
    return jnp.mean(self.latents(images, train=False), axis=(1, 2))


def columns_as_sequences(predictions, latents):
  """Folds the grid's columns into the batch: ``(B, R, C, K, D)`` and
  ``(B, R, C, D)`` -> ``(B*C, R, K, D)`` and ``(B*C, R, D)``, each column a
  top-to-bottom sequence for ``losses.cpc``."""
  b, rows, cols, k, d = predictions.shape
  return (predictions.transpose(0, 2, 1, 3, 4).reshape(b * cols, rows, k, d),
          latents.transpose(0, 2, 1, 3).reshape(b * cols, rows, d))


class CPC(base.Method):
  """CPC v2 for images; see the module docstring."""

  name = "cpc"

  def __init__(self, config, num_classes, total_steps, axis_name=base.BATCH_AXIS):
    super().__init__(config, num_classes, total_steps, axis_name)
    settings = config.cpc
    self.view_recipes = (config.augment,)
    crop = config.augment.crop_size
    if settings.patch_size > crop or settings.patch_stride < 1:
      raise ValueError(
          f"config.cpc.patch_size={settings.patch_size} must fit in the "
          f"{crop} px view (config.augment.crop_size) and "
          f"config.cpc.patch_stride={settings.patch_stride} must be >= 1.")
    rows = (crop - settings.patch_size) // settings.patch_stride + 1
    if not 1 <= settings.prediction_steps < rows:
      raise ValueError(
          f"config.cpc.prediction_steps={settings.prediction_steps}: the "
          f"{rows} x {rows} patch grid allows 1 to {rows - 1} rows ahead; "
          "change prediction_steps, patch_size or patch_stride.")
    self.temperature = settings.temperature
    self.normalize = settings.get("normalize", False)
    self.network = CPCNetwork(
        encoder=base.build_backbone(config.model, bn_axis_name=axis_name),
        context_network=ContextNetwork(settings.context_dim,
                                       settings.context_blocks),
        prediction_steps=settings.prediction_steps,
        patch_size=settings.patch_size,
        patch_stride=settings.patch_stride,
        num_classes=num_classes)

  def loss_fn(self, params, state, keys, images, labels, axis_name):
    views = augment.batch_views(keys, images, self.view_recipes[0])
    outputs, batch_stats = self.online_forward(params, state.batch_stats,
                                               views)
    predictions, targets = columns_as_sequences(
        outputs["predictions"].astype(jnp.float32),
        outputs["latents"].astype(jnp.float32))
    if self.normalize:  # cosine scores: p^T z / (|p| |z|) / temperature
      predictions, targets = (_l2_normalize(predictions),
                              _l2_normalize(targets))
    cpc_loss, aux = losses.cpc(predictions, targets, self.temperature,
                               axis_name)
    probe_loss, metrics = self.common_metrics(
        outputs["probe_logits"], labels, outputs["pooled"], axis_name)
    metrics.update(cpc_loss=cpc_loss, **aux)
    return cpc_loss + probe_loss, ({"batch_stats": batch_stats}, metrics)

  def encode(self, variables, images):
    inputs = augment.batch_eval_views(images, self.view_recipes[0])
    return self.network.apply(variables, inputs, method="encode")

