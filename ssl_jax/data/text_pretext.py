"""Label builders for text pretext tasks (host side, numpy).

Each builder is a deterministic function of its inputs and, where it
draws, of the ``numpy.random.Generator`` it is given (the draws it makes
are listed in its docstring, so a stream can be replayed). Sentences come
from :func:`ssl_jax.data.text.split_sentences`; token ids from
:class:`ssl_jax.data.text.TextTokenizer`; word ids from
:func:`ssl_jax.data.text.word_ids`.

=====================================  ======================================
builder                                reference
=====================================  ======================================
``sentence_order_example``             ALBERT's sentence-order prediction
                                       (Lan et al. 2020, Sec. 3.1)
``permute_sentences``,                 BART's sentence permutation and
``rotate_document``                    document rotation (Lewis et al. 2020,
                                       Sec. 2.2)
``rouge_n``                            ROUGE-N (Lin 2004)
``gap_sentences``,                     PEGASUS gap-sentence generation,
``gap_sentence_example``               "Ind-Orig" (Zhang et al. 2020,
                                       Sec. 3.1)
``punctuation_label``,                 stand-ins for DeepMoji's emoji labels
``interjection_label``,                (Felbo et al. 2017) on the novels;
``emoji_label``                        ``emoji_label`` for real emoji text
``skipgram_pairs``,                    word2vec skip-gram with sub-sampling
``subsample_keep_probability``,        and negative sampling (Mikolov et al.
``negative_sampling_distribution``     2013, "Distributed Representations
                                       of Words and Phrases")
=====================================  ======================================

Corpus counts behind the label sets (``load_corpus()`` defaults, 44,714
sentences of 14,301 prose paragraphs):

* Sentence-final punctuation: ``.`` 37,824, ``?`` 3,437, ``!`` 3,363,
  ``...`` (three or more dots) 86, mixed runs (``!...``, ``?...``) 4. The
  splitter ends sentences only at ``. ! ?``, so ``;``, ``:`` and ``--``
  never end one. :data:`PUNCTUATION_CLASSES` is ``(".", "!", "?")``;
  ``"..."`` can be added but has too few examples to be a class here.
* Sentence-initial interjections that :func:`interjection_label` labels
  (after opening quotes, a whole word, something left after it): oh 502,
  ah 123, aye 83, nay 41, ha 28, alas 11, hark 11, hush 9 -- 808 in all,
  "oh" and "ah" in every book. More sentences open with them (oh 557, alas
  34) but are the bare interjection ("Alas!" is its own sentence when a
  capital follows). "O" (28) is left out: mostly the vocative "O God";
  "well"/"why"/"yes"/"no" are discourse words rather than emotion. 808
  examples (and 17:1 between the commonest and rarest class) is enough
  for a small auxiliary task, not a main one.
"""

from __future__ import annotations

import collections
import re
from typing import Callable, Optional, Sequence

import numpy as np

from ssl_jax.data import text as text_lib

__all__ = [
    "INTERJECTIONS",
    "PUNCTUATION_CLASSES",
    "apply_permutation",
    "emoji_label",
    "gap_sentence_example",
    "gap_sentences",
    "interjection_label",
    "invert_permutation",
    "negative_sampling_distribution",
    "permute_sentences",
    "punctuation_label",
    "rotate_document",
    "rouge_n",
    "sentence_order_example",
    "sentence_permutation_example",
    "skipgram_pairs",
    "subsample_keep_probability",
    "unrotate",
]

PUNCTUATION_CLASSES = (".", "!", "?")
INTERJECTIONS = ("oh", "ah", "alas", "ha", "aye", "nay", "hush", "hark")

# ----------------------------------------------------------------------------
# ALBERT: sentence-order prediction
# ----------------------------------------------------------------------------


def sentence_order_example(sentences: Sequence[str],
                           rng: np.random.Generator) -> tuple[str, str, int]:
  """ALBERT's sentence-order prediction (Lan et al. 2020, Sec. 3.1).

  Two consecutive segments of one document: the positive is ``(a, b)`` in
  their order, the negative the same two swapped ``(b, a)``, so topic cues
  cannot tell them apart and only coherence can. Here a segment is one
  sentence: ``i`` is drawn uniformly from ``0 .. n - 2`` (``rng.integers``),
  then the pair ``(sentences[i], sentences[i + 1])`` is swapped when
  ``rng.random() < 0.5``.

  Returns:
    ``(first, second, label)``: ``label`` 1 when swapped, else 0.

  Raises:
    ValueError: fewer than 2 sentences (keep only paragraphs with
      ``len(split_sentences(p)) >= 2``).
  """
  n = len(sentences)
  if n < 2:
    raise ValueError(
        f"sentence_order_example: needs at least 2 sentences, got {n}; keep "
        "only paragraphs with len(split_sentences(p)) >= 2.")
  i = int(rng.integers(n - 1))
  swapped = bool(rng.random() < 0.5)
  a, b = sentences[i], sentences[i + 1]
  return (b, a, 1) if swapped else (a, b, 0)


# ----------------------------------------------------------------------------
# BART: sentence permutation and document rotation
# ----------------------------------------------------------------------------


def permute_sentences(n: int, rng: np.random.Generator) -> np.ndarray:
  """BART's sentence permutation (Lewis et al. 2020, Sec. 2.2): a uniform
  random order of ``n`` sentences (``rng.permutation(n)``).

  Returns int64 ``perm``: the shown document is ``[sentences[perm[j]] for
  j in range(n)]`` (:func:`apply_permutation`), and ``perm[j]`` -- the
  original position of the ``j``-th shown sentence -- is its label.
  """
  if n < 0:
    raise ValueError(f"permute_sentences: n={n} must be >= 0.")
  return rng.permutation(int(n)).astype(np.int64)


def invert_permutation(perm: Sequence[int]) -> np.ndarray:
  """``inverse`` with ``inverse[perm[j]] = j``: applied to the shown
  sentences it gives back the original order."""
  perm = np.asarray(perm, np.int64)
  n = perm.shape[0]
  if perm.ndim != 1 or not np.array_equal(np.sort(perm), np.arange(n)):
    raise ValueError(f"invert_permutation: {perm.tolist()} is not a "
                     f"permutation of 0 .. {n - 1}.")
  inverse = np.empty_like(perm)
  inverse[perm] = np.arange(n)
  return inverse


def apply_permutation(items: Sequence, perm: Sequence[int]) -> list:
  """``[items[p] for p in perm]``."""
  if len(perm) != len(items):
    raise ValueError(f"apply_permutation: {len(perm)} indices for "
                     f"{len(items)} items.")
  return [items[int(p)] for p in perm]


def sentence_permutation_example(sentences: Sequence[str],
                                 rng: np.random.Generator
                                 ) -> tuple[list[str], np.ndarray]:
  """``(shown sentences, perm)`` of :func:`permute_sentences`; the
  denoising target is the original document."""
  perm = permute_sentences(len(sentences), rng)
  return apply_permutation(sentences, perm), perm


def rotate_document(tokens: Sequence[int], rng: np.random.Generator
                    ) -> tuple[np.ndarray, int]:
  """BART's document rotation (Lewis et al. 2020, Sec. 2.2).

  A token is chosen uniformly at random (``start = rng.integers(n)``) and
  the document is rotated to begin with it: ``rotated = tokens[start:] +
  tokens[:start]``. The label is the rotation point, the position of the
  original first token in ``rotated``: ``point = (n - start) % n`` (0 when
  nothing moved); :func:`unrotate` inverts exactly.

  Args:
    tokens: one document's ids (1-D, no padding), at least one.

  Returns:
    ``(rotated, point)``, ``rotated`` with the dtype of ``tokens``.
  """
  tokens = np.asarray(tokens)
  if tokens.ndim != 1 or tokens.shape[0] == 0:
    raise ValueError(f"rotate_document: needs a non-empty 1-D sequence of "
                     f"ids, got shape {tokens.shape}; strip the padding.")
  n = tokens.shape[0]
  start = int(rng.integers(n))
  return np.roll(tokens, -start), (n - start) % n


def unrotate(rotated: Sequence[int], point: int) -> np.ndarray:
  """The document before :func:`rotate_document`: ``rotated[point:] +
  rotated[:point]``."""
  rotated = np.asarray(rotated)
  n = rotated.shape[0]
  if not 0 <= point < max(n, 1):
    raise ValueError(f"unrotate: point={point} is outside 0 .. {n - 1}.")
  return np.roll(rotated, -int(point))


# ----------------------------------------------------------------------------
# PEGASUS: gap sentences
# ----------------------------------------------------------------------------


def _ngrams(tokens: Sequence, n: int) -> collections.Counter:
  return collections.Counter(tuple(tokens[i:i + n])
                             for i in range(len(tokens) - n + 1))


def rouge_n(candidate: Sequence, reference: Sequence, n: int = 1) -> float:
  """ROUGE-N F1 (Lin 2004) of two token lists.

  With ``overlap = sum_g min(count_cand(g), count_ref(g))`` over the
  n-grams ``g`` (clipped counts), ``P = overlap / #cand n-grams``, ``R =
  overlap / #ref n-grams`` and ``F1 = 2 P R / (P + R)``; 0.0 when there is
  no overlap (an empty side included).
  """
  if n < 1:
    raise ValueError(f"rouge_n: n={n} must be >= 1.")
  cand, ref = _ngrams(list(candidate), n), _ngrams(list(reference), n)
  overlap = sum((cand & ref).values())
  if overlap == 0:
    return 0.0
  precision = overlap / sum(cand.values())
  recall = overlap / sum(ref.values())
  return 2.0 * precision * recall / (precision + recall)


def _gap_count(n: int, ratio: float, count: Optional[int]) -> int:
  if count is None:
    if not 0.0 < ratio <= 1.0:
      raise ValueError(f"gap_sentences: ratio={ratio} must be in (0, 1].")
    count = max(1, int(round(ratio * n)))
  if not 1 <= count <= n:
    raise ValueError(f"gap_sentences: cannot select {count} of {n} "
                     "sentences; use 1 <= count <= the number of sentences.")
  return count


def gap_sentences(sentences: Sequence[str], ratio: float = 0.3,
                  count: Optional[int] = None,
                  tokenize: Callable[[str], Sequence] = text_lib.word_tokens,
                  n: int = 1) -> np.ndarray:
  """PEGASUS gap-sentence selection, "Ind-Orig" (Zhang et al. 2020, 3.1).

  Each sentence ``x_i`` is scored independently ("Ind") by ``s_i =
  ROUGE-n F1(x_i, D \\ {x_i})``, the rest of the document as one token
  list, with n-grams counted as they occur ("Orig", no de-duplication); the
  ``m`` highest-scoring sentences are the gaps (ties: earlier first).

  Args:
    sentences: the document's sentences.
    ratio: gap-sentence ratio, ``m = max(1, round(ratio * len))`` (PEGASUS
      uses 30%), unless ``count`` is given.
    count: ``m`` itself.
    tokenize: text -> tokens for ROUGE (default: lower-cased words).
    n: the ROUGE n (PEGASUS: ROUGE-1).

  Returns:
    int64 indices of the gap sentences, ascending.
  """
  total = len(sentences)
  m = _gap_count(total, ratio, count)
  tokens = [list(tokenize(s)) for s in sentences]
  scores = np.zeros(total)
  for i in range(total):
    rest = [t for j in range(total) if j != i for t in tokens[j]]
    scores[i] = rouge_n(tokens[i], rest, n)
  order = np.argsort(-scores, kind="stable")
  return np.sort(order[:m]).astype(np.int64)


def gap_sentence_example(sentences: Sequence[str], ratio: float = 0.3,
                         count: Optional[int] = None,
                         tokenize: Callable[[str], Sequence] = (
                             text_lib.word_tokens),
                         mask_token: str = text_lib.MASK_SENTENCE_TOKEN
                         ) -> tuple[str, str, np.ndarray]:
  """A PEGASUS example: ``(input, target, indices)``.

  ``input`` is the document with each gap sentence (:func:`gap_sentences`)
  replaced by ``mask_token`` (PEGASUS's [MASK1]; by default
  ``"<mask_sent>"``, which :class:`~ssl_jax.data.text.TextTokenizer`
  encodes as ``MASK_SENTENCE_ID``), sentences joined by single spaces;
  ``target`` is the gap sentences in document order, joined the same way.
  """
  indices = gap_sentences(sentences, ratio, count, tokenize)
  chosen = set(indices.tolist())
  shown = [mask_token if i in chosen else s for i, s in enumerate(sentences)]
  target = [sentences[i] for i in indices]
  return " ".join(shown), " ".join(target), indices


# ----------------------------------------------------------------------------
# DeepMoji stand-ins: punctuation, interjections, emoji
# ----------------------------------------------------------------------------

_CLOSERS = "\"')]}\u201d\u2019"
_FINAL_MARKS = re.compile(r"([.!?]+)([" + re.escape(_CLOSERS) + r"]*)\s*$")


def punctuation_label(sentence: str,
                      classes: Sequence[str] = PUNCTUATION_CLASSES
                      ) -> Optional[tuple[str, int]]:
  """The sentence-final punctuation as a class (a DeepMoji-style noisy
  label, Felbo et al. 2017: the writer's own mark of tone, removed from the
  input as DeepMoji removes the emoji).

  The final run of ``. ! ?`` before any closing quotes/brackets is the
  mark: a run of one repeated character is ``"."`` (one dot), ``"..."``
  (three or more dots), ``"!"`` or ``"?"`` (any length: "??" is ``"?"``);
  mixed runs ("?!", "!...") and two dots have no class.

  Returns:
    ``(input, label)``: the sentence without the mark (closing quotes
    kept: '"Where?"' -> '"Where"'), and ``classes.index(mark)``; None when
    the mark is missing or not one of ``classes``.
  """
  match = _FINAL_MARKS.search(sentence)
  if match is None:
    return None
  run = match.group(1)
  if len(set(run)) != 1 or run == "..":
    return None
  mark = "..." if run.startswith("..") else run[0]
  if mark not in classes:
    return None
  text = (sentence[:match.start()] + match.group(2)).strip()
  return text, list(classes).index(mark)


_OPENING = re.compile(r"^[\"'(\[{\u201c\u2018]*")


def interjection_label(sentence: str,
                       interjections: Sequence[str] = INTERJECTIONS
                       ) -> Optional[tuple[str, int]]:
  """The interjection a sentence opens with, as a class (another
  DeepMoji-style stand-in, Felbo et al. 2017: an emotive marker the writer
  chose, removed from the input).

  The interjection is the first word after any opening quotes/brackets,
  matched case-insensitively as a whole word ("Oh", not "Ohio"), with the
  ``, ! ? .`` right after it. The input is the sentence without them, its
  next letter capitalised: '"Oh! that abominable Mr. Darcy!"' -> ('"That
  abominable Mr. Darcy!"', ``interjections.index("oh")``).

  Returns:
    ``(input, label)``, or None when the sentence does not open with one of
    ``interjections`` or nothing is left after it.
  """
  opening = _OPENING.match(sentence).group(0)
  rest = sentence[len(opening):]
  match = re.match(r"([^\W\d_]+)\b[,!?.]*\s*", rest)
  if match is None:
    return None
  word = match.group(1).lower()
  lowered = [w.lower() for w in interjections]
  if word not in lowered:
    return None
  rest = rest[match.end():]
  if not rest or not any(ch.isalnum() for ch in rest):
    return None
  return opening + rest[0].upper() + rest[1:], lowered.index(word)


# Emoji characters stripped from the input besides the given set: pictographs,
# symbols and dingbats, flags' regional indicators, skin tones, variation
# selector 16 and the zero-width joiner of emoji sequences.
_EMOJI_CHARS = re.compile(
    "[\U0001F000-\U0001FAFF\u2600-\u27BF\u2B00-\u2BFF\u2300-\u23FF"
    "\U0001F1E6-\U0001F1FF\u200d\ufe0f\ufe0e]")
_EMOJI_MODES = ("first", "most_frequent", "all")


def emoji_label(text: str, emoji_set: Sequence[str], mode: str = "first"
                ) -> Optional[tuple[str, int | tuple[int, ...]]]:
  """DeepMoji's distant labels (Felbo et al. 2017): the emoji of a text,
  from a fixed set, as its label; the input is the text without emoji.

  Emoji are matched with variation selector 16 (U+FE0F) ignored on both
  sides ("❤" and "❤️" are one), longest set entry first (so a set holding
  both "👍" and "👍🏽" labels the toned one as such). All emoji -- of the
  set or not -- are removed from the input, and whitespace is collapsed.

  Args:
    text: e.g. a tweet.
    emoji_set: the label set; label ``i`` is ``emoji_set[i]``.
    mode: ``"first"`` the first set emoji in the text; ``"most_frequent"``
      the most frequent one (ties: the one seen first); ``"all"`` a tuple of
      the distinct ones in order of appearance (DeepMoji trains on one copy
      of the text per distinct emoji).

  Returns:
    ``(input, label)``, or None when no emoji of the set occurs.
  """
  if mode not in _EMOJI_MODES:
    raise ValueError(f"emoji_label: mode={mode!r}; use one of "
                     f"{_EMOJI_MODES}.")
  keys = [e.replace("\ufe0f", "") for e in emoji_set]
  if not all(keys):
    raise ValueError("emoji_label: the emoji set holds an empty entry.")
  plain = text.replace("\ufe0f", "")
  by_length = sorted(set(keys), key=len, reverse=True)
  pattern = re.compile("|".join(map(re.escape, by_length)))
  found = [keys.index(m.group(0)) for m in pattern.finditer(plain)]
  if not found:
    return None
  stripped = _EMOJI_CHARS.sub(" ", pattern.sub(" ", plain))
  stripped = re.sub(r"\s+", " ", stripped).strip()
  if mode == "first":
    label = found[0]
  elif mode == "most_frequent":
    counts = collections.Counter(found)
    label = max(dict.fromkeys(found), key=lambda k: counts[k])
  else:
    label = tuple(dict.fromkeys(found))
  return stripped, label


# ----------------------------------------------------------------------------
# word2vec: skip-gram pairs, sub-sampling, negative sampling
# ----------------------------------------------------------------------------


def subsample_keep_probability(counts: Sequence[int], t: float = 1e-5,
                               formula: str = "paper") -> np.ndarray:
  """Probability of KEEPING each word under Mikolov et al. (2013)'s
  sub-sampling of frequent words, ``f = count / sum(counts)``.

  * ``"paper"`` (Sec. 2.3): a word is discarded with probability ``1 -
    sqrt(t / f)``, so kept with ``min(1, sqrt(t / f))``.
  * ``"code"`` (word2vec.c): kept with ``min(1, sqrt(t / f) + t / f)``.

  Words with count 0 get 1.0. float64, one entry per word id.
  """
  if t <= 0:
    raise ValueError(f"subsample_keep_probability: t={t} must be > 0.")
  if formula not in ("paper", "code"):
    raise ValueError(f"subsample_keep_probability: formula={formula!r}; use "
                     "'paper' or 'code'.")
  counts = np.asarray(counts, np.float64)
  total = counts.sum()
  if total <= 0:
    raise ValueError("subsample_keep_probability: the counts sum to 0.")
  keep = np.ones_like(counts)
  seen = counts > 0
  ratio = t / (counts[seen] / total)
  keep[seen] = np.sqrt(ratio) + (ratio if formula == "code" else 0.0)
  return np.minimum(keep, 1.0)


def negative_sampling_distribution(counts: Sequence[int],
                                   power: float = 0.75) -> np.ndarray:
  """Mikolov et al. (2013, Sec. 2.2)'s noise distribution for negative
  sampling: ``P(w) = count(w)^power / sum_v count(v)^power`` (the unigram
  distribution raised to 3/4). float64, sums to 1; a word with count 0
  is never drawn (set ``counts[0] = 0`` to exclude UNK)."""
  counts = np.asarray(counts, np.float64)
  if np.any(counts < 0):
    raise ValueError("negative_sampling_distribution: negative counts.")
  weights = np.where(counts > 0, counts, 0.0) ** power
  total = weights.sum()
  if total <= 0:
    raise ValueError("negative_sampling_distribution: the counts sum to 0.")
  return weights / total


def skipgram_pairs(word_ids: Sequence[int], window: int,
                   rng: np.random.Generator,
                   subsample_probs: Optional[Sequence[float]] = None,
                   drop_unknown: bool = True) -> np.ndarray:
  """word2vec skip-gram ``(center, context)`` pairs (Mikolov et al. 2013)
  with the dynamic window of word2vec.c.

  Draws, in order: if ``subsample_probs`` is given, ``rng.random(n)`` and
  each word is kept when its draw is below ``subsample_probs[id]`` (before
  windows are formed, as word2vec.c does, so windows reach over discarded
  words); then ``rng.integers(1, window + 1, n')``: the reduced window
  ``b`` of each remaining position, uniform in ``1 .. window`` (the C code's
  ``window - (random % window)``). Position ``i`` pairs with every ``j !=
  i`` with ``|i - j| <= b_i``, so a pair at distance ``d`` appears with
  probability ``(window - d + 1) / window``.

  Args:
    word_ids: a text's word ids (:func:`~ssl_jax.data.text.word_ids`).
    window: the maximum window (word2vec default 5).
    rng: the generator.
    subsample_probs: keep probability per word id
      (:func:`subsample_keep_probability`), or None to keep all.
    drop_unknown: drop id 0 (UNK) first, as word2vec.c skips words that are
      not in its vocabulary.

  Returns:
    int32 ``(P, 2)``: rows ``(center, context)``, by center position, then
    context position.
  """
  if window < 1:
    raise ValueError(f"skipgram_pairs: window={window} must be >= 1.")
  ids = np.asarray(word_ids, np.int64).reshape(-1)
  if drop_unknown:
    ids = ids[ids != 0]
  if subsample_probs is not None:
    probs = np.asarray(subsample_probs, np.float64)
    if ids.size and ids.max() >= probs.shape[0]:
      raise ValueError(f"skipgram_pairs: word id {ids.max()} has no "
                       f"subsample probability ({probs.shape[0]} given).")
    ids = ids[rng.random(ids.shape[0]) < probs[ids]]
  n = ids.shape[0]
  if n < 2:
    return np.zeros((0, 2), np.int32)
  reduced = rng.integers(1, window + 1, size=n)
  offsets = np.concatenate([np.arange(-window, 0), np.arange(1, window + 1)])
  context = np.arange(n)[:, None] + offsets[None, :]  # (n, 2 * window)
  valid = ((np.abs(offsets)[None, :] <= reduced[:, None])
           & (context >= 0) & (context < n))
  centers = np.broadcast_to(np.arange(n)[:, None], context.shape)[valid]
  return np.stack([ids[centers], ids[context[valid]]], axis=1).astype(
      np.int32)
