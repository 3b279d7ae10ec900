"""Audio-visual correspondence (L3-Net, AVE-Net, AVOL-Net localisation):
the pairs formed on device have the right targets, half positives and the
requested hard negatives; 8 devices == 1; the losses equal a numpy
reference on given embeddings; the localisation map's max is the
localisation head's correspondence score."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from ssl_jax import methods
from ssl_jax.data import audio_visual as av_data
from ssl_jax.methods import audio_visual

from tests.conftest import load_config
from tests.methods.common import (STATE_FIELDS, max_relative_difference,
                                  run_steps)

BATCH = 16
SAMPLES = 2048  # 9 spectrogram frames at hop 256


def tiny_config(variant="l3", **settings):
  config = load_config("audio_visual", variant)
  config.model.width_multiplier = 0.125
  config.train.batch_size = BATCH
  config.optim.warmup_steps = 1
  config.data.audio_visual.num_samples = SAMPLES
  config.audio_visual.update(
      fusion_hidden_dim=8, embed_dim=8, loc_dim=8, audio_widths=(4, 8),
      **settings)
  return config


@pytest.fixture(scope="module")
def batch():
  """16 training pairs, two of each of 8 digits, clipped to SAMPLES."""
  source = av_data.load_audio_visual(
      "train", {"fsdd_dir": "../shared/datasets/fsdd",
                "num_samples": SAMPLES})
  rows = np.concatenate([np.flatnonzero(source.labels == c)[:2]
                         for c in range(8)])
  records = source.read_batch(np.random.RandomState(0).permutation(rows))
  labels = {k: records[k] for k in audio_visual.AudioVisual.batch_fields}
  return records["image"], dict(labels, label=records["label"])


def test_pairs_have_the_right_targets_and_hard_negatives():
  rng = np.random.RandomState(0)
  num = 40
  image_labels = rng.randint(0, 10, num)
  audio_labels = rng.permutation(image_labels)
  scores = rng.randn(num, num).astype(np.float32)
  positions = jnp.arange(num)
  pair = jax.jit(audio_visual.make_pairs, static_argnums=5)

  for fraction, num_hard in ((0.0, 0), (0.25, 5), (0.5, 10), (1.0, 20)):
    keys = jax.random.split(jax.random.PRNGKey(1), num)
    out = jax.device_get(pair(keys, positions, image_labels, audio_labels,
                              scores, fraction))
    same = image_labels == audio_labels[out["partner"]]
    np.testing.assert_array_equal(out["target"], same)
    np.testing.assert_array_equal(out["positive"], np.arange(num) % 2 == 0)
    np.testing.assert_array_equal(out["target"], out["positive"])
    assert out["hard"].sum() == num_hard and not out["hard"][::2].any()
    # A hard negative is the other-digit recording scored highest.
    for i in np.flatnonzero(out["hard"]):
      others = np.flatnonzero(audio_labels != image_labels[i])
      assert out["partner"][i] == others[np.argmax(scores[i, others])]

  # Positives are re-drawn among the batch's recordings of the digit, so
  # they change with the step's keys.
  draws = [jax.device_get(pair(jax.random.split(jax.random.PRNGKey(s), num),
                               positions, image_labels, audio_labels,
                               scores, 0.0))["partner"][::2]
           for s in range(4)]
  assert len({tuple(d) for d in draws}) > 1


def test_eight_devices_match_one(batch, variant="l3"):
  """Loss, metrics and every TrainState field after 2 steps agree to 1e-4
  of the field's largest value. With SGD, not the preset's Adam, and a
  tolerance per field rather than per leaf: a BatchNorm shift that the
  heads' input BatchNorm removes (the audio ConvNet's last BN bias where
  its ReLU is always on) has a zero gradient up to float noise, so that
  leaf stays at noise level and differs between 1 and 8 devices by as much
  (Adam would scale the noise to lr-sized steps of either sign); the loss
  never sees that direction. L3 only, for the test's CPU time (about 40 s
  per variant); AVE-Net shares everything but the head, which
  test_losses_equal_a_numpy_reference checks."""
  config = tiny_config(variant, hard_negative_fraction=0.5)
  config.optim.update(name="sgd", base_lr=0.1, momentum=0.9)
  images, labels = batch
  init, one, history_one = run_steps(config, jax.devices()[:1], images,
                                     labels, 2)
  _, eight, history_eight = run_steps(config, jax.devices(), images, labels,
                                      2)
  for m1, m8 in zip(history_one, history_eight):
    for key in m1:
      np.testing.assert_allclose(m8[key], m1[key], rtol=1e-4, atol=1e-6,
                                 err_msg=key)
    # The step's pairs: half positives, half of the 8 negatives mined.
    assert float(m1["positive_fraction"]) == 0.5
    assert float(m1["hard_fraction"]) == 4 / BATCH
  for field in STATE_FIELDS:
    a, b = getattr(eight, field), getattr(one, field)
    assert jax.tree.structure(a) == jax.tree.structure(b), field
    if not jax.tree.leaves(b):
      continue
    flat = [np.concatenate([np.ravel(np.asarray(x, np.float64))
                            for x in jax.tree.leaves(t)]) for t in (a, b)]
    difference = np.max(np.abs(flat[0] - flat[1])) / np.max(np.abs(flat[1]))
    assert difference < 1e-4, f"{field} differs by {difference:.2e}"
  assert int(one.step) == 2
  assert max_relative_difference(one.params, init.params) > 1e-3


def _numpy_heads(params, variant, v, a, cells, a_loc_in):
  """The heads from the papers' equations, in numpy, on given inputs."""
  p = jax.tree.map(np.asarray, params)
  relu = lambda x: np.maximum(x, 0)
  if variant == "l3":
    w1 = np.concatenate([p["fuse_image"]["kernel"], p["fuse_audio"]["kernel"]])
    hidden = relu(np.concatenate([v, a], -1) @ w1 + p["fuse_image"]["bias"])
    logits = hidden @ p["fuse_out"]["kernel"] + p["fuse_out"]["bias"]
  else:
    def embed(x, q):
      x = relu(x @ q["fc1"]["kernel"] + q["fc1"]["bias"])
      x = x @ q["fc2"]["kernel"] + q["fc2"]["bias"]
      return x / np.linalg.norm(x, axis=-1, keepdims=True)
    d = np.linalg.norm(embed(v, p["image_embedding"])
                       - embed(a, p["audio_embedding"]), axis=-1)
    logits = d[:, None] * p["distance_fc"]["kernel"] + p["distance_fc"]["bias"]
  cell = cells @ p["cell_embedding"]["kernel"] + p["cell_embedding"]["bias"]
  audio = (a_loc_in @ p["audio_loc_embedding"]["kernel"]
           + p["audio_loc_embedding"]["bias"])
  alpha, beta = p["calibration"]
  maps = alpha * np.einsum("bhwd,bd->bhw", cell, audio) + beta
  return logits, maps


@pytest.mark.parametrize("variant", ["l3", "avenet"])
def test_losses_equal_a_numpy_reference(variant):
  method = methods.get_method(tiny_config(variant), 10, 10)
  rng = np.random.RandomState(1)
  v = rng.randn(6, 64).astype(np.float32)  # ResNet-10 at width 1/8: 64-d
  a = rng.randn(6, 8).astype(np.float32)  # audio widths (4, 8): 8-d
  cells = rng.randn(6, 4, 4, 64).astype(np.float32)
  target = np.array([1, 0, 1, 0, 0, 1], np.int32)

  def heads(net, v, a, cells):
    image_repr, audio_repr = net.representations(v, a)
    cell_emb, audio_loc = net.loc_embeddings(cells, a)
    return (net.pair_logits(image_repr, audio_repr),
            net.loc_map(cell_emb, audio_loc),
            net.loc_score(cell_emb, audio_loc))

  # Only the heads' parameters (the encoders are not called).
  params = method.network.init(jax.random.PRNGKey(0), v, a, cells,
                               method=heads)["params"]
  logits, maps, scores = method.network.apply(
      {"params": params}, v, a, cells, method=heads)
  ref_logits, ref_maps = _numpy_heads(params, variant, v, a, cells, a)
  np.testing.assert_allclose(logits, ref_logits, rtol=1e-4, atol=1e-5)
  np.testing.assert_allclose(maps, ref_maps, rtol=1e-4, atol=1e-5)
  corr, loc = audio_visual.correspondence_losses(logits, scores, target)
  log_softmax = ref_logits - np.log(np.exp(ref_logits).sum(-1, keepdims=True))
  np.testing.assert_allclose(
      corr, -log_softmax[np.arange(6), target], rtol=1e-4, atol=1e-6)
  s = ref_maps.max(axis=(1, 2))
  sigmoid = 1 / (1 + np.exp(-s))
  np.testing.assert_allclose(
      loc, -(target * np.log(sigmoid) + (1 - target) * np.log(1 - sigmoid)),
      rtol=1e-4, atol=1e-6)


def test_localisation_map_max_is_the_correspondence_score(batch):
  method = methods.get_method(tiny_config(), 10, 10)
  images, labels = batch
  state = method.init_state(jax.random.PRNGKey(0), images.shape[1:],
                            optax.sgd(0.1))
  variables = {"params": state.params, "batch_stats": state.batch_stats}
  # Padded batches of 12: the evaluation path.
  log_odds, scores, maps = method.batched_correspond(
      variables, images, labels["audio"], batch_size=12)
  assert maps.shape == (BATCH, 4, 4)  # 8x8 digits at output stride 2
  assert log_odds.shape == scores.shape == (BATCH,)
  np.testing.assert_array_equal(scores, np.max(maps, axis=(1, 2)))
  # The map is the audio embedding against every cell of the image's map.
  assert np.ptp(maps, axis=(1, 2)).min() > 0


def test_bad_settings_are_refused():
  with pytest.raises(ValueError, match="variant"):
    methods.get_method(_with(tiny_config(), variant="ave"), 10, 10)
  with pytest.raises(ValueError, match="hard_negative_fraction"):
    methods.get_method(_with(tiny_config(), hard_negative_fraction=1.5),
                       10, 10)
  config = tiny_config()
  config.model.name = "vit"
  with pytest.raises(ValueError, match="resnet"):
    methods.get_method(config, 10, 10)
  with pytest.raises(ValueError, match="fmax"):
    methods.get_method(_with(tiny_config(), fmax=6000.0), 10, 10)


def _with(config, **settings):
  config.audio_visual.update(settings)
  return config
