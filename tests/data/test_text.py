"""The novels corpus: normalisation, the sentence splitter on crafted
strings, prose paragraphs, the by-paragraph split, the byte-level BPE
tokenizer (exact round trip, fixed special ids, padding, save/load) and the
word vocabulary.

Corpus tests skip when ``../shared/datasets/text`` is missing. The
tokenizer is trained once per module on 3,000 training paragraphs with a
1,000-entry vocabulary (about 0.3 s).
"""
import json
import pathlib

import numpy as np
import pytest

from ssl_jax.data import text

TEXT_DIR = (pathlib.Path(__file__).resolve().parents[2] / ".." / "shared" /
            "datasets" / "text")
needs_corpus = pytest.mark.skipif(
    not TEXT_DIR.is_dir(), reason=f"no corpus at {TEXT_DIR}")


@pytest.fixture(scope="module")
def corpus():
  if not TEXT_DIR.is_dir():
    pytest.skip(f"no corpus at {TEXT_DIR}")
  return text.load_corpus(str(TEXT_DIR))


@pytest.fixture(scope="module")
def split(corpus):
  return text.split_paragraphs(corpus, test_fraction=0.1, seed=0)


@pytest.fixture(scope="module")
def tokenizer(split):
  train, _ = split
  return text.TextTokenizer.train([p.text for p in train[::4][:3000]],
                                  vocab_size=1000)


# ----------------------------------------------------------------------------
# Normalisation and sentences
# ----------------------------------------------------------------------------


def test_normalize_quotes_dashes_spaces():
  raw = ("\u201cIt\u2019s \u2018so\u2019\u2014I think\u2026\u201d \u2013 "
         "caf\u00e9\u00a0 \n x")
  assert text.normalize(raw) == "\"It's 'so'--I think...\" - caf\u00e9 x"
  # NFC: a decomposed e + combining acute becomes one code point.
  assert text.normalize("cafe\u0301") == "caf\u00e9"
  assert text.normalize("  a\tb  ") == "a b"
  for sample in (raw, "\u201c\u201d\u2014\u2014", "plain text."):
    once = text.normalize(sample)
    assert text.normalize(once) == once


@pytest.mark.parametrize("paragraph, expected", [
    ("It rained. We stayed in. Then we left!",
     ["It rained.", "We stayed in.", "Then we left!"]),
    # Abbreviations and initials do not end sentences.
    ("Mr. and Mrs. Bennet met Dr. Watson at St. Paul's. He nodded.",
     ["Mr. and Mrs. Bennet met Dr. Watson at St. Paul's.", "He nodded."]),
    ("John H. Watson wrote it. It was I. Then he left.",  # "I." ends one
     ["John H. Watson wrote it.", "It was I.", "Then he left."]),
    ("MR. SMITH came. Prof. Moriarty, Capt. Ahab and Messrs. Jones left.",
     ["MR. SMITH came.", "Prof. Moriarty, Capt. Ahab and Messrs. Jones left."]),
    # Closing quotes go with the sentence; an opening quote starts one.
    ('"Ah! indeed!" said Miss Pross. "I am very much pleased."',
     ['"Ah! indeed!" said Miss Pross.', '"I am very much pleased."']),
    ("'Come here!' 'Why?' said she.", ["'Come here!'", "'Why?' said she."]),
    ("He left (at last.) Then? No!", ["He left (at last.)", "Then?", "No!"]),
    # ! and ? before a lowercase word stay inside the sentence.
    ("Oh dear! what nonsense? she thought. Fine.",
     ["Oh dear! what nonsense? she thought.", "Fine."]),
    # Ellipses and runs of marks.
    ("Wait... Then it came. What?! Really...",
     ["Wait...", "Then it came.", "What?!", "Really..."]),
    ("It was... a trick.", ["It was... a trick."]),
    # No split at dashes, colons, semicolons or before digits.
    ("He paused--Then spoke; Yes: I see. In 1797. It ended.",
     ["He paused--Then spoke; Yes: I see.", "In 1797.", "It ended."]),
    ("Page 3. 4 more to go.", ["Page 3. 4 more to go."]),
    ("", []),
    ("no punctuation at all", ["no punctuation at all"]),
])
def test_split_sentences(paragraph, expected):
  assert text.split_sentences(paragraph) == expected


def test_abbreviations_listed():
  for word in ("mr", "mrs", "dr", "st", "messrs", "prof", "capt"):
    assert word in text.ABBREVIATIONS
  assert "etc" not in text.ABBREVIATIONS and "no" not in text.ABBREVIATIONS


def test_ends_sentence():
  for yes in ("Done.", 'He said "no!"', "Why?)", "So...'"):
    assert text.ends_sentence(yes)
  for no in ("CHAPTER I", "Dear Sir,--", "He began:", ""):
    assert not text.ends_sentence(no)


# ----------------------------------------------------------------------------
# Corpus and split
# ----------------------------------------------------------------------------


def test_corpus_has_eight_books_of_prose(corpus):
  assert len(corpus) == 8
  files = [b.file for b in corpus]
  assert files == sorted(files) and [b.book_id for b in corpus] == list(
      range(8))
  assert corpus[0].title == "Emma" and corpus[0].author == "Jane Austen"
  assert corpus[7].title == "Dracula"
  # Counts measured with the defaults (the table of the module docstring).
  assert [len(b.paragraphs) for b in corpus] == [
      2092, 1900, 733, 2913, 2265, 2401, 712, 1285]
  for book in corpus:
    assert len(book.source_index) == len(book.paragraphs)
    assert list(book.source_index) == sorted(set(book.source_index))
    for paragraph in book.paragraphs:
      assert paragraph == text.normalize(paragraph)
      assert len(paragraph.split()) >= 4 and text.ends_sentence(paragraph)
      assert not paragraph.upper().startswith("CHAPTER")
      assert "\u201c" not in paragraph and "\u2014" not in paragraph
      # The splitter loses nothing: its pieces rebuild the paragraph.
      assert " ".join(text.split_sentences(paragraph)) == paragraph


@needs_corpus
def test_corpus_filter_parameters():
  loose = text.load_corpus(str(TEXT_DIR), min_words=1, heading_pattern=None)
  strict = text.load_corpus(str(TEXT_DIR), min_words=10)
  for a, b in zip(loose, strict):
    assert len(a.paragraphs) > len(b.paragraphs)
    assert set(b.paragraphs) <= set(a.paragraphs)
  with pytest.raises(ValueError, match="min_words"):
    text.load_corpus(str(TEXT_DIR), min_words=0)


def test_missing_corpus_errors(tmp_path):
  with pytest.raises(FileNotFoundError, match="text_dir"):
    text.load_corpus(str(tmp_path / "nowhere"))
  with pytest.raises(FileNotFoundError, match="no .txt file"):
    text.load_corpus(str(tmp_path))


def test_corpus_without_manifest(tmp_path):
  (tmp_path / "b.txt").write_text(
      "CHAPTER I\n\nIt was a dark night. The \u201cend\u201d came.\n\nOk.\n",
      encoding="utf-8")
  (tmp_path / "a.txt").write_text("One two three four five.\n",
                                  encoding="utf-8")
  books = text.load_corpus(str(tmp_path))
  assert [b.file for b in books] == ["a.txt", "b.txt"]
  assert books[1].title == "b" and books[1].author == ""
  assert books[1].paragraphs == ('It was a dark night. The "end" came.',)
  assert books[1].source_index == (1,)


def test_split_by_paragraph_stratified_disjoint_deterministic(corpus, split):
  train, test = split
  assert len(train) + len(test) == sum(len(b.paragraphs) for b in corpus)
  assert not {p.text for p in train} & {p.text for p in test}
  seen = {(p.book_id, p.index) for p in train + test}
  assert len(seen) == len(train) + len(test)
  for p in train + test:
    assert corpus[p.book_id].paragraphs[p.index] == p.text
  for book in corpus:
    held = sum(p.book_id == book.book_id for p in test)
    distinct = len(set(book.paragraphs))
    # Stratified: each book holds out its share (a text repeated across
    # books may shift it by a few).
    assert abs(held - 0.1 * distinct) <= 5, (book.file, held, distinct)
  assert text.split_paragraphs(corpus, 0.1, seed=0) == split
  other = text.split_paragraphs(corpus, 0.1, seed=1)[1]
  assert {(p.book_id, p.index) for p in other} != {
      (p.book_id, p.index) for p in test}
  assert [(p.book_id, p.index) for p in test] == sorted(
      (p.book_id, p.index) for p in test)
  empty_train, empty_test = text.split_paragraphs(corpus, 0.0, seed=0)
  assert not empty_test and len(empty_train) == len(train) + len(test)
  with pytest.raises(ValueError, match="test_fraction"):
    text.split_paragraphs(corpus, 1.0)


def test_split_keeps_repeated_texts_on_one_side():
  books = (text.Book(0, "a.txt", "a", "", ("x.", "y.", "x.", "z.") * 5,
                     tuple(range(20))),
           text.Book(1, "b.txt", "b", "", ("y.", "w.", "v.", "u."),
                     tuple(range(4))))
  for seed in range(10):
    train, test = text.split_paragraphs(books, 0.5, seed)
    assert not {p.text for p in train} & {p.text for p in test}
    assert len({p.text for p in test if p.book_id == 0}) == 2


# ----------------------------------------------------------------------------
# Tokenizer
# ----------------------------------------------------------------------------


def test_special_ids_fixed(tokenizer):
  expected = {"<pad>": 0, "<unk>": 1, "<cls>": 2, "<sep>": 3, "<mask>": 4,
              "<bos>": 5, "<eos>": 6, "<mask_sent>": 7}
  for token, token_id in expected.items():
    assert tokenizer.tokenizer.token_to_id(token) == token_id
    assert tokenizer.id_to_token(token_id) == token
  assert (text.PAD_ID, text.UNK_ID, text.CLS_ID, text.SEP_ID, text.MASK_ID,
          text.BOS_ID, text.EOS_ID, text.MASK_SENTENCE_ID) == tuple(range(8))
  assert tokenizer.mask_id == 4 and tokenizer.pad_id == 0
  assert tokenizer.first_regular_id == text.FIRST_REGULAR_ID == 8
  assert tokenizer.vocab_size == 1000
  assert tokenizer.encode(text.MASK_SENTENCE_TOKEN) == [text.MASK_SENTENCE_ID]


def test_round_trip_1000_corpus_sentences(tokenizer, split):
  _, test = split  # held-out text: words the tokenizer never saw
  sentences = [s for p in test for s in text.split_sentences(p.text)]
  rng = np.random.default_rng(0)
  picked = [sentences[i] for i in rng.choice(len(sentences), 1000,
                                             replace=False)]
  encoded = tokenizer.encode_batch(picked)
  for sentence, ids in zip(picked, encoded):
    assert ids == tokenizer.encode(sentence)
    assert min(ids) >= text.FIRST_REGULAR_ID  # no UNK, no special id
    assert tokenizer.decode(ids) == sentence
  # Anything at all round-trips (byte level), also with odd spacing.
  for odd in ("  two  spaces\tand tab\n",
              "\u00e9\u00e6\u00a3 \u05d7 \u03b7 \U0001F600", ""):
    assert tokenizer.decode(tokenizer.encode(odd)) == odd


def test_decode_skips_special_tokens_unless_asked(tokenizer):
  ids = [text.BOS_ID] + tokenizer.encode("Hello there.") + [text.EOS_ID]
  assert tokenizer.decode(ids) == "Hello there."
  assert tokenizer.decode(ids, skip_special_tokens=False) == (
      "<bos>Hello there.<eos>")
  assert tokenizer.decode(np.asarray(ids, np.int32)) == "Hello there."


def test_pad_batch_pads_and_truncates(tokenizer):
  seqs = [tokenizer.encode("A short one."), [], list(range(10, 40))]
  tokens, lengths = tokenizer.pad_batch(seqs, 12)
  assert tokens.dtype == np.int32 and tokens.shape == (3, 12)
  assert lengths.dtype == np.int32
  assert lengths.tolist() == [len(seqs[0]), 0, 12]
  np.testing.assert_array_equal(tokens[0, :lengths[0]], seqs[0])
  assert np.all(tokens[0, lengths[0]:] == text.PAD_ID)
  assert np.all(tokens[1] == text.PAD_ID)
  np.testing.assert_array_equal(tokens[2], np.arange(10, 22))
  with pytest.raises(ValueError, match="max_length"):
    tokenizer.pad_batch(seqs, 0)


def test_save_load_identical(tokenizer, split, tmp_path):
  path = tmp_path / "run" / "tokenizer.json"
  tokenizer.save(str(path))
  json.loads(path.read_text(encoding="utf-8"))  # plain JSON
  loaded = text.TextTokenizer.load(str(path))
  assert loaded.vocab_size == tokenizer.vocab_size
  texts = [p.text for p in split[1][:200]]
  assert loaded.encode_batch(texts) == tokenizer.encode_batch(texts)
  assert loaded.to_json() == tokenizer.to_json()
  with pytest.raises(FileNotFoundError, match="TextTokenizer.train"):
    text.TextTokenizer.load(str(tmp_path / "missing.json"))


def test_training_deterministic_and_checked(split):
  texts = [p.text for p in split[0][:500]]
  a = text.TextTokenizer.train(texts, vocab_size=400)
  b = text.TextTokenizer.train(texts, vocab_size=400)
  assert a.to_json() == b.to_json()
  with pytest.raises(ValueError, match="vocab_size"):
    text.TextTokenizer.train(texts, vocab_size=100)


def test_rejects_tokenizer_with_other_special_ids():
  import tokenizers  # pylint: disable=g-import-not-at-top
  other = tokenizers.Tokenizer(tokenizers.models.BPE())
  other.add_special_tokens(["<unk>", "<pad>"])
  with pytest.raises(ValueError, match="special token '<pad>' has id 1"):
    text.TextTokenizer(other)


# ----------------------------------------------------------------------------
# Word vocabulary
# ----------------------------------------------------------------------------


def test_word_tokens():
  assert text.word_tokens("\"Don't!\" said Holmes's friend, to-night; "
                          "in 1897 caf\u00e9 'tis") == [
                              "don't", "said", "holmes's", "friend", "to",
                              "night", "in", "caf\u00e9", "tis"]


def test_build_word_vocab_and_ids():
  texts = ["the cat saw the dog.", "The dog saw a cat!", "the end"]
  words, counts = text.build_word_vocab(texts, min_count=2)
  # the:4, cat:2, dog:2, saw:2 (ties alphabetical); a, end: 1 each -> UNK.
  assert words == ["<unk>", "the", "cat", "dog", "saw"]
  assert counts.tolist() == [2, 4, 2, 2, 2] and counts.dtype == np.int64
  assert counts.sum() == sum(len(text.word_tokens(t)) for t in texts)
  small, small_counts = text.build_word_vocab(texts, min_count=1, max_size=3)
  assert small == ["<unk>", "the", "cat"]
  assert small_counts.tolist() == [6, 4, 2]
  ids = text.word_ids("The cat and a dog", words)
  assert ids.dtype == np.int32 and ids.tolist() == [1, 2, 0, 0, 3]
  index = {w: i for i, w in enumerate(words)}
  assert text.word_ids("The cat and a dog", index).tolist() == ids.tolist()
  with pytest.raises(ValueError, match="min_count"):
    text.build_word_vocab(texts, min_count=0)
