r"""RGB-flow correspondence: cross-modal contrastive coding of a frame and
the optical flow that leaves it.

Tian, Krishnan, Isola, "Contrastive Multiview Coding" (ECCV 2020,
https://arxiv.org/abs/1906.05849), its video experiments (UCF101,
HMDB51): the frame at time t and the optical flow centred at t are two
views of one moment (the "dorsal stream"; the paper adds the frame t + k
as a third view, the "ventral stream"), each with its own encoder, trained
with the two-view contrastive objective; the RGB encoder is then
evaluated. (Sayed, Brattoli and Ommer, "Cross and Learn: Cross-Modal
Self-Supervision", GCPR 2018, pair RGB and flow in the same way.)

- Views: from each video (uint8 ``(T, H, W, C)``, e.g. the moving digits
  of ``ssl_jax.data.video``) a time t uniform in ``[0, T - 2]`` (per
  example, from its key); the frames t and t + 1 through the test-time
  view of ``config.augment`` (resize to ``crop_size`` and normalise, as
  every video method's; no distortion, the flow must stay that of the
  pixels shown). View 1 is the RGB frame t; view 2 the optical flow from
  frame t to frame t + 1, computed on device from the two frames' pixels
  in [0, 1] (``augment.flow.horn_schunck``: Horn--Schunck with a colour
  data term, ``rgb_flow.flow_alpha``, ``flow_iters``, ``flow_scales``,
  ``flow_warps``), shown to its encoder as the 3-channel image
  :math:`(u, v, |w|) / \text{max\_flow}` clipped to [-1, 1]
  (``augment.flow.flow_to_image``; CMC feeds the flow's x and y
  channels, the magnitude is added here).
- Networks (:class:`RGBFlowNetwork`): the RGB encoder f_rgb (the ResNet of
  ``config.model``; the network evaluated afterwards) and the flow encoder
  f_flow (a second ResNet of ``config.model`` on the flow image), each
  with its projection g (``rgb_flow.proj_layers``: 1 is CMC's linear
  projection, more an MLP with BatchNorm) to ``rgb_flow.proj_dim``,
  L2-normalised inside the loss; an online linear probe on
  stop_gradient(f_rgb(frame t)) (the class of the video's first digit).
- Loss: the symmetric InfoNCE between the two modalities over the global
  batch (``losses.symmetric_info_nce``, CMC's two-view objective in its
  softmax form), with :math:`z^{rgb}_i = g_{rgb}(f_{rgb}(x_i))`,
  :math:`z^{flow}_i = g_{flow}(f_{flow}(w_i))`, cosine similarity s and
  temperature :math:`\tau` (``rgb_flow.temperature``, CMC's 0.07),

  .. math::
     \mathcal{L} = \frac{1}{2N} \sum_{i=1}^{N} \Big[
       -\log \frac{e^{s(z^{rgb}_i, z^{flow}_i)/\tau}}
                  {\sum_j e^{s(z^{rgb}_i, z^{flow}_j)/\tau}}
       -\log \frac{e^{s(z^{flow}_i, z^{rgb}_i)/\tau}}
                  {\sum_j e^{s(z^{flow}_i, z^{rgb}_j)/\tau}} \Big],

  plus the probe's cross-entropy. Metrics: ``contrastive_acc`` (the
  positive scores highest, mean of both directions), ``acc_rgb_to_flow``,
  ``acc_flow_to_rgb``, ``flow_magnitude`` (mean |w| in pixels).
- State updates: the optimizer step and the BatchNorm statistics of both
  encoders (over the global batch; the modalities share none).

Evaluation: the RGB encoder on still images (``config.eval.data``; for the
moving digits, frames of single digits), kNN and linear against its random
init; and, as the held-out pretext score, cross-modal retrieval on the
pretraining data's test videos (:meth:`RGBFlow.pretext_accuracy`).
"""

import flax.linen as nn
import jax
import jax.numpy as jnp

from ssl_jax import losses
from ssl_jax.augment import flow as flow_lib
from ssl_jax.methods import base
from ssl_jax.methods import video_base
from ssl_jax.train import probe as probe_lib

FLOW_CHANNELS = 3  # u, v and |w|, scaled (augment.flow.flow_to_image)


class RGBFlowNetwork(nn.Module):
  """Two encoders and projections, one per modality, and the online probe.

  ``__call__((frames, flow_images), train)`` gives the pooled ``features``
  and the ``projections`` of each modality (``rgb_*``, ``flow_*``) and the
  probe's logits on the RGB features; ``encode`` is the RGB encoder alone.
  """

  rgb_encoder: nn.Module
  flow_encoder: nn.Module
  rgb_projector: nn.Module
  flow_projector: nn.Module
  num_classes: int

  def setup(self):
    self.online_probe = probe_lib.OnlineProbe(self.num_classes)

  def __call__(self, inputs, train: bool):
    frames, flow_images = inputs
    rgb = self.rgb_encoder(frames, train=train)
    flow = self.flow_encoder(flow_images, train=train)
    return {"rgb_features": rgb, "flow_features": flow,
            "rgb_projections": self.rgb_projector(rgb, train=train),
            "flow_projections": self.flow_projector(flow, train=train),
            "probe_logits": self.online_probe(rgb)}

  def encode(self, images):
    return self.rgb_encoder(images, train=False)


class RGBFlow(video_base.VideoMethod):
  """Cross-modal contrastive coding of RGB frames and optical flow; see the
  module docstring."""

  name = "rgb_flow"

  def __init__(self, config, num_classes, total_steps, axis_name=base.BATCH_AXIS):
    super().__init__(config, num_classes, total_steps, axis_name)
    settings = config.rgb_flow
    if len(config.augment.mean) != 3:
      raise ValueError(
          "rgb_flow reads RGB frames; the data set has "
          f"{len(config.augment.mean)} channel(s) (config.augment.mean). Use "
          "colour videos such as config.data.source='moving_digits'.")
    scales = int(settings.flow_scales)
    if config.augment.crop_size % 2 ** (scales - 1):
      raise ValueError(
          f"config.rgb_flow.flow_scales={scales} halves the "
          f"{config.augment.crop_size}-px frames {scales - 1} times; use "
          "fewer scales or a crop_size divisible by "
          f"{2 ** (scales - 1)}.")
    if not settings.max_flow > 0:
      raise ValueError(
          f"config.rgb_flow.max_flow={settings.max_flow} must be > 0 (pixels).")
    self.temperature = float(settings.temperature)
    self.max_flow = float(settings.max_flow)
    self.flow_args = dict(alpha=float(settings.flow_alpha),
                          num_iters=int(settings.flow_iters),
                          num_scales=scales,
                          num_warps=int(settings.flow_warps))

    def projector():
      return base.build_mlp(config.model, int(settings.proj_layers),
                            int(settings.proj_hidden_dim),
                            int(settings.proj_dim), bn_axis_name=axis_name)

    self.network = RGBFlowNetwork(
        rgb_encoder=base.build_backbone(config.model, bn_axis_name=axis_name),
        flow_encoder=base.build_backbone(config.model, bn_axis_name=axis_name),
        rgb_projector=projector(),
        flow_projector=projector(),
        num_classes=num_classes)

  def min_frames(self):
    return 2  # frame t and frame t + 1

  def init_inputs(self, image_shape):
    self.check_video_shape(image_shape)
    size = self.view_recipes[0].crop_size
    return (jnp.zeros((2, size, size, image_shape[-1]), jnp.float32),
            jnp.zeros((2, size, size, FLOW_CHANNELS), jnp.float32))

  def optical_flow(self, views):
    """Flow ``(B, H, W, 2)`` (u = dx, v = dy) from normalised frames
    ``(B, 2, H, W, C)`` (t, t + 1), on their pixels in [0, 1]."""
    recipe = self.view_recipes[0]
    mean = jnp.asarray(recipe.mean, jnp.float32)
    std = jnp.asarray(recipe.std, jnp.float32)
    pixels = views.astype(jnp.float32) * std + mean
    return jax.vmap(lambda a, b: flow_lib.horn_schunck(a, b, **self.flow_args))(
        pixels[:, 0], pixels[:, 1])

  def modalities(self, keys, videos):
    """The two views of every example: ``(frames, flow_images, flow)``.

    ``frames`` ``(B, H, W, C)``: frame t, normalised; ``flow_images``
    ``(B, H, W, 3)``: the flow from t to t + 1 as the flow encoder's input;
    ``flow`` ``(B, H, W, 2)`` in pixels. t is uniform in ``[0, T - 2]``,
    drawn from each example's key.
    """
    times = jax.vmap(lambda k: jax.random.randint(
        k, (), 0, videos.shape[1] - 1))(keys)
    views = self.frames(video_base.take_frames(
        videos, jnp.stack([times, times + 1], axis=1)))
    flow = self.optical_flow(views)
    return views[:, 0], flow_lib.flow_to_image(flow, self.max_flow), flow

  def loss_fn(self, params, state, keys, images, labels, axis_name):
    frames, flow_images, flow = self.modalities(keys, images)
    outputs, batch_stats = self.online_forward(params, state.batch_stats,
                                               (frames, flow_images))
    z_rgb, z_flow = outputs["rgb_projections"], outputs["flow_projections"]
    contrastive_loss, aux = losses.symmetric_info_nce(
        z_rgb, z_flow, self.temperature, axis_name)
    probe_loss, metrics = self.common_metrics(
        outputs["probe_logits"], labels, z_rgb, axis_name)
    metrics.update(
        contrastive_loss=contrastive_loss,
        contrastive_acc=aux["contrastive_acc"],
        acc_rgb_to_flow=aux["acc_a_to_b"], acc_flow_to_rgb=aux["acc_b_to_a"],
        pos_sim=aux["pos_sim"], neg_sim=aux["neg_sim"],
        flow_magnitude=jnp.mean(jnp.linalg.norm(flow, axis=-1)))
    return contrastive_loss + probe_loss, ({"batch_stats": batch_stats},
                                           metrics)

  def pretext_accuracy(self, variables, keys, videos):
    """Cross-modal retrieval on held-out videos, ``(B,)``: per example, the
    mean over the two directions of 1 if its own other view is the most
    similar one of the batch (RGB -> flow, flow -> RGB), in evaluation
    mode (running BatchNorm statistics); the batch is the candidates."""
    frames, flow_images, _ = self.modalities(keys, videos)
    outputs = self.network.apply(variables, (frames, flow_images), train=False)

    def normalise(z):
      return z / jnp.maximum(jnp.linalg.norm(z, axis=-1, keepdims=True), 1e-12)

    similarity = (normalise(outputs["rgb_projections"])
                  @ normalise(outputs["flow_projections"]).T)
    own = jnp.arange(similarity.shape[0])
    return 0.5 * ((jnp.argmax(similarity, axis=1) == own).astype(jnp.float32)
                  + (jnp.argmax(similarity, axis=0) == own).astype(jnp.float32))
