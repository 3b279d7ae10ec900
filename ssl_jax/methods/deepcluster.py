r"""DeepCluster: Deep Clustering for Unsupervised Learning of Visual Features.

Caron, Bojanowski, Joulin, Douze (ECCV 2018), https://arxiv.org/abs/1807.05520

The network is trained to predict pseudo-labels that are themselves the
k-means clusters of its own features, recomputed once per "clustering
epoch" (Sec. 3.2): cluster, then classify, alternately.

- Networks: encoder f (the ResNet or ViT of ``config.model``, the network
  evaluated afterwards), optionally behind a fixed Sobel filter
  (``deepcluster.sobel``: grayscale, then the two 3x3 Sobel derivatives;
  Sec. 4, "a fixed linear transformation based on Sobel filters to remove
  color and increase local contrast"); a head g of ``head_layers`` Dense
  layers (Dense-BN-ReLU between; the paper's AlexNet has the fully
  connected fc6-fc7 there; 0: no head, g = identity); the classifier W, the
  paper's "top layer" (Dense(k), weights N(0, 0.01), zero bias, as its
  code), on ReLU(g(f(x))) (on f(x) without a head); and an online linear
  probe on stop_gradient(f(x)) that sees the true labels, for monitoring
  only.
- Clustering (the ``refresh`` hook, before step 0 and then every
  ``cluster_every_steps`` steps, by default one data epoch): the features
  g(f(x)) of every training image (the paper's code clusters fc7 before its
  ReLU; f(x) without a head), in evaluation mode on the test-time view,
  with the current networks; PCA-whitened to ``pca_dim`` dimensions and
  L2-normalised (Sec. 4: "PCA-reduced to 256 dimensions, whitened and
  l2-normalized"); k-means on device with k = ``num_clusters``,
  ``kmeans_iters`` Lloyd iterations, initialised by ``kmeans_init``
  ('random': k distinct points, faiss's default; or 'kmeans++') from a key
  that depends only on the run's seed and the step, empty clusters
  re-seeded by splitting a populated one as faiss does
  (``ssl_jax.eval.clustering``). With ``max_cluster_examples`` > 0 the
  whitening and k-means are fitted on that many seeded examples and every
  other example goes to its nearest centroid. The clusters are the
  pseudo-labels y_n.
- Re-initialisation: after every clustering the classifier W gets fresh
  weights and its optimizer slots (momentum) are zeroed, as the paper's
  code builds a new top layer and a new optimizer for it every epoch (the
  clusters of one epoch have nothing to do with the last one's); f and g
  keep training, the schedule's step count is untouched.
- Views: one augmented view per image (``config.augment``: random crops and
  flips, as the paper).
- Loss: cross-entropy of W on the pseudo-labels, each example weighted by
  the inverse size of its cluster,

  .. math::
     L = \frac1B \sum_{n=1}^{B} w_{y_n} \, \ell(W g(f(x_n)), y_n), \qquad
     w_c = \frac{N}{k' \, n_c},

  with :math:`n_c` the size of cluster c among the N training examples and
  :math:`k'` the number of non-empty clusters. The paper (Sec. 3.3,
  "Trivial parametrization") samples uniformly over the pseudo-labels
  instead and notes: "This is equivalent to weighting the contribution of
  an input to the loss function by the inverse of the size of its assigned
  cluster." Here the generic loader samples examples uniformly and the loss
  carries the weights; their mean over the training set is 1, so the loss
  has the scale of a plain cross-entropy. Plus the probe's cross-entropy.
- State updates: the optimizer step and BatchNorm statistics; per
  clustering, ``TrainState.extra`` gets ``assignments`` (int32 ``(N,)``,
  the pseudo-label of every training record by its index, -1 before the
  first clustering) and ``cluster_weights`` (float32 ``(k,)``, :math:`w_c`,
  0 for empty clusters). The step reads each example's pseudo-label through
  its record index (``uses_example_index``). Both are checkpointed, so a
  resumed run keeps its epoch's clusters and reclusters where an
  uninterrupted run would.
- Logged at each clustering: the NMI of the clusters with the true labels
  and with the previous clustering (the paper's Fig. 2), the number of
  non-empty clusters, of re-seeded empty clusters, and the k-means
  objective (mean squared distance to the centroid).
"""

import functools
import time
from typing import Optional

import flax.linen as nn
import jax
from jax import lax
import jax.numpy as jnp
import numpy as np
import optax

from ssl_jax import augment
from ssl_jax.eval import clustering
from ssl_jax.methods import base
from ssl_jax.train import probe as probe_lib
from ssl_jax.train import step as step_lib

CLASSIFIER = "classifier"  # the top layer's params, re-initialised per clustering
# Folded into the run's key for the clustering draws, apart from the step's.
_CLUSTER_STREAM = 0x0DC1


def sobel(images):
  """Grayscale (the channel mean) then the horizontal and vertical 3x3 Sobel
  derivatives, zero-padded: ``(B, H, W, C) -> (B, H, W, 2)`` (the paper's
  code: a 1x1 convolution with weights 1/3, then ``[[1, 0, -1], [2, 0, -2],
  [1, 0, -1]]`` and its transpose)."""
  gray = jnp.mean(images.astype(jnp.float32), axis=-1, keepdims=True)
  dx = jnp.array([[1.0, 0.0, -1.0], [2.0, 0.0, -2.0], [1.0, 0.0, -1.0]])
  kernel = jnp.stack([dx, dx.T], axis=-1)[:, :, None, :]  # HWIO
  out = lax.conv_general_dilated(gray, kernel, (1, 1), "SAME",
                                 dimension_numbers=("NHWC", "HWIO", "NHWC"))
  return out.astype(images.dtype)


class SobelInput(nn.Module):
  """The backbone fed the Sobel derivatives of the normalised views."""

  backbone: nn.Module

  def __call__(self, images, train: bool):
    return self.backbone(sobel(images), train=train)


def classifier_layer(num_clusters, name=None):
  """The top layer W: Dense(k), weights N(0, 0.01), zero bias (the paper's
  ``top_layer.weight.data.normal_(0, 0.01)``, ``bias.data.zero_()``)."""
  return nn.Dense(num_clusters, kernel_init=nn.initializers.normal(0.01),
                  bias_init=nn.initializers.zeros, name=name)


class DeepClusterNetwork(nn.Module):
  """Encoder f, head g, classifier W, online probe.

  ``__call__`` gives ``features`` f(x), ``embeddings`` g(f(x)) (what is
  clustered), ``logits`` of W and ``probe_logits``; ``cluster_features``
  and ``encode`` are the evaluation-mode g(f(x)) and f(x).
  """

  encoder: nn.Module
  head: Optional[nn.Module]
  num_clusters: int
  num_classes: int

  def embed(self, images, train: bool):
    features = self.encoder(images, train=train)
    embeddings = (features if self.head is None
                  else self.head(features, train=train))
    return features, embeddings

  @nn.compact
  def __call__(self, images, train: bool):
    features, embeddings = self.embed(images, train)
    inputs = embeddings if self.head is None else nn.relu(embeddings)
    logits = classifier_layer(self.num_clusters, name=CLASSIFIER)(
        inputs.astype(jnp.float32))
    probe_logits = probe_lib.OnlineProbe(
        self.num_classes, name="online_probe")(features)
    return {"features": features, "embeddings": embeddings, "logits": logits,
            "probe_logits": probe_logits}

  def cluster_features(self, images):
    return self.embed(images, train=False)[1]

  def encode(self, images):
    return self.encoder(images, train=False)


def uniform_cluster_weights(assignments, num_clusters):
  r"""Per-cluster loss weights :math:`w_c = N / (k' n_c)`, 0 for an empty
  cluster (:math:`k'` non-empty clusters), float32 ``(k,)``: weighting each
  example by the inverse size of its cluster, with mean 1 over the N
  examples."""
  counts = jnp.zeros((num_clusters,), jnp.float32).at[
      jnp.asarray(assignments)].add(1.0)
  nonempty = jnp.sum(counts > 0)
  n = jnp.asarray(assignments).shape[0]
  return jnp.where(counts > 0, n / (nonempty * jnp.maximum(counts, 1.0)),
                   0.0).astype(jnp.float32)


@functools.partial(jax.jit, static_argnames=(
    "num_clusters", "pca_dim", "pca_eps", "num_iters", "init", "sample_size"))
def pseudo_labels(key, features, *, num_clusters, pca_dim, pca_eps, num_iters,
                  init, sample_size):
  """Clusters ``features`` ``(N, D)``: ``(assignments int32 (N,), stats)``.

  Whitening and k-means are fitted on ``sample_size`` examples drawn
  without replacement with ``key`` (all N when ``sample_size >= N``); all
  N are then assigned to the nearest centroid. ``stats``: the number of
  re-seeded empty clusters and the k-means objective over all N.
  """
  sample_key, kmeans_key = jax.random.split(key)
  n = features.shape[0]
  sample = features
  if sample_size < n:
    sample = features[jnp.sort(jax.random.choice(
        sample_key, n, (sample_size,), replace=False))]
  whitening = clustering.fit_pca_whitening(sample, pca_dim, pca_eps)

  def prepare(x):
    return clustering.l2_normalize(clustering.apply_whitening(x, *whitening))

  centroids, _, num_reseeded = clustering.kmeans(
      kmeans_key, prepare(sample), num_clusters, num_iters, init)
  points = prepare(features)
  assignments = clustering.assign(points, centroids)
  objective = jnp.mean(jnp.sum(jnp.square(points - centroids[assignments]),
                               axis=-1))
  return assignments, {"clusters_reseeded": num_reseeded,
                       "kmeans_objective": objective}


def reset_subtrees(tree, fresh, name):
  """``tree`` with every leaf under a dict key ``name`` taken from
  ``fresh`` (same structure): e.g. the optimizer slots of one module."""
  def pick(path, old, new):
    under = any(getattr(k, "key", None) == name for k in path)
    return new if under else old
  return jax.tree_util.tree_map_with_path(pick, tree, fresh)


def _host(tree):
  """Host copies of replicated arrays (one replica's; works multi-host)."""
  return jax.tree.map(lambda x: np.asarray(x.addressable_data(0))
                      if isinstance(x, jax.Array) else np.asarray(x), tree)


class DeepCluster(base.Method):
  """DeepCluster with its online probe; see the module docstring."""

  name = "deepcluster"
  uses_example_index = True
  batch_fields = ("index",)

  def __init__(self, config, num_classes, total_steps, axis_name=base.BATCH_AXIS):
    super().__init__(config, num_classes, total_steps, axis_name)
    settings = config.deepcluster
    self.view_recipes = (config.augment,)  # one view per image
    self.num_clusters = int(settings.num_clusters)
    self.pca_dim = int(settings.pca_dim)
    self.pca_eps = float(settings.pca_eps)
    self.kmeans_iters = int(settings.kmeans_iters)
    self.kmeans_init = settings.kmeans_init
    self.cluster_every_steps = int(settings.cluster_every_steps)
    self.max_cluster_examples = int(settings.max_cluster_examples)
    for field, value, least in (("num_clusters", self.num_clusters, 2),
                                ("pca_dim", self.pca_dim, 1),
                                ("kmeans_iters", self.kmeans_iters, 1),
                                ("cluster_every_steps",
                                 self.cluster_every_steps, 0),
                                ("max_cluster_examples",
                                 self.max_cluster_examples, 0)):
      if value < least:
        raise ValueError(
            f"config.deepcluster.{field}={value} must be at least {least}.")
    if self.kmeans_init not in clustering.INITS:
      raise ValueError(
          f"config.deepcluster.kmeans_init={self.kmeans_init!r}; use one of "
          f"{clustering.INITS}.")
    encoder = base.build_backbone(config.model, bn_axis_name=axis_name)
    if settings.sobel:
      encoder = SobelInput(encoder)
    head = None
    if settings.head_layers > 0:
      head = base.build_mlp(config.model, settings.head_layers,
                            settings.head_hidden_dim, settings.head_hidden_dim,
                            bn_axis_name=axis_name)
    self.network = DeepClusterNetwork(
        encoder=encoder, head=head, num_clusters=self.num_clusters,
        num_classes=num_classes)

  # -- State. ---------------------------------------------------------------
  def init_state(self, rng, image_shape, tx, num_examples=None):
    """The base state plus ``extra``: no pseudo-labels yet (-1) and zero
    weights, for ``num_examples`` training records."""
    if num_examples is None:
      raise ValueError(
          "DeepCluster keeps a pseudo-label per training record: call "
          "init_state(..., num_examples=len(train_source)) "
          "(ssl_jax.train.loop.Run does).")
    clustered = (min(self.max_cluster_examples, num_examples)
                 if self.max_cluster_examples else num_examples)
    if self.num_clusters > clustered:
      raise ValueError(
          f"config.deepcluster.num_clusters={self.num_clusters} is more than "
          f"the {clustered} examples clustered (training set of "
          f"{num_examples}, max_cluster_examples="
          f"{self.max_cluster_examples}); lower num_clusters or cluster more "
          "examples.")
    state = super().init_state(rng, image_shape, tx)
    dim = state.params[CLASSIFIER]["kernel"].shape[0]
    if self.pca_dim > dim:
      raise ValueError(
          f"config.deepcluster.pca_dim={self.pca_dim} is more than the "
          f"{dim} dimensions of the clustered features (head_hidden_dim, or "
          f"the encoder's features without a head); lower pca_dim to at most "
          f"{dim}.")
    return state.replace(extra={
        "assignments": jnp.full((num_examples,), -1, jnp.int32),
        "cluster_weights": jnp.zeros((self.num_clusters,), jnp.float32)})

  def with_clusters(self, state, assignments, tx, key):
    """``state`` with new pseudo-labels: ``extra`` from ``assignments``
    (int32 ``(N,)``), the classifier re-initialised from ``key`` and its
    optimizer slots zeroed (taken from a fresh ``tx.init``); everything
    else, the optimizer's step count included, kept."""
    params, opt_state, extra = self._new_classifier(
        tx, state.params, state.opt_state, jnp.asarray(assignments, jnp.int32),
        key)
    return state.replace(params=params, opt_state=opt_state, extra=extra)

  @functools.partial(jax.jit, static_argnums=(0, 1))
  def _new_classifier(self, tx, params, opt_state, assignments, key):
    kernel = params[CLASSIFIER]["kernel"]
    fresh = classifier_layer(self.num_clusters).init(
        key, jnp.zeros((1, kernel.shape[0]), jnp.float32))["params"]
    params = dict(params, **{CLASSIFIER: fresh})
    opt_state = reset_subtrees(opt_state, tx.init(params), CLASSIFIER)
    extra = {"assignments": assignments,
             "cluster_weights": uniform_cluster_weights(assignments,
                                                        self.num_clusters)}
    return params, opt_state, extra

  def clustering_period(self, run):
    """Steps between clusterings: ``cluster_every_steps``, or one epoch."""
    return self.cluster_every_steps or max(
        1, len(run.train_source) // run.config.train.batch_size)

  def refresh(self, run, state, step):
    """Reclusters before step 0 and every ``clustering_period`` steps."""
    if step % self.clustering_period(run):
      return state, None
    jax.block_until_ready(state)  # time the clustering, not earlier steps
    started = time.perf_counter()
    host = _host({"params": state.params, "batch_stats": state.batch_stats,
                  "rng": state.rng,
                  "previous": state.extra["assignments"]})
    features, labels = run.training_set_features(
        self.cluster_features,
        {"params": host["params"], "batch_stats": host["batch_stats"]})
    key = jax.random.fold_in(
        jax.random.fold_in(host["rng"], _CLUSTER_STREAM), step)
    cluster_key, classifier_key = jax.random.split(key)
    sample_size = self.max_cluster_examples or len(features)
    assignments, stats = pseudo_labels(
        cluster_key, features, num_clusters=self.num_clusters,
        pca_dim=self.pca_dim, pca_eps=self.pca_eps,
        num_iters=self.kmeans_iters, init=self.kmeans_init,
        sample_size=min(sample_size, len(features)))
    assignments = np.asarray(assignments)
    state = self.with_clusters(state, assignments, run.tx, classifier_key)
    scalars = {k: float(v) for k, v in jax.device_get(stats).items()}
    scalars.update(
        nmi_labels=clustering.normalized_mutual_info(assignments, labels),
        clusters_nonempty=float(len(np.unique(assignments))))
    if host["previous"][0] >= 0:  # not the first clustering
      scalars["nmi_previous"] = clustering.normalized_mutual_info(
          assignments, host["previous"])
    scalars["clustering_seconds"] = time.perf_counter() - started
    return step_lib.replicate(state, run.mesh), scalars

  # -- The step. ------------------------------------------------------------
  def views(self, keys, images):
    """One augmented view of every image, from per-example keys."""
    return augment.batch_views(keys, images, self.view_recipes[0])

  def loss_fn(self, params, state, keys, images, labels, axis_name):
    outputs, batch_stats = self.online_forward(
        params, state.batch_stats, self.views(keys, images))
    targets = state.extra["assignments"][labels["index"]]
    weights = state.extra["cluster_weights"][targets]
    logits = outputs["logits"]
    cluster_loss = jnp.mean(
        weights * optax.softmax_cross_entropy_with_integer_labels(
            logits, targets))
    probe_loss, metrics = self.common_metrics(
        outputs["probe_logits"], labels["label"], outputs["embeddings"],
        axis_name)
    metrics.update(cluster_loss=cluster_loss,
                   cluster_acc=jnp.mean(jnp.argmax(logits, -1) == targets))
    return cluster_loss + probe_loss, ({"batch_stats": batch_stats}, metrics)

  # -- Evaluation. ----------------------------------------------------------
  def cluster_features(self, variables, images):
    """g(f(x)) of uint8 images under the test-time transform (clustered)."""
    inputs = augment.batch_eval_views(images, self.view_recipes[0])
    return self.network.apply(variables, inputs,
                              method=DeepClusterNetwork.cluster_features)

  def encode(self, variables, images):
    """Representations f(x) of uint8 images under the test-time transform."""
    inputs = augment.batch_eval_views(images, self.view_recipes[0])
    return self.network.apply(variables, inputs,
                              method=DeepClusterNetwork.encode)
