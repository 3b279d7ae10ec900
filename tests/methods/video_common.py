"""Tiny moving-digits videos and configs for the video methods' tests."""

from ssl_jax.data import video
from ssl_jax.train import defaults

from tests.conftest import load_config

BATCH = 8
FRAMES = 6
SIZE = 16


def tiny_videos(batch=BATCH, split="train"):
  """uint8 ``(batch, FRAMES, SIZE, SIZE, 3)`` videos and their labels."""
  source = video.MovingDigits(split, num_sequences=batch, num_frames=FRAMES,
                              frame_size=SIZE, digit_size=8, speed=2.0)
  records = source.read_batch(range(batch))
  return records["image"], records["label"]


def tiny_video_config(name, preset="moving_digits"):
  """``configs/<name>.py:<preset>`` on 16x16 frames, ResNet-10 at width 1/8."""
  config = load_config(name, preset)
  config.data.video = defaults.moving_digits_section(
      num_frames=FRAMES, frame_size=SIZE, digit_size=8,
      num_sequences_train=64, num_sequences_test=16)
  config.eval.data.video.update(frame_size=SIZE, digit_size=8)
  config.augment.crop_size = SIZE
  config.model.depth = 10
  config.train.batch_size = BATCH
  config.optim.warmup_steps = 1
  return config
