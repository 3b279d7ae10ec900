r"""Auxiliary automatic annotators: dense pseudo-labels from classical
algorithms on real images, as pretext tasks.

A classical algorithm labels every pixel of a real image without a human:
its edges, its salient region, and in a video what moves and how. A
network trained to reproduce those maps from the pixels learns features
that transfer (the "free semantic labels" family; e.g. Pathak et al.,
"Learning Features by Watching Objects Move", CVPR 2017, train on motion
segments from an unsupervised motion algorithm; Ren & Lee 2018 list edges,
depth and surface normals). Every annotator runs on device on the very view
the network sees (``ssl_jax.augment.annotators``), so any crop or flip
keeps labels and pixels aligned.

- Annotators (targets) and their tasks, each weighted by ``<task>_weight``
  (0 drops it):

  * ``sobel``: the 3x3 Sobel gradient magnitude of the grey image
    (``annotators.gradient_magnitude``, divided by 4, its largest value on
    pixels in [0, 1], so the map lies in [0, 1.42]); L1;
  * ``canny``: Canny's edge map (``annotators.canny``, OpenCV's algorithm
    with its L2 gradient; thresholds ``canny_low`` / ``canny_high`` in grey
    levels 0..255); HED's class-balanced cross-entropy;
  * ``saliency``: the spectral-residual saliency map (Hou & Zhang 2007,
    ``annotators.spectral_residual_saliency``, in [0, 1]); L1;

  and on videos (records ``(T, H, W, C)``, e.g. the moving digits), from
  the frames t and t + 1 (t uniform per example), which the network then
  both sees:

  * ``motion``: the foreground by frame differencing
    (``annotators.motion_mask``: any channel, in [0, 1], changes by more
    than ``motion_threshold``; dilated ``motion_dilate`` times by 3x3);
    class-balanced cross-entropy;
  * ``flow``: Horn--Schunck optical flow from t to t + 1
    (``augment.flow.horn_schunck``, the settings of ``flow_*``); end-point
    error.

- Views: one augmented view of a still image (``config.augment``; the
  presets use crop and flip, no colour distortion, which would change the
  annotations' meaning little but their values much); the test-time view of
  video frames (the flow must stay that of the pixels).
- Networks and loss: ``dense_tasks`` (encoder, one decoder for all tasks,
  online probe).

Evaluation: the encoder on the pretraining images' test split (or
``config.eval.data``), kNN and linear probe against its random init.
"""

import jax
import jax.numpy as jnp

from ssl_jax import augment
from ssl_jax.augment import annotators as annotators_lib
from ssl_jax.augment import flow as flow_lib
from ssl_jax.methods import base
from ssl_jax.methods import dense_tasks
from ssl_jax.methods import image_to_image
from ssl_jax.methods import video_base

STILL_TASKS = ("sobel", "canny", "saliency")
MOTION_TASKS = ("motion", "flow")
SOBEL_MAX = 4.0  # the largest Sobel gradient component of pixels in [0, 1]


class Annotators(dense_tasks.DenseTaskMethod):
  """Predict classical annotators' maps of real images; see the module
  docstring."""

  name = "annotators"

  def __init__(self, config, num_classes, total_steps, axis_name=base.BATCH_AXIS):
    settings = config.annotators
    weights = {task: float(settings.get(f"{task}_weight", 0.0))
               for task in STILL_TASKS + MOTION_TASKS}
    builders = {
        "sobel": lambda w: dense_tasks.regression_task("sobel", w),
        "canny": lambda w: dense_tasks.edge_task(w, "canny"),
        "saliency": lambda w: dense_tasks.regression_task("saliency", w),
        "motion": lambda w: dense_tasks.edge_task(w, "motion"),
        "flow": dense_tasks.flow_task,
    }
    self.tasks = tuple(builders[task](weight) for task, weight in weights.items()
                       if weight > 0)
    self.uses_motion = any(weights[task] > 0 for task in MOTION_TASKS)
    self.num_frames = 2 if self.uses_motion else 1
    if not 0 <= settings.canny_low <= settings.canny_high:
      raise ValueError(
          f"config.annotators.canny_low={settings.canny_low} and canny_high="
          f"{settings.canny_high} must satisfy 0 <= low <= high (grey levels).")
    self.settings = settings
    self.flow_args = dict(alpha=float(settings.flow_alpha),
                          num_iters=int(settings.flow_iters),
                          num_scales=int(settings.flow_scales),
                          num_warps=int(settings.flow_warps))
    super().__init__(config, num_classes, total_steps, axis_name)

  def check_shape(self, image_shape):
    if self.uses_motion and len(image_shape) != 4:
      raise ValueError(
          "config.annotators' motion and flow tasks need videos (T, H, W, C), "
          f"but the data set gives records of shape {tuple(image_shape)}. Use "
          "config.data.source='moving_digits', or set motion_weight and "
          "flow_weight to 0.")
    if not self.uses_motion and len(image_shape) != 3:
      raise ValueError(
          "config.annotators' still-image tasks read images (H, W, C); the "
          f"data set gives records of shape {tuple(image_shape)}. Set "
          "motion_weight or flow_weight for videos.")

  def init_inputs(self, image_shape):
    self.check_shape(image_shape)
    return super().init_inputs(image_shape)

  def annotate(self, pixels):
    """Targets of one frame t's pixels ``(H, W, C)`` in [0, 1]."""
    settings = self.settings
    targets = {}
    for task in self.tasks:
      if task.name == "sobel":
        targets["sobel"] = annotators_lib.gradient_magnitude(pixels) / SOBEL_MAX
      elif task.name == "canny":
        targets["canny"] = annotators_lib.canny(
            pixels, float(settings.canny_low), float(settings.canny_high))
      elif task.name == "saliency":
        targets["saliency"] = annotators_lib.spectral_residual_saliency(pixels)
    return targets

  def inputs_and_targets(self, keys, images, labels):
    del labels
    recipe = self.view_recipes[0]
    if self.uses_motion:
      times = jax.vmap(lambda k: jax.random.randint(
          k, (), 0, images.shape[1] - 1))(keys)
      clips = video_base.take_frames(images, jnp.stack([times, times + 1], 1))
      b = clips.shape[0]
      views = augment.batch_eval_views(
          clips.reshape((2 * b,) + clips.shape[2:]), recipe)
      views = views.reshape((b, 2) + views.shape[1:])
    else:
      views = augment.batch_views(keys, images, recipe)[:, None]
    pixels = jnp.clip(image_to_image.denormalize(views, recipe), 0.0, 1.0)
    targets = jax.vmap(self.annotate)(pixels[:, 0])
    settings = self.settings
    if any(task.name == "motion" for task in self.tasks):
      targets["motion"] = jax.vmap(lambda a, b: annotators_lib.motion_mask(
          a, b, float(settings.motion_threshold),
          dilate=int(settings.motion_dilate)))(pixels[:, 0], pixels[:, 1])
    if any(task.name == "flow" for task in self.tasks):
      targets["flow"] = jax.vmap(lambda a, b: flow_lib.horn_schunck(
          a, b, **self.flow_args))(pixels[:, 0], pixels[:, 1])
    return {"frames": views}, targets
