"""Text pretext label builders: exact inverses for BART's permutation and
rotation over many random cases, ALBERT's sentence-order labels, ROUGE-N
against hand-computed values, PEGASUS's gap-sentence choice, word2vec's
skip-gram window frequencies and sampling formulas, and the DeepMoji-style
labels on crafted strings.

Rates are checked to 4 binomial standard errors.
"""
import itertools
import math

import numpy as np
import pytest

from ssl_jax.data import text
from ssl_jax.data import text_pretext as tp

SENTENCES = [f"Sentence {i}." for i in range(5)]


def _within(count, trials, p, sigmas=4.0):
  return abs(count - trials * p) <= sigmas * math.sqrt(trials * p * (1 - p))


# ----------------------------------------------------------------------------
# ALBERT sentence order
# ----------------------------------------------------------------------------


def test_sentence_order_labels_and_order():
  rng = np.random.default_rng(0)
  trials, swaps, starts = 4000, 0, set()
  for _ in range(trials):
    first, second, label = tp.sentence_order_example(SENTENCES, rng)
    i, j = SENTENCES.index(first), SENTENCES.index(second)
    assert abs(i - j) == 1  # consecutive
    assert label == int(i > j)  # 1 exactly when swapped
    swaps += label
    starts.add(min(i, j))
  assert _within(swaps, trials, 0.5)
  assert starts == {0, 1, 2, 3}
  # Deterministic given the generator's state.
  a = [tp.sentence_order_example(SENTENCES, np.random.default_rng(7))
       for _ in range(3)]
  assert a[0] == a[1] == a[2]
  assert tp.sentence_order_example(["A.", "B."], np.random.default_rng(1))[
      :2] in (("A.", "B."), ("B.", "A."))
  with pytest.raises(ValueError, match="at least 2 sentences"):
    tp.sentence_order_example(["Only one."], rng)


# ----------------------------------------------------------------------------
# BART permutation and rotation
# ----------------------------------------------------------------------------


def test_permutation_applies_and_inverts_exactly():
  rng = np.random.default_rng(0)
  for trial in range(500):
    n = int(rng.integers(0, 12))
    items = [f"s{i}" for i in range(n)]
    perm = tp.permute_sentences(n, rng)
    assert sorted(perm.tolist()) == list(range(n))
    shown = tp.apply_permutation(items, perm)
    # The label of shown sentence j is its original position.
    assert [items.index(s) for s in shown] == perm.tolist()
    restored = tp.apply_permutation(shown, tp.invert_permutation(perm))
    assert restored == items, trial
    np.testing.assert_array_equal(
        tp.invert_permutation(tp.invert_permutation(perm)), perm)
  shown, perm = tp.sentence_permutation_example(SENTENCES,
                                                np.random.default_rng(3))
  assert shown == [SENTENCES[p] for p in perm]
  with pytest.raises(ValueError, match="not a permutation"):
    tp.invert_permutation([0, 0, 2])


def test_all_orders_reachable():
  rng = np.random.default_rng(1)
  seen = {tuple(tp.permute_sentences(3, rng)) for _ in range(300)}
  assert seen == set(itertools.permutations(range(3)))


def test_rotation_inverts_exactly():
  rng = np.random.default_rng(0)
  starts = np.zeros(7, np.int64)
  for _ in range(2000):
    n = int(rng.integers(1, 40))
    tokens = rng.integers(8, 1000, size=n).astype(np.int32)
    rotated, point = tp.rotate_document(tokens, rng)
    assert rotated.dtype == np.int32 and 0 <= point < n
    assert rotated[point] == tokens[0]  # where the original start went
    start = (n - point) % n
    np.testing.assert_array_equal(rotated,
                                  np.concatenate([tokens[start:],
                                                  tokens[:start]]))
    np.testing.assert_array_equal(tp.unrotate(rotated, point), tokens)
  for _ in range(7000):  # the start is uniform over the tokens
    _, point = tp.rotate_document(np.arange(7), rng)
    starts[(7 - point) % 7] += 1
  assert all(_within(c, 7000, 1 / 7) for c in starts), starts
  with pytest.raises(ValueError, match="non-empty"):
    tp.rotate_document([], rng)
  with pytest.raises(ValueError, match="point"):
    tp.unrotate([1, 2, 3], 3)


# ----------------------------------------------------------------------------
# ROUGE and PEGASUS gap sentences
# ----------------------------------------------------------------------------


def test_rouge_n_hand_computed():
  cand = "the cat sat on the mat".split()
  ref = "the cat lay on the rug".split()
  # Unigrams: overlap the 2 + cat + on = 4 of 6 each: F1 = 2/3.
  assert tp.rouge_n(cand, ref, 1) == pytest.approx(2 / 3)
  # Bigrams: (the cat), (on the) of 5 each: F1 = 0.4.
  assert tp.rouge_n(cand, ref, 2) == pytest.approx(0.4)
  # Clipped counts: "a a b" vs "a b c d": overlap 2, P 2/3, R 1/2 -> 4/7.
  assert tp.rouge_n("a a b".split(), "a b c d".split(), 1) == pytest.approx(
      4 / 7)
  assert tp.rouge_n(cand, cand, 2) == 1.0
  assert tp.rouge_n([], ref) == 0.0 and tp.rouge_n(["x"], ref) == 0.0
  assert tp.rouge_n(["a"], ["a"], 2) == 0.0  # no bigram at all
  with pytest.raises(ValueError):
    tp.rouge_n(cand, ref, 0)


DOCUMENT = [
    "The whale swam in the deep sea.",
    "The captain hunted the white whale across the sea.",
    "Lunch was good.",
    "A captain and his crew saw a whale at sea.",
    "Nobody cared.",
]


def test_gap_sentences_pick_highest_rouge_against_the_rest():
  words = [text.word_tokens(s) for s in DOCUMENT]
  scores = [tp.rouge_n(w, [t for j, o in enumerate(words) if j != i
                           for t in o], 1)
            for i, w in enumerate(words)]
  # By hand: sentence 1 shares the, whale, captain, sea with the rest.
  assert int(np.argmax(scores)) == 1
  assert tp.gap_sentences(DOCUMENT, count=1).tolist() == [1]
  top2 = sorted(np.argsort(scores)[::-1][:2].tolist())
  assert tp.gap_sentences(DOCUMENT, count=2).tolist() == top2
  # ratio 0.3 of 5 sentences -> round(1.5) = 2 gaps; at least one always.
  assert len(tp.gap_sentences(DOCUMENT, ratio=0.3)) == 2
  assert len(tp.gap_sentences(DOCUMENT[:2], ratio=0.1)) == 1
  with pytest.raises(ValueError, match="cannot select"):
    tp.gap_sentences(DOCUMENT, count=6)
  with pytest.raises(ValueError, match="ratio"):
    tp.gap_sentences(DOCUMENT, ratio=0.0)


def test_gap_sentences_ties_prefer_earlier():
  same = ["A b.", "A b.", "A b."]
  assert tp.gap_sentences(same, count=2).tolist() == [0, 1]


def test_gap_sentence_example():
  source, target, indices = tp.gap_sentence_example(DOCUMENT, count=2)
  assert indices.tolist() == tp.gap_sentences(DOCUMENT, count=2).tolist()
  shown = [text.MASK_SENTENCE_TOKEN if i in indices else s
           for i, s in enumerate(DOCUMENT)]
  assert source == " ".join(shown)
  assert source.count("<mask_sent>") == 2
  assert target == " ".join(DOCUMENT[i] for i in indices)
  source, _, _ = tp.gap_sentence_example(DOCUMENT, count=1, mask_token="[M]")
  assert "[M]" in source and "white whale" not in source


# ----------------------------------------------------------------------------
# word2vec
# ----------------------------------------------------------------------------


def test_skipgram_pairs_within_window_with_dynamic_frequency():
  n, window, trials = 12, 4, 3000
  ids = np.arange(1, n + 1)  # id = position + 1
  counts = np.zeros((n, n), np.int64)
  rng = np.random.default_rng(0)
  for _ in range(trials):
    pairs = tp.skipgram_pairs(ids, window, rng)
    assert pairs.dtype == np.int32 and pairs.shape[1] == 2
    centers, contexts = pairs[:, 0] - 1, pairs[:, 1] - 1
    distance = np.abs(centers - contexts)
    assert np.all((distance >= 1) & (distance <= window))
    # Ordered by center position, then context position.
    order = np.lexsort((contexts, centers))
    np.testing.assert_array_equal(order, np.arange(len(pairs)))
    np.add.at(counts, (centers, contexts), 1)
  for i in range(n):
    for j in range(n):
      d = abs(i - j)
      if d == 0 or d > window:
        assert counts[i, j] == 0
      else:  # b uniform in 1..window: P(b >= d) = (window - d + 1) / window
        assert _within(counts[i, j], trials, (window - d + 1) / window), (
            i, j, counts[i, j])


def test_skipgram_unknown_and_subsampling():
  rng = np.random.default_rng(0)
  pairs = tp.skipgram_pairs([0, 5, 0, 6], 1, rng)  # UNK dropped first
  assert pairs.tolist() == [[5, 6], [6, 5]]
  kept = tp.skipgram_pairs([0, 5, 0, 6], 1, rng, drop_unknown=False)
  assert 0 in kept
  keep = np.array([1.0, 1.0, 0.0, 1.0])  # word 2 is always discarded
  for _ in range(50):
    pairs = tp.skipgram_pairs([1, 2, 3, 2, 1, 3], 2, rng, subsample_probs=keep)
    assert 2 not in pairs
  assert tp.skipgram_pairs([4], 3, rng).shape == (0, 2)
  # Discarding happens before windows: 1 and 3 become neighbours.
  pairs = tp.skipgram_pairs([1, 2, 3], 1, rng, subsample_probs=keep)
  assert pairs.tolist() == [[1, 3], [3, 1]]
  with pytest.raises(ValueError, match="window"):
    tp.skipgram_pairs([1, 2], 0, rng)
  with pytest.raises(ValueError, match="subsample probability"):
    tp.skipgram_pairs([1, 9], 1, rng, subsample_probs=keep)


def test_subsample_keep_probability_formula():
  counts = np.array([0, 900_000, 99_000, 1_000], np.int64)  # total 1e6
  t = 1e-3
  f = counts[1:] / 1e6
  paper = tp.subsample_keep_probability(counts, t)
  np.testing.assert_allclose(paper[1:], np.minimum(1, np.sqrt(t / f)))
  assert paper[0] == 1.0 and paper[3] == 1.0
  assert paper[1] == pytest.approx(math.sqrt(1e-3 / 0.9))
  code = tp.subsample_keep_probability(counts, t, formula="code")
  np.testing.assert_allclose(code[1:],
                             np.minimum(1, np.sqrt(t / f) + t / f))
  assert np.all(code >= paper)
  with pytest.raises(ValueError, match="formula"):
    tp.subsample_keep_probability(counts, t, formula="other")


def test_negative_sampling_distribution():
  counts = np.array([0, 16, 1, 81])
  p = tp.negative_sampling_distribution(counts)
  expected = np.array([0, 8, 1, 27]) / 36  # count ** 0.75
  np.testing.assert_allclose(p, expected)
  assert p.sum() == pytest.approx(1.0)
  np.testing.assert_allclose(tp.negative_sampling_distribution(counts, 1.0),
                             counts / counts.sum())


# ----------------------------------------------------------------------------
# DeepMoji stand-ins
# ----------------------------------------------------------------------------


@pytest.mark.parametrize("sentence, expected", [
    ("It rained.", ("It rained", 0)),
    ("What a day!", ("What a day", 1)),
    ('"Where is he?"', ('"Where is he"', 2)),
    ("Really??", ("Really", 2)),
    ("'Oh! dear!' she said.)", ("'Oh! dear!' she said)", 0)),
    ("He waited...", None),  # "..." is not a default class
    ("What?!", None),  # mixed
    ("No mark here", None),
    ("Two dots..", None),
])
def test_punctuation_label(sentence, expected):
  assert tp.punctuation_label(sentence) == expected


def test_punctuation_label_with_ellipsis_class():
  classes = (".", "!", "?", "...")
  assert tp.punctuation_label("He waited....", classes) == ("He waited", 3)
  assert tp.punctuation_label("Done.", classes) == ("Done", 0)


@pytest.mark.parametrize("sentence, expected", [
    ('"Oh! that abominable Mr. Darcy!"', ('"That abominable Mr. Darcy!"', 0)),
    ("Ah, well, it is done.", ("Well, it is done.", 1)),
    ("Alas for him.", ("For him.", 2)),
    ("oh dear, no.", ("Dear, no.", 0)),
    ("'Hush! be quiet.'", ("'Be quiet.'", 6)),
    ("Ohio is far.", None),  # a whole word only
    ("Oh!", None),  # nothing left
    ("Well, then.", None),  # not in the set
])
def test_interjection_label(sentence, expected):
  assert tp.interjection_label(sentence) == expected


EMOJI = ("\U0001F602", "\u2764\ufe0f", "\U0001F44D", "\U0001F44D\U0001F3FD")


def test_emoji_label_first_most_frequent_all():
  tweet = ("so good \U0001F44D\U0001F3FD \U0001F602\U0001F602 love it "
           "\u2764 \U0001F525")
  first = tp.emoji_label(tweet, EMOJI)
  assert first == ("so good love it", 3)  # the toned thumb, longest match
  assert tp.emoji_label(tweet, EMOJI, "most_frequent") == (
      "so good love it", 0)
  assert tp.emoji_label(tweet, EMOJI, "all") == ("so good love it",
                                                (3, 0, 1))
  # U+FE0F is ignored: a bare heart matches the set's "heart + VS16".
  assert tp.emoji_label("I \u2764 you", EMOJI) == ("I you", 1)
  assert tp.emoji_label("nice \U0001F44D", EMOJI) == ("nice", 2)
  # Ties in most_frequent go to the first seen.
  assert tp.emoji_label("\U0001F44D a \U0001F602", EMOJI,
                        "most_frequent")[1] == 2
  # Emoji outside the set are stripped but are no label.
  assert tp.emoji_label("hot \U0001F525 stuff", EMOJI) is None
  assert tp.emoji_label("no emoji", EMOJI) is None
  with pytest.raises(ValueError, match="mode"):
    tp.emoji_label(tweet, EMOJI, "last")
