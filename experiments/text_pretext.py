"""Every text pretext task pretrained on the novels through the CLI, and
evaluated by author attribution of held-out paragraphs.

Runs ``python -m ssl_jax.main --config=configs/text_pretext.py:<task>`` for
each task (one workdir each; a rerun skips tasks whose workdir holds
``eval.json``), then writes a markdown table (task, steps, wall time, kNN,
linear, random-init floor, the task's own held-out-free training metric,
and a bag-of-words baseline), word2vec's nearest neighbours and analogies,
and PEGASUS-style generated gap sentences of held-out paragraphs beside the
truth.

    python experiments/text_pretext.py --out=experiments/results/text_pretext

The bag-of-words baseline reads the same paragraphs: TF-IDF of word
unigrams and bigrams (scikit-learn, sublinear tf, fit on the training
paragraphs), logistic regression (C chosen on a held-out 10% of the
training paragraphs) and cosine kNN (k as the runs').
"""

import argparse
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from experiments import compare_methods  # pylint: disable=g-import-not-at-top

TASKS = ("masked_lm", "sentence_order", "sentence_permutation",
         "document_rotation", "gap_sentences", "punctuation", "word2vec")
# The training metric each task logs (last logged step), its name.
TASK_METRICS = {
    "masked_lm": ("mlm_accuracy", "masked-token accuracy"),
    "sentence_order": ("order_accuracy", "order accuracy"),
    "sentence_permutation": ("position_accuracy", "position accuracy"),
    "document_rotation": ("rotation_accuracy", "rotation-point accuracy"),
    "gap_sentences": ("token_accuracy", "next-token accuracy"),
    "punctuation": ("mark_balanced_accuracy", "balanced mark accuracy"),
    "word2vec": ("positive_score", "mean positive-pair score"),
}


# word2vec's step is some 100x cheaper than a Transformer's and it needs
# more of them: 300 steps left its neighbours random (kNN under its floor).
TASK_STEPS = {"word2vec": 3000}


def bag_of_words(settings, knn_k):
  """TF-IDF + logistic regression and kNN on the runs' paragraphs."""
  from sklearn import feature_extraction, linear_model, model_selection  # pylint: disable=g-import-not-at-top
  from ssl_jax.data import text as text_lib  # pylint: disable=g-import-not-at-top

  corpus = text_lib.load_corpus(settings["text_dir"],
                                min_words=settings["min_words"])
  train, test = text_lib.split_paragraphs(corpus, settings["test_fraction"],
                                          settings["seed"])
  vectorizer = feature_extraction.text.TfidfVectorizer(
      ngram_range=(1, 2), sublinear_tf=True, min_df=2)
  x_train = vectorizer.fit_transform([p.text for p in train])
  x_test = vectorizer.transform([p.text for p in test])
  y_train = np.array([p.book_id for p in train])
  y_test = np.array([p.book_id for p in test])
  fit, held = model_selection.train_test_split(
      np.arange(len(y_train)), test_size=0.1, random_state=0,
      stratify=y_train)
  best = max((linear_model.LogisticRegression(C=c, max_iter=2000).fit(
      x_train[fit], y_train[fit]).score(x_train[held], y_train[held]), c)
             for c in (1.0, 10.0, 100.0))[1]
  linear = linear_model.LogisticRegression(C=best, max_iter=2000).fit(
      x_train, y_train).score(x_test, y_test)
  similarity = (x_test @ x_train.T).toarray()
  nearest = np.argsort(-similarity, axis=1)[:, :knn_k]
  votes = np.zeros((len(y_test), len(corpus)))
  for i in range(len(y_test)):
    np.add.at(votes[i], y_train[nearest[i]], 1.0)
  knn = float(np.mean(np.argmax(votes, 1) == y_test))
  return {"knn": knn, "linear": float(linear), "C": best}


def last_metric(workdir, name):
  path = os.path.join(workdir, "metrics.jsonl")
  value = None
  with open(path) as f:
    for line in f:
      row = json.loads(line)
      value = row.get(name, value)
  return value


def gap_sentence_samples(workdir, count):
  """Generated gap sentences of ``count`` held-out paragraphs."""
  import jax  # pylint: disable=g-import-not-at-top
  from ssl_jax.data import text as text_lib  # pylint: disable=g-import-not-at-top
  from ssl_jax.train import loop  # pylint: disable=g-import-not-at-top

  run, state = loop.load_trained(workdir)
  variables = jax.tree.map(lambda x: np.asarray(x.addressable_data(0)),
                           {"params": state.params,
                            "batch_stats": state.batch_stats})
  source = run.test_source
  records = source.read_batch(range(count))
  generated = np.asarray(run.method.generate(variables, records["image"]))
  rows = []
  for i in range(count):
    shown, truth = source.gap_example(source._examples[i][0])  # pylint: disable=protected-access
    rows.append((shown.replace(text_lib.MASK_SENTENCE_TOKEN, "[GAP]"), truth,
                 source.decode([t for t in generated[i]
                                if t != text_lib.EOS_ID])))
  return rows


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--tasks", default=",".join(TASKS))
  parser.add_argument("--workdir_root", default="runs/text_pretext")
  parser.add_argument("--out", default="experiments/results/text_pretext")
  parser.add_argument("--steps", type=int, default=300,
                      help="steps of the Transformer tasks")
  parser.add_argument("--samples", type=int, default=5)
  args = parser.parse_args()
  sys.path.insert(0, ".")
  from configs import text_pretext  # pylint: disable=g-import-not-at-top

  reports = {}
  for task in args.tasks.split(","):
    steps = TASK_STEPS.get(task, args.steps)
    flags = [f"--config.train.num_steps={steps}",
             f"--config.optim.warmup_steps={max(1, steps // 10)}",
             f"--config.train.checkpoint_every_steps={steps}",
             "--config.train.progress_bar=False"]
    workdir = os.path.join(args.workdir_root, task)
    reports[task] = compare_methods.run_cli(
        f"configs/text_pretext.py:{task}", workdir, flags)
    reports[task]["workdir"] = workdir
  config = text_pretext.get_config("masked_lm")
  settings = dict(config.data.text)
  baseline = bag_of_words(settings, config.eval.knn_k)
  lines = [
      "Author attribution of held-out paragraphs (8 novels, "
      f"{reports[next(iter(reports))]['test_examples']} test / "
      f"{reports[next(iter(reports))]['train_examples']} training "
      "paragraphs, split by paragraph, seed 0): kNN (cosine, k="
      f"{config.eval.knn_k}) and linear probe on the encoder's mean token "
      "state (word2vec: mean word vector), against the same network at "
      "random init; bag of words: TF-IDF of word 1-2-grams, logistic "
      f"regression (C={baseline['C']:g}) / cosine kNN. Transformer width "
      f"128, 4 blocks, batch 64, {args.steps} steps (word2vec: 100-d, "
      f"{TASK_STEPS['word2vec']} steps); "
      "`python experiments/text_pretext.py`.", "",
      "| task | steps | wall time | kNN | linear | floor kNN / linear | "
      "pretext metric (training, last step) | bag of words kNN / linear |",
      "|---|---|---|---|---|---|---|---|"]
  for task, r in reports.items():
    p, f = r["protocols"], r["random_init"]
    name, label = TASK_METRICS[task]
    value = last_metric(r["workdir"], name)
    lines.append(
        f"| {task} | {r['steps']} | {r['wall_s'] / 60:.1f} min | "
        f"{p['knn']['top1']:.4f} | {p['linear']['top1']:.4f} | "
        f"{f['knn']['top1']:.4f} / {f['linear']['top1']:.4f} | "
        f"{label} {value:.3f} | {baseline['knn']:.4f} / "
        f"{baseline['linear']:.4f} |")
  if "word2vec" in reports:
    analogies = reports["word2vec"]["protocols"]["analogies"]
    lines += ["", f"word2vec: {analogies['protocol']}.", "",
              "| word | nearest neighbours (cosine) |", "|---|---|"]
    lines += [f"| {w} | {', '.join(n)} |"
              for w, n in analogies["neighbours"].items()]
    lines += ["", "| analogy a:b::c:d | answer |", "|---|---|"]
    lines += [f"| {a} | {answer} |" for a, answer in
              analogies["answers"].items()]
  if "gap_sentences" in reports and args.samples:
    lines += ["", "Gap sentences generated (greedy) for held-out paragraphs:",
              "", "| paragraph shown | true gap sentence(s) | generated |",
              "|---|---|---|"]
    for shown, truth, generated in gap_sentence_samples(
        reports["gap_sentences"]["workdir"], args.samples):
      cell = lambda s: s.replace("|", "/")[:400]
      lines.append(f"| {cell(shown)} | {cell(truth)} | {cell(generated)} |")
  text = "\n".join(lines)
  compare_methods.write_results(args.out, text, {
      "runs": reports, "bag_of_words": baseline})


if __name__ == "__main__":
  main()
