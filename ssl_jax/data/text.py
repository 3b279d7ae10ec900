"""The novels corpus for text pretext tasks: normalisation, a rule-based
sentence splitter, prose paragraphs with a by-paragraph train/test split, a
byte-level BPE tokenizer and a word vocabulary for word2vec (host side,
numpy and pure Python).

Corpus (``../shared/datasets/text``, see its README.md): eight
public-domain novels, one paragraph per line, paragraphs separated by a
blank line. :func:`load_corpus` reads the ``*.txt`` files sorted by name
(class id = position: 0 ``austen_emma`` ... 7 ``stoker_dracula``), takes
author and title from ``manifest.json`` when present, normalises every
paragraph (:func:`normalize`) and keeps the prose: a paragraph is dropped
when it has fewer than ``min_words`` whitespace-separated words, does not
end in sentence-final punctuation (``. ! ?`` or ``...``, closing quotes and
brackets ignored), or looks like a heading (``heading_pattern``: "CHAPTER
12. ...", "Letter 3", "VI. Triumph", ...). Measured with the defaults
(``min_words=4``), 14,301 of the 17,030 paragraphs are kept
("sentences" by :func:`split_sentences`; "2+" = paragraphs of two or more
sentences, the ones sentence-order and permutation tasks can use):

==================================  =====  =====  =========  =====
book                                raw    kept   sentences  2+
==================================  =====  =====  =========  =====
0 Emma                              2,376  2,092  6,565      1,468
1 Pride and Prejudice               2,126  1,900  5,530      1,249
2 Alice's Adventures in Wonderland  819    733    1,302      313
3 A Tale of Two Cities              3,327  2,913  7,050      1,848
4 The Adventures of Sherlock Holmes 2,541  2,265  6,286      1,456
5 Moby Dick                         2,800  2,401  8,364      1,639
6 Frankenstein                      825    712    3,229      628
7 Dracula                           2,216  1,285  6,388      1,000
total                               17,030 14,301 44,714     9,601
==================================  =====  =====  =========  =====

(Dracula loses the most: diary and letter headers, and dialogue cut off
with "--".) ``split_paragraphs(corpus, 0.1, seed=0)`` gives 12,874 training
and 1,427 test paragraphs.

:func:`split_paragraphs` splits BY PARAGRAPH, per book (stratified), with a
seeded draw, so no held-out paragraph is seen in pretraining; paragraphs
whose text occurs more than once in a book always fall on the same side.

Tokenizer (:class:`TextTokenizer`): byte-level BPE (the GPT-2 scheme,
Radford et al. 2019; Sennrich et al. 2016 for BPE) trained with the
``tokenizers`` library on the TRAINING paragraphs only. The pre-tokenizer
maps every UTF-8 byte to a printable character and splits on GPT-2's
word/punctuation/space pattern without adding a prefix space, and the
decoder maps the characters back to bytes, so ``decode(encode(t)) == t``
for every string (no unknown token ever occurs; the 256 byte symbols are
always in the vocabulary). With ``vocab_size=8000`` trained on the 12,874
training paragraphs (1.4 s on one core) a word is 1.34 tokens on average
and a paragraph 85 tokens (95th percentile 272). Special tokens have fixed
ids: ``PAD=0 UNK=1 CLS=2 SEP=3 MASK=4 BOS=5 EOS=6`` and
``MASK_SENTENCE=7`` (PEGASUS's gap-sentence mask, Zhang et al. 2020,
distinct from the MLM mask); regular tokens start at ``FIRST_REGULAR_ID =
8``. The tokenizer is one JSON file
(the ``tokenizers`` format), saved with a run.

Word vocabulary (word2vec, Mikolov et al. 2013): :func:`word_tokens`
lower-cases the text and takes runs of letters with inner apostrophes
("don't", "holmes's"); digits, hyphens and other punctuation separate words
("to-night" -> "to", "night"). :func:`build_word_vocab` keeps the words
seen at least ``min_count`` times, most frequent first; id 0 is UNK.
"""

from __future__ import annotations

import collections
import json
import os
import re
import unicodedata
from typing import Iterable, NamedTuple, Optional, Sequence

import numpy as np

__all__ = [
    "ABBREVIATIONS",
    "BOS_ID",
    "Book",
    "CLS_ID",
    "DEFAULT_TEXT_DIR",
    "EOS_ID",
    "FIRST_REGULAR_ID",
    "HEADING_PATTERN",
    "MASK_ID",
    "MASK_SENTENCE_ID",
    "MASK_SENTENCE_TOKEN",
    "PAD_ID",
    "Paragraph",
    "SEP_ID",
    "SPECIAL_TOKENS",
    "TextTokenizer",
    "UNK_ID",
    "UNK_WORD",
    "build_word_vocab",
    "ends_sentence",
    "load_corpus",
    "normalize",
    "split_paragraphs",
    "split_sentences",
    "word_ids",
    "word_tokens",
]

DEFAULT_TEXT_DIR = "../shared/datasets/text"

# Special tokens in id order: the id of a token is its index here.
SPECIAL_TOKENS = ("<pad>", "<unk>", "<cls>", "<sep>", "<mask>", "<bos>",
                  "<eos>", "<mask_sent>")
PAD_ID, UNK_ID, CLS_ID, SEP_ID, MASK_ID, BOS_ID, EOS_ID = range(7)
MASK_SENTENCE_ID = 7
MASK_SENTENCE_TOKEN = SPECIAL_TOKENS[MASK_SENTENCE_ID]
FIRST_REGULAR_ID = len(SPECIAL_TOKENS)

UNK_WORD = "<unk>"  # id 0 of the word vocabulary

# ----------------------------------------------------------------------------
# Normalisation
# ----------------------------------------------------------------------------

# Character replacements of normalize(), applied after NFC.
_REPLACEMENTS = {
    "\u201c": '"', "\u201d": '"', "\u201e": '"', "\u201f": '"',  # “ ” „ ‟
    "\u00ab": '"', "\u00bb": '"',  # « »
    "\u2018": "'", "\u2019": "'", "\u201a": "'", "\u201b": "'",  # ‘ ’ ‚ ‛
    "\u2032": "'", "\u2033": '"',  # ′ ″
    "\u2014": "--", "\u2015": "--",  # — ―
    "\u2013": "-", "\u2012": "-", "\u2010": "-", "\u2011": "-",  # – ‒ ‐ ‑
    "\u2026": "...",  # …
    "\u00ad": "", "\u200b": "", "\ufeff": "",  # soft hyphen, zero widths
}
_REPLACE_PATTERN = re.compile("|".join(map(re.escape, _REPLACEMENTS)))
_WHITESPACE = re.compile(r"\s+")


def normalize(text: str) -> str:
  """The text in one spelling of quotes, dashes and spaces.

  Rules, in order: Unicode NFC (composed accents, e.g. "é" as one code
  point); curly double quotes (“ ” „ ‟ « » ″) to ``"``, curly single
  quotes and apostrophes (‘ ’ ‚ ‛ ′) to ``'``; em dash and horizontal bar
  (— ―) to ``--`` (the spelling of the two Latin-1 books); en dash and
  other hyphens (– ‒ ‐ ‑) to ``-``; the ellipsis character (…) to ``...``;
  soft hyphens, zero-width spaces and BOMs removed; every run of whitespace
  (spaces, tabs, newlines, no-break spaces) to one space, stripped at both
  ends. Accented letters, æ/œ, £ and the few Greek/Hebrew letters of Moby
  Dick are kept as they are (the byte-level tokenizer encodes anything).
  The result is a fixed point: ``normalize(normalize(t)) == normalize(t)``.
  """
  text = unicodedata.normalize("NFC", text)
  text = _REPLACE_PATTERN.sub(lambda m: _REPLACEMENTS[m.group(0)], text)
  return _WHITESPACE.sub(" ", text).strip()


# ----------------------------------------------------------------------------
# Sentences
# ----------------------------------------------------------------------------

# Lower-cased words after which a "." does not end a sentence. Measured on
# the corpus: Mr. (2,714 times before a capital), Mrs. (1,103), Dr. (186,
# also "DR." in Dracula's headings), St. (124, "St. Simon", "St. Paul's").
# "etc." and "No." are not listed: in the novels they end sentences more
# often than not ("..., etc. Mrs. Bennet was", '"No." she said').
ABBREVIATIONS = frozenset((
    "mr", "mrs", "ms", "messrs", "mme", "mlle", "dr", "st", "mt", "prof",
    "rev", "revd", "capt", "col", "gen", "lt", "sgt", "hon", "jr", "sr",
    "vs", "viz", "cf", "e.g", "i.e",
))
_CLOSERS = "\"')]}\u201d\u2019"
_OPENERS = "\"'([{\u201c\u2018"
# A candidate end: a run of . ! ? (this covers "...", "?!" and "!!"), the
# closing quotes/brackets after it, then whitespace before an uppercase
# letter or an opening quote/bracket (checked in split_sentences).
_CANDIDATE_END = re.compile(r"[.!?]+[" + re.escape(_CLOSERS) + r"]*(?=\s+\S)")
_WORD_BEFORE = re.compile(r"([A-Za-z][A-Za-z.]*)$")


def _is_abbreviation(text: str, end: int) -> bool:
  """Whether the single "." at ``text[end]`` closes an abbreviation: a
  word of :data:`ABBREVIATIONS` or a single capital letter other than "I"
  (an initial: "John H. Watson", "M. Krempe")."""
  start = max(0, end - 8)  # longer than any abbreviation: not one
  match = _WORD_BEFORE.search(text, start, end)
  if match is None or (match.start() > 0 and
                       text[match.start() - 1].isalnum()):
    return False
  word = match.group(1)
  if len(word) == 1:
    return word.isupper() and word != "I"
  return word.lower() in ABBREVIATIONS


def split_sentences(paragraph: str) -> list[str]:
  """The sentences of ``paragraph``, split by deterministic rules.

  A sentence ends after a run of ``.``, ``!`` or ``?`` (so also ``...``,
  ``?!``, ``!!``) and any closing quotes or brackets that follow it
  (``" ' ) ] }`` and their curly forms), when the next non-space character
  is an uppercase letter or an opening quote/bracket (``" ' ( [ {``, curly
  forms). There is no split:

  * after a single "." that closes an abbreviation (:data:`ABBREVIATIONS`:
    Mr., Mrs., Ms., Messrs., Dr., St., Prof., Rev., Capt., Col., ...) or an
    initial (one capital letter other than "I": "John H. Watson");
  * before a lowercase letter or a digit: '"Ah! indeed!" said Miss Pross.'
    is one sentence, as is "Oh dear! what nonsense";
  * at dashes, colons and semicolons.

  The pieces are stripped; joining them with single spaces gives back a
  normalised paragraph (whose whitespace runs are single spaces). An empty
  paragraph gives an empty list.
  """
  sentences = []
  start = 0
  for match in _CANDIDATE_END.finditer(paragraph):
    end = match.end()
    after = paragraph[end:].lstrip()
    first = after[0]
    if not (first.isupper() or first in _OPENERS):
      continue
    marks = match.group(0).rstrip(_CLOSERS)
    if marks == "." and _is_abbreviation(paragraph, match.start()):
      continue
    sentence = paragraph[start:end].strip()
    if sentence:
      sentences.append(sentence)
    start = end
  rest = paragraph[start:].strip()
  if rest:
    sentences.append(rest)
  return sentences


def ends_sentence(text: str) -> bool:
  """Whether ``text`` ends in ``.``, ``!`` or ``?`` (``...`` included),
  ignoring closing quotes and brackets after it."""
  text = text.rstrip().rstrip(_CLOSERS)
  return bool(text) and text[-1] in ".!?"


# ----------------------------------------------------------------------------
# The corpus
# ----------------------------------------------------------------------------

# Headings that pass the word count and punctuation rules: "CHAPTER 74. The
# Sperm Whale's Head--Contrasted View.", "VII. Monseigneur in Town.",
# "Letter 4", the table of contents "I. A Scandal in Bohemia II. ...".
HEADING_PATTERN = (r"^(?:CHAPTER|Chapter|BOOK|Book|VOLUME|Volume|LETTER|"
                   r"Letter|ADVENTURE|PART|Part|STAVE)\b|^[IVXLC]+\.\s")


class Book(NamedTuple):
  """One novel of the corpus.

  Attributes:
    book_id: class id, the position of the file in name order (0 .. 7).
    file: the file name, e.g. ``"austen_emma.txt"``.
    title: from manifest.json (else the file name without ``.txt``).
    author: from manifest.json (else "").
    paragraphs: the kept prose paragraphs, normalised, in text order.
    source_index: per kept paragraph, its position among ALL the file's
      paragraphs (headings included), so paragraphs that were adjacent in
      the book can be told apart from ones separated by a dropped heading.
  """
  book_id: int
  file: str
  title: str
  author: str
  paragraphs: tuple[str, ...]
  source_index: tuple[int, ...]


class Paragraph(NamedTuple):
  """A paragraph of a split: ``paragraph = corpus[book_id].paragraphs[
  index]``; consecutive ``index`` values are consecutive prose paragraphs
  of the book."""
  book_id: int
  index: int
  text: str


def _is_prose(paragraph: str, min_words: int,
              heading: Optional[re.Pattern], prose_only: bool = True) -> bool:
  if len(paragraph.split()) < min_words:
    return False
  if not prose_only:
    return True
  if not ends_sentence(paragraph):
    return False
  return heading is None or heading.search(paragraph) is None


def load_corpus(text_dir: str = DEFAULT_TEXT_DIR, *, min_words: int = 4,
                heading_pattern: Optional[str] = HEADING_PATTERN,
                prose_only: bool = True) -> tuple[Book, ...]:
  """The books of ``text_dir`` with their normalised prose paragraphs.

  Args:
    text_dir: folder of ``*.txt`` files, one paragraph per line with blank
      lines between paragraphs (``../shared/datasets/text``, relative to the
      repository root); ``manifest.json`` there, if present, gives each
      file's title and author.
    min_words: drop paragraphs of fewer whitespace-separated words (after
      normalisation). Paragraphs that do not end in ``. ! ?`` / ``...``
      (closing quotes ignored) are dropped, unless ``prose_only`` is False.
    heading_pattern: a regular expression; paragraphs in which it matches
      (``re.search``) are dropped as headings. None keeps them.
    prose_only: False keeps every paragraph of ``min_words`` words or more
      (no sentence-end or heading rule): for text that is not prose, such
      as posts that end in emoji.

  Returns:
    One :class:`Book` per file, in file-name order (``book_id`` = index).

  Raises:
    FileNotFoundError: no such folder, or no ``.txt`` file in it.
  """
  if min_words < 1:
    raise ValueError(f"load_corpus: min_words={min_words} must be >= 1.")
  if not os.path.isdir(text_dir):
    raise FileNotFoundError(
        f"text: no folder {text_dir!r} of novels; pass text_dir="
        f"{DEFAULT_TEXT_DIR!r} (relative to the repository root) or the "
        "folder holding the *.txt files.")
  names = sorted(f for f in os.listdir(text_dir) if f.endswith(".txt"))
  if not names:
    raise FileNotFoundError(
        f"text: {text_dir!r} holds no .txt file; expected one UTF-8 file per "
        "book with one paragraph per line (see its README.md).")
  manifest = {}
  manifest_path = os.path.join(text_dir, "manifest.json")
  if os.path.isfile(manifest_path):
    with open(manifest_path, encoding="utf-8") as f:
      manifest = {entry["file"]: entry for entry in json.load(f)
                  if isinstance(entry, dict) and "file" in entry}
  heading = re.compile(heading_pattern) if heading_pattern else None
  books = []
  for book_id, name in enumerate(names):
    with open(os.path.join(text_dir, name), encoding="utf-8") as f:
      raw = f.read().split("\n\n")
    kept, where = [], []
    for i, paragraph in enumerate(raw):
      paragraph = normalize(paragraph)
      if _is_prose(paragraph, min_words, heading, prose_only):
        kept.append(paragraph)
        where.append(i)
    entry = manifest.get(name, {})
    books.append(Book(book_id=book_id, file=name,
                      title=str(entry.get("title", name[:-len(".txt")])),
                      author=str(entry.get("author", "")),
                      paragraphs=tuple(kept), source_index=tuple(where)))
  return tuple(books)


def split_paragraphs(corpus: Sequence[Book], test_fraction: float = 0.1,
                     seed: int = 0
                     ) -> tuple[list[Paragraph], list[Paragraph]]:
  """A seeded train/test split by paragraph, stratified per book.

  Per book, ``round(test_fraction * D)`` of its ``D`` distinct paragraph
  texts go to 'test', drawn by ``numpy.random.default_rng([seed,
  book_id]).permutation``; every occurrence of a text follows it, so no
  held-out paragraph is also a training one (Moby Dick repeats '"Hast seen
  the White Whale?"' three times). A text that an earlier book already
  placed (a few short lines such as '"What do you mean?"' occur in several
  books) keeps its side and counts towards this book's quota; the other
  texts fill the rest of the quota in permutation order.

  Returns:
    ``(train, test)``: lists of :class:`Paragraph` ``(book_id, index,
    text)``, each in (book, index) order.
  """
  if not 0.0 <= test_fraction < 1.0:
    raise ValueError(f"split_paragraphs: test_fraction={test_fraction} must "
                     "be in [0, 1).")
  side = {}  # text -> True when held out
  train, test = [], []
  for book in corpus:
    distinct = list(dict.fromkeys(book.paragraphs))  # first-seen order
    rng = np.random.default_rng([int(seed), int(book.book_id)])
    order = rng.permutation(len(distinct))
    quota = int(round(test_fraction * len(distinct)))
    quota -= sum(side.get(text, False) for text in distinct)
    for i in order:
      text = distinct[i]
      if text not in side:
        side[text] = quota > 0
        quota -= side[text]
    for index, paragraph in enumerate(book.paragraphs):
      item = Paragraph(book.book_id, index, paragraph)
      (test if side[paragraph] else train).append(item)
  return train, test


# ----------------------------------------------------------------------------
# Subword tokenizer
# ----------------------------------------------------------------------------


def _tokenizers():
  try:
    import tokenizers  # pylint: disable=g-import-not-at-top
  except ImportError as e:
    raise ImportError(
        "text: the subword tokenizer needs the 'tokenizers' package; "
        "install it with `pip install tokenizers==0.23.3` (pinned in "
        "requirements.txt).") from e
  return tokenizers


class TextTokenizer:
  """Byte-level BPE with fixed special-token ids (see the module docstring).

  Build one with :meth:`train` or :meth:`load`; ``TextTokenizer(tok)``
  wraps a ``tokenizers.Tokenizer`` whose first vocabulary entries are
  :data:`SPECIAL_TOKENS`.
  """

  pad_id = PAD_ID
  unk_id = UNK_ID
  cls_id = CLS_ID
  sep_id = SEP_ID
  mask_id = MASK_ID
  bos_id = BOS_ID
  eos_id = EOS_ID
  mask_sentence_id = MASK_SENTENCE_ID
  first_regular_id = FIRST_REGULAR_ID
  special_tokens = SPECIAL_TOKENS

  def __init__(self, tokenizer):
    for expected, token in enumerate(SPECIAL_TOKENS):
      found = tokenizer.token_to_id(token)
      if found != expected:
        raise ValueError(
            f"TextTokenizer: special token {token!r} has id {found}, expected "
            f"{expected}; the tokenizer was not made by TextTokenizer.train "
            "(retrain it, or save one from this class).")
    self._tokenizer = tokenizer

  @classmethod
  def train(cls, texts: Iterable[str], vocab_size: int = 8000, *,
            min_frequency: int = 2) -> "TextTokenizer":
    """Trains byte-level BPE on ``texts`` (the TRAINING paragraphs only).

    Training is deterministic: the same texts in the same order give the
    same merges (ties between equally frequent pairs are broken by the
    library's fixed pair order), so there is no seed.

    Args:
      texts: strings, e.g. ``[p.text for p in train]``.
      vocab_size: total size, special tokens and the 256 byte symbols
        included; at least ``FIRST_REGULAR_ID + 256`` = 264. A small corpus
        may end with fewer entries (no pair left to merge).
      min_frequency: a pair must occur this often to be merged.
    """
    minimum = FIRST_REGULAR_ID + 256
    if vocab_size < minimum:
      raise ValueError(f"TextTokenizer.train: vocab_size={vocab_size} is "
                       f"below {minimum} (the {FIRST_REGULAR_ID} special "
                       "tokens and 256 byte symbols); use at least that.")
    tk = _tokenizers()
    tokenizer = tk.Tokenizer(tk.models.BPE(unk_token=SPECIAL_TOKENS[UNK_ID]))
    tokenizer.pre_tokenizer = tk.pre_tokenizers.ByteLevel(
        add_prefix_space=False, use_regex=True)
    tokenizer.decoder = tk.decoders.ByteLevel()
    trainer = tk.trainers.BpeTrainer(
        vocab_size=vocab_size, min_frequency=min_frequency,
        special_tokens=list(SPECIAL_TOKENS), show_progress=False,
        initial_alphabet=tk.pre_tokenizers.ByteLevel.alphabet())
    tokenizer.train_from_iterator(list(texts), trainer=trainer)
    return cls(tokenizer)

  def to_json(self) -> str:
    """The tokenizer in the ``tokenizers`` JSON format."""
    return self._tokenizer.to_str()

  @classmethod
  def from_json(cls, text: str) -> "TextTokenizer":
    return cls(_tokenizers().Tokenizer.from_str(text))

  def save(self, path: str) -> None:
    """Writes the tokenizer to ``path`` (one JSON file)."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
      f.write(self.to_json())

  @classmethod
  def load(cls, path: str) -> "TextTokenizer":
    """The tokenizer saved at ``path`` by :meth:`save`."""
    if not os.path.isfile(path):
      raise FileNotFoundError(
          f"TextTokenizer.load: no tokenizer file {path!r}; train one with "
          "TextTokenizer.train(...) and save it with .save(path).")
    with open(path, encoding="utf-8") as f:
      return cls.from_json(f.read())

  @property
  def vocab_size(self) -> int:
    """Number of ids, special tokens included (ids are 0 .. size - 1)."""
    return self._tokenizer.get_vocab_size(with_added_tokens=True)

  @property
  def tokenizer(self):
    """The wrapped ``tokenizers.Tokenizer``."""
    return self._tokenizer

  def encode(self, text: str) -> list[int]:
    """Token ids of ``text`` (no BOS/EOS/CLS added). A special token's text
    in ``text`` (e.g. "<mask_sent>") becomes its id."""
    return self._tokenizer.encode(text, add_special_tokens=False).ids

  def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
    """:meth:`encode` of each text (the library's parallel batch call)."""
    encodings = self._tokenizer.encode_batch(list(texts),
                                             add_special_tokens=False)
    return [e.ids for e in encodings]

  def decode(self, ids: Sequence[int], skip_special_tokens: bool = True
             ) -> str:
    """The text of ``ids``; ``decode(encode(t)) == t`` for any ``t`` that
    holds no special token's text. Special tokens are dropped unless
    ``skip_special_tokens=False``."""
    ids = [int(i) for i in np.asarray(ids).reshape(-1)]
    return self._tokenizer.decode(ids, skip_special_tokens=skip_special_tokens)

  def id_to_token(self, token_id: int) -> Optional[str]:
    return self._tokenizer.id_to_token(int(token_id))

  def pad_batch(self, sequences: Sequence[Sequence[int]], max_length: int,
                pad_id: int = PAD_ID) -> tuple[np.ndarray, np.ndarray]:
    """``(tokens int32 (N, max_length), lengths int32 (N,))``: each id list
    cut to its first ``max_length`` ids, then padded with ``pad_id``."""
    if max_length < 1:
      raise ValueError(f"pad_batch: max_length={max_length} must be >= 1.")
    tokens = np.full((len(sequences), max_length), pad_id, np.int32)
    lengths = np.zeros(len(sequences), np.int32)
    for row, ids in enumerate(sequences):
      ids = np.asarray(ids, np.int32)[:max_length]
      tokens[row, :len(ids)] = ids
      lengths[row] = len(ids)
    return tokens, lengths

  def __repr__(self) -> str:
    return f"TextTokenizer(byte-level BPE, vocab_size={self.vocab_size})"


# ----------------------------------------------------------------------------
# Word vocabulary (word2vec)
# ----------------------------------------------------------------------------

_WORD = re.compile(r"[^\W\d_]+(?:'[^\W\d_]+)*")


def word_tokens(text: str) -> list[str]:
  """Lower-cased words of ``text``: runs of letters joined by inner
  apostrophes ("don't", "holmes's"); everything else separates words."""
  return _WORD.findall(text.lower())


def build_word_vocab(texts: Iterable[str], min_count: int = 5,
                     max_size: Optional[int] = None
                     ) -> tuple[list[str], np.ndarray]:
  """The word2vec vocabulary of ``texts`` (:func:`word_tokens`).

  Words seen at least ``min_count`` times, most frequent first (ties in
  alphabetical order), at most ``max_size`` entries in all (UNK
  included). Id 0 is :data:`UNK_WORD`, whose count is the number of word
  occurrences left out.

  Returns:
    ``(words, counts)``: ``words[i]`` has id ``i``; ``counts`` int64.
  """
  if min_count < 1:
    raise ValueError(f"build_word_vocab: min_count={min_count} must be >= 1.")
  if max_size is not None and max_size < 2:
    raise ValueError(f"build_word_vocab: max_size={max_size} leaves no room "
                     "for a word beside UNK; use at least 2 (or None).")
  counter = collections.Counter()
  for text in texts:
    counter.update(word_tokens(text))
  ranked = sorted(((w, c) for w, c in counter.items() if c >= min_count),
                  key=lambda item: (-item[1], item[0]))
  if max_size is not None:
    ranked = ranked[:max_size - 1]
  words = [UNK_WORD] + [w for w, _ in ranked]
  kept = sum(c for _, c in ranked)
  counts = np.asarray([sum(counter.values()) - kept] + [c for _, c in ranked],
                      np.int64)
  return words, counts


def word_ids(text: str, vocab: Sequence[str] | dict[str, int]) -> np.ndarray:
  """int32 ids of the :func:`word_tokens` of ``text`` (0 = UNK). ``vocab``
  is the word list of :func:`build_word_vocab` or a word -> id dict (pass
  the dict when encoding many texts)."""
  if not isinstance(vocab, dict):
    vocab = {w: i for i, w in enumerate(vocab)}
  return np.asarray([vocab.get(w, 0) for w in word_tokens(text)], np.int32)
