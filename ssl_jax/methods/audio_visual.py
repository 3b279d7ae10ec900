r"""Audio-visual correspondence: L3-Net and AVE-Net, with AVOL-Net's
localisation.

Arandjelovic & Zisserman, "Look, Listen and Learn" (ICCV 2017,
arXiv 1705.08168), the L3-Net; "Objects that Sound" (ECCV 2018,
arXiv 1712.06651), the AVE-Net and the AVOL-Net.

The pretext task: does this sound go with this picture? Here the picture is
a real handwritten digit (scikit-learn's 8x8 digits) and the sound a real
recording of a spoken digit (FSDD, 8 kHz), ``ssl_jax.data.audio_visual``;
a pair corresponds when the two show and say the same digit. Nothing tells
the networks which digit; to answer they must learn what the digits look
like and what they sound like.

- Networks (``config.audio_visual``):

  * the image subnetwork f_v: the ResNet of ``config.model`` (the network
    the image evaluation reads), its pooled features v = f_v(x) and its
    last feature map V (h x w cells; ``config.model.output_stride`` keeps
    it finer than 1x1 on 8x8 digits);
  * the audio subnetwork f_a: the log-mel spectrogram of the waveform,
    computed on device (``ssl_jax.augment.audio``: periodic-Hann STFT of
    ``fft_size`` / ``hop_length``, ``num_mels`` HTK mel bands, log),
    standardised per recording, into a ConvNet like L3's audio
    subnetwork (blocks of ``audio_convs_per_block`` 3x3
    conv-BN-ReLU, 2x2 max-pool between blocks, widths ``audio_widths``,
    a global max-pool at the end), giving a = f_a(s);
  * the correspondence head, ``variant``:

    - ``'l3'`` (L3-Net's fusion layers): the two feature vectors concatenated,
      fc (``fusion_hidden_dim``) - ReLU - fc(2) - softmax,
      :math:`p(\text{corr} \mid v, a) = \mathrm{softmax}(W_2\,
      \mathrm{ReLU}(W_1 [v; a] + b_1) + b_2)_1`. :math:`W_1 [v; a] = W_v v
      + W_a a` is computed in that form, so every image can be scored
      against every recording of the batch for the price of one fc per
      side;
    - ``'avenet'`` (AVE-Net): each feature vector through
      fc(``embed_dim``) - ReLU - fc(``embed_dim``) - L2 normalisation, the
      Euclidean distance :math:`d = \lVert e_v - e_a \rVert_2` between the
      two embeddings the only input of a tiny fc(1 -> 2) - softmax;

  * the localisation head (AVOL-Net): a 1x1 convolution
    (``loc_dim``) on every cell c of V, an fc (``loc_dim``) on a, their
    scalar product per cell calibrated by a learnt scale and bias,
    :math:`m_c = \alpha \langle W_c V_c, W_l a \rangle + \beta`: the
    localisation map, and its maximum :math:`s = \max_c m_c` (multiple
    instance learning: the sound is somewhere in the picture) the
    correspondence logit, :math:`p = \sigma(s)`. The paper trains AVOL-Net
    on its own; here it is a second head on the same two subnetworks,
    trained on the same pairs with weight ``localisation_weight`` (0:
    plain L3 / AVE-Net).
  * BatchNorm (over the global batch) of v, of V (over the batch and the
    cells) and of a at the heads' inputs, a change from the papers, whose
    fc layers read the pooled features directly: here the pooled post-ReLU
    features carry a common offset about 3x their class-dependent spread
    (at initialisation), and a first run without it was still at chance
    after 230 steps;
  * online linear probes on the stop-gradient normalised v (digit of the
    image) and a (spoken digit), for monitoring only.

- Views: one augmented view of the image (``config.augment``: a crop of
  the digit, no colour distortion); the waveform moved later by a random
  number of samples in [0, num_samples - length] (zeros in front, the
  utterance never wraps) with probability ``shift_prob``.
- Pairs (formed on device, over the global batch, all devices alike): the
  example at global batch position g keeps its image x_g and is paired with
  a recording of the global batch: a positive for even g, a negative for
  odd g (half positives, as the papers). A positive is a recording of the
  image's digit drawn uniformly among those in the batch (the record's own
  one included), so the pairings change from epoch to epoch; a negative is
  a recording of another digit: drawn uniformly (L3's random negatives),
  or, for the first ``round(hard_negative_fraction * B/2)`` negatives of
  the global batch (whose order the loader shuffles every epoch), the
  mismatched recording that the current correspondence head scores
  highest against the image (hard negatives mined in the batch, under
  stop-gradient). Draws come from the step's per-example keys, so a step
  is the same on 1 device or 8. The target y is 1 when the pair's image
  and recording are of the same digit.
- Loss: the cross-entropy of the correspondence head on the B pairs plus
  ``localisation_weight`` times the logistic loss of the localisation
  score,

  .. math::
     L = \frac1B \sum_g \Big[ -\log p_{y_g}(v_g, a_{\pi(g)})
         + \lambda\, \ell_\sigma(s(V_g, a_{\pi(g)}), y_g) \Big]
         + L_\text{probes},

  with :math:`\pi(g)` the recording paired with image g,
  :math:`\ell_\sigma(s, y) = -y \log\sigma(s) - (1-y)\log(1-\sigma(s))`.
  The recordings' embeddings are gathered over the batch axis
  (``lax.all_gather``, gradients flowing back to their devices).
- State updates: the optimizer step (Adam, as the papers) and the
  BatchNorm statistics of both subnetworks and of the heads' inputs (over
  the global batch).
- Evaluation (``extra_evaluation``), beside kNN / linear on the image
  features: correspondence accuracy of both heads on balanced, seeded pairs
  of the held-out speakers' recordings with test images, and spoken-digit
  classification (kNN and linear probe) from the audio features a,
  training speakers -> held-out speakers.
"""

import functools
from typing import Any, Optional, Sequence

import flax.linen as nn
import jax
from jax import lax
import jax.numpy as jnp
import numpy as np
import optax

from ssl_jax import augment
from ssl_jax.augment import audio as audio_aug
from ssl_jax.data import audio_visual as av_data
from ssl_jax.eval import knn as knn_lib
from ssl_jax.eval import linear_probe as linear_probe_lib
from ssl_jax.methods import base
from ssl_jax.models.resnet import make_conv, resolve_conv_impl
from ssl_jax.train import probe as probe_lib
from ssl_jax.train import step as step_lib

VARIANTS = ("l3", "avenet")


class AudioConvNet(nn.Module):
  """L3's audio subnetwork on a spectrogram ``(B, T, M, 1)``: blocks of
  ``convs_per_block`` 3x3 conv-BN-ReLU at ``widths``, 2x2 max-pool between
  blocks, global max-pool: ``(B, widths[-1])`` float32."""

  widths: Sequence[int] = (16, 32, 64, 128)
  convs_per_block: int = 2
  bn_axis_name: Optional[str] = None
  conv_impl: str = "auto"
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, train: bool):
    norm = functools.partial(
        nn.BatchNorm, use_running_average=not train, momentum=0.9,
        epsilon=1e-5, axis_name=self.bn_axis_name, dtype=self.dtype,
        param_dtype=jnp.float32)
    x = x.astype(self.dtype)
    conv_impl = resolve_conv_impl(self.conv_impl, train)
    for i, width in enumerate(self.widths):
      for j in range(self.convs_per_block):
        # One input channel: XLA's forward, per-tap weight gradient in
        # 'shifted_matmul' mode (as the ResNet stem does).
        impl = ("matmul_wgrad"
                if (i, j) == (0, 0) and conv_impl == "shifted_matmul"
                else conv_impl)
        x = make_conv(width, 3, 1, name=f"block{i + 1}_conv{j + 1}",
                      impl=impl, dtype=self.dtype)(x)
        x = nn.relu(norm(name=f"block{i + 1}_bn{j + 1}")(x))
      if i < len(self.widths) - 1:
        x = nn.max_pool(x, (2, 2), strides=(2, 2))
    return jnp.max(x.astype(jnp.float32), axis=(1, 2))


class _Embedding(nn.Module):
  """AVE-Net's fc - ReLU - fc - L2 normalisation."""

  dim: int

  @nn.compact
  def __call__(self, x):
    x = nn.relu(nn.Dense(self.dim, name="fc1")(x))
    x = nn.Dense(self.dim, name="fc2")(x)
    return x * lax.rsqrt(jnp.maximum(jnp.sum(x * x, -1, keepdims=True),
                                     1e-12))


class AudioVisualNetwork(nn.Module):
  """Image and audio subnetworks, the correspondence head of ``variant``,
  the localisation head and the online probes (see the module docstring).

  The heads broadcast: ``pair_logits(image_repr[:, None], audio_repr[None])``
  scores every image against every recording.
  """

  image_encoder: nn.Module
  audio_encoder: nn.Module
  variant: str
  embed_dim: int
  fusion_hidden_dim: int
  loc_dim: int
  num_classes: int
  bn_axis_name: Optional[str] = None

  def setup(self):
    # The pooled features share a large offset (post-ReLU) next to their
    # class-dependent variation; BatchNorm at the heads' inputs centres them.
    norm = functools.partial(nn.BatchNorm, momentum=0.9, epsilon=1e-5,
                             axis_name=self.bn_axis_name)
    self.image_norm = norm()
    self.audio_norm = norm()
    self.map_norm = norm()
    if self.variant == "l3":
      self.fuse_image = nn.Dense(self.fusion_hidden_dim)  # W_v, b_1
      self.fuse_audio = nn.Dense(self.fusion_hidden_dim, use_bias=False)  # W_a
      self.fuse_out = nn.Dense(2)  # W_2, b_2
    else:
      self.image_embedding = _Embedding(self.embed_dim)
      self.audio_embedding = _Embedding(self.embed_dim)
      self.distance_fc = nn.Dense(2)  # fc 1 -> 2
    self.cell_embedding = nn.Dense(self.loc_dim)  # a 1x1 convolution
    self.audio_loc_embedding = nn.Dense(self.loc_dim)
    self.calibration = self.param(
        "calibration",
        lambda _: jnp.asarray([self.loc_dim ** -0.5, 0.0], jnp.float32))
    self.image_probe = probe_lib.OnlineProbe(self.num_classes)
    self.audio_probe = probe_lib.OnlineProbe(self.num_classes)

  def normalise(self, features, feature_map, audio_features, train: bool):
    """BatchNorm of v, of the map V (statistics over the batch and its
    cells) and of a: the heads' inputs."""
    return (self.image_norm(features.astype(jnp.float32),
                            use_running_average=not train),
            self.map_norm(feature_map.astype(jnp.float32),
                          use_running_average=not train),
            self.audio_norm(audio_features.astype(jnp.float32),
                            use_running_average=not train))

  def representations(self, features, audio_features):
    """What the correspondence head compares (of normalised v and a):
    ``(W_v v + b_1, W_a a)`` (l3) or the two L2-normalised embeddings
    (avenet)."""
    if self.variant == "l3":
      return self.fuse_image(features), self.fuse_audio(audio_features)
    return (self.image_embedding(features),
            self.audio_embedding(audio_features))

  def pair_logits(self, image_repr, audio_repr):
    """The 2-way logits (no, yes) of pairs (broadcasting leading axes)."""
    if self.variant == "l3":
      return self.fuse_out(nn.relu(image_repr + audio_repr))
    difference = image_repr - audio_repr
    distance = jnp.sqrt(jnp.sum(difference * difference, -1) + 1e-12)
    return self.distance_fc(distance[..., None])

  def loc_embeddings(self, feature_map, audio_features):
    """Per-cell image embeddings ``(..., h, w, loc_dim)`` and the audio's
    ``(..., loc_dim)`` (of the normalised map and a)."""
    return (self.cell_embedding(feature_map),
            self.audio_loc_embedding(audio_features))

  def loc_map(self, cells, audio_loc):
    """The calibrated localisation map ``alpha <cell, audio> + beta``,
    ``(..., h, w)``."""
    scale, bias = self.calibration[0], self.calibration[1]
    return scale * jnp.einsum("...hwd,...d->...hw", cells, audio_loc) + bias

  def loc_score(self, cells, audio_loc):
    """The correspondence logit of the localisation head: the map's max."""
    return jnp.max(self.loc_map(cells, audio_loc), axis=(-2, -1))

  def __call__(self, inputs, train: bool):
    images, spectrograms = inputs
    features, feature_map = self.image_encoder(images, train=train,
                                               return_map=True)
    audio_features = self.audio_encoder(spectrograms, train=train)
    v, cells_in, a = self.normalise(features, feature_map, audio_features,
                                    train)
    image_repr, audio_repr = self.representations(v, a)
    cells, audio_loc = self.loc_embeddings(cells_in, a)
    return {
        "features": features,
        "audio_features": audio_features,
        "image_repr": image_repr,
        "audio_repr": audio_repr,
        "cells": cells,
        "audio_loc": audio_loc,
        # The record's own pair (creates every head's parameters at init).
        "own_logits": self.pair_logits(image_repr, audio_repr),
        "own_loc_score": self.loc_score(cells, audio_loc),
        "probe_logits": self.image_probe(v),
        "audio_probe_logits": self.audio_probe(a),
    }

  def encode_image(self, images):
    return self.image_encoder(images, train=False)

  def encode_audio(self, spectrograms):
    return self.audio_encoder(spectrograms, train=False)

  def correspond(self, images, spectrograms):
    """Evaluation mode, matched pairs: ``(log-odds of the correspondence
    head, localisation score, localisation map)``."""
    features, feature_map = self.image_encoder(images, train=False,
                                               return_map=True)
    audio_features = self.audio_encoder(spectrograms, train=False)
    v, cells_in, a = self.normalise(features, feature_map, audio_features,
                                    train=False)
    logits = self.pair_logits(*self.representations(v, a))
    cells, audio_loc = self.loc_embeddings(cells_in, a)
    maps = self.loc_map(cells, audio_loc)
    return (logits[..., 1] - logits[..., 0],
            jnp.max(maps, axis=(-2, -1)), maps)


def global_positions(local_batch, axis_name):
  """Positions of this replica's examples in the global batch, int32."""
  first = 0 if axis_name is None else lax.axis_index(axis_name) * local_batch
  return first + jnp.arange(local_batch, dtype=jnp.int32)


def make_pairs(pair_keys, positions, image_labels, audio_labels, scores,
               hard_negative_fraction):
  r"""Pairs every image with a recording of the global batch.

  Position g (global) is a positive for even g, a negative for odd g. A
  positive draws uniformly among the recordings of its digit
  (``image_labels[i] == audio_labels[j]``); a negative among the others,
  except that the first :math:`\mathrm{round}(f \cdot \lfloor B/2
  \rfloor)` negatives (negative rank ``g // 2``) take the other-digit
  recording of highest ``scores`` instead (hard negatives). An image with
  no candidate keeps its own recording (position g).

  Args:
    pair_keys: one PRNG key per local example.
    positions: int ``(b,)``, the examples' global positions.
    image_labels: int ``(b,)``, the images' digits.
    audio_labels: int ``(B,)``, the digits of the global batch's recordings.
    scores: float ``(b, B)``, the current head's log-odds for every image
      against every recording (mining only).
    hard_negative_fraction: f in [0, 1].

  Returns:
    ``{"partner": int (b,) global index of the paired recording,
    "positive": bool (b,), "hard": bool (b,), "target": int (b,) 1 when
    the pair shows and says the same digit}``.
  """
  num_global = audio_labels.shape[0]
  num_hard = int(round(hard_negative_fraction * (num_global // 2)))
  positive = positions % 2 == 0
  hard = ~positive & (positions // 2 < num_hard)
  same = image_labels[:, None] == audio_labels[None, :]
  candidates = jnp.where(positive[:, None], same, ~same)
  noise = jax.vmap(lambda k: jax.random.gumbel(k, (num_global,)))(pair_keys)
  preference = jnp.where(hard[:, None], scores.astype(jnp.float32), noise)
  preference = jnp.where(candidates, preference, -jnp.inf)
  partner = jnp.where(jnp.any(candidates, -1),
                      jnp.argmax(preference, -1).astype(jnp.int32), positions)
  target = (image_labels == audio_labels[partner]).astype(jnp.int32)
  return {"partner": partner, "positive": positive, "hard": hard,
          "target": target}


def correspondence_losses(pair_logits, loc_scores, target):
  r"""Per-pair losses: the 2-way softmax cross-entropy
  :math:`-\log \mathrm{softmax}(z)_y` of the correspondence head and the
  logistic loss :math:`\ell_\sigma(s, y)` of the localisation score."""
  return (optax.softmax_cross_entropy_with_integer_labels(
      pair_logits.astype(jnp.float32), target),
          optax.sigmoid_binary_cross_entropy(
              loc_scores.astype(jnp.float32), target.astype(jnp.float32)))


class AudioVisual(base.Method):
  """L3-Net / AVE-Net correspondence with AVOL-Net localisation; see the
  module docstring."""

  name = "audio_visual"
  batch_fields = ("audio", "audio_label", "audio_length")

  def __init__(self, config, num_classes, total_steps,
               axis_name=base.BATCH_AXIS):
    super().__init__(config, num_classes, total_steps, axis_name)
    settings = config.audio_visual
    if settings.variant not in VARIANTS:
      raise ValueError(f"config.audio_visual.variant={settings.variant!r}; "
                       f"use one of {VARIANTS} (L3-Net or AVE-Net).")
    if not 0.0 <= settings.hard_negative_fraction <= 1.0:
      raise ValueError(
          "config.audio_visual.hard_negative_fraction="
          f"{settings.hard_negative_fraction} is the fraction of negatives "
          "that are mined; use a value in [0, 1].")
    if not 0.0 <= settings.shift_prob <= 1.0:
      raise ValueError(f"config.audio_visual.shift_prob={settings.shift_prob}"
                       " must be in [0, 1].")
    if config.model.name != "resnet":
      raise ValueError(
          f"audio_visual localises on the ResNet's feature map; "
          f"config.model.name={config.model.name!r} is not supported, use "
          "'resnet'.")
    self.settings = settings
    self.view_recipes = (config.augment,)
    self.variant = settings.variant
    self.hard_fraction = float(settings.hard_negative_fraction)
    self.loc_weight = float(settings.localisation_weight)
    data_settings = config.data.get("audio_visual") or {}
    self.num_samples = int(data_settings.get(
        "num_samples", av_data.DEFAULTS["num_samples"]))
    # The front end fails here, not inside the step, on a bad setting.
    audio_aug.mel_filterbank(settings.num_mels, settings.fft_size,
                             settings.sample_rate, settings.fmin,
                             settings.fmax)
    self.spectrogram_shape = self.spectrogram(
        jax.ShapeDtypeStruct((1, self.num_samples), jnp.float32),
        abstract=True)
    pools = 2 ** (len(settings.audio_widths) - 1)
    if min(self.spectrogram_shape[:2]) < pools:
      raise ValueError(
          f"the log-mel spectrogram is {self.spectrogram_shape[:2]} (frames x "
          f"mels), too small for the {len(settings.audio_widths) - 1} 2x2 "
          "max-pools of config.audio_visual.audio_widths="
          f"{tuple(settings.audio_widths)}; use fewer widths, a smaller "
          "hop_length, more num_mels or a longer "
          "config.data.audio_visual.num_samples.")
    self.network = AudioVisualNetwork(
        image_encoder=base.build_backbone(config.model,
                                          bn_axis_name=axis_name),
        audio_encoder=AudioConvNet(
            widths=tuple(settings.audio_widths),
            convs_per_block=settings.audio_convs_per_block,
            bn_axis_name=axis_name, conv_impl=config.model.conv_impl,
            dtype=base.compute_dtype(config.model.dtype)),
        variant=settings.variant,
        embed_dim=settings.embed_dim,
        fusion_hidden_dim=settings.fusion_hidden_dim,
        loc_dim=settings.loc_dim,
        num_classes=num_classes,
        bn_axis_name=axis_name)
    self._jitted = {}
    self._eval_mesh = None

  # -- views ------------------------------------------------------------

  def spectrogram(self, audio, abstract=False):
    r"""Standardised log-mel spectrograms ``(B, frames, num_mels, 1)`` of
    waveforms ``(B, L)``: :math:`(S - \mu) / (\sigma + 10^{-5})`, mean and
    std over each recording's spectrogram."""
    s = self.settings

    def front_end(x):
      spec = audio_aug.log_mel_spectrogram(
          x, s.sample_rate, s.fft_size, s.hop_length, s.num_mels, s.fmin,
          s.fmax)
      mean = jnp.mean(spec, axis=(-2, -1), keepdims=True)
      std = jnp.std(spec, axis=(-2, -1), keepdims=True)
      return ((spec - mean) / (std + 1e-5))[..., None]

    if abstract:
      return jax.eval_shape(front_end, audio).shape[1:]
    return front_end(audio)

  def shift_audio(self, keys, audio, lengths):
    """Each waveform moved later by ``s ~ U{0, ..., L - length}`` samples
    (zeros in front) with probability ``shift_prob``, else unchanged."""
    total = audio.shape[-1]
    prob = self.settings.shift_prob

    def one(key, x, length):
      k_shift, k_apply = jax.random.split(key)
      room = jnp.clip(total - length, 0, total)
      shift = jnp.floor(jax.random.uniform(k_shift) * (room + 1))
      shift = jnp.minimum(shift.astype(jnp.int32), room)
      shift = jnp.where(jax.random.uniform(k_apply) < prob, shift, 0)
      return jnp.roll(x, shift)

    return jax.vmap(one)(keys, audio.astype(jnp.float32), lengths)

  def init_inputs(self, image_shape):
    size = self.view_recipes[0].crop_size
    return (jnp.zeros((2, size, size, image_shape[-1]), jnp.float32),
            jnp.zeros((2,) + self.spectrogram_shape, jnp.float32))

  # -- the step -----------------------------------------------------------

  def _head(self, params, method, *args):
    return self.network.apply({"params": params}, *args, method=method)

  def loss_fn(self, params, state, keys, images, labels, axis_name):
    if not isinstance(labels, dict) or "audio" not in labels:
      raise ValueError(
          "audio_visual needs the recordings in the batch: labels must be "
          "the dict {'label', 'audio', 'audio_label', 'audio_length'} of a "
          "paired source (config.data.source='audio_visual').")
    split_keys = jax.vmap(lambda k: jax.random.split(k, 3))(keys)
    view_keys, audio_keys, pair_keys = (split_keys[:, 0], split_keys[:, 1],
                                        split_keys[:, 2])
    views = augment.batch_views(view_keys, images, self.view_recipes[0])
    waveforms = self.shift_audio(audio_keys, labels["audio"],
                                 labels["audio_length"])
    outputs, batch_stats = self.online_forward(
        params, state.batch_stats, (views, self.spectrogram(waveforms)))

    local = {"repr": outputs["audio_repr"], "loc": outputs["audio_loc"],
             "label": labels["audio_label"]}
    gathered = local if axis_name is None else jax.tree.map(
        lambda x: lax.all_gather(x, axis_name, tiled=True), local)
    positions = global_positions(images.shape[0], axis_name)
    all_logits = self._head(params, AudioVisualNetwork.pair_logits,
                            lax.stop_gradient(outputs["image_repr"])[:, None],
                            lax.stop_gradient(gathered["repr"])[None])
    scores = all_logits[..., 1] - all_logits[..., 0]
    pairs = make_pairs(pair_keys, positions, labels["label"],
                       gathered["label"], scores, self.hard_fraction)
    partner, target = pairs["partner"], pairs["target"]
    pair_logits = self._head(params, AudioVisualNetwork.pair_logits,
                             outputs["image_repr"], gathered["repr"][partner])
    loc_scores = self._head(params, AudioVisualNetwork.loc_score,
                            outputs["cells"], gathered["loc"][partner])
    corr_losses, loc_losses = correspondence_losses(pair_logits, loc_scores,
                                                    target)
    correspondence_loss = jnp.mean(corr_losses)
    localisation_loss = jnp.mean(loc_losses)

    probe_loss, metrics = self.common_metrics(
        outputs["probe_logits"], labels["label"], outputs["features"],
        axis_name)
    audio_probe_loss, audio_probe = probe_lib.probe_loss(
        outputs["audio_probe_logits"], labels["audio_label"])
    metrics.update(
        correspondence_loss=correspondence_loss,
        correspondence_acc=jnp.mean(jnp.argmax(pair_logits, -1) == target),
        localisation_loss=localisation_loss,
        localisation_acc=jnp.mean((loc_scores > 0) == (target == 1)),
        positive_fraction=jnp.mean(target.astype(jnp.float32)),
        hard_fraction=jnp.mean(pairs["hard"].astype(jnp.float32)),
        audio_probe_loss=audio_probe["probe_loss"],
        audio_probe_acc=audio_probe["probe_acc"])
    loss = (correspondence_loss + self.loc_weight * localisation_loss
            + probe_loss + audio_probe_loss)
    return loss, ({"batch_stats": batch_stats}, metrics)

  # -- evaluation ---------------------------------------------------------

  def encode(self, variables, images):
    """Image features v of uint8 images (test-time view)."""
    views = augment.batch_eval_views(images, self.view_recipes[0])
    return self.network.apply(variables, views,
                              method=AudioVisualNetwork.encode_image)

  def encode_audio(self, variables, audio):
    """Audio features a of float32 waveforms ``(B, L)``."""
    return self.network.apply(variables, self.spectrogram(audio),
                              method=AudioVisualNetwork.encode_audio)

  def correspond(self, variables, images, audio):
    """``(log-odds, localisation score, localisation map (B, h, w))`` of
    matched pairs of uint8 images and waveforms, evaluation mode."""
    views = augment.batch_eval_views(images, self.view_recipes[0])
    return self.network.apply(variables, views, self.spectrogram(audio),
                              method=AudioVisualNetwork.correspond)

  def localise(self, variables, images, audio):
    """:meth:`correspond` on uint8 images of any size (the whole image,
    normalised, not cropped: e.g. several digits side by side, whose map
    then has a cell per stride of the image)."""
    recipe = self.view_recipes[0]
    views = ((jnp.asarray(images, jnp.float32) / 255.0
              - jnp.asarray(recipe.mean, jnp.float32))
             / jnp.asarray(recipe.std, jnp.float32))
    return self.network.apply(variables, views, self.spectrogram(audio),
                              method=AudioVisualNetwork.correspond)

  def batched_correspond(self, variables, images, audio, batch_size=256):
    """:meth:`correspond` over host arrays in fixed-size padded batches
    (compiled once); returns numpy arrays."""
    if "correspond" not in self._jitted:
      self._jitted["correspond"] = jax.jit(self.correspond)
    fn = self._jitted["correspond"]
    outputs = []
    for start in range(0, len(images), batch_size):
      chunk = slice(start, start + batch_size)
      n = len(images[chunk])
      pad = lambda x: np.concatenate(  # pylint: disable=g-long-lambda
          [x, np.zeros((batch_size - n,) + x.shape[1:], x.dtype)])
      out = fn(variables, pad(images[chunk]), pad(audio[chunk]))
      outputs.append([np.asarray(o)[:n] for o in out])
    return tuple(np.concatenate(parts) for parts in zip(*outputs))

  def extra_evaluation(self, run, variables):
    """Correspondence accuracy on held-out speakers and spoken-digit
    classification from the audio subnetwork (see the module docstring)."""
    train, test = run.train_source, run.test_source
    if not isinstance(test, av_data.AudioVisualPairs):
      raise ValueError(
          "audio_visual evaluates on the paired source's held-out speakers; "
          "set config.data.source='audio_visual'.")
    seed = run.config.seed
    eval_config = run.config.eval
    rows = {}
    image_rows, audio_rows, target = av_data.correspondence_pairs(
        test.labels, test.audio_label, seed)
    log_odds, loc_scores, _ = self.batched_correspond(
        variables, test.images[image_rows], test.audio[audio_rows],
        eval_config.batch_size)
    pairs = (f"{len(target)} pairs of the held-out speakers' "
             f"({', '.join(test.test_speakers)}) recordings with digits' "
             f"test images, {int(target.sum())} of the same digit / "
             f"{int((1 - target).sum())} of another (seed {seed})")
    head = {"l3": "L3 fusion head", "avenet": "AVE-Net distance head"}
    rows["correspondence"] = {
        "top1": float(np.mean((log_odds > 0) == (target == 1))),
        "protocol": (f"audio-visual correspondence ({head[self.variant]}): "
                     f"accuracy of p(corr) > 0.5 on {pairs}")}
    rows["correspondence_loc"] = {
        "top1": float(np.mean((loc_scores > 0) == (target == 1))),
        "protocol": ("audio-visual correspondence (AVOL localisation head, "
                     f"max over the map): accuracy of sigmoid > 0.5 on "
                     f"{pairs}")}

    if self._eval_mesh is None:
      self._eval_mesh = step_lib.make_mesh(jax.local_devices())
    extract = run.extractor_factory(self.encode_audio, self._eval_mesh)
    train_features = extract(variables, np.asarray(train.audio))
    test_features = extract(variables, np.asarray(test.audio))
    where = (f"audio features (the audio subnetwork's max-pooled output, "
             f"{train_features.shape[1]}-d), {len(train)} recordings of the "
             f"training speakers -> {len(test)} of the held-out speakers "
             f"({', '.join(test.test_speakers)})")
    knn = knn_lib.knn_accuracy(
        train_features, train.audio_label, test_features, test.audio_label,
        test.num_classes, k=eval_config.knn_k,
        temperature=eval_config.knn_temperature)
    rows["audio_knn"] = {
        "top1": float(knn["top1"]), "top5": float(knn["top5"]),
        "protocol": (f"spoken digit, kNN (cosine, k={eval_config.knn_k}, "
                     f"votes weighted exp(sim/{eval_config.knn_temperature}))"
                     f" on {where}")}
    linear = linear_probe_lib.linear_probe(
        train_features, train.audio_label, test_features, test.audio_label,
        test.num_classes, seed=seed)
    rows["audio_linear"] = {
        "top1": float(linear["top1"]), "top5": float(linear["top5"]),
        "protocol": ("spoken digit, linear probe (multinomial logistic "
                     "regression by L-BFGS on standardised features, L2 "
                     f"chosen on a held-out 10% of train, chosen L2="
                     f"{linear['l2']:g}) on {where}")}
    return rows
