r"""Multi-task dense pretext training on rendered scenes with exact labels,
with optional domain alignment to real images.

Ren & Lee, "Cross-Domain Self-supervised Multi-task Feature Learning using
Synthetic Imagery", CVPR 2018 (https://arxiv.org/abs/1711.09082): a
renderer knows the depth, the segmentation, the edges and the motion of
every pixel it draws, so a network can learn all of them at once with no
annotation; a domain classifier on its features, fooled by the encoder,
makes what it learns carry over to real photographs.

- Data: ``ssl_jax.data.synthetic_scenes`` (``config.data.source=
  'synthetic_scenes'``): textured shapes at random depths and poses over a
  textured background, two frames t and t + 1 of a moving camera and moving
  objects, and per pixel of frame t the exact depth, semantic class, edges
  and optical flow to t + 1. With ``config.data.scenes.real_dir`` set,
  every record also carries one real image (CIFAR-10) for the domain
  classifier.
- Views: the test-time view of ``config.augment`` (normalisation only; the
  labels are in the frame's pixel grid, so no crop, flip or resize may move
  it: ``crop_size`` must be the frame size).
- Networks and loss: ``dense_tasks`` (one encoder over both frames and the
  real images, one decoder for all tasks), with the tasks

  * depth: log depth of frame t, Eigen et al.'s scale-invariant error
    (``depth_scale_invariance`` :math:`\lambda`, the paper's 0.5);
  * segmentation: 4 classes (background, disc, square, triangle),
    cross-entropy;
  * edges: the occlusion boundaries, HED's class-balanced cross-entropy;
  * flow: from frame t to t + 1, end-point error; the decoder sees the
    encoder's maps of both frames (the only task that needs frame t + 1;
    without it the network reads frame t alone),

  each weighted by ``<task>_weight`` (0 drops the task), plus, with
  ``domain.enabled``, the domain classifier behind gradient reversal
  (``domain.reversal_scale`` :math:`\lambda`, ramped over the run by
  Ganin's schedule when ``domain.ramp``), synthetic = source, real =
  target. Ren & Lee's discriminator works on the encoder's last maps and
  alternates updates; here D is an MLP on the pooled features and one
  update serves both players (the reversal layer), which Ganin & Lempitsky
  show is the same saddle point.
- State updates: the optimizer step and the BatchNorm statistics (of the
  mixed synthetic + real batch with domain alignment).

Evaluation: the encoder on real images (``config.eval.data``, CIFAR-10),
kNN and linear probe against its random init.
"""

import jax.numpy as jnp

from ssl_jax import augment
from ssl_jax.data import synthetic_scenes as scenes_data
from ssl_jax.methods import base
from ssl_jax.methods import dense_tasks

SEMANTIC_CLASSES = 4  # background, disc, square, triangle


class SyntheticScenes(dense_tasks.DenseTaskMethod):
  """Depth, segmentation, edges and flow of rendered scenes (+ domain
  alignment); see the module docstring."""

  name = "synthetic_scenes"

  def __init__(self, config, num_classes, total_steps, axis_name=base.BATCH_AXIS):
    settings = config.synthetic_scenes
    tasks = []
    if settings.depth_weight > 0:
      tasks.append(dense_tasks.depth_task(
          float(settings.depth_weight), float(settings.depth_scale_invariance)))
    if settings.segmentation_weight > 0:
      tasks.append(dense_tasks.segmentation_task(
          float(settings.segmentation_weight), SEMANTIC_CLASSES))
    if settings.edges_weight > 0:
      tasks.append(dense_tasks.edge_task(float(settings.edges_weight)))
    if settings.flow_weight > 0:
      tasks.append(dense_tasks.flow_task(float(settings.flow_weight)))
    self.tasks = tuple(tasks)
    self.num_frames = 2 if settings.flow_weight > 0 else 1
    self.domain = settings.domain if settings.domain.enabled else None
    scenes = config.data.get("scenes") or {}
    if config.data.source != "synthetic_scenes":
      raise ValueError(
          "synthetic_scenes trains on rendered scenes; set "
          f"config.data.source='synthetic_scenes' (got {config.data.source!r}).")
    frame_size = scenes.get("frame_size",
                            scenes_data.DEFAULTS["frame_size"])
    if config.augment.crop_size != frame_size or config.augment.get(
        "eval_crop_fraction", 1.0) != 1.0:
      raise ValueError(
          f"synthetic_scenes' labels are in the {frame_size}-px frame's grid; "
          f"set config.augment.crop_size={frame_size} and "
          "config.augment.eval_crop_fraction=1.0 (got "
          f"{config.augment.crop_size}, "
          f"{config.augment.get('eval_crop_fraction', 1.0)}).")
    if self.domain is not None and not scenes.get("real_dir"):
      raise ValueError(
          "config.synthetic_scenes.domain.enabled needs real images: set "
          "config.data.scenes.real_dir (e.g. ../shared/datasets/cifar10), "
          "or disable the domain classifier.")
    self.batch_fields = tuple(
        ["next_image"] * (self.num_frames == 2)
        + [task.target_key for task in self.tasks]
        + ["real_image"] * (self.domain is not None))
    super().__init__(config, num_classes, total_steps, axis_name)

  def inputs_and_targets(self, keys, images, labels):
    del keys  # the renderer drew everything; no view is random
    recipe = self.view_recipes[0]
    frames = [augment.batch_eval_views(images, recipe)]
    if self.num_frames == 2:
      frames.append(augment.batch_eval_views(labels["next_image"], recipe))
    inputs = {"frames": jnp.stack(frames, axis=1)}
    if self.domain is not None:
      inputs["real"] = augment.batch_eval_views(labels["real_image"], recipe)
    targets = {task.target_key: labels[task.target_key] for task in self.tasks}
    return inputs, targets

