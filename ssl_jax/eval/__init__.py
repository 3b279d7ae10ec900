"""Evaluation of frozen or in-training representations.

Modules (every reported number names its protocol in the docstrings there):

* :mod:`ssl_jax.eval.knn` -- temperature-weighted cosine kNN (Wu et al. 2018,
  InstDisc; MoCo / SimCLR CIFAR demos): :func:`knn_predict`,
  :func:`knn_accuracy`.
* :mod:`ssl_jax.eval.linear_probe` -- offline L2-regularised multinomial
  logistic regression on frozen features, L2 chosen on a stratified
  validation split (SimCLR / BYOL linear evaluation):
  ``linear_probe.linear_probe(...)``.
* :mod:`ssl_jax.eval.collapse` -- complete and dimensional collapse
  diagnostics (SimSiam; Jing et al. 2022; Roy & Vetterli 2007):
  :func:`embedding_std`, :func:`singular_spectrum`, :func:`effective_rank`.
* :mod:`ssl_jax.eval.clustering` -- PCA whitening, k-means on device and
  NMI (DeepCluster's pseudo-labels, Caron et al. 2018).

The probe *function* is deliberately not re-exported here: binding it to the
package name ``linear_probe`` would shadow the submodule of the same name, and
``from ssl_jax.eval import linear_probe`` would then silently return the
function instead of the module.  Use
``from ssl_jax.eval.linear_probe import linear_probe`` for the function.
"""

from ssl_jax.eval import collapse, knn, linear_probe
from ssl_jax.eval.collapse import effective_rank, embedding_std, singular_spectrum
from ssl_jax.eval.knn import knn_accuracy, knn_predict
from ssl_jax.eval.linear_probe import DEFAULT_L2_GRID

__all__ = [
    "DEFAULT_L2_GRID",
    "collapse",
    "effective_rank",
    "embedding_std",
    "knn",
    "knn_accuracy",
    "knn_predict",
    "linear_probe",
    "singular_spectrum",
]
