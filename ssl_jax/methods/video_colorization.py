r"""Tracking emerges by colorizing videos.

Vondrick, Shrivastava, Fathi, Guadarrama, Murphy (ECCV 2018),
https://arxiv.org/abs/1806.09594

- Networks (:class:`PointingNetwork`): the frame encoder (the ResNet of
  ``config.model`` fed only the lightness of each frame,
  ``colorization.LightnessInput``; the network evaluated afterwards) gives
  a feature map, capped at stride ``config.model.output_stride`` (4 in the
  presets: an 8x8 map of a 32x32 frame), and a 1x1 convolution embeds every
  location in ``embed_dim`` dimensions (the paper's 64). An online linear
  probe reads the pooled features of the reference frame.
- Views: from each video a reference frame r at a uniform random time and
  a target frame r + g, g uniform in ``[1, max_gap]`` (per example, from
  its key); both grey to the encoder. Colours: the ab channels of CIE Lab
  averaged over each location's ``stride x stride`` block, one-hot on the
  nearest centre of a grid of ``grid`` ab units (the paper clusters Lab
  into 16 colours with k-means; a fixed grid needs no pass over the data).
- Loss (eq. 1-3, ``losses.colour_by_pointing``): each target location
  points into the reference frame by a softmax over embedding dot products
  (temperature ``temperature``, the paper's 1), copies the pointed-to
  colours, and is scored by the cross-entropy against its true colour; plus
  the probe's cross-entropy. Metric: ``colour_accuracy``, the fraction of
  target locations whose most likely copied colour bin is the true one.
- State updates: the optimizer step and BatchNorm statistics.

Tracking (:meth:`VideoColorization.track`): the same pointing carries
any labels drawn on the first frame of a grey video (a segmentation mask)
to the later frames, the paper's Sec. 4: each frame points into the first
frame (default) or into the frame before it (recurrent propagation).
Nothing in training saw a mask.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import lax

from ssl_jax import losses
from ssl_jax.methods import base
from ssl_jax.methods import colorization
from ssl_jax.methods import video_base
from ssl_jax.train import probe as probe_lib


class PointingNetwork(nn.Module):
  """Grey frames -> per-location embeddings; pooled features; online probe.

  ``__call__(pairs, train)``: ``pairs`` ``(B, 2, H, W, C)`` normalised
  frames (reference, target); gives ``embeddings`` ``(B, 2, h, w, E)``, the
  pooled ``features`` of the reference frames and ``probe_logits``.
  ``embed`` maps frames ``(N, H, W, C)`` to ``(N, h, w, E)``; ``encode`` is
  the evaluation encoder of still images.
  """

  encoder: nn.Module
  embed_dim: int
  num_classes: int

  def setup(self):
    self.embedding = nn.Conv(self.embed_dim, (1, 1), name="embedding")
    self.online_probe = probe_lib.OnlineProbe(self.num_classes)

  def __call__(self, pairs, train: bool):
    b = pairs.shape[0]
    features, maps = self.encoder(pairs.reshape((-1,) + pairs.shape[2:]),
                                  train=train, return_map=True)
    embeddings = self.embedding(maps.astype(jnp.float32))
    reference = features.reshape(b, 2, -1)[:, 0]
    return {"embeddings": embeddings.reshape((b, 2) + embeddings.shape[1:]),
            "features": reference,
            "probe_logits": self.online_probe(reference)}

  def embed(self, frames):
    _, maps = self.encoder(frames, train=False, return_map=True)
    return self.embedding(maps.astype(jnp.float32))

  def encode(self, images):
    return self.encoder(images, train=False)


class VideoColorization(video_base.VideoMethod):
  """Colorization by pointing, and its tracker; see the module docstring."""

  name = "video_colorization"

  def __init__(self, config, num_classes, total_steps, axis_name=base.BATCH_AXIS):
    super().__init__(config, num_classes, total_steps, axis_name)
    settings = config.video_colorization
    if len(config.augment.mean) != 3:
      raise ValueError(
          "video_colorization needs colour videos (3 channels); the data set "
          f"has {len(config.augment.mean)} (config.augment.mean).")
    self.max_gap = int(settings.max_gap)
    if self.max_gap < 1:
      raise ValueError(
          f"config.video_colorization.max_gap={self.max_gap} must be >= 1.")
    self.temperature = float(settings.temperature)
    self.bins = losses.pretext.ab_bins(grid=settings.grid)
    backbone = base.build_backbone(config.model, bn_axis_name=axis_name)
    crop = config.augment.crop_size
    self.stride = crop // self._map_size(backbone, crop)
    recipe = self.view_recipes[0]
    self.network = PointingNetwork(
        encoder=colorization.LightnessInput(backbone, tuple(recipe.mean),
                                            tuple(recipe.std)),
        embed_dim=int(settings.embed_dim),
        num_classes=num_classes)

  @staticmethod
  def _map_size(backbone, size):
    shape = jax.eval_shape(
        lambda x: backbone.init_with_output(jax.random.PRNGKey(0), x,
                                            train=False, return_map=True)[0][1],
        jax.ShapeDtypeStruct((1, size, size, 1), jnp.float32))
    return shape.shape[1]

  def min_frames(self):
    return self.max_gap + 1

  def network_frames(self):
    return 2  # a reference and a target frame

  def colours(self, views):
    """One-hot colour bins ``(..., h * w, Q)`` of normalised frames."""
    recipe = self.view_recipes[0]
    ab = colorization.pool_blocks(
        colorization.lab_of_views(views, recipe.mean, recipe.std)[..., 1:],
        self.stride)
    d2 = jnp.sum(jnp.square(ab[..., None, :] - self.bins), axis=-1)
    one_hot = jax.nn.one_hot(jnp.argmin(d2, axis=-1), self.bins.shape[0])
    return one_hot.reshape(one_hot.shape[:-3] + (-1, one_hot.shape[-1]))

  def pairs(self, keys, videos):
    """``(B, 2, H, W, C)`` normalised (reference, target) frames."""
    gap_keys, start_keys = jnp.moveaxis(jax.vmap(jax.random.split)(keys), 1, 0)
    gaps = jax.vmap(lambda k: jax.random.randint(k, (), 1, self.max_gap + 1))(
        gap_keys)
    starts = jax.vmap(lambda k, g: jax.random.randint(
        k, (), 0, videos.shape[1] - g))(start_keys, gaps)
    index = jnp.stack([starts, starts + gaps], axis=1)
    return self.frames(video_base.take_frames(videos, index))

  def loss_fn(self, params, state, keys, images, labels, axis_name):
    pairs = self.pairs(keys, images)
    outputs, batch_stats = self.online_forward(params, state.batch_stats, pairs)
    embeddings = outputs["embeddings"]
    flat = embeddings.reshape(embeddings.shape[:2] + (-1, embeddings.shape[-1]))
    colours = self.colours(pairs)
    loss, aux = losses.colour_by_pointing(
        flat[:, 1], flat[:, 0], colours[:, 0], colours[:, 1],
        temperature=self.temperature)
    probe_loss, metrics = self.common_metrics(
        outputs["probe_logits"], labels, outputs["features"], axis_name)
    metrics.update(pointing_loss=loss, colour_accuracy=aux["accuracy"])
    return loss + probe_loss, ({"batch_stats": batch_stats}, metrics)

  def track(self, variables, videos, first_labels, reference="first"):
    """Labels of the first frame carried through uint8 ``videos``.

    Args:
      variables: the network's variables.
      videos: uint8 ``(B, T, H, W, C)``.
      first_labels: ``(B, h, w, K)`` label distributions of the first frame
        at the embedding map's resolution (e.g. one-hot masks averaged over
        ``stride x stride`` blocks).
      reference: ``'first'`` (every frame points into frame 0 and copies its
        given labels) or ``'previous'`` (each frame points into the frame
        before and copies the labels carried there); see
        :func:`propagate_labels`.

    Returns:
      ``(B, T, h, w, K)`` label distributions.
    """
    frames = self.frames(videos)
    b, t = frames.shape[:2]
    embeddings = self.network.apply(
        variables, frames.reshape((b * t,) + frames.shape[2:]),
        method=PointingNetwork.embed)
    h, w, e = embeddings.shape[1:]
    labels = propagate_labels(embeddings.reshape(b, t, h * w, e),
                              first_labels.reshape(b, h * w, -1),
                              self.temperature, reference)
    return labels.reshape(b, t, h, w, -1)


REFERENCES = ("first", "previous")


def propagate_labels(embeddings, first_labels, temperature, reference="first"):
  r"""Labels of frame 0 carried to every frame by pointing.

  With ``reference='first'``, frame t copies frame 0's labels through its
  attention into frame 0, :math:`y_t = A(t \to 0)\, y_0`: no error
  accumulates, but frame 0 must be recognised however far things moved.
  With ``'previous'``, :math:`y_t = A(t \to t - 1)\, y_{t-1}` (recurrent,
  as in video label propagation): small steps, but errors carry over.
  Vondrick et al. 2018, Sec. 4; without their top-k restriction.

  Args:
    embeddings: ``(B, T, N, E)``, N locations per frame.
    first_labels: ``(B, N, K)`` label distributions of frame 0.
    temperature: of ``losses.pretext.pointing_attention``.
    reference: ``'first'`` or ``'previous'``.

  Returns:
    ``(B, T, N, K)``; frame 0's labels are ``first_labels``.
  """
  if reference not in REFERENCES:
    raise ValueError(f"reference={reference!r}; use one of {REFERENCES}.")
  first = first_labels.astype(jnp.float32)
  if reference == "first":
    attention = losses.pretext.pointing_attention(
        embeddings[:, 1:], embeddings[:, :1], temperature)
    later = jnp.einsum("btji,bik->btjk", attention, first,
                       precision=lax.Precision.HIGHEST)
    return jnp.concatenate([first[:, None], later], axis=1)

  def carry(labels, pair):
    previous, current = pair
    attention = losses.pretext.pointing_attention(current, previous,
                                                  temperature)
    labels = jnp.einsum("bji,bik->bjk", attention, labels,
                        precision=lax.Precision.HIGHEST)
    return labels, labels

  pairs = (jnp.moveaxis(embeddings[:, :-1], 1, 0),
           jnp.moveaxis(embeddings[:, 1:], 1, 0))
  _, later = lax.scan(carry, first, pairs)
  return jnp.moveaxis(jnp.concatenate([first[None], later], axis=0), 0, 1)
