"""What the video methods share: frames in, a frame encoder, still images out.

A video method (``video_prediction.py``, ``video_colorization.py``) trains
on batches of videos, uint8 ``(B, T, H, W, C)`` (``ssl_jax.data.video``'s
moving digits, or an npz folder of videos), and its encoder, a ResNet of
``config.model`` applied to every frame, is evaluated like any other on
still images (``config.eval.data``; the moving-digits presets use single
frames of single digits, labelled with the digit's class).

Every frame goes through the test-time view of ``config.augment``
(resize/crop to ``crop_size`` and normalise): the pretext labels (the next
frames, the colours) are the pixels, so the frames are not distorted.
"""

import jax
import jax.numpy as jnp

from ssl_jax import augment
from ssl_jax.methods import base


class VideoMethod(base.Method):
  """Subclasses set ``name`` and ``self.network`` (with an ``encode``
  method for still images) and write ``min_frames`` and ``loss_fn``."""

  def __init__(self, config, num_classes, total_steps, axis_name=base.BATCH_AXIS):
    super().__init__(config, num_classes, total_steps, axis_name)
    self.view_recipes = (config.augment,)
    if config.model.name != "resnet":
      raise ValueError(
          f"{self.name} needs a convolutional frame encoder "
          f"(config.model.name='resnet'), got {config.model.name!r}.")

  def min_frames(self):
    """The fewest frames a training video must have."""
    raise NotImplementedError

  def network_frames(self):
    """How many frames of each example the network reads at once."""
    return self.min_frames()

  def check_video_shape(self, image_shape):
    """Raises a ValueError unless ``image_shape`` is ``(T, H, W, C)`` with
    at least ``min_frames()`` frames."""
    if len(image_shape) != 4:
      raise ValueError(
          f"{self.name} trains on videos (T, H, W, C), but the data set gives "
          f"records of shape {tuple(image_shape)}. Use "
          "config.data.source='moving_digits', or an npz folder whose 'image' "
          "is (N, T, H, W, C).")
    if image_shape[0] < self.min_frames():
      raise ValueError(
          f"{self.name} needs videos of at least {self.min_frames()} frames; "
          f"the data set's have {image_shape[0]}. Use longer videos or fewer "
          "frames in the method's config section.")

  def init_inputs(self, image_shape):
    """Dummy clips ``(2, network_frames(), size, size, C)``, once
    ``image_shape`` is checked to be that of videos."""
    self.check_video_shape(image_shape)
    size = self.view_recipes[0].crop_size
    return jnp.zeros((2, self.network_frames(), size, size, image_shape[-1]),
                     jnp.float32)

  def frames(self, videos):
    """uint8 ``(B, T, H, W, C)`` -> normalised test-time views, float32."""
    b, t = videos.shape[:2]
    views = augment.batch_eval_views(videos.reshape((b * t,) + videos.shape[2:]),
                                     self.view_recipes[0])
    return views.reshape((b, t) + views.shape[1:])

  def encode(self, variables, images):
    """Pooled frame-encoder features of uint8 still images ``(B, H, W, C)``."""
    inputs = augment.batch_eval_views(images, self.view_recipes[0])
    return self.network.apply(variables, inputs, method="encode")


def clip_starts(keys, num_frames, clip_length):
  """A uniform start frame in ``[0, num_frames - clip_length]`` per key."""
  return jax.vmap(lambda k: jax.random.randint(
      k, (), 0, num_frames - clip_length + 1))(keys)


def take_frames(videos, index):
  """``videos[b, index[b]]`` for every b: ``(B, K, ...)`` from ``index``
  ``(B, K)`` frame numbers."""
  return jnp.take_along_axis(
      videos, index.reshape(index.shape + (1,) * (videos.ndim - 2)), axis=1)
