r"""MAE reconstructions of a trained run: a PNG grid, one row per image.

    python experiments/mae_reconstructions.py --workdir=runs/mae_digits
    python experiments/mae_reconstructions.py --workdir=runs/mae_cifar10 \
        --num_images=12 --seed=1 --out=recon.png

Loads the run's saved config (``<workdir>/config.json``) and latest
checkpoint, takes the first ``--num_images`` images of the test split, masks
each with a random mask (the run's ``config.mae.mask_ratio``, drawn from
``--seed``) and writes ``<workdir>/reconstructions.png`` (or ``--out``)
with four columns, as MAE's Figure 2:

  original | masked input (removed patches grey) | reconstruction (the
  decoder's output for every patch) | reconstruction with the visible
  patches of the original pasted back.

All panels show the test-time view de-normalised (``x * std + mean``).
With ``norm_pix_loss`` the decoder predicts normalised patches; they are
shown with each true patch's mean and standard deviation (see
``ssl_jax.methods.mae.MAE.reconstruct``).
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
COLUMNS = ("original", "masked", "reconstruction", "recon. + visible")


def render(reconstructions, recipe, out_path, panel_size=96, title=""):
  """Writes the grid of ``MAE.reconstruct``'s output to ``out_path``.

  Args:
    reconstructions: dict of ``(N, H, W, C)`` arrays in the view's
      normalised space: ``original``, ``mask``, ``reconstruction``,
      ``pasted``.
    recipe: the view recipe (its ``mean`` and ``std`` undo the
      normalisation).
    out_path: the PNG file.
    panel_size: pixels per panel side.
    title: the line above the grid.

  Returns:
    The PIL image written.
  """
  from ssl_jax.augment import preview  # pylint: disable=g-import-not-at-top
  r = {k: np.asarray(v, np.float32) for k, v in reconstructions.items()}
  original = preview.denormalize(r["original"], recipe)
  masked = np.where(r["mask"] > 0, MASK_GREY, original)
  reconstruction = preview.denormalize(r["reconstruction"], recipe)
  pasted = preview.denormalize(r["pasted"], recipe)
  panels = []
  for i in range(len(original)):
    for caption, pixels in zip(
        COLUMNS, (original[i], masked[i], reconstruction[i], pasted[i])):
      panels.append((caption if i == 0 else "", pixels))
  image = preview.render_grid(panels, panel_size, columns=len(COLUMNS),
                              title=title)
  directory = os.path.dirname(os.path.abspath(out_path))
  os.makedirs(directory, exist_ok=True)
  image.save(out_path)
  return image


def reconstruct_run(workdir, num_images=8, seed=0, out=None, panel_size=96):
  """Reconstructions of the latest checkpoint in ``workdir``; returns the
  PNG path."""
  import jax  # pylint: disable=g-import-not-at-top
  import ml_collections  # pylint: disable=g-import-not-at-top

  from ssl_jax import data  # pylint: disable=g-import-not-at-top
  from ssl_jax.train import loop  # pylint: disable=g-import-not-at-top

  path = os.path.join(workdir, "config.json")
  if not os.path.exists(path):
    raise loop.ConfigError(f"no run in {workdir} (no config.json).")
  with open(path) as f:
    config = ml_collections.ConfigDict(json.load(f)["config"])
  if config.method != "mae":
    raise loop.ConfigError(
        f"{workdir} holds a {config.method!r} run, not an MAE run.")
  run = loop.Run(config, workdir)
  try:
    if run.checkpointer.latest_step is None:
      raise loop.ConfigError(f"no checkpoint in {workdir}/checkpoints.")
    state, _ = run.restore_or_init()
  finally:
    run.checkpointer.close()
  params = jax.tree.map(lambda x: np.asarray(x.addressable_data(0)),
                        state.params)
  images, _ = data.as_arrays(run.test_source)
  images = np.asarray(images[:num_images])
  method = run.method
  result = jax.jit(method.reconstruct)(params, images,
                                       jax.random.PRNGKey(seed))
  step = int(jax.device_get(state.step))
  out = out or os.path.join(workdir, "reconstructions.png")
  title = (f"MAE, step {step}, mask ratio {method.mask_ratio:g}, "
           f"seed {seed}")
  render(jax.device_get(result), method.view_recipes[0], out, panel_size,
         title)
  return out


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--workdir", required=True, help="an MAE run's workdir")
  parser.add_argument("--num_images", type=int, default=8)
  parser.add_argument("--seed", type=int, default=0, help="mask seed")
  parser.add_argument("--panel_size", type=int, default=96)
  parser.add_argument("--out", default=None,
                      help="PNG path (default <workdir>/reconstructions.png)")
  args = parser.parse_args(argv)
  from ssl_jax.train import loop  # pylint: disable=g-import-not-at-top
  try:
    out = reconstruct_run(args.workdir, args.num_images, args.seed, args.out,
                          args.panel_size)
  except (loop.ConfigError, FileNotFoundError) as e:
    print(f"mae_reconstructions: error: {e}", file=sys.stderr)
    return 2
  print(out)
  return 0


if __name__ == "__main__":
  sys.exit(main())
