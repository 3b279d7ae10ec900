r"""MoCo: Momentum Contrast for Unsupervised Visual Representation Learning.

v1: He, Fan, Wu, Xie, Girshick (CVPR 2020), https://arxiv.org/abs/1911.05722
v2: Chen, Fan, Girshick, He (2020), "Improved Baselines with Momentum
    Contrastive Learning", https://arxiv.org/abs/2003.04297

- Networks: query encoder f_q = encoder f (ResNet) + head g; v1's head is one
  linear layer to 128-d (Sec. 3.3), v2's an MLP fc-ReLU-fc with a 2048-d
  hidden layer and no BatchNorm (v2 Sec. 2 and its reference code). The key
  encoder f_k (encoder + head, ``target_modules``) has no gradient and
  follows f_q by ``theta_k <- m theta_k + (1 - m) theta_q`` after every step
  (eq. 2; m = ``config.moco.momentum``, 0.999, ``momentum_schedule``
  'constant' as in the paper or 'cosine'). An online linear probe on
  stop_gradient(h) tracks representation quality.
- Views: two draws of ``config.augment`` per image: the query x_q and the
  key x_k (v1: crop, grayscale, colour jitter, flip; v2 adds blur, the
  ``mocov2`` recipe).
- Loss: InfoNCE (eq. 1) of q = f_q(x_q) against its positive k+ = f_k(x_k)
  and the K keys of the queue as negatives, temperature t (v1 0.07, v2 0.2)
  (``losses.moco``); plus the probe's cross-entropy.
- State updates: the key encoder's EMA (``after_update``) and BatchNorm
  statistics, and the queue: a ring buffer of K = ``config.moco.queue_size``
  keys (``TrainState.queue``/``queue_ptr``); each step the L2-normalised keys
  of the whole global batch, gathered in replica order, replace the oldest
  (Algorithm 1, "enqueue"/"dequeue"), identically on every replica.

Shuffling BN (Sec. 3.3), independent of the device count
---------------------------------------------------------
With BatchNorm, a query and its positive key computed in the same batch can
"cheat" through the batch statistics, finding the positive by a leak of
information instead of a good representation. MoCo computes BN per GPU (8
groups) and shuffles the keys across GPUs before the key encoder, so a
query's BN group and its key's BN group hold different samples. Here the
BN groups are part of the method, not of the hardware: the networks are
built without cross-device BN (``bn_axis_name=None``) and the global batch is
split into ``config.moco.bn_groups`` (default 8) groups of equal size, each
normalised with its own statistics ("ghost BN": ``jax.vmap`` over the groups
with the parameters shared). Queries are grouped in batch order; keys are
grouped after a random permutation of the global batch, drawn from the
run's rng and the step (the same on every replica), and un-permuted after
the key encoder. The groups never depend on how the batch is split over
devices (each of R devices holds bn_groups / R whole groups), so 8 devices
give the numbers of 1 device. Running BN statistics are the mean over the
groups. ``bn_groups`` must be a multiple of the device count and divide the
global batch.

Shared parts (views, online probe, EMA update, collapse metrics, evaluation
encoder) are in ``ssl_jax.methods.base``.
"""

import jax
from jax import lax
import jax.numpy as jnp

from ssl_jax import losses
from ssl_jax import models
from ssl_jax.methods import base
from ssl_jax.train import momentum as momentum_lib
from ssl_jax.train import queue as queue_lib

# The PRNG stream of the key-shuffle permutations (folded into the run's rng
# before the step): apart from the per-example augmentation keys.
SHUFFLE_STREAM = 0x6D6F636F  # "moco"

VERSIONS = (1, 2)


def build_head(config):
  """MoCo's head g: v1 one linear layer, v2 fc-ReLU-fc (no BatchNorm)."""
  moco = config.moco
  if moco.version == 1:
    return base.build_mlp(config.model, 1, moco.proj_hidden_dim, moco.dim,
                          bn_axis_name=None)
  return models.MLPHead(
      hidden_dims=(moco.proj_hidden_dim,), out_dim=moco.dim, use_bn=False,
      dtype=base.compute_dtype(config.model.dtype))


def shuffle_permutation(rng, step, global_batch_size):
  """The permutation of the global batch that groups the keys for BN at ``step``.

  A function of the run's rng and the step only, so every replica draws the
  same one.
  """
  key = jax.random.fold_in(jax.random.fold_in(rng, SHUFFLE_STREAM), step)
  return jax.random.permutation(key, global_batch_size)


def _l2_normalize(x):
  x = x.astype(jnp.float32)
  return x * lax.rsqrt(jnp.maximum(jnp.sum(x * x, -1, keepdims=True), 1e-24))


class MoCo(base.Method):
  """MoCo v1 / v2 with shuffling BN and its online probe; see the module docstring."""

  name = "moco"
  target_modules = ("encoder", "projector")

  def __init__(self, config, num_classes, total_steps, axis_name=base.BATCH_AXIS):
    super().__init__(config, num_classes, total_steps, axis_name)
    moco = config.moco
    if moco.version not in VERSIONS:
      raise ValueError(
          f"config.moco.version={moco.version!r} is not a MoCo version; use 1 "
          "(linear head) or 2 (MLP head).")
    if moco.momentum_schedule not in momentum_lib.MOMENTUM_SCHEDULES:
      raise ValueError(
          f"config.moco.momentum_schedule={moco.momentum_schedule!r} is not "
          f"known; use one of {momentum_lib.MOMENTUM_SCHEDULES}.")
    batch, groups = config.train.batch_size, moco.bn_groups
    if groups < 1 or batch % groups or batch // groups < 2:
      raise ValueError(
          f"config.moco.bn_groups={groups} must divide the global batch "
          f"config.train.batch_size={batch} into BatchNorm groups of at least "
          "2 examples; set bn_groups to such a divisor (8 in the paper).")
    if moco.queue_size <= 0 or moco.queue_size % batch:
      raise ValueError(
          f"config.moco.queue_size={moco.queue_size} must be a positive "
          f"multiple of the global batch config.train.batch_size={batch}; set "
          f"it to e.g. {max(1, round(moco.queue_size / batch)) * batch}.")
    self.temperature = moco.temperature
    self.base_momentum = moco.momentum
    self.momentum_schedule = moco.momentum_schedule
    self.queue_size = moco.queue_size
    self.bn_groups = groups
    self.network = base.SiameseNetwork(
        encoder=base.build_backbone(config.model, bn_axis_name=None),
        projector=build_head(config),
        predictor=None,
        num_classes=num_classes)

  def init_extra_state(self, rng, variables):
    """The key encoder (a copy of encoder + head) and a queue of random keys."""
    extra = super().init_extra_state(rng, variables)
    queue, queue_ptr = queue_lib.init_queue(
        rng, self.queue_size, self.config.moco.dim, self.config.train.batch_size)
    return dict(extra, queue=queue, queue_ptr=queue_ptr)

  def groups_per_replica(self, local_batch_size, axis_name):
    """bn_groups / R, checked against the device count (static at trace time)."""
    replicas = lax.axis_size(axis_name)
    if self.bn_groups % replicas:
      raise ValueError(
          f"config.moco.bn_groups={self.bn_groups} is not divisible by the "
          f"{replicas} devices; set it to a multiple of {replicas} that divides "
          "the global batch.")
    groups = self.bn_groups // replicas
    if local_batch_size % groups:
      raise ValueError(
          f"the global batch ({local_batch_size * replicas}) is not divisible "
          f"by config.moco.bn_groups={self.bn_groups}; change one of them.")
    return groups

  def grouped(self, apply_fn, images, axis_name):
    """``apply_fn`` with BatchNorm statistics per group of the batch.

    ``apply_fn(images) -> (outputs, batch_stats)`` runs once per group of
    this replica (``jax.vmap``, parameters shared); the outputs come back in
    batch order, the new running statistics are the mean over all groups of
    all replicas (replicated).
    """
    groups = self.groups_per_replica(images.shape[0], axis_name)
    outputs, stats = jax.vmap(apply_fn)(
        images.reshape((groups, -1) + images.shape[1:]))
    outputs = jax.tree.map(lambda x: x.reshape((-1,) + x.shape[2:]), outputs)
    stats = jax.tree.map(lambda s: jnp.mean(s, axis=0), stats)
    return outputs, lax.pmean(stats, axis_name)

  def key_forward(self, state, view_k, axis_name):
    """The positive keys k+ of this replica's examples, with shuffling BN.

    Gathers the key views of all replicas, permutes the global batch, runs
    the key encoder on this replica's slice of the permuted batch (grouped
    for BN), gathers the keys and undoes the permutation.

    Returns:
      ``(k, ema_batch_stats)``: ``(b, dim)`` L2-normalised keys in the
      order of ``view_k`` (no gradient) and the key encoder's new statistics.
    """
    local = view_k.shape[0]
    start = lax.axis_index(axis_name) * local
    perm = shuffle_permutation(state.rng, state.step,
                               local * lax.axis_size(axis_name))
    mine = lax.dynamic_slice_in_dim(perm, start, local)
    shuffled = lax.all_gather(view_k, axis_name, tiled=True)[mine]
    k, ema_batch_stats = self.grouped(
        lambda x: self.target_forward(state, x), shuffled, axis_name)
    k_shuffled = lax.all_gather(_l2_normalize(k), axis_name, tiled=True)
    unshuffle = lax.dynamic_slice_in_dim(jnp.argsort(perm), start, local)
    return lax.stop_gradient(k_shuffled[unshuffle]), ema_batch_stats

  def loss_fn(self, params, state, keys, images, labels, axis_name):
    self.groups_per_replica(images.shape[0], axis_name)  # fail fast
    view_q, view_k = self.views(keys, images)
    outputs, batch_stats = self.grouped(
        lambda x: self.online_forward(params, state.batch_stats, x), view_q,
        axis_name)
    q = outputs["projections"]
    k, ema_batch_stats = self.key_forward(state, view_k, axis_name)
    # Negatives: the queue as it was before this step's keys (Algorithm 1).
    contrastive_loss, aux = losses.moco(q, k, state.queue, self.temperature)
    probe_loss, metrics = self.common_metrics(
        outputs["probe_logits"], labels, q, axis_name)
    enqueued = queue_lib.enqueue(state, k, axis_name)
    metrics.update(
        contrastive_loss=contrastive_loss,
        contrastive_acc=aux["contrastive_acc"],
        pos_sim=aux["pos_sim"],
        neg_sim=aux["neg_sim"],
        ema_momentum=self.momentum(state.step))
    state_updates = {"batch_stats": batch_stats,
                     "ema_batch_stats": ema_batch_stats,
                     "queue": enqueued.queue,
                     "queue_ptr": enqueued.queue_ptr}
    return contrastive_loss + probe_loss, (state_updates, metrics)
