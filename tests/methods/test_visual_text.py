"""Visual-text (CLIP / ConVIRT): 8 devices == 1 with the texts in the batch,
the loss against numpy, padding that never reaches the text embedding,
and the zero-shot / retrieval / noisy-pair evaluation on hand-built cases."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ssl_jax import augment
from ssl_jax import losses
from ssl_jax import methods
from ssl_jax.data import image_text
from ssl_jax.methods import visual_text
from ssl_jax.train import step as step_lib

from tests.conftest import load_config
from tests.methods.common import assert_eight_devices_match_one

BATCH = 16


def tiny_config(**settings):
  """The digits preset with a one-block ViT of width 16 on 4x4 patches for
  the image encoder (the method's code is the same for any backbone; a
  ResNet-10 compiles four times slower) and a 2-block text encoder."""
  config = load_config("visual_text", "digits")
  config.model.update(name="vit", size="custom", patch_size=4, width=16,
                      depth=1, num_heads=2, mlp_ratio=2.0)
  config.train.batch_size = BATCH
  config.optim.warmup_steps = 1
  config.visual_text.update(embed_dim=8, **settings)
  config.visual_text.text.update(width=16, depth=2)
  return config


def pairs_batch(size=BATCH, noise_fraction=0.25):
  source = image_text.load_image_text("train",
                                      {"noise_fraction": noise_fraction})
  batch = source.read_batch(np.arange(size))
  return batch["image"], {"label": batch["label"], "text": batch["text"]}


def numpy_loss(v, u, temperature, weight):
  v = v / np.linalg.norm(v, axis=1, keepdims=True)
  u = u / np.linalg.norm(u, axis=1, keepdims=True)
  s = (v @ u.T).astype(np.float64) / temperature

  def cross_entropy(logits):
    logits = logits - logits.max(axis=1, keepdims=True)
    log_softmax = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
    return -np.mean(np.diag(log_softmax))

  return weight * cross_entropy(s) + (1 - weight) * cross_entropy(s.T)


def test_eight_devices_match_one_and_log_the_loss_of_their_embeddings():
  """Texts split over the devices with the images, negatives gathered from
  all of them, the learned temperature's gradient summed once; the logged
  loss of the first step is the numpy loss of that step's embeddings."""
  config = tiny_config()
  images, labels = pairs_batch()
  init, one, history = assert_eight_devices_match_one(
      config, num_steps=2, batch=(images, labels))
  assert init.params["log_logit_scale"] != one.params["log_logit_scale"]
  np.testing.assert_allclose(history[0]["temperature"], 0.07, rtol=1e-5)

  method = methods.get_method(config, 10, 10)

  def step_embeddings(images):
    keys = step_lib.example_keys(jax.random.fold_in(init.rng, init.step),
                                 BATCH, step_lib.BATCH_AXIS)
    views = augment.batch_views(keys, images, method.view_recipes[0])
    outputs = method.online_forward(init.params, init.batch_stats,
                                    (views, labels["text"]))[0]
    return outputs["image_embeddings"], outputs["text_embeddings"]

  # vmap over a unit axis binds the step's axis name.
  v, u = jax.jit(jax.vmap(step_embeddings, axis_name=step_lib.BATCH_AXIS))(
      jnp.asarray(images)[None])
  np.testing.assert_allclose(
      history[0]["contrastive_loss"],
      numpy_loss(np.asarray(v[0]), np.asarray(u[0]), 0.07, 0.5), rtol=1e-4)


@pytest.mark.parametrize("weight", [0.5, 0.75])
def test_loss_equals_numpy_reference(weight):
  rng = np.random.default_rng(0)
  v, u = rng.normal(size=(2, 12, 5)).astype(np.float32)
  loss, aux = jax.jit(visual_text.image_text_loss, static_argnums=3)(
      v, u, jnp.float32(0.2), weight)
  np.testing.assert_allclose(loss, numpy_loss(v, u, 0.2, weight), rtol=1e-5)
  if weight == 0.5:  # CLIP's symmetric loss
    np.testing.assert_allclose(
        loss, jax.jit(losses.symmetric_info_nce)(v, u, 0.2)[0], rtol=1e-6)
  # On 4 replicas (vmap with an axis name): the mean of the local losses.
  local = jax.jit(jax.vmap(
      lambda a, b: visual_text.image_text_loss(a, b, 0.2, weight, "batch")[0],
      axis_name="batch"))(v.reshape(4, 3, 5), u.reshape(4, 3, 5))
  np.testing.assert_allclose(local.mean(), loss, rtol=1e-5)
  assert 0.0 <= aux["acc_image_to_text"] <= 1.0


@pytest.mark.parametrize("architecture, pool", [("conv", "mean"),
                                                ("transformer", "end")])
def test_padding_does_not_change_the_text_embedding(architecture, pool):
  encoder = visual_text.ByteTextEncoder(architecture, width=8, depth=1,
                                        kernel_size=3, num_heads=2,
                                        max_length=24, pool=pool)
  tokens, _ = image_text.encode_texts(["seven", "a handwritten 7", "x"], 24)
  variables = jax.jit(encoder.init)(jax.random.PRNGKey(0), tokens)
  apply = jax.jit(encoder.apply)
  reference = apply(variables, tokens)
  # Whatever the PAD token embeds to never reaches the output.
  table = variables["params"]["byte_embedding"]["embedding"]
  changed = jax.tree.map(lambda x: x, variables)
  changed["params"]["byte_embedding"]["embedding"] = table.at[0].set(
      jax.random.normal(jax.random.PRNGKey(3), table[0].shape) * 10)
  np.testing.assert_allclose(apply(changed, tokens), reference,
                             atol=1e-5)
  # Shorter padding gives the same embedding.
  short, _ = image_text.encode_texts(["seven", "a handwritten 7", "x"], 17)
  np.testing.assert_allclose(apply(variables, short), reference,
                             atol=1e-5)
  # ... while the text itself matters.
  other, _ = image_text.encode_texts(["eight", "a handwritten 8", "y"], 24)
  assert np.abs(apply(variables, other) - reference).max() > 1e-3


def test_zero_shot_retrieval_and_auc_on_a_hand_built_case():
  # Three classes on three axes; two prompts per class.
  eye = np.eye(3, dtype=np.float32)
  prompts = np.stack([eye, 0.8 * eye + 0.2 * np.roll(eye, 1, axis=1)], 1)
  prompts /= np.linalg.norm(prompts, axis=-1, keepdims=True)
  images = np.array([[1, 0.1, 0], [0, 1, 0.2], [0.1, 0, 1],
                     [0.5, 1, 0]], np.float32)  # the last is a 0 near 1
  images /= np.linalg.norm(images, axis=1, keepdims=True)
  labels = np.array([0, 1, 2, 0])
  names = [[f"c{c}", f"class {c}"] for c in range(3)]
  rows = visual_text.zero_shot_results(images, labels, prompts, names)
  assert rows["zero_shot"]["top1"] == 0.75
  assert rows["zero_shot"]["top5"] == 1.0
  assert rows["zero_shot_1prompt"]["top1"] == 0.75
  # Retrieval: texts 0 and 3 are the same string; image 3's text is noisy.
  texts = ["zero", "one", "two", "zero"]
  text_embeddings = np.stack([eye[0], eye[1], eye[2], eye[0]])
  noisy = np.array([False, False, False, True])
  rows = visual_text.retrieval_results(images, text_embeddings, texts,
                                       labels, noisy)
  assert rows["retrieval"]["top1"] == 1.0
  assert rows["retrieval_class"]["top1"] == 1.0
  np.testing.assert_allclose(rows["retrieval"]["chance"], 1 / 3)
  swapped = visual_text.retrieval_results(
      images, text_embeddings[[1, 0, 2, 3]], texts, labels, noisy)
  np.testing.assert_allclose(swapped["retrieval"]["top1"], 1 / 3)
  # AUC: Mann-Whitney with ties, against the count of ordered pairs.
  scores = np.array([0.9, 0.5, 0.5, 0.1, 0.7])
  positive = np.array([True, True, False, False, False])
  pairs = [(p > n) + 0.5 * (p == n) for p in scores[positive]
           for n in scores[~positive]]
  assert visual_text.roc_auc(scores, positive) == pytest.approx(np.mean(pairs))


def test_bad_settings_are_refused():
  with pytest.raises(ValueError, match="architecture"):
    config = tiny_config()
    config.visual_text.text.architecture = "lstm"
    methods.get_method(config, 10, 10)
  with pytest.raises(ValueError, match="image_to_text_weight"):
    methods.get_method(tiny_config(image_to_text_weight=1.5), 10, 10)
  config = tiny_config()
  config.data.source = "digits"
  with pytest.raises(ValueError, match="source='image_text'"):
    methods.get_method(config, 10, 10)
