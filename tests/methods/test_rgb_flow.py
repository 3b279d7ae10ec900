"""RGB-flow correspondence: 8 devices == 1, the flow view is
augment.flow of the frames taken, the logged loss is the symmetric InfoNCE
of the two modalities' projections, and evaluation reads the RGB encoder."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from ssl_jax import augment
from ssl_jax import losses
from ssl_jax import methods
from ssl_jax.train import defaults
from ssl_jax.train import step as step_lib

from tests.methods.common import assert_eight_devices_match_one
from tests.methods.video_common import (BATCH, FRAMES, SIZE, tiny_video_config,
                                        tiny_videos)


def tiny_config(**settings):
  config = tiny_video_config("rgb_flow")
  config.rgb_flow.update(proj_dim=8, **settings)
  return config


def get_method(**settings):
  return methods.get_method(tiny_config(**settings), num_classes=10,
                            total_steps=10)


@pytest.fixture(scope="module")
def trained():
  config = tiny_config()
  # Plain SGD at a small step: Adam's first steps move every parameter by
  # about lr whatever its gradient, so near-zero gradients would take their
  # float noise as the update.
  defaults.use_sgd(config, base_lr=0.01, weight_decay=0.0)
  videos, labels = tiny_videos()
  # Faint noise on the black background: exactly tied activations there sit
  # on ReLU kinks, where the last bit of a BatchNorm mean (summed in another
  # order on 8 devices) decides the subgradient, and the step-2 updates of
  # the RGB encoder's last stage then differ by a few percent.
  noise = np.random.default_rng(0).integers(0, 30, videos.shape)
  videos = np.clip(videos + noise, 0, 255).astype(np.uint8)
  return assert_eight_devices_match_one(config, num_steps=2,
                                        batch=(videos, labels))


def variables_of(state):
  return {"params": state.params, "batch_stats": state.batch_stats}


def test_eight_devices_match_one(trained):
  _, state, history = trained
  for name in ("contrastive_loss", "acc_rgb_to_flow", "flow_magnitude"):
    assert np.isfinite(history[-1][name]), name
  assert history[-1]["flow_magnitude"] > 0.1  # the digits move 2 px a frame
  # Two encoders, the flow one reading (u, v, |w|).
  assert state.params["rgb_encoder"]["stem_conv"]["kernel"].shape[2] == 3
  assert state.params["flow_encoder"]["stem_conv"]["kernel"].shape[2] == 3
  assert state.params["rgb_projector"]["dense_out"]["kernel"].shape[-1] == 8


def test_flow_view_is_the_flow_of_frame_t_to_t_plus_1():
  method = get_method()
  videos, _ = tiny_videos()
  keys = jax.random.split(jax.random.PRNGKey(3), BATCH)
  frames, flow_images, flow = jax.jit(method.modalities)(keys, videos)
  all_frames = np.asarray(method.frames(jnp.asarray(videos)))
  settings = tiny_config().rgb_flow
  one_flow = jax.jit(lambda a, b: augment.flow.horn_schunck(
      a, b, alpha=settings.flow_alpha, num_iters=settings.flow_iters,
      num_scales=settings.flow_scales, num_warps=settings.flow_warps))
  times = []
  for b in range(BATCH):
    t = [s for s in range(FRAMES) if np.allclose(frames[b], all_frames[b, s],
                                                 atol=1e-6)]
    assert len(t) == 1 and t[0] < FRAMES - 1, t
    times.append(t[0])
    pixels = videos[b].astype(np.float32) / 255.0
    expected = one_flow(pixels[t[0]], pixels[t[0] + 1])
    np.testing.assert_allclose(flow[b], expected, atol=1e-4)
  np.testing.assert_allclose(
      flow_images, augment.flow.flow_to_image(flow, settings.max_flow),
      atol=1e-6)
  assert flow.shape == (BATCH, SIZE, SIZE, 2)
  assert len(set(times)) > 1  # t is drawn per example


def test_loss_is_the_symmetric_info_nce_of_rgb_and_flow():
  method = get_method()
  videos, labels = tiny_videos()
  state = method.init_state(jax.random.PRNGKey(0), videos.shape[1:],
                            optax.sgd(0.1))
  keys = jax.random.split(jax.random.PRNGKey(1), BATCH)

  def logged_and_expected(videos):
    _, (_, metrics) = method.loss_fn(state.params, state, keys, videos,
                                     labels, None)
    frames, flow_images, _ = method.modalities(keys, videos)
    outputs = method.online_forward(state.params, state.batch_stats,
                                    (frames, flow_images))[0]
    expected, aux = losses.symmetric_info_nce(
        outputs["rgb_projections"], outputs["flow_projections"], 0.07)
    return metrics, expected, aux

  # vmap over a unit axis binds the BatchNorm's axis name.
  metrics, expected, aux = jax.jit(jax.vmap(
      logged_and_expected, axis_name=step_lib.BATCH_AXIS))(videos[None])
  np.testing.assert_allclose(metrics["contrastive_loss"], expected, rtol=1e-5)
  np.testing.assert_allclose(metrics["acc_rgb_to_flow"], aux["acc_a_to_b"])
  np.testing.assert_allclose(metrics["acc_flow_to_rgb"], aux["acc_b_to_a"])


def test_encode_and_retrieval_read_the_trained_networks(trained):
  method = get_method()
  variables = variables_of(trained[1])
  stills, _ = tiny_videos()
  encode = jax.jit(method.encode)
  features = np.asarray(encode(variables, stills[:, 0]))
  assert features.shape == (BATCH, 64)  # ResNet-10 at width 1/8

  def zeroed(name):
    params = dict(variables["params"])
    params[name] = jax.tree.map(np.zeros_like, params[name])
    return {"params": params, "batch_stats": variables["batch_stats"]}

  # The evaluation encoder is the RGB one: the flow encoder does not enter.
  np.testing.assert_array_equal(
      encode(zeroed("flow_encoder"), stills[:, 0]), features)
  assert np.abs(encode(zeroed("rgb_encoder"), stills[:, 0])
                - features).max() > 1e-3
  keys = jax.random.split(jax.random.PRNGKey(4), BATCH)
  retrieval = np.asarray(jax.jit(method.pretext_accuracy)(variables, keys,
                                                          stills))
  assert retrieval.shape == (BATCH,)
  assert set(np.unique(retrieval)) <= {0.0, 0.5, 1.0}


def test_bad_data_and_settings_are_refused():
  config = tiny_config()
  config.augment.mean, config.augment.std = (0.5,), (0.5,)
  with pytest.raises(ValueError, match="RGB frames"):
    methods.get_method(config, 10, 10)
  with pytest.raises(ValueError, match="flow_scales"):
    get_method(flow_scales=6)  # 16 px cannot be halved 5 times
  with pytest.raises(ValueError, match="max_flow"):
    get_method(max_flow=0.0)
  method = get_method()
  with pytest.raises(ValueError, match="trains on videos"):
    method.init_inputs((SIZE, SIZE, 3))
  with pytest.raises(ValueError, match="at least 2 frames"):
    method.init_inputs((1, SIZE, SIZE, 3))
