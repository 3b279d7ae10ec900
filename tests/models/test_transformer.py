"""Tests for ssl_jax.models.transformer: the text encoder (shapes, exact
padding invariance, rotary positions, pooling, tied MLM head, dropout), the
encoder-decoder (causality, greedy decoding, source padding) and word2vec
(loss, scores, nearest neighbours, analogies)."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ssl_jax.models import TextEncoder, TextEncoderDecoder, Word2Vec
from ssl_jax.models.transformer import (
    analogy,
    apply_rotary,
    nearest_neighbours,
    skipgram_negative_sampling_loss,
)

KEY = jax.random.key(0)
VOCAB, WIDTH, HEADS = 31, 16, 2
PAD, BOS, EOS = 0, 1, 2
TOL = dict(rtol=1e-5, atol=1e-5)


def random_tokens(seed, batch, length, lengths=None):
  """Tokens in [3, VOCAB) with right padding to ``lengths`` (per row)."""
  rng = np.random.RandomState(seed)
  tokens = rng.randint(3, VOCAB, size=(batch, length)).astype(np.int32)
  if lengths is not None:
    for row, n in enumerate(lengths):
      tokens[row, n:] = PAD
  return jnp.asarray(tokens)


def pad_to(tokens, length):
  return jnp.pad(tokens, ((0, 0), (0, length - tokens.shape[1])),
                 constant_values=PAD)


@pytest.fixture(scope="module", params=["rotary", "learned"])
def encoder(request):
  model = TextEncoder(VOCAB, width=WIDTH, depth=2, num_heads=HEADS,
                      max_length=32, position=request.param)
  tokens = random_tokens(0, 3, 6, lengths=[6, 4, 1])
  variables = model.init(KEY, tokens)
  apply = jax.jit(model.apply, static_argnames=("train", "method"))
  return model, variables, apply, tokens


@pytest.fixture(scope="module", params=["rotary", "learned"])
def seq2seq(request):
  model = TextEncoderDecoder(VOCAB, width=WIDTH, depth=1, decoder_depth=2,
                             num_heads=HEADS, max_length=16,
                             position=request.param)
  source = random_tokens(1, 3, 7, lengths=[7, 5, 2])
  target = random_tokens(2, 3, 6)
  variables = model.init(KEY, source, target)
  apply = jax.jit(model.apply, static_argnames=("train",))
  generate = jax.jit(
      lambda v, s, eos: model.apply(v, s, 6, BOS, eos, method="generate"))
  return model, variables, apply, generate, source, target


# ---------------------------------------------------------------------------
# Encoder.
# ---------------------------------------------------------------------------


def test_encoder_shapes_and_parameters(encoder):
  model, variables, apply, tokens = encoder
  out = apply(variables, tokens)
  assert out["tokens"].shape == (3, 6, WIDTH)
  assert out["pooled"].shape == out["cls"].shape == (3, WIDTH)
  params = variables["params"]
  assert params["embed"]["embedding"].shape == (VOCAB, WIDTH)
  assert params["mlm_bias"].shape == (VOCAB,)
  assert set(params["transformer"]) == {"block0", "block1", "norm"}
  assert ("pos_embed" in params) == (model.position == "learned")
  assert all(x.dtype == jnp.float32 for x in jax.tree.leaves(params))
  # bfloat16 compute keeps float32 parameters.
  bf16 = TextEncoder(VOCAB, width=WIDTH, depth=1, num_heads=HEADS,
                     dtype=jnp.bfloat16)
  v16 = jax.eval_shape(bf16.init, KEY, tokens)
  assert all(x.dtype == jnp.float32 for x in jax.tree.leaves(v16))
  assert jax.eval_shape(bf16.apply, v16, tokens)["tokens"].dtype == (
      jnp.bfloat16)


def test_encoder_is_invariant_to_padding(encoder):
  _, variables, apply, tokens = encoder
  out = apply(variables, tokens)
  longer = apply(variables, pad_to(tokens, 13))
  real = np.asarray(tokens != PAD)
  np.testing.assert_allclose(np.asarray(longer["tokens"][:, :6])[real],
                             np.asarray(out["tokens"])[real], **TOL)
  np.testing.assert_allclose(longer["pooled"], out["pooled"], **TOL)
  np.testing.assert_allclose(longer["cls"], out["cls"], **TOL)
  # A row is also independent of the other rows' lengths: the 1-token row
  # alone, unpadded, gives the same state.
  alone = apply(variables, tokens[2:, :1])
  np.testing.assert_allclose(alone["tokens"][0, 0], out["tokens"][2, 0],
                             **TOL)
  # An explicit mask equal to the derived one changes nothing.
  explicit = apply(variables, tokens, mask=tokens != PAD)
  np.testing.assert_array_equal(explicit["tokens"], out["tokens"])


def test_masked_mean_pooling_and_cls(encoder):
  _, variables, apply, tokens = encoder
  out = jax.tree.map(np.asarray, apply(variables, tokens))
  for row, n in enumerate([6, 4, 1]):
    np.testing.assert_allclose(out["pooled"][row],
                               out["tokens"][row, :n].mean(axis=0), **TOL)
  np.testing.assert_array_equal(out["cls"], out["tokens"][:, 0])


def test_mlm_logits_are_tied_to_the_embedding(encoder):
  _, variables, apply, tokens = encoder
  params = dict(variables["params"])
  params["mlm_bias"] = jax.random.normal(jax.random.key(3), (VOCAB,))
  variables = {"params": params}
  hidden = apply(variables, tokens)["tokens"]
  logits = apply(variables, hidden, method="mlm_logits")
  expected = (np.asarray(hidden) @ np.asarray(params["embed"]["embedding"]).T
              + np.asarray(params["mlm_bias"]))
  assert logits.shape == (3, 6, VOCAB) and logits.dtype == jnp.float32
  np.testing.assert_allclose(logits, expected, **TOL)
  # No other (vocab x width) matrix: the head adds only the bias.
  vocab_sized = [x.shape for x in jax.tree.leaves(params) if VOCAB in x.shape]
  assert sorted(vocab_sized) == [(VOCAB,), (VOCAB, WIDTH)]


def test_dropout_only_in_train_mode():
  model = TextEncoder(VOCAB, width=WIDTH, depth=1, num_heads=HEADS,
                      dropout_rate=0.3)
  tokens = random_tokens(4, 2, 5, lengths=[5, 3])
  variables = model.init(KEY, tokens)
  apply = jax.jit(model.apply, static_argnames="train")

  def run(train, seed):
    return apply(variables, tokens, train=train,
                 rngs={"dropout": jax.random.key(seed)})["tokens"]

  evaluation = apply(variables, tokens)["tokens"]
  np.testing.assert_array_equal(run(False, 1), evaluation)
  np.testing.assert_array_equal(run(False, 2), evaluation)
  np.testing.assert_array_equal(run(True, 1), run(True, 1))
  assert not np.allclose(run(True, 1), run(True, 2))
  assert not np.allclose(run(True, 1), evaluation)


# ---------------------------------------------------------------------------
# Rotary position embeddings.
# ---------------------------------------------------------------------------


def test_rotary_logits_depend_on_relative_positions_only():
  kq, kk = jax.random.split(jax.random.key(5))
  q = jax.random.normal(kq, (2, 7, 3, 8))  # (B, T, H, hd)
  k = jax.random.normal(kk, (2, 7, 3, 8))
  positions = jnp.arange(7)

  def logits(shift):
    rq = apply_rotary(q, positions + shift)
    rk = apply_rotary(k, positions + shift)
    return jnp.einsum("bqhd,bkhd->bhqk", rq, rk)

  np.testing.assert_allclose(logits(13), logits(0), rtol=1e-4, atol=1e-4)
  np.testing.assert_allclose(logits(-5), logits(0), rtol=1e-4, atol=1e-4)
  # The logits differ from the position-free ones: positions matter.
  plain = jnp.einsum("bqhd,bkhd->bhqk", q, k)
  assert not np.allclose(logits(0), plain, atol=1e-3)
  # <R_m q, R_n k> = <q, R_{n-m} k>; rotations keep norms; R_0 = identity.
  m, n = 3, 5
  lhs = jnp.sum(apply_rotary(q, jnp.full((7,), m))
                * apply_rotary(k, jnp.full((7,), n)), -1)
  rhs = jnp.sum(q * apply_rotary(k, jnp.full((7,), n - m)), -1)
  np.testing.assert_allclose(lhs, rhs, rtol=1e-4, atol=1e-4)
  np.testing.assert_allclose(
      jnp.linalg.norm(apply_rotary(q, positions), axis=-1),
      jnp.linalg.norm(q, axis=-1), rtol=1e-5)
  np.testing.assert_allclose(apply_rotary(q, jnp.zeros(7)), q, rtol=1e-6)
  # Per-row positions (B, T) broadcast over the heads.
  per_row = apply_rotary(q, jnp.stack([positions, positions + 2]))
  np.testing.assert_allclose(per_row[1], apply_rotary(q, positions + 2)[1],
                             rtol=1e-6)


# ---------------------------------------------------------------------------
# Encoder-decoder.
# ---------------------------------------------------------------------------


def test_seq2seq_shapes_and_parameters(seq2seq):
  model, variables, apply, generate, source, target = seq2seq
  assert apply(variables, source, target).shape == (3, 6, VOCAB)
  params = variables["params"]
  block = params["decoder"]["block1"]
  assert {"norm1", "attn", "norm_cross", "cross_attn", "norm2", "fc1",
          "fc2"} <= set(block)
  assert set(params["encoder"]["transformer"]) == {"block0", "norm"}
  # One token embedding, shared and tied.
  vocab_sized = [x.shape for x in jax.tree.leaves(params) if VOCAB in x.shape]
  assert sorted(vocab_sized) == [(VOCAB,), (VOCAB, WIDTH)]
  assert ("decoder_pos_embed" in params) == (model.position == "learned")
  out = generate(variables, source, EOS)
  assert out.shape == (3, 6) and out.dtype == jnp.int32


def test_decoder_is_causal(seq2seq):
  _, variables, apply, _, source, target = seq2seq
  logits = apply(variables, source, target)
  for t in range(target.shape[1] - 1):
    changed = target.at[:, t + 1:].set(
        random_tokens(10 + t, 3, target.shape[1] - t - 1))
    assert not np.array_equal(changed, target)
    other = apply(variables, source, changed)
    np.testing.assert_allclose(other[:, :t + 1], logits[:, :t + 1], **TOL)
    assert not np.allclose(other[:, t + 1:], logits[:, t + 1:])


def test_greedy_generate_matches_teacher_forced_argmax(seq2seq):
  _, variables, apply, generate, source, _ = seq2seq
  free = np.asarray(generate(variables, source, -1))  # never stops
  # Teacher forcing on its own output: each token is the argmax given the
  # prefix before it.
  inputs = jnp.concatenate([jnp.full((3, 1), BOS, jnp.int32),
                            free[:, :-1]], axis=1)
  np.testing.assert_array_equal(
      np.argmax(apply(variables, source, inputs), axis=-1), free)
  # Step by step: BOS + the tokens chosen so far, PAD after them (one
  # compiled shape), the argmax at the last filled position.
  prefix = np.full((3, free.shape[1]), PAD, np.int32)
  prefix[:, 0] = BOS
  for t in range(free.shape[1]):
    token = np.argmax(apply(variables, source, jnp.asarray(prefix))[:, t], -1)
    np.testing.assert_array_equal(token, free[:, t])
    if t + 1 < free.shape[1]:
      prefix[:, t + 1] = token
  # With EOS = the token row 0 emits at step 2: row 0 stops there (EOS
  # written, then PAD); every row keeps its tokens up to its first EOS.
  eos = int(free[0, 2])
  stopped = np.asarray(generate(variables, source, eos))
  for row in range(3):
    hits = np.flatnonzero(free[row] == eos)
    end = hits[0] + 1 if hits.size else free.shape[1]
    np.testing.assert_array_equal(stopped[row, :end], free[row, :end])
    assert np.all(stopped[row, end:] == PAD)
  assert np.all(stopped[0, 3:] == PAD)


def test_source_padding_does_not_change_the_output(seq2seq):
  _, variables, apply, generate, source, target = seq2seq
  longer = pad_to(source, 11)
  np.testing.assert_allclose(apply(variables, longer, target),
                             apply(variables, source, target), **TOL)
  np.testing.assert_array_equal(generate(variables, longer, EOS),
                                generate(variables, source, EOS))


# ---------------------------------------------------------------------------
# word2vec.
# ---------------------------------------------------------------------------


def test_word2vec_scores_and_initialisation():
  vocab, dim = 20, 8
  model = Word2Vec(vocab, dim)
  center = jnp.array([1, 4, 7])
  context = jnp.array([2, 5, 9])
  negative = jnp.array([[3, 6], [0, 11], [19, 12]])
  variables = model.init(KEY, center, context, negative)
  params = variables["params"]
  w_in = np.asarray(params["center"]["embedding"])
  assert w_in.shape == (vocab, dim) and np.abs(w_in).max() <= 0.5 / dim
  assert np.abs(w_in).max() > 0.25 / dim  # uniform, not tiny
  assert not np.any(params["context"]["embedding"])
  w_out = np.asarray(jax.random.normal(jax.random.key(7), (vocab, dim)))
  variables = {"params": {"center": params["center"],
                          "context": {"embedding": jnp.asarray(w_out)}}}
  pos, neg = model.apply(variables, center, context, negative)
  assert pos.shape == (3,) and neg.shape == (3, 2)
  np.testing.assert_allclose(
      pos, np.sum(w_in[center] * w_out[context], -1), **TOL)
  np.testing.assert_allclose(
      neg, np.einsum("bd,bkd->bk", w_in[center], w_out[negative]), **TOL)
  np.testing.assert_array_equal(
      model.apply(variables, method="embeddings"), w_in)


def test_skipgram_negative_sampling_loss():
  rng = np.random.RandomState(0)
  pos, neg = rng.randn(5), rng.randn(5, 3)

  def log_sigmoid(x):
    return -np.log1p(np.exp(-x))

  expected = -np.mean(log_sigmoid(pos) + log_sigmoid(-neg).sum(-1))
  loss = skipgram_negative_sampling_loss(pos, neg)
  np.testing.assert_allclose(loss, expected, rtol=1e-5)
  grad_pos, grad_neg = jax.grad(skipgram_negative_sampling_loss,
                                argnums=(0, 1))(jnp.asarray(pos, jnp.float32),
                                                jnp.asarray(neg, jnp.float32))
  assert np.all(grad_pos < 0) and np.all(grad_neg > 0)
  # Raising a positive pair's score lowers the loss; a negative's raises it.
  assert skipgram_negative_sampling_loss(pos + np.eye(5)[0], neg) < loss
  assert skipgram_negative_sampling_loss(pos, neg + 0.5) > loss


def test_nearest_neighbours_by_cosine():
  angles = np.deg2rad([0.0, 10.0, 30.0, 90.0, 180.0])
  scales = np.array([1.0, 0.1, 5.0, 9.0, 2.0])  # cosine ignores the norms
  emb = np.stack([np.cos(angles), np.sin(angles)], 1) * scales[:, None]
  ids, sims = nearest_neighbours(emb, jnp.array([0, 3]), k=2)
  np.testing.assert_array_equal(ids, [[1, 2], [2, 1]])
  np.testing.assert_allclose(sims[0], np.cos(np.deg2rad([10.0, 30.0])),
                             rtol=1e-5)
  ids, _ = nearest_neighbours(emb, 4, k=1, exclude_query=False)
  np.testing.assert_array_equal(ids, [4])


def test_analogy_king_queen():
  # Dimensions: royal, male, female, fruit, colour.
  words = ["man", "woman", "king", "queen", "apple", "red", "prince"]
  emb = np.array([
      [0.0, 1.0, 0.0, 0.0, 0.1],
      [0.0, 0.0, 1.0, 0.1, 0.0],
      [1.0, 1.0, 0.0, 0.0, 0.0],
      [1.0, 0.0, 1.0, 0.0, 0.0],
      [0.0, 0.0, 0.0, 1.0, 0.0],
      [0.0, 0.0, 0.0, 0.2, 1.0],
      [1.0, 0.6, 0.0, 0.0, 0.0],
  ])
  w = {name: i for i, name in enumerate(words)}
  ids, _ = analogy(emb, w["man"], w["king"], w["woman"], k=1)
  assert words[int(ids[0])] == "queen"
  # Batched; a, b and c are never answers (prince is close to king).
  ids, _ = analogy(emb, jnp.array([w["man"], w["woman"]]),
                   jnp.array([w["king"], w["queen"]]),
                   jnp.array([w["woman"], w["man"]]), k=2)
  assert [words[i] for i in np.asarray(ids[:, 0])] == ["queen", "king"]
  excluded = {w["man"], w["king"], w["woman"]}
  assert not excluded & set(np.asarray(ids[0]).tolist())
