"""BERT masking (``augment.text.mask_tokens``): the 15% selection rate and
the 80/10/10 split among the selected over a large batch (4 binomial
standard errors), padding and special tokens never selected, unselected
tokens unchanged, the exact-count rule, determinism per key, jit and vmap.
"""
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ssl_jax.augment import text as text_augment
from ssl_jax.data import text

VOCAB = 1000
FIRST = text.FIRST_REGULAR_ID
KW = dict(mask_id=text.MASK_ID, vocab_size=VOCAB, first_regular_id=FIRST)


def _batch(num=512, length=128, seed=0):
  """CLS, regular ids (with a few UNK/MASK/special ids inside), SEP, PAD."""
  rng = np.random.default_rng(seed)
  lengths = rng.integers(3, length + 1, size=num).astype(np.int32)
  tokens = rng.integers(FIRST, VOCAB, size=(num, length)).astype(np.int32)
  specials = rng.random((num, length)) < 0.03
  tokens[specials] = rng.integers(0, FIRST, size=specials.sum())
  tokens[:, 0] = text.CLS_ID
  rows = np.arange(num)
  tokens[rows, lengths - 1] = text.SEP_ID
  tokens[np.arange(length)[None, :] >= lengths[:, None]] = text.PAD_ID
  return tokens, lengths


def _within(count, trials, p, sigmas=4.0):
  return abs(count - trials * p) <= sigmas * math.sqrt(trials * p * (1 - p))


@pytest.fixture(scope="module")
def masked():
  tokens, lengths = _batch()
  fn = jax.jit(lambda k, t, l: text_augment.mask_tokens(k, t, l, **KW))
  out = fn(jax.random.key(0), tokens, lengths)
  return tokens, lengths, tuple(np.asarray(x) for x in out)


def _eligible(tokens, lengths):
  real = np.arange(tokens.shape[1])[None, :] < lengths[:, None]
  return real & (tokens >= FIRST)


def test_selection_rate_is_15_percent_of_eligible(masked):
  tokens, lengths, (_, _, selected) = masked
  eligible = _eligible(tokens, lengths)
  assert eligible.sum() > 25_000
  assert _within(selected.sum(), eligible.sum(), 0.15), (
      selected.sum() / eligible.sum())


def test_pads_and_specials_never_selected(masked):
  tokens, lengths, (inputs, targets, selected) = masked
  eligible = _eligible(tokens, lengths)
  assert not np.any(selected & ~eligible)
  assert not np.any(selected[tokens < FIRST])  # PAD, CLS, SEP, UNK, ...
  # Unselected positions: input unchanged, target ignored.
  np.testing.assert_array_equal(inputs[~selected], tokens[~selected])
  assert np.all(targets[~selected] == text_augment.IGNORE_ID)
  np.testing.assert_array_equal(targets[selected], tokens[selected])
  assert selected.dtype == bool and inputs.dtype == tokens.dtype


def test_80_10_10_split_among_selected(masked):
  tokens, _, (inputs, _, selected) = masked
  n = int(selected.sum())
  original, shown = tokens[selected], inputs[selected]
  masked_count = int(np.sum(shown == text.MASK_ID))
  randomised = int(np.sum((shown != text.MASK_ID) & (shown != original)))
  unchanged = int(np.sum(shown == original))
  assert masked_count + randomised + unchanged == n
  regular = VOCAB - FIRST  # a random id equals the original 1 time in 992
  assert _within(masked_count, n, 0.8)
  assert _within(randomised, n, 0.1 * (1 - 1 / regular))
  assert _within(unchanged, n, 0.1 + 0.1 / regular)
  # Random replacements are regular ids only.
  replaced = shown[(shown != text.MASK_ID) & (shown != original)]
  assert replaced.min() >= FIRST and replaced.max() < VOCAB


def test_pad_mask_form_matches_lengths_form():
  tokens, lengths = _batch(num=16, length=32, seed=1)
  key = jax.random.key(3)
  by_length = text_augment.mask_tokens(key, tokens, lengths, **KW)
  pad_mask = np.arange(32)[None, :] < lengths[:, None]
  by_mask = text_augment.mask_tokens(key, tokens, pad_mask, **KW)
  for a, b in zip(by_length, by_mask):
    np.testing.assert_array_equal(a, b)
  # Without either, only the id test applies (PAD_ID < first_regular_id).
  by_ids = text_augment.mask_tokens(key, tokens, None, **KW)
  np.testing.assert_array_equal(by_ids[2], by_length[2])
  with pytest.raises(ValueError, match="neither as lengths"):
    text_augment.mask_tokens(key, tokens, lengths[:3], **KW)


def test_exact_count_per_sequence():
  tokens, lengths = _batch(num=64, length=64, seed=2)
  _, _, selected = text_augment.mask_tokens(
      jax.random.key(1), tokens, lengths, exact_count=True, **KW)
  selected = np.asarray(selected)
  eligible = _eligible(tokens, lengths)
  count = eligible.sum(1)
  expected = np.where(count > 0, np.maximum(1, np.round(0.15 * count)), 0)
  np.testing.assert_array_equal(selected.sum(1), expected)
  assert not np.any(selected & ~eligible)
  # No eligible token: nothing selected (no error, no forced pick).
  none = np.full((1, 8), text.PAD_ID, np.int32)
  assert not np.any(text_augment.mask_tokens(
      jax.random.key(0), none, None, exact_count=True, **KW)[2])


def test_deterministic_per_key_jit_and_vmap():
  tokens, lengths = _batch(num=8, length=40, seed=4)
  key = jax.random.key(5)
  eager = text_augment.mask_tokens(key, tokens, lengths, **KW)
  again = text_augment.mask_tokens(key, tokens, lengths, **KW)
  jitted = jax.jit(lambda k, t, l: text_augment.mask_tokens(k, t, l, **KW))(
      key, tokens, lengths)
  for a, b, c in zip(eager, again, jitted):
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(a, c)
  other = text_augment.mask_tokens(jax.random.key(6), tokens, lengths, **KW)
  assert not np.array_equal(eager[2], other[2])
  # vmap over per-sequence keys = one call per sequence.
  keys = jax.random.split(key, tokens.shape[0])
  mapped = jax.vmap(lambda k, t, l: text_augment.mask_tokens(
      k, t, l, exact_count=True, **KW))(keys, tokens, lengths)
  for row in range(tokens.shape[0]):
    single = text_augment.mask_tokens(keys[row], tokens[row], lengths[row],
                                      exact_count=True, **KW)
    for a, b in zip(mapped, single):
      np.testing.assert_array_equal(np.asarray(a)[row], b)


def test_argument_errors():
  tokens, lengths = _batch(num=2, length=8)
  key = jax.random.key(0)
  with pytest.raises(ValueError, match="rate"):
    text_augment.mask_tokens(key, tokens, lengths, rate=1.5, **KW)
  with pytest.raises(ValueError, match="mask_fraction"):
    text_augment.mask_tokens(key, tokens, lengths, mask_fraction=0.9,
                             random_fraction=0.2, **KW)
  with pytest.raises(ValueError, match="integer ids"):
    text_augment.mask_tokens(key, jnp.zeros((2, 8)), lengths, **KW)
  with pytest.raises(ValueError, match="first_regular_id"):
    text_augment.mask_tokens(key, tokens, lengths, mask_id=4, vocab_size=8,
                             first_regular_id=8)
