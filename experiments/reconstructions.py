r"""Pictures of a generation-based run: a PNG grid, one row per image.

    python experiments/reconstructions.py --workdir=runs/mae_digits
    python experiments/reconstructions.py --workdir=runs/inpainting_digits
    python experiments/reconstructions.py --workdir=runs/colorization_cifar10 \
        --num_images=12 --seed=1 --out=colour.png

Loads the run's saved config (``<workdir>/config.json``) and latest
checkpoint, takes the first ``--num_images`` images of the test split,
applies the method's corruption (random parts drawn from ``--seed``) and
writes ``<workdir>/reconstructions.png`` (or ``--out``) with one column per
panel of the method's ``reconstruct``:

  mae               original | masked input (removed patches grey) |
                    reconstruction (the decoder's output for every patch) |
                    reconstruction with the visible patches pasted back
                    (MAE's Figure 2; with ``norm_pix_loss`` the patches are
                    shown with each true patch's mean and standard deviation,
                    see ``ssl_jax.methods.mae.MAE.reconstruct``)
  inpainting        original | masked input | prediction | inpainted
  colorization      input (L) | predicted colour | true colour
  super_resolution  low-res | interpolated | super-resolved | original

All panels show the test-time view de-normalised (``x * std + mean``).
"""

import argparse
import json
import os
import sys

import numpy as np

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO_ROOT not in sys.path:
  sys.path.insert(0, REPO_ROOT)

MASK_GREY = 0.5
METHODS = ("mae", "inpainting", "colorization", "super_resolution")


def mae_panels(reconstructions, recipe):
  """``MAE.reconstruct``'s output (normalised space) as display panels."""
  from ssl_jax.augment import preview  # pylint: disable=g-import-not-at-top
  r = {k: np.asarray(v, np.float32) for k, v in reconstructions.items()}
  original = preview.denormalize(r["original"], recipe)
  return {"original": original,
          "masked": np.where(r["mask"] > 0, MASK_GREY, original),
          "reconstruction": preview.denormalize(r["reconstruction"], recipe),
          "recon. + visible": preview.denormalize(r["pasted"], recipe)}


def render(panels, out_path, panel_size=96, title=""):
  """Writes a grid to ``out_path``: one column per entry of ``panels``
  (``{caption: (N, H, W, C) pixels in [0, 1]}``), one row per image.

  Returns:
    The PIL image written.
  """
  from ssl_jax.augment import preview  # pylint: disable=g-import-not-at-top
  columns = [(caption, np.asarray(pixels, np.float32))
             for caption, pixels in panels.items()]
  cells = []
  for i in range(len(columns[0][1])):
    for caption, pixels in columns:
      cells.append((caption if i == 0 else "", pixels[i]))
  image = preview.render_grid(cells, panel_size, columns=len(columns),
                              title=title)
  directory = os.path.dirname(os.path.abspath(out_path))
  os.makedirs(directory, exist_ok=True)
  image.save(out_path)
  return image


def saved_method_config(workdir, methods):
  """The saved config of the run in ``workdir``; a ConfigError unless there
  is one and its method is one of ``methods``."""
  import ml_collections  # pylint: disable=g-import-not-at-top

  from ssl_jax.train import loop  # pylint: disable=g-import-not-at-top

  path = os.path.join(workdir, "config.json")
  if not os.path.exists(path):
    raise loop.ConfigError(f"no run in {workdir} (no config.json).")
  with open(path) as f:
    config = ml_collections.ConfigDict(json.load(f)["config"])
  if config.method not in methods:
    raise loop.ConfigError(
        f"{workdir} holds a {config.method!r} run, which draws no pictures "
        f"here; use a run of one of {methods}.")
  return config


def reconstruct_run(workdir, num_images=8, seed=0, out=None, panel_size=96):
  """Reconstructions of the latest checkpoint in ``workdir``; returns the
  PNG path."""
  import jax  # pylint: disable=g-import-not-at-top

  from ssl_jax import data  # pylint: disable=g-import-not-at-top
  from ssl_jax.train import loop  # pylint: disable=g-import-not-at-top

  config = saved_method_config(workdir, METHODS)
  run, state = loop.load_trained(workdir)
  variables = jax.tree.map(lambda x: np.asarray(x.addressable_data(0)),
                           {"params": state.params,
                            "batch_stats": state.batch_stats})
  images, _ = data.as_arrays(run.test_source)
  images = np.asarray(images[:num_images])
  method = run.method
  key = jax.random.PRNGKey(seed)
  step = int(jax.device_get(state.step))
  if config.method == "mae":
    result = jax.jit(method.reconstruct)(variables["params"], images, key)
    panels = mae_panels(jax.device_get(result), method.view_recipes[0])
    title = (f"MAE, step {step}, mask ratio {method.mask_ratio:g}, "
             f"seed {seed}")
  else:
    pictures = jax.device_get(
        jax.jit(method.reconstruct)(variables, images, key))
    panels = dict(zip(method.panel_captions, pictures))
    title = f"{config.method}, step {step}, seed {seed}"
  out = out or os.path.join(workdir, "reconstructions.png")
  render(panels, out, panel_size, title)
  return out


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--workdir", required=True, help=f"the workdir of a run of one of {METHODS}")
  parser.add_argument("--num_images", type=int, default=8)
  parser.add_argument("--seed", type=int, default=0, help="seed of the random masks")
  parser.add_argument("--panel_size", type=int, default=96)
  parser.add_argument("--out", default=None,
                      help="PNG path (default <workdir>/reconstructions.png)")
  args = parser.parse_args(argv)
  from ssl_jax.train import loop  # pylint: disable=g-import-not-at-top
  try:
    out = reconstruct_run(args.workdir, args.num_images, args.seed, args.out,
                          args.panel_size)
  except (loop.ConfigError, FileNotFoundError) as e:
    print(f"reconstructions: error: {e}", file=sys.stderr)
    return 2
  print(out)
  return 0


if __name__ == "__main__":
  sys.exit(main())
