"""BERT's masked-language-model corruption, pure JAX.

Devlin et al., "BERT: Pre-training of Deep Bidirectional Transformers for
Language Understanding" (NAACL 2019), Sec. 3.1 "Task #1: Masked LM" and
Appendix A.1: 15% of the token positions are chosen for prediction; a
chosen token is replaced by [MASK] 80% of the time, by a random token 10%
of the time, and left unchanged 10% of the time; the model predicts the
original token at every chosen position (cross-entropy there only).

:func:`mask_tokens` selects among the ELIGIBLE positions only: real tokens
(not padding) whose id is a regular token (``id >= first_regular_id``;
PAD, UNK, CLS, SEP, MASK, BOS, EOS and the gap-sentence mask of
:mod:`ssl_jax.data.text` are below ``FIRST_REGULAR_ID = 8``). Two
selection rules:

* ``exact_count=False`` (default): each eligible position independently
  with probability ``rate`` (a Bernoulli draw, as the Hugging Face
  collator), so the count per sequence is Binomial(eligible, rate).
* ``exact_count=True``: exactly ``max(1, round(rate * eligible))``
  positions per sequence (0 if none is eligible), uniformly without
  replacement, as BERT's ``create_pretraining_data.py`` does (without its
  ``max_predictions_per_seq`` cap: ``(inputs, targets)`` keep the input
  shape, so no cap is needed).

Random replacements are uniform over the regular ids ``first_regular_id ..
vocab_size - 1`` (BERT's code draws from the whole vocabulary, specials
included; a special token where the text had none only adds noise) and may
equal the original (probability ``1 / regular ids``).

The function works on the last axis of any batch shape, with one key for
the whole batch; it is pure, static-shaped and runs under ``jit`` and
``vmap`` (vmap over per-sequence keys for per-sequence streams).
"""

from __future__ import annotations

from typing import Optional

import jax
import jax.numpy as jnp

Array = jax.Array

IGNORE_ID = -1


def eligible_positions(tokens: Array,
                       lengths_or_pad_mask: Optional[Array] = None, *,
                       first_regular_id: int) -> Array:
  """bool ``tokens.shape``: real (non-pad) positions holding a regular id.

  ``lengths_or_pad_mask``: lengths of shape ``tokens.shape[:-1]`` (a
  position ``p`` is real when ``p < length``), or a mask of
  ``tokens.shape`` (True/nonzero = real token), or None (every position is
  real; padding with PAD_ID is then still excluded by the id test).
  """
  tokens = jnp.asarray(tokens)
  regular = tokens >= first_regular_id
  if lengths_or_pad_mask is None:
    return regular
  given = jnp.asarray(lengths_or_pad_mask)
  if given.shape == tokens.shape:
    return regular & given.astype(bool)
  if given.shape == tokens.shape[:-1]:
    positions = jnp.arange(tokens.shape[-1])
    return regular & (positions < given[..., None])
  raise ValueError(
      f"mask_tokens: lengths_or_pad_mask of shape {tuple(given.shape)} fits "
      f"tokens of shape {tuple(tokens.shape)} neither as lengths (shape "
      f"{tuple(tokens.shape[:-1])}) nor as a pad mask (shape "
      f"{tuple(tokens.shape)}).")


def mask_tokens(key: Array, tokens: Array,
                lengths_or_pad_mask: Optional[Array] = None, *,
                mask_id: int, vocab_size: int, first_regular_id: int,
                rate: float = 0.15, mask_fraction: float = 0.8,
                random_fraction: float = 0.1, exact_count: bool = False,
                ignore_id: int = IGNORE_ID) -> tuple[Array, Array, Array]:
  """BERT masked-LM inputs and targets (see the module docstring).

  Args:
    key: a PRNG key; it is split into three: selection, action, random ids.
    tokens: int ``(..., L)``.
    lengths_or_pad_mask: lengths ``(...)``, a pad mask ``(..., L)`` (True =
      real token) or None; see :func:`eligible_positions`.
    mask_id: the [MASK] id (``ssl_jax.data.text.MASK_ID`` = 4).
    vocab_size: number of ids; random replacements are ``< vocab_size``.
    first_regular_id: ids below it are special and never selected
      (``ssl_jax.data.text.FIRST_REGULAR_ID`` = 8).
    rate: selection probability (or fraction, with ``exact_count``).
    mask_fraction: of the selected, the share replaced by ``mask_id``.
    random_fraction: of the selected, the share replaced by a random regular
      id; the remaining ``1 - mask_fraction - random_fraction`` stay as
      they are.
    exact_count: select exactly ``max(1, round(rate * eligible))`` per
      sequence instead of a Bernoulli draw per position.
    ignore_id: the target at unselected positions.

  Returns:
    ``(inputs, targets, selected)``: ``inputs`` the corrupted tokens (equal
    to ``tokens`` wherever ``selected`` is False), ``targets`` the original
    ids at the selected positions and ``ignore_id`` elsewhere, ``selected``
    bool; all of ``tokens.shape``.
  """
  tokens = jnp.asarray(tokens)
  if not jnp.issubdtype(tokens.dtype, jnp.integer):
    raise ValueError(f"mask_tokens: tokens must be integer ids, got dtype "
                     f"{tokens.dtype}.")
  if tokens.ndim < 1:
    raise ValueError("mask_tokens: tokens must have a sequence axis (..., L).")
  if not 0.0 <= rate <= 1.0:
    raise ValueError(f"mask_tokens: rate={rate} must be in [0, 1].")
  if (mask_fraction < 0 or random_fraction < 0
      or mask_fraction + random_fraction > 1.0 + 1e-9):
    raise ValueError(
        f"mask_tokens: mask_fraction={mask_fraction} and random_fraction="
        f"{random_fraction} must be >= 0 with a sum <= 1 (BERT: 0.8, 0.1).")
  if not 0 <= first_regular_id < vocab_size:
    raise ValueError(
        f"mask_tokens: first_regular_id={first_regular_id} leaves no regular "
        f"id below vocab_size={vocab_size}.")
  eligible = eligible_positions(tokens, lengths_or_pad_mask,
                                first_regular_id=first_regular_id)
  select_key, action_key, random_key = jax.random.split(key, 3)
  draw = jax.random.uniform(select_key, tokens.shape)
  if exact_count:
    # Rank the eligible positions by their draw; the lowest `count` win.
    num_eligible = jnp.sum(eligible, axis=-1, keepdims=True)
    count = jnp.where(num_eligible > 0,
                      jnp.maximum(1, jnp.round(rate * num_eligible)), 0)
    scores = jnp.where(eligible, draw, 2.0)
    rank = jnp.argsort(jnp.argsort(scores, axis=-1), axis=-1)
    selected = eligible & (rank < count)
  else:
    selected = eligible & (draw < rate)
  action = jax.random.uniform(action_key, tokens.shape)
  random_ids = jax.random.randint(random_key, tokens.shape, first_regular_id,
                                  vocab_size, dtype=tokens.dtype)
  replaced = jnp.where(action < mask_fraction,
                       jnp.asarray(mask_id, tokens.dtype),
                       jnp.where(action < mask_fraction + random_fraction,
                                 random_ids, tokens))
  inputs = jnp.where(selected, replaced, tokens)
  targets = jnp.where(selected, tokens, jnp.asarray(ignore_id, tokens.dtype))
  return inputs, targets, selected
