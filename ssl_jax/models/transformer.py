r"""Small Transformers and word embeddings for text pretext tasks.

* :class:`TextEncoder` -- a BERT-like encoder (Devlin et al. 2019, "BERT:
  Pre-training of Deep Bidirectional Transformers for Language
  Understanding", arXiv 1810.04805) with pre-LN blocks (Xiong et al. 2020,
  "On Layer Normalization in the Transformer Architecture", arXiv
  2002.04745): token embedding, rotary (Su et al. 2021, "RoFormer: Enhanced
  Transformer with Rotary Position Embedding", arXiv 2104.09864) or learned
  positions, ``depth`` blocks ``x + MHSA(LN(x))``, ``x + MLP(LN(x))`` with a
  key-padding mask, a final LayerNorm. PAD tokens (``pad_id``) are never
  attended to, so the states of the real tokens do not depend on how much
  padding follows them. :meth:`TextEncoder.mlm_logits` is a masked-LM head
  tied to the token embedding (``hidden @ E^T + b``, as BERT's).
* :class:`TextEncoderDecoder` -- that encoder and a pre-LN decoder (causal
  self-attention, cross-attention to the encoder states, MLP) sharing the
  token embedding and the tied output projection, for the sequence-to-
  sequence pretext tasks of BART (Lewis et al. 2020, arXiv 1910.13461) and
  PEGASUS (Zhang et al. 2020, arXiv 1912.08777); teacher-forced logits and
  greedy :meth:`TextEncoderDecoder.generate` with static shapes.
* :class:`Word2Vec` -- skip-gram with negative sampling (Mikolov et al.
  2013, "Distributed Representations of Words and Phrases and their
  Compositionality", arXiv 1310.4546), its loss
  (:func:`skipgram_negative_sampling_loss`) and the evaluation helpers
  :func:`nearest_neighbours` and :func:`analogy` (Mikolov et al. 2013,
  "Efficient Estimation of Word Representations in Vector Space", arXiv
  1301.3781: ``b - a + c`` by cosine, the question words excluded).

The blocks are :class:`ssl_jax.models.vit.Transformer` (the ViT/MAE blocks,
which take a mask, a rotary hook, dropout and a cross-attention context).
Parameters are float32; ``dtype`` is the compute dtype, the logits and the
attention softmax are float32.
"""
from __future__ import annotations

import functools
from typing import Any, Callable, Optional

import flax.linen as nn
import jax
import jax.numpy as jnp

from ssl_jax.models.vit import Transformer

Array = jax.Array

__all__ = [
    "POSITIONS",
    "TextEncoder",
    "TextEncoderDecoder",
    "Word2Vec",
    "analogy",
    "apply_rotary",
    "nearest_neighbours",
    "padding_mask",
    "skipgram_negative_sampling_loss",
]

#: How token positions enter the text models.
POSITIONS = ("rotary", "learned")

_embed_init = nn.initializers.normal(stddev=0.02)  # BERT's initializer range


# ---------------------------------------------------------------------------
# Rotary position embeddings and masks.
# ---------------------------------------------------------------------------


def apply_rotary(x: Array, positions: Array, base: float = 10000.0) -> Array:
  r"""Rotary position embedding (RoPE, Su et al. 2021) of ``x``.

  ``x``: ``(..., T, H, hd)`` queries or keys (``hd`` even); ``positions``:
  ``(T,)`` or ``(B, T)``, broadcast against the leading axes. Channel pairs
  ``(x_i, x_{i + hd/2})`` are rotated by the angle ``m * theta_i`` at
  position ``m``, :math:`\theta_i = base^{-2i/hd}` (the "rotate half"
  layout of GPT-NeoX; the paper pairs adjacent channels, the same map on a
  permuted basis). Since rotations compose, ``<R_m q, R_n k> =
  <q, R_{n-m} k>``: the attention logits depend on the relative position
  only. Computed in float32, returned in ``x.dtype``.
  """
  head_dim = x.shape[-1]
  if head_dim % 2:
    raise ValueError(f"apply_rotary: head_dim must be even, got {head_dim}.")
  half = head_dim // 2
  inv_freq = base ** (-jnp.arange(half, dtype=jnp.float32) * 2.0 / head_dim)
  angles = jnp.asarray(positions, jnp.float32)[..., None] * inv_freq
  sin = jnp.sin(angles)[..., None, :]  # (..., T, 1, half): all heads
  cos = jnp.cos(angles)[..., None, :]
  x1 = x[..., :half].astype(jnp.float32)
  x2 = x[..., half:].astype(jnp.float32)
  out = jnp.concatenate([x1 * cos - x2 * sin, x2 * cos + x1 * sin], axis=-1)
  return out.astype(x.dtype)


def padding_mask(tokens: Array, pad_id: int = 0) -> Array:
  """``(B, L)`` bool, True at the real (non-PAD) tokens."""
  return tokens != pad_id


def _key_mask(valid: Array) -> Array:
  """``(B, L)`` key validity -> attention mask ``(B, 1, 1, L)``: every
  query attends to the real keys only (a PAD query still gets a state, from
  the real tokens; it is ignored by the pooling)."""
  return valid[:, None, None, :]


def _check_position(position: str):
  if position not in POSITIONS:
    raise ValueError(f"position={position!r}; use one of {POSITIONS}.")


# ---------------------------------------------------------------------------
# Encoder.
# ---------------------------------------------------------------------------


class TextEncoder(nn.Module):
  """BERT-like pre-LN Transformer encoder; see the module docstring.

  ``__call__(tokens, train=False, mask=None)``:

  * ``tokens``: int ``(B, L)``, PAD = ``pad_id`` (right padding, so the
    positions of the real tokens do not depend on the padding).
  * ``mask``: optional bool ``(B, L)``, True at real tokens; default
    ``tokens != pad_id``.
  * ``train``: dropout (``dropout_rate``, on the embeddings, attention
    weights and each sub-layer's output; the ``'dropout'`` rng) is active
    only when True.

  Returns a dict: ``tokens`` ``(B, L, width)`` final (LayerNormed) states,
  ``pooled`` ``(B, width)`` their mean over the real tokens, ``cls``
  ``(B, width)`` the first token's state, ``mask`` ``(B, L)``.

  Parameters: ``embed/embedding`` ``(vocab_size, width)``, ``pos_embed``
  ``(max_length, width)`` (``position='learned'`` only), ``transformer/
  block{i}/...`` and ``transformer/norm``, ``mlm_bias`` ``(vocab_size,)``.
  """

  vocab_size: int
  width: int = 128
  depth: int = 4
  num_heads: int = 4
  mlp_ratio: float = 4.0
  max_length: int = 512
  position: str = "rotary"
  dropout_rate: float = 0.0
  pad_id: int = 0
  rope_base: float = 10000.0
  dtype: Any = jnp.float32

  def setup(self):
    _check_position(self.position)
    if self.width % self.num_heads:
      raise ValueError(f"width {self.width} is not divisible by "
                       f"num_heads={self.num_heads}.")
    self.embed = nn.Embed(self.vocab_size, self.width, dtype=self.dtype,
                          embedding_init=_embed_init)
    if self.position == "learned":
      self.pos_embed = self.param("pos_embed", _embed_init,
                                  (self.max_length, self.width))
    self.transformer = Transformer(self.depth, self.num_heads, self.mlp_ratio,
                                   self.dtype, self.dropout_rate)
    self.mlm_bias = self.param("mlm_bias", nn.initializers.zeros,
                               (self.vocab_size,))
    self.embed_dropout = nn.Dropout(self.dropout_rate)

  def rotate(self, length: int) -> Optional[Callable[[Array], Array]]:
    """The rotary hook for ``length`` tokens at positions ``0 .. length-1``
    (None with learned positions)."""
    if self.position != "rotary":
      return None
    return functools.partial(apply_rotary, positions=jnp.arange(length),
                             base=self.rope_base)

  def embed_tokens(self, tokens: Array, pos_embed: Optional[Array],
                   train: bool) -> Array:
    """Token embeddings (plus ``pos_embed[:L]`` when given), dropout."""
    length = tokens.shape[1]
    x = self.embed(tokens)
    if pos_embed is not None:
      if length > pos_embed.shape[0]:
        raise ValueError(f"{length} tokens but max_length="
                         f"{pos_embed.shape[0]} learned positions.")
      x = x + pos_embed[:length].astype(self.dtype)
    return self.embed_dropout(x, deterministic=not train)

  def __call__(self, tokens: Array, train: bool = False,
               mask: Optional[Array] = None) -> dict[str, Array]:
    valid = padding_mask(tokens, self.pad_id) if mask is None else mask
    valid = valid.astype(bool)
    pos = self.pos_embed if self.position == "learned" else None
    x = self.embed_tokens(tokens, pos, train)
    x = self.transformer(x, mask=_key_mask(valid),
                         rotate=self.rotate(tokens.shape[1]),
                         deterministic=not train)
    weights = valid.astype(jnp.float32)[..., None]
    pooled = jnp.sum(x.astype(jnp.float32) * weights, axis=1) / jnp.maximum(
        jnp.sum(weights, axis=1), 1.0)
    return {"tokens": x, "pooled": pooled.astype(x.dtype), "cls": x[:, 0],
            "mask": valid}

  def mlm_logits(self, hidden: Array) -> Array:
    """Masked-LM logits ``hidden @ E^T + mlm_bias`` (``(..., vocab_size)``,
    float32), tied to the token embedding ``E`` as BERT's output layer, so
    the head adds only a bias. Call it with ``method='mlm_logits'``."""
    logits = self.embed.attend(hidden.astype(self.dtype))
    return logits.astype(jnp.float32) + self.mlm_bias


# ---------------------------------------------------------------------------
# Encoder-decoder.
# ---------------------------------------------------------------------------


class TextEncoderDecoder(nn.Module):
  """:class:`TextEncoder` plus a pre-LN Transformer decoder (BART/PEGASUS).

  Each decoder block: ``x + CausalMHSA(LN(x))`` (rotary positions when
  ``position='rotary'``, else its own learned ``decoder_pos_embed``),
  ``x + CrossAttn(LN(x), encoder states)`` masked by the source padding,
  ``x + MLP(LN(x))``; a final LayerNorm, then the encoder's tied output
  projection (:meth:`TextEncoder.mlm_logits`, shared token embedding).

  * ``__call__(source_tokens, target_input_tokens, train=False)``: teacher-
    forced logits ``(B, T, vocab_size)`` float32, ``target_input = BOS +
    target[:-1]``; position ``t`` sees target inputs ``0..t`` only. The
    decoder self-attention is causal but not padding-masked (PAD targets
    follow the real ones, so the causal mask already hides them, and a
    BOS equal to ``pad_id``, as T5's, still works); mask PAD targets in the
    loss.
  * :meth:`generate`: greedy decoding.

  Parameters: ``encoder/...`` (:class:`TextEncoder`), ``decoder/block{i}/``
  ``{norm1, attn, norm_cross, cross_attn, norm2, fc1, fc2}``,
  ``decoder/norm``, ``decoder_pos_embed`` (learned positions only).
  """

  vocab_size: int
  width: int = 128
  depth: int = 4
  decoder_depth: Optional[int] = None  # None: depth
  num_heads: int = 4
  mlp_ratio: float = 4.0
  max_length: int = 512
  position: str = "rotary"
  dropout_rate: float = 0.0
  pad_id: int = 0
  rope_base: float = 10000.0
  dtype: Any = jnp.float32

  def setup(self):
    _check_position(self.position)
    self.encoder = TextEncoder(
        self.vocab_size, self.width, self.depth, self.num_heads,
        self.mlp_ratio, self.max_length, self.position, self.dropout_rate,
        self.pad_id, self.rope_base, self.dtype)
    if self.position == "learned":
      self.decoder_pos_embed = self.param(
          "decoder_pos_embed", _embed_init, (self.max_length, self.width))
    depth = self.depth if self.decoder_depth is None else self.decoder_depth
    self.decoder = Transformer(depth, self.num_heads, self.mlp_ratio,
                               self.dtype, self.dropout_rate)

  def encode(self, source_tokens: Array, train: bool = False,
             source_mask: Optional[Array] = None) -> dict[str, Array]:
    """The encoder's output dict (:class:`TextEncoder`)."""
    return self.encoder(source_tokens, train, mask=source_mask)

  def decode_hidden(self, encoded: dict[str, Array], target_input: Array,
                    train: bool = False) -> Array:
    """Decoder states ``(B, T, width)`` of ``target_input`` given the
    encoder output ``encoded``."""
    length = target_input.shape[1]
    pos = self.decoder_pos_embed if self.position == "learned" else None
    y = self.encoder.embed_tokens(target_input, pos, train)
    causal = jnp.tril(jnp.ones((length, length), bool))[None, None]
    return self.decoder(y, mask=causal, rotate=self.encoder.rotate(length),
                        context=encoded["tokens"],
                        context_mask=_key_mask(encoded["mask"]),
                        deterministic=not train)

  def __call__(self, source_tokens: Array, target_input_tokens: Array,
               train: bool = False,
               source_mask: Optional[Array] = None) -> Array:
    encoded = self.encode(source_tokens, train, source_mask)
    hidden = self.decode_hidden(encoded, target_input_tokens, train)
    return self.encoder.mlm_logits(hidden)

  def generate(self, source_tokens: Array, max_length: int, bos_id: int,
               eos_id: int, source_mask: Optional[Array] = None) -> Array:
    """Greedy decoding: ``(B, max_length)`` int32 output tokens (BOS not
    included), ``eos_id`` written once, then ``pad_id``.

    Static shapes: a ``lax.fori_loop`` over the positions reruns the
    decoder on the whole ``max_length`` buffer (the causal mask makes the
    not-yet-written tail irrelevant), O(max_length^2) work -- fine for
    short outputs. Inference mode (no dropout). Call it with
    ``method='generate'`` (``max_length``, ``bos_id``, ``eos_id`` static).
    """
    encoded = self.encode(source_tokens, False, source_mask)
    batch = source_tokens.shape[0]
    inputs = jnp.full((batch, max_length), self.pad_id, jnp.int32)
    inputs = inputs.at[:, 0].set(bos_id)
    outputs = jnp.full((batch, max_length), self.pad_id, jnp.int32)
    done = jnp.zeros((batch,), bool)

    def step(t, carry):
      inputs, outputs, done = carry
      hidden = self.decode_hidden(encoded, inputs)
      hidden_t = jax.lax.dynamic_index_in_dim(hidden, t, axis=1,
                                              keepdims=False)
      token = jnp.argmax(self.encoder.mlm_logits(hidden_t), axis=-1)
      token = jnp.where(done, self.pad_id, token).astype(jnp.int32)
      outputs = outputs.at[:, t].set(token)
      inputs = inputs.at[:, t + 1].set(token, mode="drop")
      return inputs, outputs, done | (token == eos_id)

    _, outputs, _ = jax.lax.fori_loop(0, max_length, step,
                                      (inputs, outputs, done))
    return outputs


# ---------------------------------------------------------------------------
# word2vec.
# ---------------------------------------------------------------------------


def _word2vec_input_init(key, shape, dtype=jnp.float32):
  """word2vec.c's ``syn0``: uniform in ``[-0.5, 0.5) / dim``."""
  return jax.random.uniform(key, shape, dtype, -0.5, 0.5) / shape[-1]


class Word2Vec(nn.Module):
  """Skip-gram with negative sampling (Mikolov et al. 2013).

  Two tables ``(vocab_size, dim)``: ``center/embedding`` (the input vectors,
  word2vec.c's ``syn0``, uniform ``+-0.5/dim``) and ``context/embedding``
  (the output vectors, ``syn1neg``, zeros). ``__call__(center_ids,
  context_ids, negative_ids)`` with ids ``(B,)``, ``(B,)``, ``(B, K)``
  returns the scores ``<v_center, u_context>`` ``(B,)`` and
  ``<v_center, u_negative_k>`` ``(B, K)`` (any leading shape works);
  train them with :func:`skipgram_negative_sampling_loss`. The word
  vectors are the input table (:meth:`embeddings`).
  """

  vocab_size: int
  dim: int = 100
  dtype: Any = jnp.float32

  def setup(self):
    self.center = nn.Embed(self.vocab_size, self.dim, dtype=self.dtype,
                           embedding_init=_word2vec_input_init)
    self.context = nn.Embed(self.vocab_size, self.dim, dtype=self.dtype,
                            embedding_init=nn.initializers.zeros)

  def __call__(self, center_ids: Array, context_ids: Array,
               negative_ids: Array) -> tuple[Array, Array]:
    v = self.center(center_ids)
    positive = jnp.sum(v * self.context(context_ids), axis=-1)
    negative = jnp.einsum("...d,...kd->...k", v, self.context(negative_ids))
    return positive.astype(jnp.float32), negative.astype(jnp.float32)

  def embeddings(self) -> Array:
    """The word vectors ``(vocab_size, dim)`` (``method='embeddings'``)."""
    return self.center.embedding


def skipgram_negative_sampling_loss(positive: Array, negative: Array) -> Array:
  r"""Negative-sampling objective (Mikolov et al. 2013, Eq. 4), negated and
  averaged over the pairs: :math:`-\mathrm{mean}(\log\sigma(s^+) +
  \sum_k \log\sigma(-s^-_k))` for scores ``positive`` ``(B,)`` and
  ``negative`` ``(B, K)``."""
  positive = jnp.asarray(positive, jnp.float32)
  negative = jnp.asarray(negative, jnp.float32)
  return -jnp.mean(jax.nn.log_sigmoid(positive)
                   + jnp.sum(jax.nn.log_sigmoid(-negative), axis=-1))


def _unit_rows(embeddings: Array) -> Array:
  e = jnp.asarray(embeddings, jnp.float32)
  return e / jnp.maximum(jnp.linalg.norm(e, axis=-1, keepdims=True), 1e-12)


def _top_k_excluding(scores: Array, exclude: list[Array],
                     k: int) -> tuple[Array, Array]:
  vocab = jnp.arange(scores.shape[-1])
  for ids in exclude:
    scores = jnp.where(vocab == jnp.asarray(ids)[..., None], -jnp.inf, scores)
  values, indices = jax.lax.top_k(scores, k)
  return indices, values


def nearest_neighbours(embeddings: Array, query_ids: Array, k: int = 10,
                       exclude_query: bool = True) -> tuple[Array, Array]:
  """The ``k`` words closest to each query by cosine similarity.

  ``embeddings``: ``(V, D)`` (e.g. :meth:`Word2Vec.embeddings`);
  ``query_ids``: int, any shape ``S``. Returns ``(ids, similarities)``,
  each ``S + (k,)``, most similar first; the query itself is left out
  unless ``exclude_query`` is False.
  """
  e = _unit_rows(embeddings)
  query_ids = jnp.asarray(query_ids)
  scores = e[query_ids] @ e.T
  return _top_k_excluding(scores, [query_ids] if exclude_query else [], k)


def analogy(embeddings: Array, a: Array, b: Array, c: Array,
            k: int = 1) -> tuple[Array, Array]:
  """"``a`` is to ``b`` as ``c`` is to ?" (3CosAdd, Mikolov et al. 2013):
  the ``k`` words closest by cosine to ``b - a + c`` (unit-normalised word
  vectors, as word2vec's ``compute-accuracy``), ``a``, ``b`` and ``c``
  excluded. ``a``, ``b``, ``c``: int ids of one shape ``S``; returns
  ``(ids, similarities)``, each ``S + (k,)``."""
  e = _unit_rows(embeddings)
  a, b, c = jnp.asarray(a), jnp.asarray(b), jnp.asarray(c)
  target = _unit_rows(e[b] - e[a] + e[c])
  return _top_k_excluding(target @ e.T, [a, b, c], k)
