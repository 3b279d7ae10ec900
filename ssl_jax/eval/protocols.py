"""Every downstream protocol, run by name, each number labelled with its protocol.

``config.eval.protocols`` is a comma-separated list of

==============  ==========================================================
knn             cosine kNN, temperature-weighted votes (``eval.knn_k``,
                ``eval.knn_temperature``), frozen features, test split
linear          offline L2-regularised logistic regression on frozen
                features (L-BFGS), L2 chosen on a held-out 10% of train
finetune        whole encoder + new linear head, 100% of the labels
semi_10pct      the same on a fixed class-balanced 10% of the labels
semi_1pct       the same on a fixed class-balanced 1% of the labels
collapse        std of L2-normalised features, singular spectrum and
                effective rank of their covariance, spectrum plot (PNG)
==============  ==========================================================

plus ``online``: the stop-gradient probe trained during pretraining, read
from the run's logs (never recomputed, always labelled "online"), and
``pretext``: for methods with a pretext classifier (rotation, jigsaw, ...),
the accuracy of that classifier on held-out pretraining data
(:func:`pretext_accuracy`).
``evaluate`` runs them on an encoder's variables; ``write_report`` writes
``eval.json`` and ``eval.md``; ``format_table`` is the markdown table.
"""

import json
import os

import jax
import numpy as np

from ssl_jax.data import pipeline
from ssl_jax.eval import collapse
from ssl_jax.eval import finetune as finetune_lib
from ssl_jax.eval import knn
from ssl_jax.eval import linear_probe as linear_probe_lib
from ssl_jax.eval import subsets

FROZEN_PROTOCOLS = ("knn", "linear", "collapse")
FINETUNE_PROTOCOLS = {"finetune": 1.0, "semi_10pct": 0.1, "semi_1pct": 0.01}
PROTOCOLS = FROZEN_PROTOCOLS + tuple(FINETUNE_PROTOCOLS)


def parse_protocols(spec):
  """``'knn,linear'`` -> ``('knn', 'linear')``; unknown names are an error."""
  names = tuple(p.strip() for p in str(spec).split(",") if p.strip())
  unknown = [p for p in names if p not in PROTOCOLS]
  if unknown or not names:
    raise ValueError(
        f"config.eval.protocols={spec!r}: unknown protocol(s) {unknown}; use a "
        f"comma-separated list of {', '.join(PROTOCOLS)}.")
  return names


def describe(protocol, eval_config, result=None):
  """The one-line description of ``protocol`` that goes beside its number."""
  ft = eval_config.finetune
  if protocol == "knn":
    return (f"kNN: cosine similarity, k={eval_config.knn_k}, votes weighted "
            f"exp(sim/{eval_config.knn_temperature}), frozen features, test split")
  if protocol == "linear":
    l2 = f", chosen L2={result['l2']:g}" if result else ""
    return ("linear probe (offline): multinomial logistic regression by L-BFGS "
            f"on frozen standardised features, L2 chosen on a held-out 10% of "
            f"train{l2}, test split")
  if protocol in FINETUNE_PROTOCOLS:
    pct = FINETUNE_PROTOCOLS[protocol] * 100
    where = ("first projection layer" if result and
             result.get("from_projection_layer") else "encoder features")
    extra = (f", {result['num_labels']} labels, {result['steps']} steps of "
             f"batch {result['batch_size']}") if result else ""
    return (f"fine-tuning on {pct:g}% of the train labels (class-balanced, "
            f"seed {eval_config.subset_seed}): whole encoder + new linear head "
            f"on the {where}, crop+flip augmentation, {ft.name} lr "
            f"{ft.base_lr} x B/256{extra}, test split")
  if protocol == "collapse":
    return ("collapse diagnostics of the frozen test-split features: std of "
            "L2-normalised features (x sqrt(d): ~1 healthy, 0 collapsed) and "
            "effective rank of their covariance (Roy & Vetterli 2007)")
  if protocol == "online":
    return ("online probe: stop-gradient linear head trained during "
            "pretraining, accuracy on the last logged augmented train batch")
  raise ValueError(protocol)


def _collapse_report(features, plot_path):
  features = np.asarray(features, np.float32)
  spectrum = np.asarray(collapse.singular_spectrum(features))
  metrics = jax.device_get(collapse.collapse_metrics(features))
  if plot_path:
    import matplotlib  # pylint: disable=g-import-not-at-top
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
    fig, ax = plt.subplots(figsize=(5, 3.5))
    ax.semilogy(np.arange(1, len(spectrum) + 1), np.maximum(spectrum, 1e-12))
    ax.set_xlabel("singular value rank")
    ax.set_ylabel("singular value of the feature covariance")
    ax.set_title(f"effective rank {float(metrics['effective_rank']):.1f} "
                 f"of {features.shape[1]}")
    fig.tight_layout()
    fig.savefig(plot_path, dpi=100)
    plt.close(fig)
  return {"embedding_std": float(metrics["embedding_std"]),
          "embedding_std_ratio": float(metrics["embedding_std_ratio"]),
          "effective_rank": float(metrics["effective_rank"]),
          "dim": int(features.shape[1]),
          "spectrum": [float(s) for s in spectrum],
          "warning": collapse.collapse_warning(metrics),
          "plot": plot_path}


def evaluate(method, variables, train_arrays, test_arrays, num_classes,
             eval_config, protocols, extract_factory, mesh, seed=0,
             subset_dir=None, dataset="data", plot_prefix=None):
  """Runs ``protocols`` on the encoder in ``variables``; returns their results.

  Args:
    method: the pretraining method (``encode`` and its networks).
    variables: ``{'params', 'batch_stats'}`` host arrays.
    train_arrays, test_arrays: ``(images_uint8, labels)`` of the evaluation
      dataset (the pretraining one, or another for transfer).
    num_classes: classes of the evaluation dataset.
    eval_config: ``config.eval``.
    protocols: names from ``PROTOCOLS``.
    extract_factory: ``(fn, mesh) -> extract(variables, images)``.
    mesh: devices for feature extraction and fine-tuning.
    seed: seeds the linear probe's validation split and fine-tuning.
    subset_dir: folder of the label-subset index files (semi_*).
    dataset: the evaluation dataset's name (in subset file names).
    plot_prefix: path prefix of the spectrum PNG (``collapse``); None: none.

  Returns:
    ``{protocol: {'top1', 'top5', ..., 'protocol': description}}``.
  """
  results = {}
  frozen = [p for p in protocols if p in FROZEN_PROTOCOLS]
  if frozen:
    extract = extract_factory(method.encode, mesh)
    train_features = extract(variables, train_arrays[0])
    test_features = extract(variables, test_arrays[0])
  for protocol in protocols:
    if protocol == "knn":
      result = knn.knn_accuracy(
          train_features, train_arrays[1], test_features, test_arrays[1],
          num_classes, k=eval_config.knn_k,
          temperature=eval_config.knn_temperature)
    elif protocol == "linear":
      result = linear_probe_lib.linear_probe(
          train_features, train_arrays[1], test_features, test_arrays[1],
          num_classes, seed=seed)
    elif protocol == "collapse":
      result = _collapse_report(
          test_features, plot_prefix and f"{plot_prefix}spectrum.png")
    else:
      fraction = FINETUNE_PROTOCOLS[protocol]
      images, labels = train_arrays
      if fraction < 1:
        path = subsets.subset_path(subset_dir, dataset, len(labels),
                                   fraction, eval_config.subset_seed)
        indices = subsets.load_or_create_subset(
            path, labels, fraction, eval_config.subset_seed)
        images, labels = images[indices], labels[indices]
      epochs = {"finetune": eval_config.finetune.epochs_full,
                "semi_10pct": eval_config.finetune.epochs_10pct,
                "semi_1pct": eval_config.finetune.epochs_1pct}[protocol]
      result = finetune_lib.finetune(
          method, variables, (images, labels), test_arrays, num_classes,
          eval_config.finetune, mesh, seed, extract_factory, epochs)
      if fraction < 1:
        result["subset_file"] = path
    result = {k: (float(v) if isinstance(v, (np.floating, float)) else v)
              for k, v in result.items()}
    result["protocol"] = describe(protocol, eval_config, result)
    results[protocol] = result
  return results


def pretext_accuracy(method, variables, images, batch_size, seed=0):
  """Held-out accuracy of ``method``'s pretext classifier.

  Runs ``method.pretext_accuracy(variables, keys, images)`` (per-example
  accuracy, evaluation mode) over ``images`` (uint8, the pretraining data's
  test split) in batches of ``batch_size``, each example's pretext draw
  (rotation, permutation, frame order) seeded by ``seed`` and its index.

  Returns:
    ``{'top1': accuracy, 'protocol': description}``.
  """
  accuracy_fn = jax.jit(method.pretext_accuracy)
  base_key = jax.random.PRNGKey(seed)
  correct = 0.0
  labels = np.zeros(len(images), np.int32)
  for i, batch in enumerate(
      pipeline.iterate_batches(images, labels, batch_size)):
    indices = i * batch_size + np.arange(batch_size)
    keys = jax.vmap(jax.random.fold_in, in_axes=(None, 0))(base_key, indices)
    per_example = np.asarray(accuracy_fn(variables, keys, batch["image"]))
    correct += float(np.sum(per_example * batch["mask"]))
  return {"top1": correct / len(images),
          "protocol": f"pretext-task accuracy on {len(images)} held-out "
                      "pretraining examples (one seeded draw each)"}


def format_table(report):
  """The markdown table of an ``eval.json`` report: one row per protocol."""
  trained, floor = report["protocols"], report.get("random_init", {})
  sizes = ""
  if "train_examples" in report:
    sizes = (f", {report['train_examples']} train / {report['test_examples']}"
             " test examples")
  lines = [
      f"{report['method']}, {report['steps']} pretraining steps on "
      f"{report['pretrain_dataset']}; evaluated on {report['dataset']}"
      f"{sizes}",
      "",
      "| protocol | top-1 | top-5 | random-init top-1 | what produced it |",
      "|---|---|---|---|---|",
  ]
  for name, result in trained.items():
    if name == "collapse":
      continue
    fl = floor.get(name, {}).get("top1")
    top5 = result.get("top5")
    lines.append(
        f"| {name} | {result['top1']:.4f} | "
        f"{'' if top5 is None else f'{top5:.4f}'} | "
        f"{'' if fl is None else f'{fl:.4f}'} | {result['protocol']} |")
  if "collapse" in trained:
    c = trained["collapse"]
    fl = floor.get("collapse")
    lines += ["", f"collapse: std x sqrt(d) = {c['embedding_std_ratio']:.3f}, "
              f"effective rank {c['effective_rank']:.1f} of {c['dim']}"
              + (f" (random init: {fl['embedding_std_ratio']:.3f}, "
                 f"{fl['effective_rank']:.1f})" if fl else "")
              + (f"; {c['warning']}" if c.get("warning") else "")]
  if report.get("collapse_during_pretraining"):
    lines += ["", f"during pretraining: {report['collapse_during_pretraining']}"]
  if report.get("images_per_sec"):
    lines += ["", f"pretraining throughput: {report['images_per_sec']:.1f} images/s"]
  return "\n".join(lines)


def write_report(report, workdir, format_fn=None):
  """Writes ``eval.json`` and ``eval.md`` (``format_fn(report)``, by default
  ``format_table``) into ``workdir``, each atomically."""
  markdown = (format_fn or format_table)(report).rstrip("\n") + "\n"
  for name, text in (("eval.json", json.dumps(report, indent=2)),
                     ("eval.md", markdown)):
    path = os.path.join(workdir, name)
    with open(path + ".tmp", "w") as f:
      f.write(text)
    os.replace(path + ".tmp", path)
