"""Pure loss kernels: embeddings in, ``(scalar loss, aux dict)`` out.

Every loss that uses negatives or batch statistics takes ``axis_name=None``;
with a mapped device axis the negatives (and statistics) come from every
replica (see the note at the top of ``ssl_jax.losses.contrastive`` on how a
training step combines the per-replica losses and their gradients).
"""

from ssl_jax.losses import (blockwise, contrastive, dense, mutual_info,
                            noncontrastive, pretext)
from ssl_jax.losses.blockwise import nt_xent_blockwise
from ssl_jax.losses.contrastive import (cmc_full_graph, info_nce, moco,
                                        moco_enqueue, nt_xent,
                                        supervised_contrastive,
                                        symmetric_info_nce)
from ssl_jax.losses.dense import (dense_regression, depth_log_loss,
                                  domain_adversarial, edge_loss, flow_loss,
                                  gradient_reversal, segmentation_loss)
from ssl_jax.losses.mutual_info import cpc, dim_local_global
from ssl_jax.losses.noncontrastive import barlow_twins, byol, simsiam, vicreg
from ssl_jax.losses.pretext import (binary_correspondence, classification,
                                    colorization, colour_by_pointing,
                                    mae_reconstruction, reconstruction)

__all__ = [
    # Contrastive.
    "info_nce", "nt_xent", "nt_xent_blockwise", "moco", "moco_enqueue",
    "symmetric_info_nce", "cmc_full_graph", "supervised_contrastive",
    # Mutual information.
    "dim_local_global", "cpc",
    # Non-contrastive.
    "byol", "simsiam", "barlow_twins", "vicreg",
    # Pretext and generative.
    "classification", "binary_correspondence", "mae_reconstruction",
    "colorization", "reconstruction", "colour_by_pointing",
    # Dense labels and domain alignment.
    "depth_log_loss", "segmentation_loss", "edge_loss", "flow_loss",
    "dense_regression", "gradient_reversal", "domain_adversarial",
]
