r"""What the free-label dense methods share: one encoder, one decoder, a
stack of per-pixel tasks, and an optional domain classifier.

Synthetic scenes (``synthetic_scenes.py``: a renderer's exact depth,
segmentation, edges and flow) and auxiliary annotators
(``annotators.py``: classical algorithms' edges, saliency, motion and flow
on real images) both train a network to predict dense labels that cost no
human. Each is one subclass of :class:`DenseTaskMethod` that lists its
:class:`Task` s and says how a batch becomes the network's inputs and the
tasks' targets (``inputs_and_targets``).

- Networks (:class:`DenseTaskNetwork`): the encoder is the ResNet of
  ``config.model`` (the network evaluated afterwards), read at its last
  feature map; with F input frames (2 where a task needs motion: flow), each
  frame goes through the same encoder and the F maps are stacked on the
  channel axis. One upsampling decoder (``models.UpsamplingDecoder``, no
  skip connections, as ``image_to_image``) gives all tasks' channels at the
  frame's resolution; task k reads its slice. An online linear probe sits
  on the stop-gradient pooled features of frame 0.
- Domain alignment (Ren & Lee, CVPR 2018, Sec. 3.3): with real images in
  the batch, a domain classifier D (an MLP on pooled encoder features)
  learns to tell the frames (source) from the real images (target),
  ``losses.dense.domain_adversarial``, behind a gradient reversal layer
  (``losses.dense.gradient_reversal``, Ganin & Lempitsky 2015) of scale
  :math:`\lambda`: one backward pass trains D to separate the domains and
  the encoder, with :math:`-\lambda` times D's gradient, to confuse it.
  :math:`\lambda = 0` keeps everything else (the real images share the
  encoder's BatchNorm batch; D still trains and reports its accuracy) and
  only cuts D's gradient to the encoder: the ablation.
- Loss: :math:`\sum_k w_k \mathcal{L}_k + \mathcal{L}_D + \mathcal{L}_{probe}`.
"""

import dataclasses
from typing import Any, Callable, Optional

import flax.linen as nn
import jax.numpy as jnp

from ssl_jax import augment
from ssl_jax import losses
from ssl_jax.methods import base
from ssl_jax.methods import image_to_image
from ssl_jax.train import probe as probe_lib


@dataclasses.dataclass(frozen=True)
class Task:
  """A dense pretext task: ``channels`` of the decoder's output, scored by
  ``loss(output (B, H, W, channels), target, axis_name) -> (loss, metrics)``
  with weight ``weight``; ``target`` names the entry of the targets dict."""

  name: str
  channels: int
  loss: Callable[..., Any]
  weight: float = 1.0
  target: Optional[str] = None

  @property
  def target_key(self):
    return self.target or self.name


def depth_task(weight, scale_invariance):
  """Log depth, one channel, Eigen et al.'s scale-invariant error."""
  return Task("depth", 1, lambda out, z, axis_name: losses.dense.depth_log_loss(
      out[..., 0], z, scale_invariance), weight)


def segmentation_task(weight, num_classes, target="semantics"):
  """Per-pixel classes, ``num_classes`` channels, cross-entropy."""
  return Task("segmentation", num_classes,
              lambda out, y, axis_name: losses.dense.segmentation_loss(out, y),
              weight, target)


def edge_task(weight, name="edges"):
  """A binary edge map, one channel, HED's class-balanced cross-entropy."""
  def loss(out, edges, axis_name):
    value, aux = losses.dense.edge_loss(out[..., 0], edges, axis_name)
    return value, {f"{name}_{k.removeprefix('edge_')}": v
                   for k, v in aux.items()}
  return Task(name, 1, loss, weight)


def flow_task(weight, name="flow"):
  """Optical flow (u, v) in pixels, two channels, end-point error."""
  def loss(out, flow, axis_name):
    value, aux = losses.dense.flow_loss(out, flow)
    return value, {f"{name}_{k}": v for k, v in aux.items()}
  return Task(name, 2, loss, weight)


def regression_task(name, weight):
  """A per-pixel scalar map, one channel, L1."""
  def loss(out, target, axis_name):
    value, aux = losses.dense.dense_regression(out[..., 0], target)
    return value, {f"{name}_{k}": v for k, v in aux.items()}
  return Task(name, 1, loss, weight)


class DomainClassifier(nn.Module):
  """D: pooled features -> one logit (real vs synthetic), an MLP with ReLU."""

  hidden_dim: int
  num_layers: int = 2

  @nn.compact
  def __call__(self, features):
    x = features.astype(jnp.float32)
    for i in range(self.num_layers):
      x = nn.relu(nn.Dense(self.hidden_dim, name=f"hidden{i + 1}")(x))
    return nn.Dense(1, name="logit")(x)[..., 0]


class DenseTaskNetwork(nn.Module):
  """Encoder (shared over frames and real images), decoder, probe, and D.

  ``__call__(inputs, train, reversal_scale)``: ``inputs["frames"]`` is
  ``(B, F, H, W, C)`` and the optional ``inputs["real"]`` ``(R, H, W, C)``;
  all of them go through the encoder as one batch (one set of BatchNorm
  statistics). Gives ``output`` ``(B, H, W, channels)`` (float32),
  ``features`` (pooled, frame 0), ``probe_logits``, and with real images
  and a classifier ``source_logits`` / ``target_logits`` (D on the reversed
  features of frame 0 and of the real images).
  """

  encoder: nn.Module
  decoder: nn.Module
  num_classes: int
  discriminator: Optional[nn.Module] = None

  @nn.compact
  def __call__(self, inputs, train: bool, reversal_scale=0.0):
    frames = inputs["frames"]
    real = inputs.get("real")
    b, f = frames.shape[:2]
    batch = frames.reshape((b * f,) + frames.shape[2:])
    if real is not None:
      batch = jnp.concatenate([batch, real.astype(batch.dtype)])
    features, maps = self.encoder(batch, train=train, return_map=True)
    h, w, c = maps.shape[1:]
    frame_maps = maps[:b * f].reshape(b, f, h, w, c)
    stacked = jnp.moveaxis(frame_maps, 1, 3).reshape(b, h, w, f * c)
    output = self.decoder(stacked, train=train)
    frame_features = features[:b * f].reshape(b, f, -1)[:, 0]
    probe_logits = probe_lib.OnlineProbe(
        self.num_classes, name="online_probe")(frame_features)
    outputs = {"output": output, "features": frame_features,
               "probe_logits": probe_logits}
    if real is not None and self.discriminator is not None:
      pooled = jnp.concatenate([frame_features, features[b * f:]])
      logits = self.discriminator(
          losses.dense.gradient_reversal(pooled, jnp.float32(reversal_scale)))
      outputs["source_logits"] = logits[:b]
      outputs["target_logits"] = logits[b:]
    return outputs

  def encode(self, images):
    return self.encoder(images, train=False)


class DenseTaskMethod(base.Method):
  """Frames in, dense targets out; see the module docstring.

  Subclasses set ``name``, build ``self.tasks`` (a tuple of :class:`Task`)
  and ``self.num_frames`` before calling ``__init__``, and write
  ``inputs_and_targets``. ``self.domain`` (a ConfigDict with
  ``reversal_scale``, ``ramp``, ``hidden_dim``; or None) adds the domain
  classifier.
  """

  tasks = ()
  num_frames = 1
  domain = None

  def __init__(self, config, num_classes, total_steps, axis_name=base.BATCH_AXIS):
    super().__init__(config, num_classes, total_steps, axis_name)
    self.view_recipes = (config.augment,)
    if config.model.name != "resnet":
      raise ValueError(
          f"{self.name} needs a convolutional encoder (config.model.name="
          f"'resnet'), got config.model.name={config.model.name!r}.")
    if not self.tasks:
      raise ValueError(f"{self.name}: no task has a positive weight; set at "
                       f"least one of config.{self.name}'s *_weight fields.")
    backbone = base.build_backbone(config.model, bn_axis_name=axis_name)
    discriminator = None
    if self.domain is not None:
      if not float(self.domain.reversal_scale) >= 0.0:
        raise ValueError(
            f"config.{self.name}.domain.reversal_scale="
            f"{self.domain.reversal_scale} must be >= 0 (0: the classifier "
            "trains but does not steer the encoder).")
      discriminator = DomainClassifier(int(self.domain.hidden_dim))
    self.network = DenseTaskNetwork(
        encoder=backbone,
        decoder=image_to_image.build_decoder(
            backbone, config.model, config.augment.crop_size,
            sum(task.channels for task in self.tasks), axis_name),
        num_classes=num_classes,
        discriminator=discriminator)

  def inputs_and_targets(self, keys, images, labels):
    """``(inputs, targets)``: the network's inputs (``{"frames": (B, F, H,
    W, C)``, optionally ``"real"``}, normalised) and ``{task.target_key:
    target}``."""
    raise NotImplementedError

  def init_inputs(self, image_shape):
    size = self.view_recipes[0].crop_size
    channels = image_shape[-1]
    inputs = {"frames": jnp.zeros((2, self.num_frames, size, size, channels),
                                  jnp.float32)}
    if self.domain is not None:
      inputs["real"] = jnp.zeros((2, size, size, channels), jnp.float32)
    return inputs

  def reversal_scale(self, step):
    """:math:`\\lambda` at optimizer step ``step`` (Ganin's ramp over the
    run when ``domain.ramp``)."""
    scale = jnp.float32(self.domain.reversal_scale)
    if not self.domain.ramp:
      return scale
    progress = step.astype(jnp.float32) / max(self.total_steps, 1)
    return scale * losses.dense.reversal_schedule(progress)

  def split_output(self, output):
    """``{task name: its channels of the decoder output}``."""
    pieces, start = {}, 0
    for task in self.tasks:
      pieces[task.name] = output[..., start:start + task.channels]
      start += task.channels
    return pieces

  def loss_fn(self, params, state, keys, images, labels, axis_name):
    inputs, targets = self.inputs_and_targets(keys, images, labels)
    scale = 0.0 if self.domain is None else self.reversal_scale(state.step)
    outputs, new_vars = self.network.apply(
        {"params": params, "batch_stats": state.batch_stats}, inputs,
        train=True, reversal_scale=scale, mutable=["batch_stats"])
    pieces = self.split_output(outputs["output"])
    total, metrics = 0.0, {}
    for task in self.tasks:
      loss, aux = task.loss(pieces[task.name], targets[task.target_key],
                            axis_name)
      total = total + task.weight * loss
      metrics[f"{task.name}_loss"] = loss
      metrics.update(aux)
    metrics["task_loss"] = total
    if "source_logits" in outputs:
      domain_loss, aux = losses.dense.domain_adversarial(
          outputs["source_logits"], outputs["target_logits"])
      total = total + domain_loss
      metrics.update(aux, domain_loss=domain_loss, reversal_scale=scale)
    class_labels = labels["label"] if isinstance(labels, dict) else labels
    probe_loss, common = self.common_metrics(
        outputs["probe_logits"], class_labels, outputs["features"], axis_name)
    metrics.update(common)
    return total + probe_loss, ({"batch_stats": new_vars["batch_stats"]},
                                metrics)

  def predict(self, variables, inputs):
    """The tasks' predictions in inference mode: ``{task name: output}``."""
    outputs = self.network.apply(variables, inputs, train=False)
    return self.split_output(outputs["output"])

  def encode(self, variables, images):
    """Pooled encoder features of the test-time view."""
    inputs = augment.batch_eval_views(images, self.view_recipes[0])
    return self.network.apply(variables, inputs, method=DenseTaskNetwork.encode)
