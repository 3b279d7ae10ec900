"""The preview CLI: grid geometry, the original panel's pixels, recipe choice.

Calls :func:`ssl_jax.augment.preview.main` in-process on tiny images (one
small jit compile for the SimCLR test).
"""
import jax
import numpy as np
import pytest
from PIL import Image

from ssl_jax.augment import preview
from ssl_jax.augment import recipes


def _write_image(path, shape, seed=0):
  pixels = np.random.RandomState(seed).randint(0, 256, shape).astype(np.uint8)
  Image.fromarray(pixels).save(path)
  return pixels


def _panel(grid, index, panel_size, cols):
  row, col = divmod(index, cols)
  x0 = preview.PAD + col * (panel_size + preview.PAD)
  y0 = (preview.HEADER_HEIGHT + preview.PAD +
        row * (panel_size + preview.CAPTION_HEIGHT + preview.PAD))
  return grid[y0:y0 + panel_size, x0:x0 + panel_size]


def test_simclr_preview_writes_the_expected_png(tmp_path, capsys):
  pixels = _write_image(tmp_path / "tiny.png", (12, 12, 3))
  out = tmp_path / "sub" / "views.png"
  assert preview.main([
      "--recipe=simclr", f"--image={tmp_path / 'tiny.png'}", f"--out={out}",
      "--num_views=3", "--panel_size=24", "--crop_size=12", "--seed=1"]) == 0
  assert "Wrote" in capsys.readouterr().out
  grid = np.asarray(Image.open(out).convert("RGB"))
  # One row of 4 panels: 4 * 24 + 5 * 4 wide; header + panel + caption + 2 pads.
  assert grid.shape == (16 + 24 + 14 + 2 * 4, 4 * 24 + 5 * 4, 3)
  assert preview.grid_size(4, 24) == (grid.shape[1], grid.shape[0])
  # The original is the first panel, enlarged 2x by pixel repetition.
  np.testing.assert_array_equal(_panel(grid, 0, 24, 4),
                                pixels.repeat(2, axis=0).repeat(2, axis=1))
  # Three distinct random views, each filling its panel (12 -> 24).
  views = [_panel(grid, i, 24, 4).astype(int) for i in (1, 2, 3)]
  for a, b in ((0, 1), (0, 2), (1, 2)):
    assert np.abs(views[a] - views[b]).mean() > 1.0
  assert all(v.std() > 1.0 for v in views)


def test_simclr_alias_picks_by_image():
  assert preview.resolve_recipe("simclr", (8, 8, 1))[0] == "simclr_digits"
  assert preview.resolve_recipe("simclr", (32, 32, 3))[0] == "simclr_cifar"
  name, recipe = preview.resolve_recipe("simclr", (200, 300, 3))
  assert name == "simclr_imagenet" and recipe.crop_size == 224
  assert preview.resolve_recipe("mocov2", (32, 32, 3), 16)[1].crop_size == 16


def test_denormalize_inverts_the_recipe_normalisation():
  recipe = recipes.simclr_cifar()
  x = np.random.RandomState(0).rand(2, 4, 4, 3).astype(np.float32)
  normed = (x - np.asarray(recipe.mean)) / np.asarray(recipe.std)
  np.testing.assert_allclose(preview.denormalize(normed, recipe), x,
                             atol=1e-6)


def test_rotation_panels_wrap_rows(tmp_path):
  pixels = _write_image(tmp_path / "rect.png", (10, 14, 3), seed=1)
  out = tmp_path / "rot.png"
  assert preview.main(["--recipe=rotation", f"--image={tmp_path / 'rect.png'}",
                       f"--out={out}", "--panel_size=20", "--cols=2"]) == 0
  grid = np.asarray(Image.open(out).convert("RGB"))
  # Original + 4 rotations in 2 columns: 3 rows.
  assert grid.shape == (16 + 3 * (20 + 14) + 4 * 4, 2 * 20 + 3 * 4, 3)
  square = pixels[:, 2:12]  # Central 10x10 crop, enlarged 2x.
  expected = np.rot90(square, 1).repeat(2, axis=0).repeat(2, axis=1)
  np.testing.assert_array_equal(_panel(grid, 2, 20, 2), expected)


def test_bad_recipe_lists_the_names(tmp_path, capsys):
  _write_image(tmp_path / "tiny.png", (8, 8, 3))
  with pytest.raises(SystemExit) as info:
    preview.main(["--recipe=simclr_stl", f"--image={tmp_path / 'tiny.png'}",
                  f"--out={tmp_path / 'x.png'}"])
  assert info.value.code == 2
  err = capsys.readouterr().err
  for name in ("simclr_imagenet", "mocov2", "byol_view2", "rotation"):
    assert name in err
  assert not (tmp_path / "x.png").exists()


def test_pretext_panels_render(tmp_path, monkeypatch):
  """Five pretext tasks on one 24x24 image (one small compile each; the
  others -- relative_position, inpainting, multi_crop -- cost more compile
  time than this suite budgets and were checked by eye)."""
  monkeypatch.setenv("SSL_JAX_CACHE_DIR", str(tmp_path))
  image = np.random.RandomState(2).randint(0, 256, (24, 24, 3)).astype(
      np.uint8)
  options = preview.PretextOptions(num_views=2, num_permutations=10)
  key = jax.random.key(0)
  counts = {"rotation": 4, "jigsaw": 3, "mae_mask": 2, "super_resolution": 4,
            "colorization": 4}
  assert set(preview.PRETEXT_PANELS) == set(counts) | {
      "relative_position", "inpainting", "multi_crop"}
  panels = {}
  for name, count in counts.items():
    panels[name] = preview.PRETEXT_PANELS[name](key, image, options)
    assert len(panels[name]) == count, name
    for caption, pixels in panels[name]:
      assert caption and pixels.ndim == 3 and pixels.shape[-1] in (1, 3)
      assert np.all(np.isfinite(pixels))
  # Jigsaw: the cells in order are 3x3 tiles of round(8 * 64 / 85) = 6 px
  # with 1-px gaps; the set was cached where SSL_JAX_CACHE_DIR points.
  assert panels["jigsaw"][0][1].shape == (3 * 6 + 2, 3 * 6 + 2, 3)
  assert list(tmp_path.rglob("*.npy"))
  # MAE: 48 of the 64 3x3 patches are mid grey.
  masked = panels["mae_mask"][0][1].reshape(8, 3, 8, 3, 3)
  grey = np.all(np.abs(masked - 0.5) < 1e-6, axis=(1, 3, 4))
  assert grey.sum() == 48 and panels["mae_mask"][0][0] == "16/64 kept"
  # Colorization: Lab -> RGB gives the image back.
  np.testing.assert_allclose(panels["colorization"][3][1], image / 255.0,
                             atol=2e-3)
