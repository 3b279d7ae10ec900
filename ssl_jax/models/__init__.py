"""Flax (linen) backbones and heads.

* :class:`ResNet` / :func:`resnet` -- ResNet v1.5 backbones (He et al., 2016)
  with ImageNet or CIFAR (SimCLR) stems, width multiplier, cross-replica
  BatchNorm and a CPU-friendly convolution implementation.
* :class:`VisionTransformer` / :func:`vit` -- ViT encoders (Dosovitskiy et
  al., 2021) with fixed 2-D sine-cosine position embeddings that can run on
  a subset of the patches (MAE); presets Tiny/Small/Base/Large/Huge.
* :class:`TextEncoder` / :class:`TextEncoderDecoder` -- small pre-LN text
  Transformers (BERT-like encoder with rotary or learned positions and a
  tied masked-LM head; BART/PEGASUS-style encoder-decoder with greedy
  generation) on the ViT blocks; :class:`Word2Vec` -- skip-gram with
  negative sampling (Mikolov et al., 2013).
* :class:`MLPHead` -- SimCLR v1/v2-style projection heads (and BYOL
  projectors/predictors).
* :class:`UpsamplingDecoder` -- feature map back to pixels (x2 upsample,
  conv, BN, ReLU per step) for the generation-based pretext tasks.
* :class:`ShiftedMatmulConv` -- ``nn.Conv``-compatible convolution computed as
  per-tap matmuls (fast weight gradients on XLA:CPU).
"""
from ssl_jax.models.decoder import UpsamplingDecoder
from ssl_jax.models.heads import MLPHead
from ssl_jax.models.layers import (
    ShiftedMatmulConv,
    batch_chunked_conv,
    matmul_wgrad_conv,
    shifted_matmul_conv,
)
from ssl_jax.models.resnet import (
    RESNET_DEPTHS,
    BasicBlock,
    BottleneckBlock,
    ResNet,
    resnet,
)
from ssl_jax.models.transformer import (
    TextEncoder,
    TextEncoderDecoder,
    Word2Vec,
)
from ssl_jax.models.vit import (
    VIT_SIZES,
    Transformer,
    VisionTransformer,
    sincos_pos_embed_2d,
    vit,
    vit_dims,
)

__all__ = [
    "RESNET_DEPTHS",
    "VIT_SIZES",
    "BasicBlock",
    "BottleneckBlock",
    "MLPHead",
    "ResNet",
    "ShiftedMatmulConv",
    "TextEncoder",
    "TextEncoderDecoder",
    "Transformer",
    "UpsamplingDecoder",
    "VisionTransformer",
    "Word2Vec",
    "batch_chunked_conv",
    "matmul_wgrad_conv",
    "resnet",
    "shifted_matmul_conv",
    "sincos_pos_embed_2d",
    "vit",
    "vit_dims",
]
