r"""word2vec: skip-gram with negative sampling.

Mikolov, Sutskever, Chen, Corrado, Dean, "Distributed Representations of
Words and Phrases and their Compositionality", NIPS 2013
(https://arxiv.org/abs/1310.4546): every word predicts the words around it
(skip-gram), each true (word, context) pair scored against K words drawn
from the unigram distribution raised to 3/4.

- Views: a paragraph as word ids (``text_tasks``, task ``'word2vec'``,
  ``tokens='words'``: lower-cased words seen at least ``word_min_count``
  times in the training paragraphs). Pairs are drawn on device at every
  step, ``word2vec.pairs_per_example`` per paragraph: a centre uniform over
  the kept words, a distance d in 1..W (``word2vec.window`` W) with
  probability proportional to W - d + 1 and a uniform side (the pairs of
  word2vec.c, whose window b is uniform in 1..W, in the same proportions;
  ``text_pretext.skipgram_pairs`` enumerates them); a word is kept with
  Mikolov's sub-sampling probability :math:`\min(1, \sqrt{t / f(w)} + t /
  f(w))` (word2vec.c's form, ``t = word2vec.subsample``); a pair whose
  context falls outside the paragraph or on a dropped word is not scored.
  Distances count the paragraph's words before sub-sampling (word2vec.c
  removes the dropped words first, which widens its windows a little).
- Networks: ``models.Word2Vec``: the input (centre) vectors, the network
  evaluated afterwards, and the output (context) vectors.
- Loss (Mikolov et al. eq. 4, negated, mean over the scored pairs of the
  global batch):

  .. math:: \mathcal{L} = -\log\sigma(u_{o}^\top v_{c})
     - \sum_{k=1}^{K}\log\sigma(-u_{n_k}^\top v_{c}),
     \quad n_k \sim P(w) \propto U(w)^{3/4},

  plus the online probe on the paragraph's mean word vector.

Evaluation: a paragraph's features are the mean of its words' input
vectors (kNN, linear); ``extra_evaluation`` adds nearest neighbours and
analogies (3CosAdd) over the corpus's vocabulary.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from ssl_jax import models
from ssl_jax.data import text_pretext
from ssl_jax.data import text_tasks
from ssl_jax.methods import base
from ssl_jax.methods import text_base
from ssl_jax.train import probe as probe_lib

FIRST_WORD = 2  # word ids: 0 PAD, 1 unknown, 2.. words
# Words whose neighbours the evaluation reports, and analogies
# "a is to b as c is to d" over the novels' vocabulary.
QUERY_WORDS = ("she", "father", "night", "sea", "love", "said", "house",
               "three")
ANALOGIES = (("he", "she", "him", "her"), ("he", "she", "his", "her"),
             ("man", "woman", "father", "mother"),
             ("man", "woman", "brother", "sister"),
             ("man", "woman", "son", "daughter"),
             ("father", "mother", "husband", "wife"),
             ("mr", "mrs", "sir", "madam"), ("boy", "girl", "king", "queen"),
             ("one", "two", "first", "second"), ("day", "night", "sun", "moon"),
             ("go", "went", "come", "came"), ("is", "was", "are", "were"))


class Word2VecNetwork(nn.Module):
  """``models.Word2Vec`` and the online probe on mean word vectors."""

  vocab_size: int
  dim: int
  num_classes: int

  def setup(self):
    self.word2vec = models.Word2Vec(self.vocab_size, self.dim)
    self.online_probe = probe_lib.OnlineProbe(self.num_classes)

  def __call__(self, inputs, train: bool):
    del train
    positive, negative = self.word2vec(inputs["center"], inputs["context"],
                                       inputs["negatives"])
    pooled = self.encode(inputs["tokens"])
    return {"positive": positive, "negative": negative, "pooled": pooled,
            "probe_logits": self.online_probe(pooled)}

  def encode(self, tokens):
    """Mean input vector over a paragraph's known words ``(B, dim)``."""
    vectors = self.word2vec.center(tokens).astype(jnp.float32)
    known = (tokens >= FIRST_WORD).astype(jnp.float32)[..., None]
    return jnp.sum(vectors * known, 1) / jnp.maximum(jnp.sum(known, 1), 1.0)


class Word2VecMethod(text_base.TextMethod):
  """Skip-gram with negative sampling; see the module docstring."""

  name = "word2vec"
  task = "word2vec"

  def __init__(self, config, num_classes, total_steps, axis_name=base.BATCH_AXIS):
    settings = config.word2vec
    self.dim = int(settings.dim)
    self.window = int(settings.window)
    self.num_negatives = int(settings.negatives)
    self.pairs_per_example = int(settings.pairs_per_example)
    if min(self.dim, self.window, self.num_negatives,
           self.pairs_per_example) < 1:
      raise ValueError(
          "config.word2vec.dim, window, negatives and pairs_per_example must "
          "be >= 1.")
    counts = text_tasks.word_counts(config.data.text)
    keep = np.zeros(len(counts))
    keep[FIRST_WORD:] = text_pretext.subsample_keep_probability(
        counts[FIRST_WORD:], t=float(settings.subsample), formula="code")
    self.log_keep = jnp.asarray(np.log(np.maximum(keep, 1e-30)), jnp.float32)
    noise = np.zeros(len(counts))
    noise[FIRST_WORD:] = text_pretext.negative_sampling_distribution(
        counts[FIRST_WORD:], power=float(settings.noise_power))
    # Inverse-CDF sampling (word2vec.c's unigram table, exact): a draw costs
    # log V, where jax.random.categorical would draw V Gumbels per sample.
    self.noise_cdf = jnp.asarray(np.cumsum(noise) / np.sum(noise), jnp.float32)
    distances = np.arange(1, self.window + 1)
    self.log_distance = jnp.asarray(np.log(self.window - distances + 1.0),
                                    jnp.float32)
    super().__init__(config, num_classes, total_steps, axis_name)

  def build_network(self, config, num_classes):
    return Word2VecNetwork(self.vocab_size, self.dim, num_classes)

  def init_inputs(self, image_shape):
    inputs = super().init_inputs(image_shape)
    pairs = jnp.zeros((2, self.pairs_per_example), jnp.int32)
    inputs.update(center=pairs, context=pairs,
                  negatives=jnp.zeros((2, self.pairs_per_example,
                                       self.num_negatives), jnp.int32))
    return inputs

  def pairs(self, key, tokens):
    """``(center, context, negatives, scored)`` word ids of one paragraph's
    pairs (see the module docstring)."""
    keep_key, center_key, distance_key, side_key, noise_key = jax.random.split(
        key, 5)
    length = tokens.shape[0]
    known = tokens >= FIRST_WORD
    kept = known & (jnp.log(jax.random.uniform(keep_key, (length,)))
                    < self.log_keep[tokens])
    shape = (self.pairs_per_example,)
    centers = jax.random.categorical(
        center_key, jnp.where(kept, 0.0, -jnp.inf), shape=shape)
    distance = 1 + jax.random.categorical(distance_key, self.log_distance,
                                          shape=shape)
    side = jnp.where(jax.random.bernoulli(side_key, 0.5, shape), 1, -1)
    contexts = centers + side * distance
    inside = (contexts >= 0) & (contexts < length)
    contexts = jnp.clip(contexts, 0, length - 1)
    scored = jnp.any(kept) & inside & kept[contexts]
    draws = jax.random.uniform(noise_key, shape + (self.num_negatives,))
    negatives = jnp.searchsorted(self.noise_cdf, draws, side="right")
    negatives = jnp.clip(negatives, FIRST_WORD, len(self.noise_cdf) - 1)
    return (tokens[centers], tokens[contexts], negatives.astype(jnp.int32),
            scored)

  def loss_fn(self, params, state, keys, images, labels, axis_name):
    center, context, negatives, scored = jax.vmap(self.pairs)(keys, images)
    outputs = self.forward(params, state, {
        "tokens": images, "center": center, "context": context,
        "negatives": negatives})
    per_pair = -(jax.nn.log_sigmoid(outputs["positive"])
                 + jnp.sum(jax.nn.log_sigmoid(-outputs["negative"]), -1))
    loss = text_base.global_token_mean(per_pair, scored, axis_name)
    metrics = {"scored_pairs": jnp.mean(scored.astype(jnp.float32)),
               "positive_score": jnp.sum(outputs["positive"] * scored)
               / jnp.maximum(jnp.sum(scored), 1)}
    return self.finish(loss, metrics, outputs, labels, axis_name)

  def extra_evaluation(self, run, variables):
    """Nearest neighbours of :data:`QUERY_WORDS` and the accuracy of
    :data:`ANALOGIES` (those whose four words are in the vocabulary)."""
    words = ("<pad>",) + tuple(run.train_source.vocabulary)
    index = {w: i for i, w in enumerate(words)}
    embeddings = np.array(
        variables["params"]["word2vec"]["center"]["embedding"], np.float32)
    embeddings[:FIRST_WORD] = 0.0  # never an answer
    queries = [w for w in QUERY_WORDS if w in index]
    ids, _ = models.transformer.nearest_neighbours(
        embeddings, np.asarray([index[w] for w in queries]), k=5)
    neighbours = {w: [words[int(i)] for i in row]
                  for w, row in zip(queries, np.asarray(ids))}
    usable = [a for a in ANALOGIES if all(w in index for w in a)]
    answers, _ = models.transformer.analogy(
        embeddings, *(np.asarray([index[a[i]] for a in usable])
                      for i in range(3)), k=1)
    correct = [words[int(row[0])] == a[3]
               for a, row in zip(usable, np.asarray(answers))]
    return {"analogies": {
        "top1": float(np.mean(correct)) if correct else 0.0,
        "protocol": (f"analogies a:b::c:? by 3CosAdd over the {len(words)}-word "
                     f"vocabulary, {sum(correct)} of {len(usable)} right"),
        "answers": {":".join(a): words[int(row[0])]
                    for a, row in zip(usable, np.asarray(answers))},
        "neighbours": neighbours}}
