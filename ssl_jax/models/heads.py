"""MLP heads: projection and prediction heads for self-supervised learning.

SimCLR (Chen et al., 2020, "A Simple Framework for Contrastive Learning of
Visual Representations") puts a small MLP ``g`` between the backbone features
``h`` and the contrastive loss: Dense -> BN -> ReLU -> Dense, output 128-d
(v1: ``MLPHead(hidden_dims=(feature_dim,), out_dim=128)``). SimCLR v2 (Chen et
al., 2020, "Big Self-Supervised Models are Strong Semi-Supervised Learners")
uses a deeper head (``hidden_dims=(feature_dim, feature_dim)``), BatchNorm on
the output as well, and fine-tunes from the *first* hidden layer of the head
rather than from ``h``; ``return_hidden=True`` exposes those activations.
The same module serves as BYOL's projector/predictor (one hidden layer).
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import flax.linen as nn

Array = jax.Array

__all__ = ["MLPHead"]


class MLPHead(nn.Module):
    """``[Dense -> BN -> ReLU] * len(hidden_dims) -> Dense(out_dim) [-> BN]``.

    Attributes:
      hidden_dims: width of each hidden layer; ``()`` gives a linear head.
      out_dim: output width.
      use_bn: BatchNorm after every hidden Dense. The hidden Dense layers then
        have no bias (BN's own shift makes it redundant), as in SimCLR's code.
      bn_axis_name: named mapped axis for cross-replica BatchNorm statistics.
      last_bn: BatchNorm on the output, with no learned shift, and the output
        Dense without bias. By default the output BN has no learned scale
        either (pure standardisation); see ``last_bn_scale``.
      out_bias: give the output Dense a bias (ignored with ``last_bn``). The
        Barlow Twins, VICReg and BYOL projectors have none: their losses
        cancel a constant shift, so such a bias would only drift with
        rounding noise.
      last_bn_scale: give the output BN a learned scale. SimCLR v2's released
        code (``LinearLayer(use_bias=False, use_bn=True)``) has a scale but
        no shift on that layer; set this to reproduce it exactly.
      bn_momentum: decay of the BatchNorm running averages.
      bn_epsilon: BatchNorm epsilon.
      dtype: compute dtype; parameters stay float32.
      kernel_init: initializer of every Dense kernel.
    """

    hidden_dims: Sequence[int]
    out_dim: int
    use_bn: bool = True
    bn_axis_name: str | None = None
    last_bn: bool = False
    out_bias: bool = True
    last_bn_scale: bool = False
    bn_momentum: float = 0.9
    bn_epsilon: float = 1e-5
    dtype: Any = jnp.float32
    kernel_init: Any = nn.initializers.lecun_normal()

    @nn.compact
    def __call__(
        self, x: Array, train: bool, return_hidden: bool = False
    ) -> Array | tuple[Array, tuple[Array, ...]]:
        """Applies the head to ``(N, D)`` features.

        Args:
          x: features of shape ``(N, D)``.
          train: BatchNorm uses batch statistics and updates its running
            averages (apply with ``mutable=['batch_stats']``).
          return_hidden: also return the intermediate activations.

        Returns:
          ``(N, out_dim)`` outputs; with ``return_hidden``, the pair
          ``(outputs, hiddens)`` where ``hiddens[0]`` is the head's input and
          ``hiddens[k]`` the post-ReLU activation of hidden layer ``k``
          (``len(hidden_dims) + 1`` arrays: SimCLR v2 fine-tunes from
          ``hiddens[1]``).
        """
        if x.ndim != 2:
            raise ValueError(f"MLPHead expects (batch, features) inputs, got shape {x.shape}")
        if self.out_dim < 1 or any(d < 1 for d in self.hidden_dims):
            raise ValueError(
                f"layer widths must be positive, got hidden_dims={tuple(self.hidden_dims)}, "
                f"out_dim={self.out_dim}"
            )
        norm = lambda **kw: nn.BatchNorm(  # noqa: E731
            use_running_average=not train,
            momentum=self.bn_momentum,
            epsilon=self.bn_epsilon,
            axis_name=self.bn_axis_name,
            dtype=self.dtype,
            param_dtype=jnp.float32,
            **kw,
        )
        x = jnp.asarray(x, self.dtype)
        hiddens = [x]
        for i, width in enumerate(self.hidden_dims):
            x = nn.Dense(
                width,
                use_bias=not self.use_bn,
                dtype=self.dtype,
                kernel_init=self.kernel_init,
                name=f"dense{i + 1}",
            )(x)
            if self.use_bn:
                x = norm(name=f"bn{i + 1}")(x)
            x = nn.relu(x)
            hiddens.append(x)
        x = nn.Dense(
            self.out_dim,
            use_bias=self.out_bias and not self.last_bn,
            dtype=self.dtype,
            kernel_init=self.kernel_init,
            name="dense_out",
        )(x)
        if self.last_bn:
            x = norm(use_bias=False, use_scale=self.last_bn_scale, name="bn_out")(x)
        if return_hidden:
            return x, tuple(hiddens)
        return x
