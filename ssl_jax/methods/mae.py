r"""MAE: Masked Autoencoders Are Scalable Vision Learners.

He, Chen, Xie, Li, Dollár, Girshick (CVPR 2022), https://arxiv.org/abs/2111.06377;
reference code github.com/facebookresearch/mae (``models_mae.py``).

- Networks (Sec. 3): an asymmetric encoder-decoder.
  *Encoder*: a ViT (``config.model``, ``ssl_jax.models.vit``) that sees only
  the visible patches: patch embedding + fixed 2-D sine-cosine position
  embeddings, then the kept tokens only (plus the class token), pre-LN
  blocks, LayerNorm. Its cost scales with the visible fraction (25% at the
  default ratio). *Decoder* (lightweight, ``config.mae.decoder_*``): a
  Dense from the encoder width to the decoder width, a shared learned mask
  token appended for every removed patch, the tokens put back in patch
  order (un-shuffle by ``ids_restore``), the decoder's own fixed sine-cosine
  position embeddings, a few transformer blocks, LayerNorm, and a linear
  layer to the ``p * p * C`` pixel values of every patch. The decoder is
  used only for pretraining. An online linear probe on the stop-gradient
  mean of the encoder's visible tokens tracks the representation (its
  gradient reaches only the probe).
- Views: one augmented view per image (``config.augment``): the paper's
  pretraining transform is RandomResizedCrop (scale (0.2, 1)) and a
  horizontal flip, no colour distortion (Appendix A.1, Table 8).
- Masking (Sec. 3, "Masking"): per sample, uniform random masking without
  replacement of a fraction ``config.mae.mask_ratio`` (75%) of the L
  patches, by argsort of uniform noise drawn from the example's explicit
  PRNG key (``augment.random_patch_mask``: ``ids_keep``, the
  ``ids_restore`` that undoes the shuffle, and the binary mask, 1 =
  removed). MAE keeps ``int(L (1 - ratio))`` patches; here the same floor
  with a 1e-6 round-off tolerance (``augment.num_kept_patches``).
- Loss (Sec. 3, "Reconstruction target"; ``losses.mae_reconstruction``):
  mean squared error between the decoder's output :math:`\hat y_{b,l}` and
  the target patch :math:`\hat x_{b,l}` (of the normalised view), on the
  *masked* patches only,

  .. math::
     \mathcal{L} = \frac{1}{\sum_{b,l} m_{b,l}} \sum_{b,l} m_{b,l}
        \frac{1}{P} \lVert \hat y_{b,l} - \hat x_{b,l} \rVert_2^2,
     \qquad
     \hat x_{b,l} = \frac{x_{b,l} - \mu_{b,l}}{\sqrt{\sigma^2_{b,l} + 10^{-6}}}

  with :math:`m_{b,l} = 1` for a masked patch and P pixel values per patch;
  the per-patch normalisation (mean and unbiased variance of the patch's own
  pixels) is ``config.mae.norm_pix_loss`` (Table 1d: better than raw
  pixels; the target of the paper's main results, Table 3, and of its
  released pretraining commands), without it :math:`\hat x = x`. Plus the
  online probe's cross-entropy.
- State updates: the optimizer step only (AdamW in the paper); no target
  network, no queue, no BatchNorm statistics.

Evaluation features (``encode``): the whole image through the encoder with
no masking (all L patches), and the *mean of the patch tokens* after the
final LayerNorm (``config.model.pool='mean'``; ``'token'`` takes the class
token, MAE's choice for its linear probe). The class token is an auxiliary
"dummy token" in MAE (Appendix A.1), which the loss never reads directly
(the decoder drops its output), and the paper notes that MAE "works
similarly well without this token (with average pooling)"; its fine-tuning
code pools globally too. The offline linear probe here standardises the
features, as MAE's probe does with a BatchNorm without affine parameters.
The online probe and the collapse diagnostics (``common_metrics``) during
pretraining see the mean of the *visible* tokens of the masked view, the
features the step computes anyway, so they read lower than the offline
numbers on full images. A ViT at random init maps all images to nearly
parallel mean-pooled features (std x sqrt(d) about 0.1), so the collapse
warning can fire during the first steps of warmup before the features
spread out.

Reconstructions (``reconstruct``) give the original, the masked input, the
decoder's output and the output with the visible patches pasted back;
``experiments/reconstructions.py`` renders them from a run's checkpoint.
"""

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from ssl_jax import augment
from ssl_jax import losses
from ssl_jax import models
from ssl_jax.methods import base
from ssl_jax.train import probe as probe_lib


class MAEDecoder(nn.Module):
  """MAE's lightweight decoder: encoder tokens of the visible patches ->
  pixel values ``(B, L, patch_dim)`` of every patch (visible and masked)."""

  width: int
  depth: int
  num_heads: int
  mlp_ratio: float = 4.0
  class_token: bool = True
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, tokens, ids_restore, grid, patch_dim):
    """``tokens``: ``(B, [1 +] K, D_enc)`` from the encoder (class token
    first when ``class_token``); ``ids_restore``: ``(B, L)``; ``grid``:
    ``(rows, cols)`` with ``rows * cols = L``; ``patch_dim``: ``p * p * C``."""
    x = nn.Dense(self.width, dtype=self.dtype,
                 kernel_init=nn.initializers.xavier_uniform(),
                 name="embed")(tokens)
    if self.class_token:
      cls, x = x[:, :1], x[:, 1:]
    batch, kept, _ = x.shape
    num_patches = ids_restore.shape[1]
    mask_token = self.param("mask_token", nn.initializers.normal(0.02),
                            (1, 1, self.width))
    masked = jnp.broadcast_to(mask_token.astype(x.dtype),
                              (batch, num_patches - kept, self.width))
    # Kept tokens first, then mask tokens: the shuffled order; un-shuffle.
    x = jnp.concatenate([x, masked], axis=1)
    x = jnp.take_along_axis(x, ids_restore[..., None], axis=1)
    x = x + jnp.asarray(models.sincos_pos_embed_2d(self.width, grid), x.dtype)
    if self.class_token:
      x = jnp.concatenate([cls, x], axis=1)
    x = models.Transformer(self.depth, self.num_heads, self.mlp_ratio,
                            self.dtype, name="transformer")(x)
    x = nn.Dense(patch_dim, dtype=self.dtype,
                 kernel_init=nn.initializers.xavier_uniform(),
                 name="pred")(x)
    return x[:, 1:] if self.class_token else x


class MAENetwork(nn.Module):
  """ViT encoder on the visible patches, decoder, and the online probe.

  ``__call__(images, train, ids_keep=None, ids_restore=None)`` gives
  ``pred`` (``(B, L, p*p*C)``, decoder output for every patch),
  ``features`` (the pooled encoder tokens of the visible patches) and
  ``probe_logits``; without ids nothing is masked. ``encode`` is the
  evaluation encoder: all patches, pooled (``VisionTransformer.pool``).
  """

  encoder: models.VisionTransformer
  decoder: MAEDecoder
  num_classes: int

  @nn.compact
  def __call__(self, images, train: bool, ids_keep=None, ids_restore=None):
    grid = self.encoder.grid(images)
    num_patches = grid[0] * grid[1]
    if ids_restore is None:
      ids_restore = jnp.broadcast_to(
          jnp.arange(num_patches, dtype=jnp.int32),
          (images.shape[0], num_patches))
    tokens = self.encoder(images, train=train, ids_keep=ids_keep,
                          return_tokens=True)
    patch_dim = self.encoder.patch_size**2 * images.shape[-1]
    pred = self.decoder(tokens, ids_restore, grid, patch_dim)
    features = self.encoder.pool_tokens(tokens)
    probe_logits = probe_lib.OnlineProbe(
        self.num_classes, name="online_probe")(features)
    return {"pred": pred, "features": features, "probe_logits": probe_logits}

  def encode(self, images):
    return self.encoder(images, train=False)


class MAE(base.Method):
  """MAE with its online probe; see the module docstring."""

  name = "mae"

  def __init__(self, config, num_classes, total_steps, axis_name=base.BATCH_AXIS):
    super().__init__(config, num_classes, total_steps, axis_name)
    mae = config.mae
    self.view_recipes = (config.augment,)  # one view per image
    encoder = base.build_backbone(config.model, bn_axis_name=axis_name)
    if not isinstance(encoder, models.VisionTransformer):
      raise ValueError(
          f"MAE needs a ViT encoder (config.model.name='vit'), got "
          f"config.model.name={config.model.name!r}.")
    self.patch_size = encoder.patch_size
    crop = config.augment.crop_size
    if crop % self.patch_size:
      raise ValueError(
          f"config.augment.crop_size={crop} is not a multiple of "
          f"config.model.patch_size={self.patch_size}.")
    self.num_patches = (crop // self.patch_size)**2
    self.mask_ratio = float(mae.mask_ratio)
    # Raises (a config error) if the ratio keeps no patch.
    self.num_kept = augment.num_kept_patches(self.num_patches, self.mask_ratio)
    self.norm_pix_loss = bool(mae.norm_pix_loss)
    if self.norm_pix_loss and self.patch_size**2 * len(config.augment.mean) < 2:
      raise ValueError("config.mae.norm_pix_loss needs patches of at least "
                       "2 values; use a larger config.model.patch_size.")
    models.vit_dims(width=mae.decoder_width, depth=mae.decoder_depth,
                     num_heads=mae.decoder_heads)  # checks the decoder size
    self.network = MAENetwork(
        encoder=encoder,
        decoder=MAEDecoder(
            width=mae.decoder_width, depth=mae.decoder_depth,
            num_heads=mae.decoder_heads,
            mlp_ratio=mae.get("decoder_mlp_ratio", 4.0),
            class_token=encoder.class_token, dtype=encoder.dtype),
        num_classes=num_classes)

  def views(self, keys, images):
    """One augmented view of every image (crop + flip), from per-example keys."""
    return augment.batch_views(keys, images, self.view_recipes[0])

  def random_masking(self, keys):
    """Per-example masks from per-example keys: ``(mask (B, L) float32,
    ids_keep (B, K) int32, ids_restore (B, L) int32)``, mask 1 = removed."""
    return jax.vmap(lambda k: augment.random_patch_mask(
        k, self.num_patches, self.mask_ratio))(keys)

  def patchify(self, images):
    """Normalised images ``(B, H, W, C)`` -> target patches ``(B, L, p*p*C)``."""
    return augment.patchify(images.astype(jnp.float32), self.patch_size)

  def forward(self, params, images, keys):
    """Masks and reconstructs ``images``: ``(outputs, mask, ids_restore)``."""
    mask, ids_keep, ids_restore = self.random_masking(keys)
    outputs = self.network.apply({"params": params}, images, train=True,
                                 ids_keep=ids_keep, ids_restore=ids_restore)
    return outputs, mask, ids_restore

  def reconstruction_loss(self, pred, views, mask):
    """The masked-patch MSE of ``pred`` ``(B, L, P)`` against the patches of
    ``views`` (normalised per patch with ``norm_pix_loss``): ``(loss, aux)``.

    Every example has the same number of masked patches, so this mean over
    the batch's masked patches is the mean of the per-example losses (the
    step's per-replica mean).
    """
    return losses.mae_reconstruction(
        pred.astype(jnp.float32), self.patchify(views), mask,
        norm_pix_loss=self.norm_pix_loss)

  def split_keys(self, keys):
    """Per-example keys -> ``(view keys, mask keys)``, independent streams."""
    split = jax.vmap(jax.random.split)(keys)
    return split[:, 0], split[:, 1]

  def loss_fn(self, params, state, keys, images, labels, axis_name):
    del state
    view_keys, mask_keys = self.split_keys(keys)
    views = self.views(view_keys, images)
    outputs, mask, _ = self.forward(params, views, mask_keys)
    reconstruction_loss, aux = self.reconstruction_loss(
        outputs["pred"], views, mask)
    probe_loss, metrics = self.common_metrics(
        outputs["probe_logits"], labels, outputs["features"], axis_name)
    metrics.update(reconstruction_loss=reconstruction_loss,
                   visible_loss=aux["visible_loss"],
                   mask_ratio=aux["mask_ratio"])
    return reconstruction_loss + probe_loss, ({}, metrics)

  def encode(self, variables, images):
    """Mean-pooled encoder tokens of the full, unmasked test-time view."""
    inputs = augment.batch_eval_views(images, self.view_recipes[0])
    return self.network.apply({"params": variables["params"]}, inputs,
                              method=MAENetwork.encode)

  def reconstruct(self, params, images, key):
    """Reconstructions of uint8 ``images`` (test-time view) under a random mask.

    Returns a dict of ``(B, H, W, C)`` arrays in the normalised space of the
    view: ``original``, ``mask`` (1 on removed pixels), ``masked`` (removed
    patches set to 0, the normalised mean), ``reconstruction`` (the
    decoder's output for every patch) and ``pasted`` (the reconstruction
    with the visible patches of the original pasted over it). With
    ``norm_pix_loss`` the decoder predicts normalised patches; they are
    shown de-normalised with each *true* patch's mean and standard
    deviation (so a masked patch's brightness and contrast come from the
    original, only its pattern from the decoder).
    """
    views = augment.batch_eval_views(images, self.view_recipes[0])
    keys = jax.random.split(key, images.shape[0])
    mask, ids_keep, ids_restore = self.random_masking(keys)
    pred = self.network.apply({"params": params}, views, train=False,
                              ids_keep=ids_keep,
                              ids_restore=ids_restore)["pred"]
    pred = pred.astype(jnp.float32)
    target = self.patchify(views)
    if self.norm_pix_loss:
      mean = jnp.mean(target, axis=-1, keepdims=True)
      var = jnp.var(target, axis=-1, keepdims=True, ddof=1)
      pred = pred * jnp.sqrt(var + 1e-6) + mean
    m = jnp.broadcast_to(mask[..., None], target.shape)
    _, height, width, channels = views.shape

    def image(patches):
      return augment.unpatchify(patches, self.patch_size, height, width,
                                channels)

    return {"original": views.astype(jnp.float32),
            "mask": image(m),
            "masked": image(target * (1 - m)),
            "reconstruction": image(pred),
            "pasted": image(target * (1 - m) + pred * m)}

