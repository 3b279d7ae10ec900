"""Feature extraction helpers: channel matching for transfer, compile reuse."""

import jax
import numpy as np
import pytest
from PIL import Image

from ssl_jax.eval import representation
from ssl_jax.train import step as step_lib


def test_rgb_to_gray_matches_pil():
  rng = np.random.default_rng(0)
  images = rng.integers(0, 256, (4, 5, 6, 3), dtype=np.uint8)
  got = representation.match_channels(images, 1)
  expected = np.stack([np.asarray(Image.fromarray(im).convert("L"))
                       for im in images])[..., None]
  assert got.shape == (4, 5, 6, 1) and got.dtype == np.uint8
  assert np.max(np.abs(got.astype(int) - expected)) <= 1


def test_gray_to_rgb_repeats_and_same_channels_is_identity():
  images = np.arange(24, dtype=np.uint8).reshape(2, 3, 4, 1)
  rgb = representation.match_channels(images, 3)
  assert rgb.shape == (2, 3, 4, 3)
  assert all(np.array_equal(rgb[..., c:c + 1], images) for c in range(3))
  assert representation.match_channels(rgb, 3) is rgb


def test_other_channel_counts_are_refused():
  with pytest.raises(ValueError, match="4-channel"):
    representation.match_channels(np.zeros((1, 2, 2, 4), np.uint8), 3)


def test_factory_builds_one_extractor_per_function():
  factory = representation.extractor_factory(8)

  class Encoder:
    def encode(self, variables, images):
      return images.reshape(len(images), -1) * variables

  encoder, mesh = Encoder(), step_lib.make_mesh(jax.devices()[:1])
  # Bound methods are new objects on every access but equal: one extractor.
  extract = factory(encoder.encode, mesh)
  assert factory(encoder.encode, mesh) is extract
  images = np.arange(10 * 4, dtype=np.uint8).reshape(10, 2, 2, 1)
  features = extract(np.float32(2.0), images)  # 10 rows: one padded batch
  np.testing.assert_allclose(features, images.reshape(10, 4) * 2.0)
