r"""Visual-text correspondence: contrastive image-text pretraining.

CLIP: Radford et al. (ICML 2021), "Learning Transferable Visual Models From
Natural Language Supervision", https://arxiv.org/abs/2103.00020 (Fig. 3,
Sec. 2.3-2.5). ConVIRT: Zhang et al. (2020), "Contrastive Learning of
Medical Visual Representations from Paired Images and Text",
https://arxiv.org/abs/2010.00747 (Sec. 2, eq. 1-3).

- Data: images with the text that came with them
  (``config.data.source='image_text'``, ``ssl_jax.data.image_text``): the
  text is the supervision, the class label is used only by the online
  probe and the evaluation. Texts are UTF-8 bytes as tokens (no
  vocabulary), ending in END and padded with PAD.
- Views: one augmented view of each image (``config.augment``; CLIP uses a
  random square crop only), the text as it is (no text augmentation).
- Networks:

  * image encoder :math:`f_v`, the ResNet of ``config.model``, with a
    projection :math:`g_v` to ``visual_text.embed_dim`` (linear without
    bias, CLIP; with ``projection_hidden_dim > 0`` Dense-ReLU-Dense,
    ConVIRT);
  * text encoder :math:`f_u` (``visual_text.text``): a byte embedding,
    then ``depth`` residual blocks, either 1-D convolutions
    (``architecture='conv'``: :math:`x \leftarrow x + \mathrm{GELU}(
    \mathrm{Conv}(\mathrm{LN}(x) \odot m))`, padding zeroed before every
    convolution) or pre-LN Transformer blocks (``'transformer'``, learned
    positions, self-attention whose keys exclude the padding), a final
    LayerNorm and pooling over the real tokens (``pool='mean'``: the mean
    over the mask :math:`m`; ``'end'``: the END token's vector, CLIP's
    [EOS]); then its projection :math:`g_u`. Padding never reaches the
    embedding: a text gives the same embedding however it is padded.
  * the online linear probe on :math:`\mathrm{sg}(f_v(x))`.

- Loss: with L2-normalised embeddings :math:`v_i = g_v(f_v(x_i)) /
  \lVert\cdot\rVert`, :math:`u_i = g_u(f_u(t_i)) / \lVert\cdot\rVert` over
  the N pairs of the GLOBAL batch (negatives gathered from every device)
  and :math:`s_{ij} = v_i^\top u_j / \tau`,

  .. math::
     \mathcal{L} = \frac{1}{N}\sum_{i=1}^{N}\Big[
       -\lambda \log\frac{e^{s_{ii}}}{\sum_{j} e^{s_{ij}}}
       -(1-\lambda) \log\frac{e^{s_{ii}}}{\sum_{j} e^{s_{ji}}}\Big],

  image-to-text and text-to-image cross-entropies; :math:`\lambda =`
  ``image_to_text_weight`` (0.5: CLIP's symmetric loss; ConVIRT's 0.75).
  Temperature (``learn_temperature``): CLIP learns
  :math:`\tau = 1 / \exp(t)` through the log-scale :math:`t` (a parameter,
  initialised to :math:`\log(1/0.07)`, clipped so that :math:`e^t \le`
  ``max_logit_scale`` = 100); ConVIRT fixes :math:`\tau` (0.1). Plus the
  probe's cross-entropy.
- State updates: the optimizer step (CLIP: Adam with decoupled weight
  decay, none on gains, biases and the temperature) and the image
  encoder's BatchNorm statistics over the global batch.
- Evaluation (``extra_evaluation``, beside the image protocols on
  :math:`f_v`): zero-shot classification of the test images by the
  nearest class embedding (CLIP Sec. 3.1.4: each class's prompts embedded
  by the text encoder, averaged and re-normalised, and the first prompt
  alone); image-to-text recall@1 over the clean test pairs (exact: the top
  text is the image's own, or the same string; class: it describes the
  same class); and, when the training pairs hold noisy texts, how well the
  pair similarity :math:`v_i^\top u_i` separates clean training pairs from
  noisy ones (ROC AUC).
"""

import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from ssl_jax import augment
from ssl_jax import losses
from ssl_jax.data import image_text
from ssl_jax.methods import base
from ssl_jax.train import probe as probe_lib
from ssl_jax.train import step as step_lib

ARCHITECTURES = ("conv", "transformer")
POOLS = ("mean", "end")
_NORM_EPS_SQ = 1e-24


def l2_normalize(x):
  """``x / ||x||`` along the last axis (a zero row stays zero)."""
  sq = jnp.sum(x * x, axis=-1, keepdims=True)
  return x * jax.lax.rsqrt(jnp.maximum(sq, _NORM_EPS_SQ))


def image_text_loss(image_embeddings, text_embeddings, temperature,
                    image_to_text_weight=0.5, axis_name=None):
  r"""The weighted two-direction InfoNCE of CLIP / ConVIRT.

  .. math::
     \mathcal{L} = \lambda\,\ell^{v \to u} + (1-\lambda)\,\ell^{u \to v},
     \quad \ell^{v \to u} = \frac{1}{N}\sum_i -\log
       \frac{e^{\cos(v_i, u_i)/\tau}}{\sum_j e^{\cos(v_i, u_j)/\tau}},

  and :math:`\ell^{u \to v}` with the roles swapped; :math:`\lambda = 0.5`
  is ``losses.symmetric_info_nce``. Each direction is ``losses.info_nce``,
  so with ``axis_name`` the keys come from every replica and the value is
  the mean over the LOCAL pairs (the step divides by the replica count).

  Args:
    image_embeddings, text_embeddings: ``(B, D)``; row i of each is a pair.
    temperature: :math:`\tau > 0`, a float or a traced scalar.
    image_to_text_weight: :math:`\lambda` in [0, 1].
    axis_name: the step's batch axis, or None on one device.

  Returns:
    ``(loss, aux)``: ``contrastive_acc`` (mean of the two directions'
    top-1), ``acc_image_to_text``, ``acc_text_to_image``, ``pos_sim``,
    ``neg_sim``.
  """
  index = jnp.arange(image_embeddings.shape[0])
  loss_vu, aux_vu = losses.info_nce(image_embeddings, text_embeddings, index,
                                    temperature, axis_name)
  loss_uv, aux_uv = losses.info_nce(text_embeddings, image_embeddings, index,
                                    temperature, axis_name)
  weight = image_to_text_weight
  aux = {key: 0.5 * (aux_vu[key] + aux_uv[key]) for key in aux_vu}
  aux["acc_image_to_text"] = aux_vu["contrastive_acc"]
  aux["acc_text_to_image"] = aux_uv["contrastive_acc"]
  return weight * loss_vu + (1.0 - weight) * loss_uv, aux


class ByteTextEncoder(nn.Module):
  """Byte tokens ``(B, L)`` -> text features ``(B, width)``; see the module
  docstring. Token ``PAD_ID`` is padding; nothing at a padded position
  reaches the output."""

  architecture: str = "conv"
  width: int = 64
  depth: int = 3
  kernel_size: int = 5
  num_heads: int = 4
  max_length: int = 64
  pool: str = "mean"
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, tokens):
    length = tokens.shape[-1]
    mask = tokens != image_text.PAD_ID
    keep = mask[..., None].astype(self.dtype)
    x = nn.Embed(image_text.VOCAB_SIZE, self.width,
                 embedding_init=nn.initializers.normal(0.02),
                 dtype=self.dtype, name="byte_embedding")(tokens)
    if self.architecture == "conv":
      for i in range(self.depth):
        y = nn.LayerNorm(dtype=self.dtype, name=f"norm{i}")(x) * keep
        y = nn.Conv(self.width, (self.kernel_size,), padding="SAME",
                    dtype=self.dtype, name=f"conv{i}")(y)
        x = x + nn.gelu(y)
    else:
      if length > self.max_length:
        raise ValueError(
            f"texts of {length} tokens are longer than the text Transformer's "
            f"{self.max_length} positions; set config.visual_text.text."
            "max_length to config.data.image_text.max_length.")
      positions = self.param("position_embedding",
                             nn.initializers.normal(0.02),
                             (self.max_length, self.width))
      x = x + positions[:length].astype(self.dtype)
      key_mask = mask[:, None, None, :]  # (B, heads, queries, keys)
      for i in range(self.depth):
        y = nn.LayerNorm(dtype=self.dtype, name=f"block{i}_norm1")(x)
        x = x + nn.MultiHeadDotProductAttention(
            self.num_heads, dtype=self.dtype, name=f"block{i}_attention")(
                y, mask=key_mask)
        y = nn.LayerNorm(dtype=self.dtype, name=f"block{i}_norm2")(x)
        y = nn.gelu(nn.Dense(4 * self.width, dtype=self.dtype,
                             name=f"block{i}_fc1")(y))
        x = x + nn.Dense(self.width, dtype=self.dtype,
                         name=f"block{i}_fc2")(y)
    x = nn.LayerNorm(dtype=self.dtype, name="final_norm")(x)
    if self.pool == "mean":
      count = jnp.maximum(jnp.sum(keep, axis=1), 1.0)
      return jnp.sum(x * keep, axis=1) / count
    end = jnp.maximum(jnp.sum(mask, axis=1) - 1, 0)  # the END token
    return jnp.take_along_axis(x, end[:, None, None], axis=1)[:, 0]


class Projection(nn.Module):
  """Linear without bias (CLIP), or Dense-ReLU-Dense (ConVIRT)."""

  out_dim: int
  hidden_dim: int = 0

  @nn.compact
  def __call__(self, x):
    x = x.astype(jnp.float32)
    if self.hidden_dim:
      x = nn.relu(nn.Dense(self.hidden_dim, name="hidden")(x))
      return nn.Dense(self.out_dim, name="out")(x)
    return nn.Dense(self.out_dim, use_bias=False, name="out")(x)


class VisualTextNetwork(nn.Module):
  """Image encoder and projection, text encoder and projection, the
  log-scale of the temperature (when learned) and the online probe."""

  image_encoder: nn.Module
  text_encoder: nn.Module
  embed_dim: int
  projection_hidden_dim: int
  num_classes: int
  learn_temperature: bool
  init_temperature: float
  max_logit_scale: float

  def setup(self):
    self.image_projection = Projection(self.embed_dim,
                                       self.projection_hidden_dim)
    self.text_projection = Projection(self.embed_dim,
                                      self.projection_hidden_dim)
    self.online_probe = probe_lib.OnlineProbe(self.num_classes)
    if self.learn_temperature:
      self.log_logit_scale = self.param(
          "log_logit_scale",
          nn.initializers.constant(math.log(1.0 / self.init_temperature)), ())

  def __call__(self, inputs, train: bool):
    images, tokens = inputs
    features = self.image_encoder(images, train=train)
    return {"features": features,
            "image_embeddings": self.image_projection(features),
            "text_embeddings": self.text_projection(self.text_encoder(tokens)),
            "probe_logits": self.online_probe(features),
            "temperature": self.temperature()}

  def temperature(self):
    """:math:`\\tau = 1/\\min(e^t, \\text{max})`, or the fixed value."""
    if not self.learn_temperature:
      return jnp.float32(self.init_temperature)
    log_scale = jnp.minimum(self.log_logit_scale,
                            math.log(self.max_logit_scale))
    return jnp.exp(-log_scale)

  def encode(self, images):
    return self.image_encoder(images, train=False)

  def embed_images(self, images):
    return l2_normalize(self.image_projection(
        self.image_encoder(images, train=False)))

  def embed_texts(self, tokens):
    return l2_normalize(self.text_projection(self.text_encoder(tokens)))


class VisualText(base.Method):
  """CLIP / ConVIRT image-text contrastive learning; see the module
  docstring."""

  name = "visual_text"
  batch_fields = ("text",)

  def __init__(self, config, num_classes, total_steps,
               axis_name=base.BATCH_AXIS):
    super().__init__(config, num_classes, total_steps, axis_name)
    settings = config.visual_text
    text = settings.text
    if text.architecture not in ARCHITECTURES:
      raise ValueError(f"config.visual_text.text.architecture="
                       f"{text.architecture!r}; use one of {ARCHITECTURES}.")
    if text.pool not in POOLS:
      raise ValueError(f"config.visual_text.text.pool={text.pool!r}; use one "
                       f"of {POOLS}.")
    if not 0.0 <= settings.image_to_text_weight <= 1.0:
      raise ValueError(
          "config.visual_text.image_to_text_weight="
          f"{settings.image_to_text_weight} must be in [0, 1] (0.5: CLIP's "
          "symmetric loss, 0.75: ConVIRT's).")
    if not settings.temperature > 0:
      raise ValueError(f"config.visual_text.temperature="
                       f"{settings.temperature} must be positive.")
    if config.data.source != "image_text":
      raise ValueError(
          f"visual_text learns from image-text pairs; config.data.source="
          f"{config.data.source!r} has no text. Use "
          "config.data.source='image_text' (configs/visual_text.py).")
    section = config.data.get("image_text") or {}
    self.max_length = int(section.get("max_length",
                                      image_text.DEFAULTS["max_length"]))
    self.view_recipes = (config.augment,)
    self.image_to_text_weight = float(settings.image_to_text_weight)
    self.network = VisualTextNetwork(
        image_encoder=base.build_backbone(config.model, bn_axis_name=axis_name),
        text_encoder=ByteTextEncoder(
            architecture=text.architecture, width=text.width,
            depth=text.depth, kernel_size=text.kernel_size,
            num_heads=text.num_heads, max_length=self.max_length,
            pool=text.pool, dtype=base.compute_dtype(config.model.dtype)),
        embed_dim=settings.embed_dim,
        projection_hidden_dim=settings.projection_hidden_dim,
        num_classes=num_classes,
        learn_temperature=bool(settings.learn_temperature),
        init_temperature=float(settings.temperature),
        max_logit_scale=float(settings.max_logit_scale))
    self._eval_mesh = None

  def init_inputs(self, image_shape):
    size = self.view_recipes[0].crop_size
    return (jnp.zeros((2, size, size, image_shape[-1]), jnp.float32),
            jnp.zeros((2, self.max_length), jnp.int32))

  def loss_fn(self, params, state, keys, images, labels, axis_name):
    if not isinstance(labels, dict) or "text" not in labels:
      raise ValueError(
          "visual_text needs the batch's texts: labels must be the dict "
          "{'label', 'text'} that the loop builds from batch_fields; read "
          "the batch from an image_text source.")
    views = augment.batch_views(keys, images, self.view_recipes[0])
    outputs, batch_stats = self.online_forward(
        params, state.batch_stats, (views, labels["text"]))
    temperature = outputs["temperature"]
    contrastive_loss, aux = image_text_loss(
        outputs["image_embeddings"], outputs["text_embeddings"], temperature,
        self.image_to_text_weight, axis_name)
    probe_loss, metrics = self.common_metrics(
        outputs["probe_logits"], labels["label"], outputs["image_embeddings"],
        axis_name)
    metrics.update(contrastive_loss=contrastive_loss,
                   temperature=jax.lax.stop_gradient(temperature), **aux)
    return contrastive_loss + probe_loss, ({"batch_stats": batch_stats},
                                           metrics)

  def encode(self, variables, images):
    """Image features f_v(x) under the test-time view (kNN, linear probe)."""
    inputs = augment.batch_eval_views(images, self.view_recipes[0])
    return self.network.apply(variables, inputs,
                              method=VisualTextNetwork.encode)

  def embed_images(self, variables, images):
    """L2-normalised image embeddings of uint8 images (test-time view)."""
    inputs = augment.batch_eval_views(images, self.view_recipes[0])
    return self.network.apply(variables, inputs,
                              method=VisualTextNetwork.embed_images)

  def embed_texts(self, variables, tokens):
    """L2-normalised text embeddings of int32 byte tokens ``(N, L)``."""
    return self.network.apply(variables, tokens,
                              method=VisualTextNetwork.embed_texts)

  def extra_evaluation(self, run, variables):
    """Zero-shot classification, image-to-text retrieval and the noisy-pair
    AUC (module docstring), on ``run.test_source`` / ``run.train_source``."""
    test = run.test_source
    if not isinstance(test, image_text.ImageTextSource):
      return {}
    if self._eval_mesh is None:
      self._eval_mesh = step_lib.make_mesh(jax.local_devices())
    embed_images = run.extractor_factory(self.embed_images, self._eval_mesh)
    embed_texts = run.extractor_factory(self.embed_texts, self._eval_mesh)
    images = embed_images(variables, test.images)
    results = {}
    if test.class_prompts:
      prompts = [p for per_class in test.class_prompts for p in per_class]
      tokens, _ = image_text.encode_texts(prompts, test.max_length)
      prompt_embeddings = embed_texts(variables, tokens).reshape(
          len(test.class_prompts), -1, images.shape[-1])
      results.update(zero_shot_results(images, test.labels, prompt_embeddings,
                                       test.class_prompts))
    texts = embed_texts(variables, np.asarray(test.tokens))
    results.update(retrieval_results(images, texts, test.texts, test.labels,
                                     test.noisy))
    train = run.train_source
    if (isinstance(train, image_text.ImageTextSource) and train.noisy.any()
        and not train.noisy.all()):
      similarity = np.sum(embed_images(variables, train.images)
                          * embed_texts(variables, np.asarray(train.tokens)),
                          axis=1)
      row = {"top1": roc_auc(similarity, ~train.noisy)}
      for k, kind in enumerate(image_text.NOISE_KINDS[1:], start=1):
        keep = (train.noise_kind == 0) | (train.noise_kind == k)
        if np.any(train.noise_kind == k):  # clean against this kind only
          row[f"auc_{kind}"] = roc_auc(similarity[keep], ~train.noisy[keep])
      results["noisy_pair_auc"] = dict(row, protocol=(
          "noisy-pair detection (value in the top-1 column is a ROC AUC, "
          "0.5 = chance): cosine of each training image with its own text "
          f"ranks the {int((~train.noisy).sum())} clean above the "
          f"{int(train.noisy.sum())} noisy training pairs (auc_<kind>: "
          "against one kind of noise)"))
    return results


def zero_shot_results(image_embeddings, labels, prompt_embeddings,
                      class_prompts):
  """Zero-shot rows from ``(N, D)`` normalised image embeddings and
  ``(C, P, D)`` normalised prompt embeddings (P prompts per class).

  ``zero_shot``: the class whose prompt ensemble (mean of its P prompt
  embeddings, re-normalised; CLIP Sec. 3.1.4) is nearest in cosine;
  ``zero_shot_1prompt``: the nearest first prompt.
  """
  ensemble = prompt_embeddings.mean(axis=1)
  ensemble /= np.maximum(np.linalg.norm(ensemble, axis=1, keepdims=True),
                         1e-12)
  rows = {}
  for name, classes, what in (
      ("zero_shot", ensemble,
       f"the mean of {prompt_embeddings.shape[1]} prompts per class "
       f"({', '.join(repr(p) for p in class_prompts[-1])} for the last)"),
      ("zero_shot_1prompt", prompt_embeddings[:, 0],
       f"one prompt per class ({class_prompts[-1][0]!r} for the last)")):
    logits = image_embeddings @ classes.T
    top5 = np.argsort(-logits, axis=1)[:, :5]
    rows[name] = {
        "top1": float(np.mean(top5[:, 0] == labels)),
        "top5": float(np.mean(np.any(top5 == labels[:, None], axis=1))),
        "protocol": (
            f"zero-shot: test images labelled by the nearest class text "
            f"embedding, {what}; no labels used")}
  return rows


def retrieval_results(image_embeddings, text_embeddings, texts, labels,
                      noisy):
  """Image-to-text recall@1 over the clean pairs (``~noisy``).

  ``retrieval``: the top text (of all clean texts) is the image's own, or
  the same string (identical strings embed identically, so a caption
  shared by several images counts for each); ``retrieval_class``: the top
  text is a caption of the image's class. Each row also gives ``chance``,
  the rate of a text drawn at random.
  """
  clean = np.flatnonzero(~np.asarray(noisy))
  v, u = image_embeddings[clean], text_embeddings[clean]
  texts = np.asarray(texts, dtype=object)[clean]
  labels = np.asarray(labels)[clean]
  top = np.argmax(v @ u.T, axis=1)
  same_text = texts[:, None] == texts[None, :]
  same_class = labels[:, None] == labels[None, :]
  n = len(clean)
  return {
      "retrieval": {
          "top1": float(np.mean(texts[top] == texts)),
          "chance": float(same_text.mean()),
          "protocol": (
              f"image->text recall@1 over the {n} clean test pairs: the top "
              "text is the image's own caption (or the same string); chance "
              f"{same_text.mean():.3f}")},
      "retrieval_class": {
          "top1": float(np.mean(labels[top] == labels)),
          "chance": float(same_class.mean()),
          "protocol": (
              f"image->text recall@1 over the {n} clean test pairs, a hit "
              "when the top text describes the image's class; chance "
              f"{same_class.mean():.3f}")},
  }


def roc_auc(scores, positive):
  """Area under the ROC curve of ``scores`` for the ``positive`` examples
  (Mann-Whitney U with average ranks for ties)."""
  scores = np.asarray(scores, np.float64)
  positive = np.asarray(positive, bool)
  order = np.argsort(scores, kind="stable")
  ranks = np.empty(len(scores))
  sorted_scores = scores[order]
  # Average ranks over ties.
  _, first, counts = np.unique(sorted_scores, return_index=True,
                               return_counts=True)
  average = first + (counts - 1) / 2.0 + 1.0
  ranks[order] = np.repeat(average, counts)
  num_pos, num_neg = positive.sum(), (~positive).sum()
  u = ranks[positive].sum() - num_pos * (num_pos + 1) / 2.0
  return float(u / (num_pos * num_neg))
