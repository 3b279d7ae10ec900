"""Image-text pairs: byte tokens, the digits with (noisy) captions, and a
user's jsonl / folder of pairs with errors that name the file and line."""

import json
import re

import ml_collections
import numpy as np
import pytest
from PIL import Image

from ssl_jax import data
from ssl_jax.data import image_text


def named_classes(text):
  """The digit classes a text names (numerals and number words)."""
  words = re.findall(r"[a-z]+|\d", text.lower())
  return {int(w) if w.isdigit() else image_text.DIGIT_WORDS.index(w)
          for w in words if w.isdigit() or w in image_text.DIGIT_WORDS}


def test_tokens_round_trip_bytes_end_and_pad():
  for text in ("seven", "7", "naïve café — “quoted”", ""):
    tokens, length = image_text.encode_text(text, 40)
    raw = text.encode("utf-8")
    assert tokens.dtype == np.int32 and tokens.shape == (40,)
    assert length == len(raw) + 1
    np.testing.assert_array_equal(tokens[:len(raw)],
                                  np.frombuffer(raw, np.uint8) + 2)
    assert tokens[len(raw)] == image_text.END_ID
    assert np.all(tokens[length:] == image_text.PAD_ID)
    assert image_text.decode_tokens(tokens) == text
  # Too long: cut at the last whole character that fits, END kept.
  tokens, length = image_text.encode_text("ééééé", 6)  # 2 bytes each
  assert length == 5 and image_text.decode_tokens(tokens) == "éé"
  assert tokens[4] == image_text.END_ID and tokens[5] == image_text.PAD_ID
  batch, lengths = image_text.encode_texts(["a", "bcd"], 8)
  assert batch.shape == (2, 8) and list(lengths) == [2, 4]


def test_digits_pairs_noise_is_the_fraction_asked_and_disagrees():
  clean = image_text.load_image_text("train", {"noise_fraction": 0.0})
  noisy = image_text.load_image_text("train", {"noise_fraction": 0.3})
  more = image_text.load_image_text("train", {"noise_fraction": 0.6})
  n = len(noisy)
  assert n == 1438 and noisy.num_classes == 10
  assert noisy.noisy.sum() == round(0.3 * n) and more.noisy.sum() == round(
      0.6 * n) and not clean.noisy.any()
  kinds = np.bincount(noisy.noise_kind, minlength=3)
  assert kinds[2] == round(0.5 * round(0.3 * n))  # unrelated sentences
  # Nested: the 30% are among the 60%, and clean captions never change.
  assert np.all(more.noisy[noisy.noisy])
  for i in np.flatnonzero(~more.noisy):
    assert clean.texts[i] == noisy.texts[i] == more.texts[i]
  for i, (text, label, kind) in enumerate(zip(noisy.texts, noisy.labels,
                                              noisy.noise_kind)):
    classes = named_classes(text)
    if kind == 0:
      assert classes == {label}, (i, text)
    elif kind == 1:  # a caption of another class
      assert len(classes) == 1 and label not in classes, (i, text)
    else:  # a novel's sentence, naming no number
      assert not classes and text[-1] in ".!?", (i, text)
  np.testing.assert_array_equal(noisy.tokens[5],
                                image_text.encode_text(noisy.texts[5], 40)[0])
  # The test split is clean; the seed draws other captions.
  test = image_text.load_image_text("test", {"noise_fraction": 0.3})
  assert len(test) == 359 and not test.noisy.any()
  other = image_text.load_image_text("train", {"seed": 1})
  assert other.texts != clean.texts
  assert len(clean.class_prompts) == 10
  assert "a handwritten seven" in clean.class_prompts[7]


def test_records_reach_the_pipeline_with_their_text():
  config = ml_collections.ConfigDict(dict(
      source="image_text", image_text=dict(noise_fraction=0.5)))
  source = data.get_source(config, "train")
  batch = data.read_records(source, np.array([3, 0, 7]))
  assert set(batch) >= {"image", "label", "text", "text_length", "noisy",
                        "index"}
  assert batch["text"].shape == (3, 40) and batch["text"].dtype == np.int32
  record = source[7]
  np.testing.assert_array_equal(batch["text"][2], record["text"])
  assert batch["text_length"][2] == record["text_length"]
  assert batch["noisy"][2] == record["noisy"]
  images, labels = data.as_arrays(source)
  assert images.shape == (1438, 8, 8, 1) and labels[7] == record["label"]
  loader = data.make_train_loader(source, 16, seed=0)
  first = next(iter(loader))
  assert first["text"].shape == (16, 40)


def _write_image(path, size, colour):
  Image.new("RGB", size, colour).save(path)


def _pairs_folder(tmp_path, num=10):
  (tmp_path / "img").mkdir()
  lines = []
  for i in range(num):
    _write_image(tmp_path / "img" / f"{i}.png", (20 + i, 12), (20 * i, 0, 0))
    lines.append(json.dumps({"image": f"img/{i}.png",
                             "text": f"a red square number {i}",
                             "label": i % 2}))
  return lines


def test_user_pairs_from_a_folder_or_a_jsonl(tmp_path):
  lines = _pairs_folder(tmp_path)
  (tmp_path / "captions.jsonl").write_text("\n".join(lines) + "\n\n")
  settings = {"kind": "pairs", "path": str(tmp_path), "image_size": 16,
              "test_fraction": 0.3, "class_names": "even,odd"}
  train = image_text.load_image_text("train", settings)
  test = image_text.load_image_text("test", settings)
  assert (len(train), len(test)) == (7, 3)
  assert train.image_shape == (16, 16, 3) and train.num_classes == 2
  texts = set(train.texts) | set(test.texts)
  assert len(texts) == 10
  for source in (train, test):
    for text, image, label in zip(source.texts, source.images, source.labels):
      i = int(text.split()[-1])
      assert label == i % 2
      # A uniform image stays uniform after the crop and resize.
      np.testing.assert_allclose(image[..., 0], 20 * i, atol=1)
  assert test.class_prompts[1] == ["a photo of a odd.", "odd"]
  # The jsonl alone, with images relative to its folder.
  alone = image_text.load_image_text(
      "train", dict(settings, path=str(tmp_path / "captions.jsonl")))
  assert alone.texts == train.texts
  # <split>.jsonl files.
  (tmp_path / "captions.jsonl").unlink()
  (tmp_path / "train.jsonl").write_text("\n".join(lines[:6]))
  (tmp_path / "test.jsonl").write_text("\n".join(lines[6:]))
  grey = image_text.load_image_text("test", dict(settings, channels=1,
                                                 class_names=""))
  assert len(grey) == 4 and grey.image_shape == (16, 16, 1)
  assert grey.num_classes == 2 and grey.class_prompts is None


@pytest.mark.parametrize("bad_line, message", [
    ("{not json", "not valid JSON"),
    ('{"image": "img/0.png"}', '"text" must be a string'),
    ('{"image": "img/missing.png", "text": "x", "label": 0}',
     "cannot read the image .*missing.png"),
    ('{"image": "img/corrupt.png", "text": "x", "label": 0}',
     "cannot read the image .*corrupt.png"),
    ('{"image": "img/0.png", "text": "x"}', "lacks a \"label\""),
])
def test_a_bad_line_or_image_names_the_file_and_line(tmp_path, bad_line,
                                                     message):
  lines = _pairs_folder(tmp_path, num=4)
  (tmp_path / "img" / "corrupt.png").write_bytes(b"\x89PNG not really")
  lines.insert(2, bad_line)
  jsonl = tmp_path / "train.jsonl"
  jsonl.write_text("\n".join(lines))
  pattern = f"{re.escape(str(jsonl))}, line 3: .*{message}"
  with pytest.raises(ValueError, match=pattern):
    image_text.load_image_text("train", {"kind": "pairs",
                                         "path": str(tmp_path)})


def test_bad_settings_say_what_to_change(tmp_path):
  with pytest.raises(ValueError, match="unknown field.*noise"):
    image_text.load_image_text("train", {"noise": 0.3})
  with pytest.raises(ValueError, match="noise_fraction"):
    image_text.load_image_text("train", {"noise_fraction": 1.5})
  with pytest.raises(ValueError, match="needs config.data.image_text.path"):
    image_text.load_image_text("train", {"kind": "pairs"})
  with pytest.raises(FileNotFoundError, match="captions.jsonl"):
    image_text.load_image_text("train", {"kind": "pairs",
                                         "path": str(tmp_path)})
  with pytest.raises(FileNotFoundError, match="noise_unrelated_fraction=0"):
    image_text.load_image_text("train", {"noise_fraction": 0.1,
                                         "text_dir": str(tmp_path / "none")})
