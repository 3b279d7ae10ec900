"""The moving-digits video source, and videos through the other sources."""

import ml_collections
import numpy as np
import pytest

from ssl_jax import data
from ssl_jax.data import video


def small(**kwargs):
  settings = dict(num_sequences=12, num_frames=20, frame_size=32,
                  digit_size=16, num_digits=2, speed=3.0, seed=7)
  settings.update(kwargs)
  return video.MovingDigits("train", **settings)


def test_same_seed_same_sequences_other_seed_others():
  a, b, c = small(), small(), small(seed=8)
  for i in (0, 5, 11):
    np.testing.assert_array_equal(a[i]["image"], b[i]["image"])
    assert not np.array_equal(a[i]["image"], c[i]["image"])
  assert not np.array_equal(a[0]["image"], a[1]["image"])


def test_records_are_uint8_videos_labelled_with_digit_zero():
  source = small()
  record = source[3]
  assert record["image"].dtype == np.uint8
  assert record["image"].shape == (20, 32, 32, 3) == source.image_shape
  assert record["label"] == source.sequence(3)["digit_labels"][0]
  batch = source.read_batch([0, 3])
  np.testing.assert_array_equal(batch["image"][1], record["image"])


def test_recorded_positions_match_the_frames():
  """With one digit, each frame is exactly the digit's glyph times its colour
  pasted at the recorded position, and nothing else is drawn."""
  source = small(num_digits=1)
  glyphs, labels = video._glyphs("train", 16)  # pylint: disable=protected-access
  for index in range(4):
    seq = source.sequence(index)
    which = np.flatnonzero(labels == seq["digit_labels"][0])
    for t in range(source.num_frames):
      r, c = seq["positions"][t, 0]
      frame = seq["video"][t].astype(np.float32) / 255.0
      inside = frame[r:r + 16, c:c + 16]
      outside = frame.copy()
      outside[r:r + 16, c:c + 16] = 0.0
      assert outside.max() == 0.0
      # The glyph is one of the split's images of this class.
      errors = [np.abs(inside - glyphs[w][..., None] * seq["colors"][0]).max()
                for w in which]
      assert min(errors) <= 0.501 / 255.0  # uint8 rounding
      mask = seq["masks"][t]
      assert set(np.unique(mask)) <= {0, 1}
      assert mask[r:r + 16, c:c + 16].sum() == mask.sum() > 0


def test_digits_move_at_the_speed_and_bounce_inside_the_frame():
  source = small(num_sequences=30, speed=3.0)
  room = 32 - 16
  for index in range(30):
    _, _, start, velocity = source._draws(index)  # pylint: disable=protected-access
    np.testing.assert_allclose(np.linalg.norm(velocity, axis=-1), 3.0)
    positions = source.sequence(index)["positions"]
    assert positions.min() >= 0 and positions.max() <= room
    steps = np.abs(np.diff(positions, axis=0))
    assert steps.max() <= 4  # 3 pixels a frame, plus rounding
  # Unrolled by hand: one coordinate bounces off the far wall.
  positions = source.trajectories(np.array([[14.0, 1.0]]),
                                  np.array([[3.0, -2.0]]))
  np.testing.assert_array_equal(positions[:4, 0], [[14, 1], [15, 1],
                                                    [12, 3], [9, 5]])


def test_digits_of_a_sequence_differ_in_colour_and_masks_follow_the_ink():
  source = small()
  seq = source.sequence(2)
  hue_gap = np.abs(seq["colors"][0] - seq["colors"][1]).max()
  assert hue_gap > 0.5
  for k in range(2):
    r, c = seq["positions"][0, k]
    owned = seq["masks"][0] == k + 1
    assert owned.any()
    rows, cols = np.nonzero(owned)
    assert rows.min() >= r and rows.max() < r + 16
    assert cols.min() >= c and cols.max() < c + 16


def test_test_split_uses_the_test_digits():
  train = video.MovingDigits("train", num_sequences=3, num_digits=1)
  test = video.MovingDigits("test", num_sequences=3, num_digits=1)
  assert not np.array_equal(train[0]["image"], test[0]["image"])
  assert test.name == "moving_digits/test"


def test_one_frame_gives_labelled_still_images():
  frames = video.MovingDigits("test", num_sequences=50, num_frames=1,
                              num_digits=1)
  assert frames.image_shape == (32, 32, 3)
  images, labels = data.as_arrays(frames)
  assert images.shape == (50, 32, 32, 3) and labels.shape == (50,)
  assert len(np.unique(labels)) > 5


def test_get_source_reads_the_video_section():
  config = ml_collections.ConfigDict({
      "source": "moving_digits", "name": "", "data_dir": "",
      "video": {"num_frames": 5, "frame_size": 24, "digit_size": 8,
                "num_digits": 3, "speed": 1.0, "seed": 1,
                "num_sequences_train": 40, "num_sequences_test": 10}})
  train = data.get_source(config, "train")
  test = data.get_source(config, "test")
  assert (len(train), len(test)) == (40, 10)
  assert train.image_shape == (5, 24, 24, 3)


@pytest.mark.parametrize("bad, message", [
    (dict(digit_size=40), "larger than frame_size"),
    (dict(num_frames=0), "num_frames must be a positive int"),
    (dict(speed=-1.0), "speed must be >= 0"),
])
def test_bad_settings_are_refused(bad, message):
  with pytest.raises(ValueError, match=message):
    small(**bad)


def test_video_batches_through_the_train_loader():
  loader = data.make_train_loader(small(), 4, seed=0)
  batch = next(iter(loader))
  assert batch["image"].shape == (4, 20, 32, 32, 3)
  assert batch["label"].shape == (4,)


def test_npz_folder_of_videos(tmp_path):
  videos = np.random.default_rng(0).integers(
      0, 256, (6, 4, 8, 8, 3), dtype=np.uint8)
  np.savez(tmp_path / "train.npz", image=videos, label=np.arange(6) % 3)
  source = data.load_npz(tmp_path, "train")
  assert source.image_shape == (4, 8, 8, 3) and source.num_classes == 3
  np.testing.assert_array_equal(source[2]["image"], videos[2])
  with pytest.raises(ValueError, match="rank 5"):
    np.savez(tmp_path / "test.npz", image=videos[None], label=np.arange(1))
    data.load_npz(tmp_path, "test")
