"""Pure loss kernels: embeddings in, ``(scalar loss, aux dict)`` out.

Every contrastive loss takes ``axis_name=None``; with a mapped device axis the
negatives come from every replica (see ``ssl_jax.losses.contrastive``).
"""

from ssl_jax.losses.contrastive import info_nce, nt_xent

__all__ = ["info_nce", "nt_xent"]
