r"""Video prediction: observe frames, predict the ones that follow.

Srivastava, Mansimov, Salakhutdinov (ICML 2015), "Unsupervised Learning of
Video Representations using LSTMs", https://arxiv.org/abs/1502.04681, with
the convolutional LSTM of Shi et al. (NeurIPS 2015),
https://arxiv.org/abs/1506.04214, as the predictor.

- Networks (:class:`VideoPredictor`): the frame encoder (the ResNet of
  ``config.model``, the network evaluated afterwards) maps each observed
  frame to its last feature map; a convolutional LSTM
  (:class:`ConvLSTMRollout`) reads the ``num_observed`` maps in order and
  then runs on for ``num_predicted`` steps, each step fed its own previous
  prediction (no ground truth enters after the observed frames); a 1x1
  read-out maps its hidden state back to the encoder's feature space, and
  the upsampling decoder (``ssl_jax.models.UpsamplingDecoder``, no skip
  connections) turns each predicted map into a frame. An online linear
  probe reads the pooled features of the first observed frame.
- Views: from each video a clip of ``num_observed + num_predicted``
  consecutive frames at a uniform random start (per example, from its key);
  the frames are the test-time views (nothing is distorted: the future
  frames are the labels).
- Loss: the mean squared error of the predicted frames, as pixels in
  [0, 1], against the true ones,

  .. math::
     \mathcal{L} = \frac{1}{B P H W C} \sum_{b, t, h, w, c}
        (\hat x_{b,t,h,w,c} - x_{b,t,h,w,c})^2, \qquad
        t \in \{O, \dots, O + P - 1\},

  plus the probe's cross-entropy. The metrics add the error of repeating
  the last observed frame (``copy_last_mse``), the baseline a predictor
  must beat, and the errors of the first and last predicted frames.
- State updates: the optimizer step and BatchNorm statistics.

Pictures: ``predict`` gives the predicted frames of uint8 videos;
``experiments/video_pictures.py`` draws observed, predicted and true frames.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import lax

from ssl_jax import losses
from ssl_jax.methods import base
from ssl_jax.methods import image_to_image
from ssl_jax.methods import video_base
from ssl_jax.train import probe as probe_lib


class _RolloutStep(nn.Module):
  """One ConvLSTM step whose input is the observed map or its last output."""

  features: int
  kernel_size: int

  @nn.compact
  def __call__(self, carry, inputs):
    cell_carry, previous = carry
    observed_map, is_observed = inputs
    x = jnp.where(is_observed, observed_map, previous)
    cell_carry, hidden = nn.ConvLSTMCell(
        self.features, (self.kernel_size, self.kernel_size),
        name="cell")(cell_carry, x)
    prediction = nn.Conv(x.shape[-1], (1, 1), name="readout")(hidden)
    return (cell_carry, prediction), prediction


class ConvLSTMRollout(nn.Module):
  """Observed maps ``(B, O, h, w, c)`` -> predicted maps ``(B, P, h, w, c)``.

  Step t < O reads observed map t; later steps read the previous step's
  prediction. The prediction of step t is the map of frame t + 1, so the
  outputs of steps O - 1 .. O + P - 2 are frames O .. O + P - 1.
  """

  num_predicted: int
  features: int
  kernel_size: int = 3

  @nn.compact
  def __call__(self, observed):
    b, o, h, w, c = observed.shape
    steps = o + self.num_predicted - 1
    inputs = jnp.zeros((steps, b, h, w, c), jnp.float32)
    inputs = inputs.at[:o].set(jnp.moveaxis(observed, 1, 0).astype(jnp.float32))
    is_observed = jnp.arange(steps) < o
    # Zeros computed from the input, so that inside a data-parallel step they
    # vary over the batch axis as the carry that the scan returns does.
    none = 0.0 * inputs[0, ..., :1]
    zeros = jnp.broadcast_to(none, (b, h, w, self.features))
    carry = ((zeros, zeros), jnp.broadcast_to(none, (b, h, w, c)))
    scan = nn.scan(_RolloutStep, variable_broadcast="params",
                   split_rngs={"params": False}, length=steps)
    _, predictions = scan(self.features, self.kernel_size, name="rollout")(
        carry, (inputs, is_observed))
    return jnp.moveaxis(predictions[o - 1:], 0, 1)


class VideoPredictor(nn.Module):
  """Frame encoder, ConvLSTM predictor, frame decoder, online probe.

  ``__call__(clips, train)``: ``clips`` ``(B, O + P, H, W, C)`` normalised
  frames, of which only the first O are read; gives ``predicted`` frames
  ``(B, P, H, W, C)``, the pooled ``features`` of the first frame and
  ``probe_logits``. ``encode`` is the evaluation encoder of still images.
  """

  encoder: nn.Module
  decoder: nn.Module
  num_observed: int
  num_predicted: int
  lstm_features: int
  num_classes: int

  @nn.compact
  def __call__(self, clips, train: bool):
    b = clips.shape[0]
    observed = clips[:, :self.num_observed]
    flat = observed.reshape((-1,) + observed.shape[2:])
    features, maps = self.encoder(flat, train=train, return_map=True)
    maps = maps.reshape((b, self.num_observed) + maps.shape[1:])
    predicted_maps = ConvLSTMRollout(self.num_predicted, self.lstm_features,
                                     name="predictor")(maps)
    frames = self.decoder(
        predicted_maps.reshape((-1,) + predicted_maps.shape[2:]), train=train)
    first = features.reshape(b, self.num_observed, -1)[:, 0]
    probe_logits = probe_lib.OnlineProbe(self.num_classes,
                                         name="online_probe")(first)
    return {"predicted": frames.reshape((b, self.num_predicted) + frames.shape[1:]),
            "features": first, "probe_logits": probe_logits}

  def encode(self, images):
    return self.encoder(images, train=False)


class VideoPrediction(video_base.VideoMethod):
  """Next-frames prediction with an online probe; see the module docstring."""

  name = "video_prediction"

  def __init__(self, config, num_classes, total_steps, axis_name=base.BATCH_AXIS):
    super().__init__(config, num_classes, total_steps, axis_name)
    settings = config.video_prediction
    self.num_observed = int(settings.num_observed)
    self.num_predicted = int(settings.num_predicted)
    if self.num_observed < 1 or self.num_predicted < 1:
      raise ValueError(
          "config.video_prediction.num_observed and num_predicted must be "
          f"at least 1, got {self.num_observed} and {self.num_predicted}.")
    backbone = base.build_backbone(config.model, bn_axis_name=axis_name)
    self.network = VideoPredictor(
        encoder=backbone,
        decoder=image_to_image.build_decoder(
            backbone, config.model, config.augment.crop_size,
            len(config.augment.mean), axis_name),
        num_observed=self.num_observed,
        num_predicted=self.num_predicted,
        lstm_features=int(settings.lstm_features),
        num_classes=num_classes)

  def min_frames(self):
    return self.num_observed + self.num_predicted

  def clips(self, keys, videos):
    """Per example, ``min_frames()`` consecutive frames from a random start:
    ``(normalised clips, the same frames as pixels in [0, 1])``."""
    length = self.min_frames()
    starts = video_base.clip_starts(keys, videos.shape[1], length)
    frames = video_base.take_frames(videos,
                                    starts[:, None] + jnp.arange(length))
    return self.frames(frames), frames.astype(jnp.float32) / 255.0

  def loss_fn(self, params, state, keys, images, labels, axis_name):
    clips, pixels = self.clips(keys, images)
    outputs, batch_stats = self.online_forward(params, state.batch_stats, clips)
    future = pixels[:, self.num_observed:]
    predicted = outputs["predicted"]
    loss, _ = losses.reconstruction(predicted, future)
    last_observed = pixels[:, self.num_observed - 1:self.num_observed]
    error = jnp.square(lax.stop_gradient(predicted) - future)
    probe_loss, metrics = self.common_metrics(
        outputs["probe_logits"], labels, outputs["features"], axis_name)
    metrics.update(
        prediction_mse=loss,
        copy_last_mse=jnp.mean(jnp.square(last_observed - future)),
        first_frame_mse=jnp.mean(error[:, 0]),
        last_frame_mse=jnp.mean(error[:, -1]))
    return loss + probe_loss, ({"batch_stats": batch_stats}, metrics)

  def predict(self, variables, videos):
    """Predicted frames ``(B, P, H, W, C)`` in [0, 1] after the first
    ``num_observed`` frames of uint8 ``videos`` (BatchNorm in inference
    mode)."""
    clips = self.frames(videos[:, :self.min_frames()])
    outputs = self.network.apply(variables, clips, train=False)
    return jnp.clip(outputs["predicted"], 0.0, 1.0)
