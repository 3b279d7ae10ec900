r"""DeepCluster (Caron, Bojanowski, Joulin, Douze 2018, arXiv 1807.05520) configs.

    python -m ssl_jax.main --config=configs/deepcluster.py:digits --workdir=runs/deepcluster_digits
    python -m ssl_jax.main --config=configs/deepcluster.py:cifar10 --workdir=runs/deepcluster_cifar10
    python -m ssl_jax.main --config=configs/deepcluster.py:imagenet --workdir=gs://bucket/deepcluster

Every preset: once per epoch (``deepcluster.cluster_every_steps`` = 0; the
digits every 4 epochs), the features of the whole training set are PCA-whitened, L2-normalised and
clustered by k-means (``kmeans_iters`` Lloyd iterations, faiss's random
init and empty-cluster splitting); the classifier on top is re-initialised
and trained, with its optimizer slots zeroed, to predict the clusters,
each example weighted by the inverse size of its cluster (the paper's
uniform sampling over pseudo-labels); one augmented view with crops and
flips and no colour distortion; SGD with momentum 0.9 at a constant-then-
cosine rate.

Presets:
  digits   (default) the scikit-learn digits, 8x8: ResNet-10 at width 1/4,
           no Sobel (one channel already), k = 20 clusters of the 128-d
           features PCA-whitened to 32 dimensions, batch 256, 20 epochs
           (100 steps), SGD lr 0.05. An epoch of the digits is 5 steps,
           too few for the fresh classifier to learn the new clusters
           before the next ones: it reclusters every 20 steps (4 epochs;
           every epoch gives kNN 0.77 instead of 0.91). About two minutes
           on 2 CPU cores; kNN 0.908 / linear 0.961 against the random
           init's 0.733 / 0.889.
  cifar10  CIFAR-10 from an npz folder (default ../shared/datasets/cifar10):
           ResNet-18 with the CIFAR stem behind the Sobel filter, k = 100,
           PCA to 32 dimensions (fits the 64-d features of the width-1/8
           ResNet-18 of experiments/compare_methods.py as well as the 512-d
           of width 1), batch 256, SGD lr 0.05, weight decay 1e-5, 200
           epochs.
  imagenet ImageNet through tfds (imagenet2012): the paper's recipe (Sec. 4:
           Sobel, k = 10,000, PCA to 256 dimensions, SGD lr 0.05, momentum
           0.9, weight decay 1e-5, batch 256, 500 epochs) with a ResNet-50
           at 224 px instead of its AlexNet / VGG-16: the top layer reads
           the 2048-d pooled features (no fully connected fc6-fc7 head).

Any field can be overridden on the command line, e.g.
``--config.deepcluster.num_clusters=500``.
"""

import ml_collections

from ssl_jax.augment import recipes
from ssl_jax.train import defaults


def get_config(preset="digits"):
  """Returns the DeepCluster config for ``preset`` (digits, cifar10, imagenet)."""
  presets = {"digits": _digits, "cifar10": _cifar10, "imagenet": _imagenet}
  if preset not in presets:
    raise ValueError(
        f"unknown DeepCluster preset {preset!r}; use one of "
        f"{sorted(presets)}.")
  config = defaults.base_config("deepcluster")
  config.deepcluster = ml_collections.ConfigDict()
  config.deepcluster.num_clusters = 10000  # k
  config.deepcluster.pca_dim = 256
  config.deepcluster.pca_eps = 1e-5  # added to the eigenvalues (whitening)
  config.deepcluster.kmeans_iters = 20  # Lloyd iterations (the paper's code)
  config.deepcluster.kmeans_init = "random"  # random (faiss) | kmeans++
  config.deepcluster.cluster_every_steps = 0  # 0: once per epoch, N // B
  config.deepcluster.max_cluster_examples = 0  # 0: cluster all; else a seeded subset
  config.deepcluster.head_layers = 0  # Dense layers between f and W
  config.deepcluster.head_hidden_dim = 512
  config.deepcluster.sobel = True
  defaults.use_sgd(config, base_lr=0.05, weight_decay=1e-5)
  presets[preset](config)
  config.augment = recipes.geometric_only(config.augment)
  return config


def _digits(config):
  defaults.use_digits(config)
  config.deepcluster.num_clusters = 20
  config.deepcluster.pca_dim = 32
  config.deepcluster.sobel = False
  config.deepcluster.cluster_every_steps = 20
  config.train.num_epochs = 20.0


def _cifar10(config):
  defaults.use_cifar10(config)
  config.deepcluster.num_clusters = 100
  config.deepcluster.pca_dim = 32
  config.train.batch_size = 256
  config.train.num_epochs = 200.0


def _imagenet(config):
  defaults.use_imagenet(config)
  config.train.batch_size = 256
  config.train.num_epochs = 500.0
