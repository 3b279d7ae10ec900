"""Video colorization by pointing: 8 devices == 1, colour bins of the frames,
reference/target pairs, the tracker carrying labels through a video, and
the tracking scores of experiments/video_pictures.py."""

import importlib.util

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ssl_jax import augment
from ssl_jax import methods
from ssl_jax.methods import video_colorization

from tests.conftest import REPO_ROOT
from tests.methods.common import assert_eight_devices_match_one
from tests.methods.video_common import FRAMES, SIZE, tiny_video_config, tiny_videos


def tiny_config():
  config = tiny_video_config("video_colorization")
  config.video_colorization.update(max_gap=2, embed_dim=8)
  return config


def get_method():
  return methods.get_method(tiny_config(), num_classes=10, total_steps=10)


@pytest.fixture(scope="module")
def trained():
  return assert_eight_devices_match_one(tiny_config(), num_steps=2,
                                        batch=tiny_videos())


def variables_of(state):
  return {"params": state.params, "batch_stats": state.batch_stats}


def test_eight_devices_match_one(trained):
  _, state, history = trained
  assert np.isfinite(history[-1]["pointing_loss"])
  assert 0.0 <= history[-1]["colour_accuracy"] <= 1.0
  # Stride 4 on 16x16 frames: a 4x4 map of 8-dimensional embeddings.
  assert state.params["embedding"]["kernel"].shape[-1] == 8
  assert get_method().stride == 4


def test_colours_are_the_nearest_ab_bins_of_block_means():
  method = get_method()
  rgb = np.zeros((1, SIZE, SIZE, 3), np.float32)
  rgb[0, :4, :4] = (1.0, 0.0, 0.0)  # one red block; the rest black
  rgb[0, 4:8, :4, 1] = 1.0  # one green block
  views = augment.batch_eval_views(jnp.asarray(np.round(rgb * 255), jnp.uint8),
                                   method.view_recipes[0])
  colours = np.asarray(method.colours(views))
  assert colours.shape == (1, 16, method.bins.shape[0])
  np.testing.assert_array_equal(colours.sum(-1), 1.0)
  bins = np.asarray(method.bins)
  lab = np.asarray(augment.rgb_to_lab(jnp.asarray(
      [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 0.0]])))
  for location, ab in ((0, lab[0, 1:]), (4, lab[1, 1:]), (5, lab[2, 1:])):
    nearest = np.argmin(((bins - ab) ** 2).sum(-1))
    assert colours[0, location].argmax() == nearest


def test_pairs_are_a_reference_and_a_later_target():
  method = get_method()
  videos, _ = tiny_videos()
  keys = jax.random.split(jax.random.PRNGKey(2), 8)
  pairs = np.asarray(method.pairs(keys, jnp.asarray(videos)))
  frames = np.asarray(method.frames(jnp.asarray(videos)))
  for b in range(8):
    match = [[np.array_equal(pairs[b, i], frames[b, t]) for t in range(FRAMES)]
             for i in range(2)]
    reference = [t for t in range(FRAMES) if match[0][t]]
    target = [t for t in range(FRAMES) if match[1][t]]
    assert any(1 <= g - r <= 2 for r in reference for g in target)


def test_tracking_carries_label_distributions_from_the_first_frame(trained):
  method = get_method()
  videos, _ = tiny_videos(2)
  labels = jax.nn.one_hot(jax.random.randint(jax.random.PRNGKey(0), (2, 4, 4), 0, 3), 3)
  tracked = np.asarray(method.track(variables_of(trained[1]), videos, labels))
  assert tracked.shape == (2, FRAMES, 4, 4, 3)
  np.testing.assert_allclose(tracked[:, 0], labels, rtol=1e-6)
  np.testing.assert_allclose(tracked.sum(-1), 1.0, rtol=1e-5)
  recurrent = np.asarray(method.track(variables_of(trained[1]), videos, labels,
                                      reference="previous"))
  np.testing.assert_allclose(recurrent[:, :2], tracked[:, :2], rtol=1e-5)
  with pytest.raises(ValueError, match="reference"):
    method.track(variables_of(trained[1]), videos, labels, reference="last")


@pytest.mark.parametrize("reference", ["first", "previous"])
def test_labels_follow_the_embeddings_from_frame_to_frame(reference):
  """Orthogonal embeddings shuffled between frames, sharp attention: every
  label moves with its location's embedding, as a tracked object would."""
  rng = np.random.default_rng(0)
  n, frames = 6, 4
  basis = np.eye(n, dtype=np.float32) * 10.0
  orders = [np.arange(n)] + [rng.permutation(n) for _ in range(frames - 1)]
  # Location j of frame t holds the embedding of object orders[t][j].
  embeddings = np.stack([basis[order] for order in orders])[None]
  first = np.eye(3, dtype=np.float32)[np.arange(n) % 3][None]
  labels = np.asarray(video_colorization.propagate_labels(
      jnp.asarray(embeddings), jnp.asarray(first), temperature=1.0,
      reference=reference))
  for t, order in enumerate(orders):
    np.testing.assert_allclose(labels[0, t], first[0, order], atol=1e-6)


def test_colour_data_is_required():
  config = tiny_config()
  config.augment.mean = (0.5,)
  config.augment.std = (0.5,)
  with pytest.raises(ValueError, match="colour videos"):
    methods.get_method(config, num_classes=10, total_steps=10)


def video_pictures_script():
  spec = importlib.util.spec_from_file_location(
      "video_pictures", REPO_ROOT / "experiments" / "video_pictures.py")
  script = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(script)
  return script


def test_tracking_scores_block_masks_and_iou():
  script = video_pictures_script()
  masks = np.zeros((1, 3, 8, 8), np.int64)  # 3 frames, a digit moving right
  for t in range(3):
    masks[0, t, :4, 2 * t:2 * t + 4] = 1
  first = script.first_frame_labels(masks[:, 0], 2, stride=4)
  np.testing.assert_allclose(first[0, :, :, 1], [[1.0, 0.0], [0.0, 0.0]])
  # Masks decoded from their own block means come back close (bilinear
  # enlargement blurs the edges; half-block offsets lose the most).
  oracle = np.stack([script.first_frame_labels(masks[:, t], 2, 4)
                     for t in range(3)], axis=1)
  decoded = script.decode_labels(oracle, first, 8)
  assert script.mean_iou(decoded, masks, 1).min() >= 0.5
  # Left in place, the mask overlaps frame 1 by 8 of 24 pixels and frame 2
  # by 0 of 32.
  static = np.repeat(masks[:, :1], 3, axis=1)
  np.testing.assert_allclose(script.mean_iou(static, masks, 1),
                             [[[8 / 24, 0.0]]])
  assert script.overlay(np.zeros((8, 8, 3)), masks[0, 0])[0, 0].max() > 0
