"""Text pretext tasks as a data source: the novels, tokenised, one record per
example of a task.

:class:`TextTaskSource` reads the corpus (``ssl_jax.data.text``: the eight
public-domain novels of ``../shared/datasets/text``, prose paragraphs only),
splits it BY PARAGRAPH with a seed (``split_paragraphs``: held-out
paragraphs are never seen in pretraining), tokenises it and serves records
that the training pipeline batches like images::

    {"image": int32 (max_length,)  the token ids the network reads, PAD = 0,
     "label": int                  the paragraph's book (author attribution,
                                   8 classes; evaluation and the online
                                   probe only),
     ... the task's own fields (below)}

Tokens (``tokens=``): ``'bpe'``, a byte-level BPE of ``vocab_size`` ids
trained on the TRAINING paragraphs (``text.TextTokenizer``; special ids
PAD 0, UNK 1, CLS 2, SEP 3, MASK 4, BOS 5, EOS 6, ``<mask_sent>`` 7),
deterministic, so the train, test and evaluation sources of one config
build the same one (cached per process) and :meth:`save_with_run` writes it
into the run's workdir as ``tokenizer.json``; or ``'words'``, lower-cased
words (``text.build_word_vocab`` over the training paragraphs, at least
``word_min_count`` occurrences) as ids 2.. (0 PAD, 1 UNK), for word2vec,
saved as ``words.json``.

Tasks (``task=``), each example drawn from ``numpy.random.default_rng((seed,
split, task, index))`` (record ``i`` shows paragraph ``i % P``: ``copies``
> 1 gives every paragraph that many independent draws, as BERT's
duplication factor):

* ``'plain'``, ``'masked_lm'``, ``'word2vec'``: CLS (BPE only) and the
  paragraph's tokens, cut at ``max_length``; the masking (BERT) and the
  skip-gram pairs (word2vec) are drawn on device at every step.
* ``'sentence_order'`` (ALBERT's SOP): ``CLS a SEP b SEP`` of two
  consecutive sentences, swapped with probability 1/2; ``"target"`` 1 if
  swapped. Paragraphs of two sentences or more; each sentence cut to fit.
* ``'sentence_permutation'`` (BART): the first ``max_sentences`` sentences
  shuffled, ``CLS s SEP s SEP ...``; ``"starts"`` int32 (max_sentences,):
  where each shown sentence starts (-1 for none), ``"target"``: its
  original position (-1 for none).
* ``'document_rotation'`` (BART): the paragraph's tokens (no CLS), cut at
  ``max_length``, rotated to start at a uniform token; ``"target"``: the
  position of the original first token.
* ``'gap_sentences'`` (PEGASUS): the paragraph with its gap sentences
  (Ind-Orig, ROUGE-1 against the rest, ``gap_ratio``) replaced by
  ``<mask_sent>``; ``"target_tokens"`` int32 (target_length,): the gap
  sentences then EOS, PAD after. Paragraphs of two sentences or more.
* ``'punctuation'`` (DeepMoji's free labels, the writer's own mark of
  tone): one sentence with its final ``.``, ``!`` or ``?`` removed,
  ``CLS s``; ``"target"``: which mark (``text_pretext.punctuation_label``).
  Every sentence that has one.
* ``'emoji'`` (DeepMoji, for text that carries emoji, e.g. posts in
  ``text_dir`` with ``prose_only=False``): a paragraph with every emoji
  removed, ``CLS t``; ``"target"``: the index in ``emoji`` (the label set,
  separated by spaces) of its first emoji of the set
  (``text_pretext.emoji_label``). Paragraphs with one.
"""

from __future__ import annotations

import functools
import json
import os
from typing import Any, Sequence

import numpy as np

from ssl_jax.data import text as text_lib
from ssl_jax.data import text_pretext

__all__ = ["TASKS", "DEFAULTS", "TextTaskSource", "load_text_task"]

TASKS = ("plain", "masked_lm", "word2vec", "sentence_order",
         "sentence_permutation", "document_rotation", "gap_sentences",
         "punctuation", "emoji")
_SPLIT_IDS = {"train": 0, "test": 1}
WORD_PAD, WORD_UNK = 0, 1  # word ids: 0 padding, 1 unknown, 2.. the words

#: The fields of ``config.data.text`` and their defaults.
DEFAULTS = dict(
    task="plain", text_dir=text_lib.DEFAULT_TEXT_DIR, min_words=4,
    test_fraction=0.1, seed=0, tokens="bpe", vocab_size=8000,
    word_min_count=5, max_length=128, target_length=48, max_sentences=6,
    gap_ratio=0.3, copies=1, prose_only=True, emoji="")


@functools.lru_cache(maxsize=4)
def _corpus_split(text_dir: str, min_words: int, test_fraction: float,
                  seed: int, prose_only: bool = True):
  corpus = text_lib.load_corpus(text_dir, min_words=min_words,
                                prose_only=prose_only)
  train, test = text_lib.split_paragraphs(corpus, test_fraction, seed)
  return corpus, {"train": train, "test": test}


@functools.lru_cache(maxsize=4)
def _vocabulary(text_dir, min_words, test_fraction, seed, prose_only, tokens,
                vocab_size, word_min_count):
  """The tokenizer (BPE) or word list, from the training paragraphs."""
  _, splits = _corpus_split(text_dir, min_words, test_fraction, seed,
                            prose_only)
  texts = [p.text for p in splits["train"]]
  if tokens == "bpe":
    return text_lib.TextTokenizer.train(texts, vocab_size)
  words, counts = text_lib.build_word_vocab(texts, min_count=word_min_count)
  counts.setflags(write=False)
  return tuple(words), counts


class TextTaskSource:
  """Records of one text pretext task over one split; see the module
  docstring. Random access (``len``, ``[i]``, ``read_batch``), with
  ``image_shape = (max_length,)`` and ``num_classes`` the number of books.
  """

  def __init__(self, split: str = "train", **settings: Any):
    unknown = set(settings) - set(DEFAULTS)
    if unknown:
      raise ValueError(
          f"TextTaskSource: unknown setting(s) {sorted(unknown)}; the fields "
          f"are {sorted(DEFAULTS)}.")
    s = dict(DEFAULTS, **settings)
    if split not in _SPLIT_IDS:
      raise ValueError(
          f"TextTaskSource: unknown split {split!r}; use 'train' or 'test'.")
    if s["task"] not in TASKS:
      raise ValueError(
          f"config.data.text.task={s['task']!r}; use one of {TASKS}.")
    if s["tokens"] not in ("bpe", "words"):
      raise ValueError(
          f"config.data.text.tokens={s['tokens']!r}; use 'bpe' or 'words'.")
    if (s["task"] == "word2vec") != (s["tokens"] == "words"):
      raise ValueError(
          "word2vec reads words and every other task BPE tokens: set "
          "config.data.text.tokens='words' with task='word2vec' and 'bpe' "
          f"otherwise (got task={s['task']!r}, tokens={s['tokens']!r}).")
    for name in ("max_length", "target_length", "max_sentences", "copies"):
      if int(s[name]) < (8 if name == "max_length" else 1):
        raise ValueError(f"config.data.text.{name}={s[name]} is too small.")
    self.split = split
    self.settings = s
    self.task = s["task"]
    self.max_length = int(s["max_length"])
    self.seed = int(s["seed"])
    key = (os.fspath(s["text_dir"]), int(s["min_words"]),
           float(s["test_fraction"]), self.seed, bool(s["prose_only"]))
    self.emoji_set = tuple(str(s["emoji"]).split())
    if self.task == "emoji" and not self.emoji_set:
      raise ValueError(
          "task='emoji' needs its label set: config.data.text.emoji, the "
          "emoji separated by spaces (e.g. '😂 ❤ 😭').")
    corpus, splits = _corpus_split(*key)
    self.books = corpus
    self.num_classes = len(corpus)
    self.paragraphs = splits[split]
    self.vocabulary = _vocabulary(*key, s["tokens"], int(s["vocab_size"]),
                                  int(s["word_min_count"]))
    if s["tokens"] == "bpe":
      self.tokenizer = self.vocabulary
      self.vocab_size = self.tokenizer.vocab_size
      self._word_index = None
    else:
      self.tokenizer = None
      self.vocabulary, word_counts = self.vocabulary
      # Occurrences in the training paragraphs per word id (0: PAD, none).
      self.word_counts = np.concatenate([[0], word_counts]).astype(np.int64)
      self._word_index = {w: i + 1 for i, w in enumerate(self.vocabulary)}
      self._word_index[text_lib.UNK_WORD] = WORD_UNK
      self.vocab_size = len(self.vocabulary) + 1
    self.image_shape = (self.max_length,)
    self.name = f"text/{self.task}/{split}"
    self._build_examples()

  # -- Tokens. ---------------------------------------------------------------
  def encode(self, text: str) -> list[int]:
    """Token ids of ``text`` (BPE ids, or word ids 2.. with 1 unknown)."""
    if self.tokenizer is not None:
      return self.tokenizer.encode(text)
    return [self._word_index.get(w, WORD_UNK)
            for w in text_lib.word_tokens(text)]

  def decode(self, ids: Sequence[int]) -> str:
    ids = [int(i) for i in ids if int(i) != text_lib.PAD_ID]
    if self.tokenizer is not None:
      return self.tokenizer.decode(ids)
    return " ".join(self.vocabulary[i - 1] for i in ids)

  def _pad(self, ids: Sequence[int], length: int) -> np.ndarray:
    out = np.zeros(length, np.int32)
    ids = list(ids)[:length]
    out[:len(ids)] = ids
    return out

  def _with_cls(self, ids):
    return [text_lib.CLS_ID] + list(ids) if self.tokenizer is not None else ids

  # -- Examples. -------------------------------------------------------------
  def _build_examples(self):
    """The task's examples as (paragraph index, sentence index or -1)."""
    task = self.task
    needs_sentences = task in ("sentence_order", "sentence_permutation",
                               "gap_sentences", "punctuation")
    self._sentences = ([text_lib.split_sentences(p.text)
                        for p in self.paragraphs] if needs_sentences else None)
    if task in ("plain", "masked_lm", "word2vec", "document_rotation"):
      self._tokens = [self.encode(p.text) for p in self.paragraphs]
      examples = [(i, -1) for i in range(len(self.paragraphs))]
    elif task == "emoji":
      examples, self._emoji = [], {}
      for i, paragraph in enumerate(self.paragraphs):
        labelled = text_pretext.emoji_label(paragraph.text, self.emoji_set)
        if labelled is not None:
          self._emoji[i] = labelled
          examples.append((i, -1))
    elif task == "punctuation":
      examples, self._punctuation = [], {}
      for i, sentences in enumerate(self._sentences):
        for j, sentence in enumerate(sentences):
          labelled = text_pretext.punctuation_label(sentence)
          if labelled is not None:
            self._punctuation[(i, j)] = labelled
            examples.append((i, j))
    else:
      examples = [(i, -1) for i, sentences in enumerate(self._sentences)
                  if len(sentences) >= 2]
    if not examples:
      raise ValueError(
          f"{self.name}: no paragraph of {self.settings['text_dir']} "
          "qualifies for the task (emoji: none carries an emoji of "
          "config.data.text.emoji; sentence tasks: none has 2 sentences).")
    self._examples = examples

  def __len__(self) -> int:
    return len(self._examples) * int(self.settings["copies"])

  def _rng(self, index):
    return np.random.default_rng(
        (self.seed, _SPLIT_IDS[self.split], TASKS.index(self.task), index))

  def __getitem__(self, index: int) -> dict[str, Any]:
    index = int(index)
    if not 0 <= index < len(self):
      raise IndexError(f"{self.name}: index {index} out of range "
                       f"[0, {len(self)}).")
    paragraph_index, sentence_index = self._examples[
        index % len(self._examples)]
    record = {"label": self.paragraphs[paragraph_index].book_id}
    record.update(getattr(self, f"_{self.task}_record", self._plain_record)(
        paragraph_index, sentence_index, self._rng(index)))
    return record

  def _plain_record(self, i, j, rng):
    del j, rng
    return {"image": self._pad(self._with_cls(self._tokens[i]),
                               self.max_length)}

  def _document_rotation_record(self, i, j, rng):
    del j
    tokens = np.asarray(self._tokens[i][:self.max_length], np.int32)
    if len(tokens) == 0:
      tokens = np.asarray([text_lib.UNK_ID], np.int32)
    rotated, point = text_pretext.rotate_document(tokens, rng)
    return {"image": self._pad(rotated, self.max_length), "target": point}

  def _sentence_order_record(self, i, j, rng):
    del j
    first, second, swapped = text_pretext.sentence_order_example(
        self._sentences[i], rng)
    half = (self.max_length - 3) // 2
    ids = ([text_lib.CLS_ID] + self.encode(first)[:half] + [text_lib.SEP_ID]
           + self.encode(second)[:half] + [text_lib.SEP_ID])
    return {"image": self._pad(ids, self.max_length), "target": swapped}

  def _sentence_permutation_record(self, i, j, rng):
    del j
    count = int(self.settings["max_sentences"])
    sentences = self._sentences[i][:count]
    shown, perm = text_pretext.sentence_permutation_example(sentences, rng)
    ids, starts = [text_lib.CLS_ID], []
    per_sentence = max((self.max_length - 1) // len(shown) - 1, 1)
    for sentence in shown:
      starts.append(len(ids))
      ids += self.encode(sentence)[:per_sentence] + [text_lib.SEP_ID]
    starts_out = np.full(count, -1, np.int32)
    target = np.full(count, -1, np.int32)
    starts_out[:len(starts)] = starts
    target[:len(perm)] = perm
    return {"image": self._pad(ids, self.max_length), "starts": starts_out,
            "target": target}

  @functools.lru_cache(maxsize=None)  # pylint: disable=method-cache-max-size-none
  def gap_example(self, i: int) -> tuple[str, str]:
    """``(input text, target text)`` of paragraph ``i`` (deterministic)."""
    source, target, _ = text_pretext.gap_sentence_example(
        self._sentences[i], ratio=float(self.settings["gap_ratio"]))
    return source, target

  def _gap_sentences_record(self, i, j, rng):
    del j, rng
    source, target = self.gap_example(i)
    target_ids = self.encode(target)[:int(self.settings["target_length"]) - 1]
    return {"image": self._pad(self._with_cls(self.encode(source)),
                               self.max_length),
            "target_tokens": self._pad(target_ids + [text_lib.EOS_ID],
                                       int(self.settings["target_length"]))}

  def _punctuation_record(self, i, j, rng):
    del rng
    sentence, mark = self._punctuation[(i, j)]
    return {"image": self._pad(self._with_cls(self.encode(sentence)),
                               self.max_length), "target": mark}

  def _emoji_record(self, i, j, rng):
    del j, rng
    text, label = self._emoji[i]
    return {"image": self._pad(self._with_cls(self.encode(text)),
                               self.max_length), "target": label}

  def __getitems__(self, indices: Sequence[int]) -> list[dict[str, Any]]:
    return [self[i] for i in indices]

  def read_batch(self, indices: Sequence[int]) -> dict[str, np.ndarray]:
    records = self.__getitems__(indices)
    return {key: np.stack([np.asarray(r[key]) for r in records]).astype(
        np.int32) for key in records[0]}

  def save_with_run(self, workdir: str) -> str:
    """Writes the tokenizer (``tokenizer.json``) or word list
    (``words.json``) into ``workdir``; returns the path."""
    os.makedirs(workdir, exist_ok=True)
    if self.tokenizer is not None:
      path = os.path.join(workdir, "tokenizer.json")
      self.tokenizer.save(path)
    else:
      path = os.path.join(workdir, "words.json")
      with open(path, "w") as f:
        json.dump(["<pad>", text_lib.UNK_WORD] + list(self.vocabulary[1:]), f)
    return path

  def __repr__(self) -> str:
    return (f"TextTaskSource(split={self.split!r}, task={self.task!r}, "
            f"{len(self)} records, vocab {self.vocab_size}, max_length "
            f"{self.max_length})")


def load_text_task(split: str, settings: Any = None) -> TextTaskSource:
  """A :class:`TextTaskSource` from a config section (missing fields take
  :data:`DEFAULTS`)."""
  fields = {} if settings is None else dict(settings)
  return TextTaskSource(split, **fields)



def _section_vocabulary(settings: Any):
  """The (cached) vocabulary of a ``config.data.text`` section."""
  s = dict(DEFAULTS, **dict(settings or {}))
  return s["tokens"], _vocabulary(
      os.fspath(s["text_dir"]), int(s["min_words"]), float(s["test_fraction"]),
      int(s["seed"]), bool(s["prose_only"]), s["tokens"],
      int(s["vocab_size"]), int(s["word_min_count"]))


def vocab_size(settings: Any = None) -> int:
  """The number of token ids of the sources a ``config.data.text`` section
  builds (BPE: the tokenizer's; words: the word list's plus PAD)."""
  tokens, vocabulary = _section_vocabulary(settings)
  if tokens == "bpe":
    return vocabulary.vocab_size
  return len(vocabulary[0]) + 1


def word_counts(settings: Any = None) -> np.ndarray:
  """Occurrences in the training paragraphs per word id (0: PAD, none) of a
  ``tokens='words'`` section, as ``TextTaskSource.word_counts``."""
  tokens, vocabulary = _section_vocabulary(settings)
  if tokens != "words":
    raise ValueError("word_counts: the section reads BPE tokens, not words.")
  return np.concatenate([[0], vocabulary[1]]).astype(np.int64)
