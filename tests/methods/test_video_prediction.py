"""Video prediction: 8 devices == 1, a predictor that never sees the future,
clips of consecutive frames, still-image evaluation, and clear errors."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ssl_jax import methods
from ssl_jax.methods import video_base

from tests.methods.common import assert_eight_devices_match_one
from tests.methods.video_common import FRAMES, SIZE, tiny_video_config, tiny_videos


def tiny_config():
  config = tiny_video_config("video_prediction")
  config.video_prediction.update(num_observed=3, num_predicted=2,
                                 lstm_features=16)
  return config


def get_method(config=None):
  return methods.get_method(config or tiny_config(), num_classes=10,
                            total_steps=10)


@pytest.fixture(scope="module")
def trained():
  # rtol 2e-3: the gradient of the decoder's first BatchNorm shift is at
  # rounding level here (the next BatchNorm removes most of what it does),
  # and Adam turns it into steps of full size whose last digits differ
  # between 1 and 8 devices (|value| 6e-4, off by 6e-7); every other
  # parameter agrees to 3e-5.
  return assert_eight_devices_match_one(tiny_config(), num_steps=3,
                                        batch=tiny_videos(), rtol=2e-3)


def variables_of(state):
  return {"params": state.params, "batch_stats": state.batch_stats}


def test_eight_devices_match_one_and_the_error_falls(trained):
  _, _, history = trained
  errors = [h["prediction_mse"] for h in history]
  assert errors[-1] < errors[0], errors
  assert all(np.isfinite(h["copy_last_mse"]) for h in history)


def test_predictions_never_read_the_frames_they_predict(trained):
  method = get_method()
  variables = variables_of(trained[1])
  videos, _ = tiny_videos()
  clips = method.frames(jnp.asarray(videos[:, :5]))
  scrambled = clips.at[:, 3:].set(jax.random.normal(jax.random.PRNGKey(0),
                                                    clips[:, 3:].shape))
  run = lambda c: method.network.apply(variables, c, train=False)["predicted"]
  np.testing.assert_array_equal(run(clips), run(scrambled))
  changed_past = clips.at[:, 2].set(0.0)
  assert np.abs(run(changed_past) - run(clips)).max() > 1e-6
  predicted = method.predict(variables, videos)
  assert predicted.shape == (8, 2, SIZE, SIZE, 3)
  assert predicted.min() >= 0.0 and predicted.max() <= 1.0


def test_clips_are_consecutive_frames_from_a_random_start():
  method = get_method()
  videos, _ = tiny_videos()
  keys = jax.random.split(jax.random.PRNGKey(1), 8)
  clips, pixels = method.clips(keys, jnp.asarray(videos))
  starts = np.asarray(video_base.clip_starts(keys, FRAMES, 5))
  assert starts.min() >= 0 and starts.max() <= FRAMES - 5
  for b, start in enumerate(starts):
    np.testing.assert_allclose(pixels[b], videos[b, start:start + 5] / 255.0,
                               rtol=1e-6)
  np.testing.assert_allclose(clips, method.frames(jnp.asarray(
      np.stack([v[s:s + 5] for v, s in zip(videos, starts)]))), rtol=1e-6)


def test_evaluation_encodes_still_frames(trained):
  method = get_method()
  images = tiny_videos()[0][:, 0]
  features = method.encode(variables_of(trained[1]), images)
  assert features.shape == (8, 64) and np.isfinite(features).all()


def test_images_and_short_videos_are_refused():
  method = get_method()
  with pytest.raises(ValueError, match="trains on videos"):
    method.init_state(jax.random.PRNGKey(0), (8, 8, 1), None)
  with pytest.raises(ValueError, match="at least 5 frames"):
    method.init_state(jax.random.PRNGKey(0), (4, SIZE, SIZE, 3), None)
  config = tiny_config()
  config.video_prediction.num_predicted = 0
  with pytest.raises(ValueError, match="num_predicted"):
    get_method(config)
