"""Image-text pairs for visual-text correspondence (CLIP, Radford et al.
2021; ConVIRT, Zhang et al. 2020), with byte-level text tokens.

A record is an image with the text that came with it::

    {"image": uint8 (H, W, C),
     "label": int                 the true class (evaluation only; 0 if the
                                  pairs have no labels),
     "text": int32 (max_length,)  byte tokens of the text, END, then PAD,
     "text_length": int           tokens before the padding (bytes + END),
     "noisy": bool}               the text does not describe the image
                                  (the built-in digits pairs; False for a
                                  user's pairs, whose noise is unknown)

Tokens (no vocabulary, nothing downloaded): the UTF-8 bytes ``b`` of the
text become ``b + BYTE_OFFSET`` (2 .. 257), followed by ``END_ID`` (1) and
``PAD_ID`` (0) up to ``max_length``. A text longer than ``max_length - 1``
bytes is cut at the last whole character that fits.

Two kinds of pairs (``config.data.image_text.kind``):

* ``'digits'`` (default, no download): the scikit-learn digits
  (``sources.load_digits``, the fixed split), each with a caption of its
  class drawn from :data:`TEMPLATES` ("a handwritten seven", "7", "the
  digit seven, written by hand", "seven", "theo: seven" -- a transcript of
  the word spoken by one of the FSDD speakers, ...). A fraction
  ``noise_fraction`` of the TRAINING pairs is noisy on purpose, as web
  captions and subtitles are: their text is a caption of another class
  (``wrong_class``) or, for ``noise_unrelated_fraction`` of them, an
  unrelated sentence of one of the eight public-domain novels in
  ``text_dir`` (``../shared/datasets/text``; sentences naming a number are
  left out, so a noisy text never names the true class). The test split's
  captions are all clean. Everything is drawn from ``seed`` and the split
  with the whole draw made before the noise is applied: a record's
  caption, and the order in which records turn noisy, do not depend on
  ``noise_fraction`` (the noisy records at 30% are among those at 60%),
  and exactly ``round(noise_fraction * N)`` training pairs are noisy.
* ``'pairs'``: a user's pairs, from ``path``: a jsonl file or a folder.
  Each non-blank line is ``{"image": "relative/path.png", "text": "...",
  "label": 3}`` (label optional, but on all lines or none; the image path
  is relative to the jsonl's folder). A folder holds ``<split>.jsonl``,
  or ``<split>/captions.jsonl``, or one ``captions.jsonl`` that is split
  by a seeded permutation (``test_fraction`` to 'test'). Images are read
  with PIL, converted to ``channels`` (3: RGB, 1: grayscale), centre-
  cropped to a square and resized to ``image_size`` (bicubic), all at load
  time (the split is held in memory). A line that is not a JSON object
  with a string "image" and "text", or an image that is missing or cannot
  be decoded, is an error naming the file and the line.

Zero-shot evaluation reads ``source.class_prompts`` (one list of texts per
class): for the digits, the class words in :data:`PROMPT_TEMPLATES`; for
a user's pairs, ``class_names`` in ``prompts`` (templates with ``{}``), or
None without class names.
"""

from __future__ import annotations

import functools
import json
import os
import re
from typing import Any, Optional, Sequence

import numpy as np

from ssl_jax.data import sources

__all__ = [
    "BYTE_OFFSET",
    "DEFAULTS",
    "DIGIT_WORDS",
    "END_ID",
    "FSDD_SPEAKERS",
    "ImageTextSource",
    "NOISE_KINDS",
    "PAD_ID",
    "PROMPT_TEMPLATES",
    "TEMPLATES",
    "VOCAB_SIZE",
    "decode_tokens",
    "digits_pairs",
    "encode_text",
    "encode_texts",
    "load_image_text",
    "load_pairs",
    "novel_sentences",
]

PAD_ID = 0
END_ID = 1
BYTE_OFFSET = 2
VOCAB_SIZE = 256 + BYTE_OFFSET

DIGIT_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven",
               "eight", "nine")
# The FSDD speakers (../shared/datasets/fsdd/README.md), for the transcript
# captions "<speaker>: <word>".
FSDD_SPEAKERS = ("george", "jackson", "lucas", "nicolas", "theo", "yweweler")
# Captions of a digit: {word} its English word, {Word} capitalised, {digit}
# the numeral, {speaker} an FSDD speaker (a transcript of the spoken digit).
TEMPLATES = (
    "{word}",
    "{digit}",
    "a handwritten {word}",
    "a handwritten {digit}",
    "the digit {word}, written by hand",
    "the number {word}",
    "{Word}.",
    "a scanned {word}",
    "an image of the digit {digit}",
    "handwritten digit {digit} ({word})",
    "{speaker}: {word}",
    "{speaker} says {word}",
)
# Zero-shot prompts per class (CLIP's prompt ensembling); the first is the
# single-prompt row.
PROMPT_TEMPLATES = (
    "a handwritten {word}",
    "{word}",
    "{digit}",
    "the digit {word}, written by hand",
    "the number {word}",
)
NOISE_KINDS = ("clean", "wrong_class", "unrelated")

DEFAULTS = {
    "kind": "digits",  # digits | pairs
    "max_length": 40,  # tokens per text, END included
    # digits
    "noise_fraction": 0.0,  # of the training pairs
    "noise_unrelated_fraction": 0.5,  # of the noisy ones: a novel's sentence
    "text_dir": "../shared/datasets/text",
    "seed": 0,
    # pairs
    "path": "",
    "image_size": 32,
    "channels": 3,
    "test_fraction": 0.2,
    "num_classes": 0,  # 0: len(class_names), else 1 + the largest label
    "class_names": "",  # comma-separated (or a sequence)
    # templates separated by | (or a sequence)
    "prompts": "a photo of a {}.|{}",
}
_SPLITS = ("train", "test")


# ----------------------------------------------------------------------------
# Byte-level tokens
# ----------------------------------------------------------------------------


def encode_text(text: str, max_length: int) -> tuple[np.ndarray, int]:
  """``(tokens int32 (max_length,), length)`` of ``text``; see the module
  docstring. ``length`` counts the byte tokens and END."""
  if max_length < 2:
    raise ValueError(f"max_length={max_length} leaves no room for a byte and "
                     "the END token; use at least 2.")
  data = text.encode("utf-8")
  if len(data) > max_length - 1:  # cut at a character boundary
    data = data[:max_length - 1].decode("utf-8", errors="ignore").encode(
        "utf-8")
  tokens = np.full(max_length, PAD_ID, np.int32)
  tokens[:len(data)] = np.frombuffer(data, np.uint8).astype(np.int32) + (
      BYTE_OFFSET)
  tokens[len(data)] = END_ID
  return tokens, len(data) + 1


def encode_texts(texts: Sequence[str],
                 max_length: int) -> tuple[np.ndarray, np.ndarray]:
  """``(tokens int32 (N, max_length), lengths int32 (N,))``."""
  tokens = np.full((len(texts), max_length), PAD_ID, np.int32)
  lengths = np.zeros(len(texts), np.int32)
  for i, text in enumerate(texts):
    tokens[i], lengths[i] = encode_text(text, max_length)
  return tokens, lengths


def decode_tokens(tokens: np.ndarray) -> str:
  """The text of one row of tokens: its bytes up to END (or PAD)."""
  tokens = np.asarray(tokens)
  stop = np.flatnonzero(tokens < BYTE_OFFSET)
  data = tokens[:stop[0] if len(stop) else len(tokens)] - BYTE_OFFSET
  return bytes(data.astype(np.uint8).tolist()).decode("utf-8",
                                                      errors="replace")


# ----------------------------------------------------------------------------
# The source
# ----------------------------------------------------------------------------


class ImageTextSource(sources.ArraySource):
  """Images with their texts in memory; an ``ArraySource`` (so evaluation
  reads its images and labels without copying) whose records also carry
  ``text``, ``text_length`` and ``noisy``.

  Attributes beyond ``ArraySource``'s: ``texts`` (the strings),
  ``tokens`` int32 ``(N, max_length)``, ``text_lengths``, ``noisy`` bool,
  ``noise_kind`` (index into ``NOISE_KINDS``), ``class_prompts`` (per
  class a list of zero-shot texts, or None), ``max_length``.
  """

  def __init__(self, images, labels, num_classes, texts, *, max_length,
               noise_kind=None, class_prompts=None, name=None):
    super().__init__(images, labels, num_classes, name=name)
    if len(texts) != len(labels):
      raise ValueError(f"ImageTextSource ({name}): {len(texts)} texts for "
                       f"{len(labels)} images; give one text per image.")
    self.texts = tuple(texts)
    self.max_length = int(max_length)
    self.tokens, self.text_lengths = encode_texts(self.texts, self.max_length)
    self.noise_kind = (np.zeros(len(labels), np.int8) if noise_kind is None
                       else np.asarray(noise_kind, np.int8))
    self.noisy = self.noise_kind > 0
    self.class_prompts = class_prompts
    for array in (self.tokens, self.text_lengths, self.noise_kind,
                  self.noisy):
      array.setflags(write=False)

  def __getitem__(self, index: int) -> dict[str, Any]:
    return {"image": self.images[index], "label": int(self.labels[index]),
            "text": self.tokens[index],
            "text_length": int(self.text_lengths[index]),
            "noisy": bool(self.noisy[index])}

  def read_batch(self, indices: Sequence[int]) -> dict[str, np.ndarray]:
    """The stacked records at ``indices``, one gather per array."""
    i = np.asarray(indices, dtype=np.int64)
    return {"image": self.images[i], "label": self.labels[i],
            "text": self.tokens[i], "text_length": self.text_lengths[i],
            "noisy": self.noisy[i]}

  def __repr__(self) -> str:
    return (f"ImageTextSource(name={self.name!r}, num_records={len(self)}, "
            f"image_shape={self.image_shape}, num_classes={self.num_classes}, "
            f"max_length={self.max_length}, noisy={int(self.noisy.sum())})")


# ----------------------------------------------------------------------------
# Built-in pairs: the digits with captions of their class
# ----------------------------------------------------------------------------


def _caption(template: str, label: int, speaker: str) -> str:
  word = DIGIT_WORDS[label]
  return template.format(word=word, Word=word.capitalize(), digit=label,
                         speaker=speaker)


_NUMBER_PATTERN = re.compile(
    r"\d|\b(" + "|".join(DIGIT_WORDS) + r")\b", re.IGNORECASE)
_SENTENCE_END = re.compile(r"(?<=[.!?])[\"'\u201d\u2019)]*\s+")


@functools.lru_cache(maxsize=4)
def novel_sentences(text_dir: str, max_bytes: int) -> tuple[str, ...]:
  """The sentences of the novels in ``text_dir`` (``*.txt``, one paragraph
  per line, see its README) of 12 to ``max_bytes`` UTF-8 bytes that end
  in . ! or ? and name no number (no numeral, no word zero ... nine), in
  file and text order."""
  if not os.path.isdir(text_dir):
    raise FileNotFoundError(
        f"image_text: no folder {text_dir} of novels for the unrelated noisy "
        "captions; set config.data.image_text.text_dir to "
        "../shared/datasets/text (relative to the repository) or set "
        "config.data.image_text.noise_unrelated_fraction=0.")
  names = sorted(f for f in os.listdir(text_dir) if f.endswith(".txt"))
  if not names:
    raise FileNotFoundError(
        f"image_text: {text_dir} holds no .txt file of text; see "
        "config.data.image_text.text_dir.")
  sentences = []
  for name in names:
    with open(os.path.join(text_dir, name), encoding="utf-8") as f:
      paragraphs = f.read().split("\n\n")
    for paragraph in paragraphs:
      for sentence in _SENTENCE_END.split(paragraph.strip()):
        sentence = sentence.strip()
        size = len(sentence.encode("utf-8"))
        if (12 <= size <= max_bytes and sentence[-1] in ".!?"
            and not _NUMBER_PATTERN.search(sentence)):
          sentences.append(sentence)
  return tuple(sentences)


def digits_pairs(split: str, *, max_length: int = DEFAULTS["max_length"],
                 noise_fraction: float = 0.0,
                 noise_unrelated_fraction: float = 0.5,
                 text_dir: str = DEFAULTS["text_dir"],
                 seed: int = 0) -> ImageTextSource:
  """The digits of ``split`` with captions of their class; see the module
  docstring ('digits'). Noise applies to the 'train' split only."""
  if split not in _SPLITS:
    raise ValueError(f"image_text: unknown split {split!r} of the digits "
                     "pairs; use 'train' or 'test'.")
  for key, value in (("noise_fraction", noise_fraction),
                     ("noise_unrelated_fraction", noise_unrelated_fraction)):
    if not 0.0 <= value <= 1.0:
      raise ValueError(f"config.data.image_text.{key}={value} must be in "
                       "[0, 1].")
  digits = sources.load_digits(split)
  labels = digits.labels
  n = len(labels)
  # Legacy RandomState: its streams are fixed across NumPy versions.
  rng = np.random.RandomState([int(seed), _SPLITS.index(split)])
  template = rng.randint(len(TEMPLATES), size=n)
  speaker = rng.randint(len(FSDD_SPEAKERS), size=n)
  wrong = (labels + rng.randint(1, 10, size=n)) % 10  # never the true class
  wrong_template = rng.randint(len(TEMPLATES), size=n)
  sentence_draw = rng.randint(2**31 - 1, size=n)
  noise_order = rng.permutation(n)  # records turn noisy in this order
  texts = [_caption(TEMPLATES[t], int(c), FSDD_SPEAKERS[s])
           for t, c, s in zip(template, labels, speaker)]
  noise_kind = np.zeros(n, np.int8)
  num_noisy = int(round(noise_fraction * n)) if split == "train" else 0
  if num_noisy:
    noisy = noise_order[:num_noisy]
    num_unrelated = int(round(noise_unrelated_fraction * num_noisy))
    noise_kind[noisy[:num_unrelated]] = NOISE_KINDS.index("unrelated")
    noise_kind[noisy[num_unrelated:]] = NOISE_KINDS.index("wrong_class")
    corpus = (novel_sentences(os.path.normpath(text_dir), max_length - 1)
              if num_unrelated else ())
    for i in noisy[:num_unrelated]:
      texts[i] = corpus[sentence_draw[i] % len(corpus)]
    for i in noisy[num_unrelated:]:
      texts[i] = _caption(TEMPLATES[wrong_template[i]], int(wrong[i]),
                          FSDD_SPEAKERS[speaker[i]])
  prompts = [[_caption(t, c, "") for t in PROMPT_TEMPLATES]
             for c in range(10)]
  name = f"digits_text/{split}"
  if num_noisy:
    name += f" ({num_noisy} noisy)"
  return ImageTextSource(digits.images, labels, 10, texts,
                         max_length=max_length, noise_kind=noise_kind,
                         class_prompts=prompts, name=name)


# ----------------------------------------------------------------------------
# A user's pairs: jsonl + images
# ----------------------------------------------------------------------------


def _split_files(path: str, split: str) -> tuple[str, Optional[list[str]]]:
  """The jsonl of ``split`` under ``path``, and the dataset's split files.

  Returns ``(file, all_files)``: ``all_files`` is None when ``file`` holds
  every split (to be split by ``test_fraction``), else the list of the
  dataset's split files (read for the number of classes).
  """
  if os.path.isfile(path):
    return path, None
  if not os.path.isdir(path):
    raise FileNotFoundError(
        f"image_text: config.data.image_text.path={path!r} is neither a jsonl "
        "file nor a folder; point it at a captions.jsonl or at a folder "
        "holding <split>.jsonl, <split>/captions.jsonl or captions.jsonl.")
  flat = os.path.join(path, f"{split}.jsonl")
  nested = os.path.join(path, split, "captions.jsonl")
  for candidate, pattern in ((flat, "{}.jsonl"),
                             (nested, os.path.join("{}", "captions.jsonl"))):
    if os.path.isfile(candidate):
      siblings = [os.path.join(path, pattern.format(s)) for s in _SPLITS]
      return candidate, [f for f in siblings if os.path.isfile(f)]
  single = os.path.join(path, "captions.jsonl")
  if os.path.isfile(single):
    return single, None
  raise FileNotFoundError(
      f"image_text: found none of {flat}, {nested} or {single}; a folder of "
      "pairs holds <split>.jsonl, <split>/captions.jsonl, or one "
      "captions.jsonl split by config.data.image_text.test_fraction.")


def _read_lines(jsonl: str) -> list[tuple[int, dict[str, Any]]]:
  """``(line number, entry)`` of every non-blank line, checked."""
  entries = []
  with open(jsonl, encoding="utf-8") as f:
    for number, line in enumerate(f, start=1):
      if not line.strip():
        continue
      where = f"image_text: {jsonl}, line {number}"
      try:
        entry = json.loads(line)
      except json.JSONDecodeError as e:
        raise ValueError(f"{where}: not valid JSON ({e}); each line must be "
                         '{"image": "path.png", "text": "...", "label": 0}.'
                         ) from None
      if not isinstance(entry, dict):
        raise ValueError(f"{where}: expected a JSON object, got "
                         f"{type(entry).__name__}.")
      for key in ("image", "text"):
        if not isinstance(entry.get(key), str):
          raise ValueError(f'{where}: "{key}" must be a string, got '
                           f"{entry.get(key)!r}.")
      label = entry.get("label")
      if label is not None and (isinstance(label, bool)
                                or not isinstance(label, int) or label < 0):
        raise ValueError(f'{where}: "label" must be a non-negative integer, '
                         f"got {label!r}.")
      if entries and (label is None) != (entries[0][1].get("label") is None):
        raise ValueError(
            f"{where}: this pair {'lacks' if label is None else 'has'} a "
            f"\"label\" and line {entries[0][0]} "
            f"{'has' if label is None else 'lacks'} one; give every pair a "
            "label, or none.")
      entries.append((number, entry))
  if not entries:
    raise ValueError(f"image_text: {jsonl} holds no pairs.")
  return entries


def _read_image(path: str, size: int, channels: int, where: str) -> np.ndarray:
  """uint8 ``(size, size, channels)``: centre square crop, bicubic resize."""
  from PIL import Image  # pylint: disable=g-import-not-at-top

  try:
    with Image.open(path) as image:
      image = image.convert("RGB" if channels == 3 else "L")
  except (OSError, SyntaxError, ValueError) as e:  # missing, corrupt, truncated
    raise ValueError(f"{where}: cannot read the image {path} ({e}); fix or "
                     "remove that line.") from None
  width, height = image.size
  side = min(width, height)
  left, top = (width - side) // 2, (height - side) // 2
  image = image.crop((left, top, left + side, top + side)).resize(
      (size, size), Image.Resampling.BICUBIC)
  array = np.asarray(image, np.uint8)
  return array.reshape(size, size, channels)


def load_pairs(path: str, split: str, *, max_length: int = 64,
               image_size: int = 32, channels: int = 3,
               test_fraction: float = 0.2, num_classes: int = 0,
               class_names: Sequence[str] = (),
               prompts: Sequence[str] = ("a photo of a {}.", "{}"),
               seed: int = 0) -> ImageTextSource:
  """A user's image-text pairs; see the module docstring ('pairs')."""
  if split not in _SPLITS:
    raise ValueError(f"image_text: unknown split {split!r}; use 'train' or "
                     "'test'.")
  if channels not in (1, 3):
    raise ValueError(f"config.data.image_text.channels={channels}; use 3 "
                     "(RGB) or 1 (grayscale).")
  if not path:
    raise ValueError(
        "config.data.image_text.kind='pairs' needs config.data.image_text."
        "path: a captions.jsonl, or a folder of images with one.")
  jsonl, split_files = _split_files(os.fspath(path), split)
  entries = _read_lines(jsonl)
  if split_files is None:  # one file for both splits
    order = np.random.RandomState(int(seed)).permutation(len(entries))
    num_test = int(round(test_fraction * len(entries)))
    if not 0 < num_test < len(entries):
      raise ValueError(
          f"image_text: {jsonl} holds {len(entries)} pairs for both splits; "
          f"test_fraction={test_fraction} gives {num_test} test pairs. Set "
          "config.data.image_text.test_fraction so both splits get some, or "
          "write <split>.jsonl files.")
    keep = np.sort(order[:num_test] if split == "test" else order[num_test:])
    all_labels = [e.get("label") for _, e in entries]
    entries = [entries[i] for i in keep]
  else:
    all_labels = [e.get("label") for f in split_files
                  for _, e in _read_lines(f)]
  if len({label is None for label in all_labels}) > 1:
    files = split_files or [jsonl]
    raise ValueError(
        f"image_text: some pairs in {files} have a \"label\" and some do "
        "not; give every pair a label, or none.")
  has_labels = all_labels[0] is not None
  if not num_classes:
    num_classes = len(class_names) or (1 + max(all_labels) if has_labels
                                       else 1)
  folder = os.path.dirname(os.path.abspath(jsonl))
  images, labels, texts = [], [], []
  for number, entry in entries:
    where = f"image_text: {jsonl}, line {number}"
    label = entry.get("label") or 0
    if label >= num_classes:
      raise ValueError(f"{where}: label {label} is not below the "
                       f"{num_classes} classes; fix the label or set "
                       "config.data.image_text.num_classes / class_names.")
    images.append(_read_image(os.path.join(folder, entry["image"]),
                              image_size, channels, where))
    labels.append(label)
    texts.append(entry["text"])
  class_prompts = None
  if class_names:
    if len(class_names) != num_classes:
      raise ValueError(
          f"config.data.image_text.class_names has {len(class_names)} names "
          f"for {num_classes} classes; give one name per class.")
    class_prompts = [[p.format(name) for p in prompts] for name in class_names]
  return ImageTextSource(np.stack(images), np.asarray(labels, np.int32),
                         num_classes, texts, max_length=max_length,
                         class_prompts=class_prompts,
                         name=f"{os.path.basename(jsonl)}/{split}")


def _names(value: Any, separator: str) -> tuple[str, ...]:
  """A string of names split at ``separator``, or a sequence, as a tuple."""
  if isinstance(value, str):
    return tuple(v.strip() for v in value.split(separator) if v.strip())
  return tuple(str(v) for v in value)


def load_image_text(split: str, settings: Any = None) -> ImageTextSource:
  """The ``split`` of the pairs named by ``config.data.image_text``
  (``None`` or missing fields take :data:`DEFAULTS`; unknown fields are an
  error)."""
  fields = {} if settings is None else dict(settings)
  unknown = sorted(set(fields) - set(DEFAULTS))
  if unknown:
    raise ValueError(
        f"config.data.image_text has unknown field(s) {unknown}; the fields "
        f"are {sorted(DEFAULTS)}.")
  s = {**DEFAULTS, **fields}
  if s["kind"] == "digits":
    return digits_pairs(
        split, max_length=s["max_length"], noise_fraction=s["noise_fraction"],
        noise_unrelated_fraction=s["noise_unrelated_fraction"],
        text_dir=s["text_dir"], seed=s["seed"])
  if s["kind"] == "pairs":
    return load_pairs(
        s["path"], split, max_length=s["max_length"],
        image_size=s["image_size"], channels=s["channels"],
        test_fraction=s["test_fraction"], num_classes=s["num_classes"],
        class_names=_names(s["class_names"], ","),
        prompts=_names(s["prompts"], "|"), seed=s["seed"])
  raise ValueError(f"config.data.image_text.kind={s['kind']!r}; use 'digits' "
                   "(the built-in digits with captions) or 'pairs' (a "
                   "captions.jsonl with images).")
