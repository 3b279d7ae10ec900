"""The synthetic scenes: determinism, exact labels and exact flow.

The geometry is checked against an independent implementation (polygon
vertices and half-planes instead of the renderer's gauges), the edges
against a pixel-by-pixel loop, and the flow by warping frame t+1 back onto
frame t.
"""

import math
import os

import ml_collections
import numpy as np
import pytest
from scipy import ndimage

from ssl_jax import data
from ssl_jax.data import synthetic_scenes

CIFAR_DIR = os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared",
                         "datasets", "cifar10")
RECORD_KEYS = ("image", "next_image", "depth", "semantics", "instances",
               "edges", "flow", "label")


def small(split="train", **kwargs):
  settings = dict(num_scenes=200, seed=3)
  settings.update(kwargs)
  return synthetic_scenes.SyntheticScenes(split, **settings)


def rotation(angle):
  """R(angle) acting on (x, y) column vectors."""
  c, s = math.cos(angle), math.sin(angle)
  return np.array([[c, -s], [s, c]])


def coverage(shape_class, radius, centre, angle, size):
  """Bool (size, size): pixel centres (x, y) = (col, row) inside the shape,
  from its vertices (square, triangle) or its radius (disc)."""
  rows, cols = np.mgrid[0:size, 0:size].astype(np.float64)
  px, py = cols - centre[0], rows - centre[1]
  if shape_class == 1:
    return px * px + py * py <= radius * radius
  if shape_class == 2:  # equal area: side sqrt(pi) r
    half = math.sqrt(math.pi) * radius / 2
    local = half * np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]])
  else:  # equilateral of area pi r^2, pointing to -y at angle 0
    big = radius * math.sqrt(4 * math.pi / (3 * math.sqrt(3)))
    local = big * np.array([[math.cos(t), math.sin(t)]
                            for t in np.deg2rad([-90, 30, 150])])
  vertices = local @ rotation(angle).T
  inside = np.ones((size, size), bool)
  for a, b in zip(vertices, np.roll(vertices, -1, axis=0)):
    # The vertices run clockwise on the screen (counter-clockwise in (x, y)
    # with y down): inside is where the cross product is >= 0.
    cross = (b[0] - a[0]) * (py - a[1]) - (b[1] - a[1]) * (px - a[0])
    inside &= cross >= 0
  return inside


def warp_errors(scene):
  """|frame t+1 at p + flow(p) - frame t| (0..255) on the pixels whose four
  bilinear neighbours in frame t+1 show p's instance, inside the frame."""
  inst, following = scene["instances"], scene["next_instances"]
  h, w = inst.shape
  rows, cols = np.mgrid[0:h, 0:w].astype(np.float64)
  tr = rows + scene["flow"][..., 1]
  tc = cols + scene["flow"][..., 0]
  ok = (tr >= 0) & (tr <= h - 1) & (tc >= 0) & (tc <= w - 1)
  r0 = np.clip(np.floor(tr).astype(int), 0, h - 1)
  c0 = np.clip(np.floor(tc).astype(int), 0, w - 1)
  for r in (r0, np.minimum(r0 + 1, h - 1)):
    for c in (c0, np.minimum(c0 + 1, w - 1)):
      ok &= following[r, c] == inst
  frame = scene["next_image"].astype(np.float64)
  warped = np.stack([ndimage.map_coordinates(frame[..., k], [tr, tc], order=1)
                     for k in range(3)], axis=-1)
  return np.abs(warped - scene["image"])[ok].ravel()


def test_deterministic_indices_and_splits_differ():
  a, b = small(), small()
  for i in (0, 7, 199):
    for key in RECORD_KEYS:
      np.testing.assert_array_equal(a[i][key], b[i][key])
  assert not np.array_equal(a[0]["image"], a[1]["image"])
  assert not np.array_equal(a[0]["image"], small("test")[0]["image"])
  assert not np.array_equal(a[0]["image"], small(seed=4)[0]["image"])
  with pytest.raises(IndexError, match="out of range"):
    a.scene(200)


def test_records_shapes_dtypes_and_ranges():
  source = small(min_objects=1, max_objects=5)
  assert source.image_shape == (32, 32, 3)
  assert source.num_classes == 3 and len(source) == 200
  assert source.name == "synthetic_scenes/train"
  assert "SyntheticScenes(split='train'" in repr(source)
  dtypes = dict(image=np.uint8, next_image=np.uint8, depth=np.float32,
                semantics=np.int32, instances=np.int32, edges=np.uint8,
                flow=np.float32)
  seen_labels = set()
  for i in range(40):
    record, scene = source[i], source.scene(i)
    assert tuple(record) == RECORD_KEYS
    for key, dtype in dtypes.items():
      assert record[key].dtype == dtype, key
      assert record[key].shape[:2] == (32, 32), key
    assert record["image"].shape == record["next_image"].shape == (32, 32, 3)
    assert record["flow"].shape == (32, 32, 2)
    k = len(scene["classes"])
    assert 1 <= k <= 5
    depth = record["depth"]
    assert depth.min() >= 2.0 and depth.max() <= 10.0
    assert set(np.unique(depth)) <= set(scene["depths"]) | {10.0}
    assert 0 <= record["semantics"].min() and record["semantics"].max() <= 3
    assert 0 <= record["instances"].min() and record["instances"].max() <= k
    assert set(np.unique(record["edges"])) <= {0, 1}
    assert np.all(np.isfinite(record["flow"]))
    # The label: class - 1 of the object with the most visible pixels.
    visible = np.bincount(record["instances"].ravel(), minlength=k + 1)[1:]
    assert record["label"] == scene["classes"][np.argmax(visible)] - 1
    seen_labels.add(record["label"])
    # Sizes, depths and motions in their ranges.
    assert np.all((scene["radii"] >= 4) & (scene["radii"] <= 10))
    assert np.all(np.diff(scene["depths"]) < 0)  # drawing order: far to near
    assert np.all((scene["depths"] >= 2) & (scene["depths"] <= 8))
    np.testing.assert_allclose(np.linalg.norm(scene["camera_translation"]),
                               5.0)
    assert np.all(np.linalg.norm(scene["velocities"], axis=-1) <= 1.0)
    assert np.all(np.abs(scene["turns"]) <= np.deg2rad(10.0))
  assert seen_labels == {0, 1, 2}


def test_labels_follow_the_geometry_and_the_occlusion_order():
  """Instances, semantics and depth of both frames from an independent
  point-in-shape test of the recorded poses."""
  source = small()
  for i in range(30):
    s = source.scene(i)
    k = len(s["classes"])
    for frame, key in ((0, "instances"), (1, "next_instances")):
      covers = np.stack([
          coverage(s["classes"][j], s["radii"][j], s["centres"][frame, j],
                   s["angles"][frame, j], 32) for j in range(k)])
      z = np.where(covers, s["depths"][:, None, None], np.float32(10.0))
      depth = z.min(axis=0)
      front = np.where(covers.any(axis=0), np.argmin(z, axis=0) + 1, 0)
      np.testing.assert_array_equal(s[key], front)
      if frame == 0:
        np.testing.assert_array_equal(s["depth"], depth)
    # Semantics: every pixel of an instance has that object's class.
    for j in range(k):
      on = s["instances"] == j + 1
      assert np.all(s["semantics"][on] == s["classes"][j])
    assert np.all(s["semantics"][s["instances"] == 0] == 0)


def test_edges_are_the_near_side_of_every_occlusion_boundary():
  source = small()
  for i in range(15):
    s = source.scene(i)
    inst, depth = s["instances"], s["depth"]
    expected = np.zeros((32, 32), np.uint8)
    for r in range(32):
      for c in range(32):
        for dr, dc in ((-1, 0), (1, 0), (0, -1), (0, 1)):
          rr, cc = r + dr, c + dc
          if (0 <= rr < 32 and 0 <= cc < 32 and inst[rr, cc] != inst[r, c]
              and depth[rr, cc] > depth[r, c]):
            expected[r, c] = 1
    np.testing.assert_array_equal(s["edges"], expected)
    assert s["edges"].any()


def test_flow_is_the_motion_of_each_surface():
  source = small()
  for i in range(30):
    s = source.scene(i)
    camera, depths = s["camera_translation"], s["depths"]
    flow = s["flow"].astype(np.float64)
    # Background: the camera's parallax at the background's depth.
    shift = -camera / 10.0
    np.testing.assert_allclose(s["background_shift"], shift)
    np.testing.assert_allclose(flow[s["instances"] == 0],
                               np.broadcast_to(shift, (np.sum(
                                   s["instances"] == 0), 2)), atol=1e-5)
    # Centres move by the parallax plus their own velocity; angles turn.
    c0, c1 = s["centres"]
    np.testing.assert_allclose(c1 - c0, -camera / depths[:, None]
                               + s["velocities"], atol=1e-5)
    np.testing.assert_allclose(s["angles"][1] - s["angles"][0], s["turns"])
    rows, cols = np.mgrid[0:32, 0:32].astype(np.float64)
    for j in range(len(depths)):
      on = s["instances"] == j + 1
      if not on.any():
        continue
      p = np.stack([cols[on], rows[on]], axis=-1)
      # The rigid motion of object j applied to its pixels.
      turn = rotation(s["angles"][1, j]) @ rotation(-s["angles"][0, j])
      moved = c1[j] + (p - c0[j]) @ turn.T
      np.testing.assert_allclose(flow[on], moved - p, atol=1e-4)
      # At its centre the flow is the centre's displacement (the nearest
      # pixel is within 0.71 px of it, and turns at most 10 degrees).
      r, c = int(round(c0[j, 1])), int(round(c0[j, 0]))
      if 0 <= r < 32 and 0 <= c < 32 and on[r, c]:
        off = np.hypot(c - c0[j, 0], r - c0[j, 1])
        bound = off * 2 * abs(math.sin(s["turns"][j] / 2)) + 1e-4
        assert np.linalg.norm(flow[r, c] - (c1[j] - c0[j])) <= bound


def test_pure_parallax_nearer_objects_move_more():
  source = small(object_speed=0.0, max_rotation_deg=0.0)
  for i in range(10):
    s = source.scene(i)
    for j, z in enumerate(s["depths"]):
      on = s["instances"] == j + 1
      np.testing.assert_allclose(
          s["flow"][on], np.broadcast_to(-s["camera_translation"] / z,
                                         (on.sum(), 2)), atol=1e-4)
    # Instance ids run far to near, so the speeds grow with the id.
    speeds = [np.linalg.norm(s["flow"][s["instances"] == j], axis=-1).mean()
              for j in np.unique(s["instances"])]
    assert np.all(np.diff(speeds) > 0)


def test_no_motion_repeats_the_frame():
  source = small(camera_speed=0.0, object_speed=0.0, max_rotation_deg=0.0)
  for i in range(5):
    r = source[i]
    np.testing.assert_array_equal(r["image"], r["next_image"])
    assert np.all(r["flow"] == 0)


def test_warping_frame_t_plus_1_by_the_flow_gives_frame_t():
  """Measured over these 150 scenes: mean 1.06, 99th percentile 5.8 (0..255);
  without motion compensation (zero flow) the mean error is about 8."""
  source = small(seed=0)
  errors, still = [], []
  for i in range(150):
    s = source.scene(i)
    errors.append(warp_errors(s))
    still.append(warp_errors(dict(s, flow=np.zeros_like(s["flow"]))))
  errors = np.concatenate(errors)
  assert errors.size > 150 * 32 * 32 * 3 * 0.7  # most pixels stay visible
  assert errors.mean() < 1.3
  assert np.percentile(errors, 99) < 7.0
  assert np.concatenate(still).mean() > 5 * errors.mean()


@pytest.mark.skipif(not os.path.isfile(os.path.join(CIFAR_DIR, "test.npz")),
                    reason="CIFAR-10 npz files not available")
def test_cifar10_textures():
  """Measured over these 100 scenes: mean 0.97, 99th percentile 7.9."""
  source = synthetic_scenes.SyntheticScenes(
      "test", num_scenes=100, textures="cifar10", texture_dir=CIFAR_DIR)
  assert source.texture_zoom == 2.0
  errors = []
  for i in range(100):
    s = source.scene(i)
    assert s["image"].shape == (32, 32, 3) and s["image"].dtype == np.uint8
    assert s["depth"].min() >= 2.0 and s["semantics"].max() <= 3
    errors.append(warp_errors(s))
  errors = np.concatenate(errors)
  assert errors.mean() < 1.2
  assert np.percentile(errors, 99) < 9.5
  # Same geometry as the procedural scenes of the seed; other pixels.
  procedural = small("test", seed=0, num_scenes=100)
  np.testing.assert_array_equal(source[5]["instances"],
                                procedural[5]["instances"])
  assert not np.array_equal(source[5]["image"], procedural[5]["image"])


def test_real_images_are_paired_and_batches_stack(tmp_path):
  rng = np.random.default_rng(0)
  images = rng.integers(0, 256, size=(6, 32, 32, 3), dtype=np.uint8)
  np.savez(tmp_path / "train.npz", image=images, label=np.arange(6) % 3)
  plain = small(num_scenes=10)
  paired = small(num_scenes=10, real_dir=str(tmp_path))
  chosen = set()
  for i in range(10):
    record = paired[i]
    assert tuple(record) == RECORD_KEYS[:-1] + ("real_image", "label")
    match = [j for j in range(6)
             if np.array_equal(record["real_image"], images[j])]
    assert len(match) == 1
    chosen.add(match[0])
    # The pairing is drawn last: the scene itself does not change.
    np.testing.assert_array_equal(record["image"], plain[i]["image"])
    np.testing.assert_array_equal(record["real_image"],
                                  paired[i]["real_image"])
  assert len(chosen) > 1
  batch = paired.read_batch([3, 0, 9])
  assert set(batch) == set(RECORD_KEYS) | {"real_image"}
  assert batch["image"].shape == (3, 32, 32, 3)
  assert batch["real_image"].shape == (3, 32, 32, 3)
  assert batch["flow"].shape == (3, 32, 32, 2)
  assert batch["depth"].dtype == np.float32
  assert batch["label"].dtype == np.int32 and batch["label"].shape == (3,)
  for key in RECORD_KEYS[:-1]:
    np.testing.assert_array_equal(batch[key][1], paired[0][key])
  assert batch["label"][2] == paired[9]["label"]
  # Real images of another size than the frames are refused.
  np.savez(tmp_path / "test.npz", image=images[:, :16, :16],
           label=np.zeros(6, np.int64))
  with pytest.raises(ValueError, match="frame_size=16"):
    small("test", real_dir=str(tmp_path))


def test_larger_frames_scale_the_scene():
  source = small(frame_size=64, num_scenes=4)
  s = source.scene(0)
  assert s["image"].shape == (64, 64, 3) and s["flow"].shape == (64, 64, 2)
  assert np.all((s["radii"] >= 8) & (s["radii"] <= 20))
  np.testing.assert_allclose(np.linalg.norm(s["camera_translation"]), 10.0)


def test_get_source_builds_the_scenes():
  config = ml_collections.ConfigDict(dict(
      source="synthetic_scenes",
      scenes=dict(num_scenes_train=7, num_scenes_test=3, frame_size=16,
                  max_objects=3, seed=5)))
  train = data.get_source(config, "train")
  test = data.get_source(config, "test")
  assert isinstance(train, data.SyntheticScenes)
  assert (len(train), len(test)) == (7, 3)
  assert train.image_shape == (16, 16, 3) and train.seed == 5
  assert "synthetic_scenes" in data.VALID_SOURCES
  default = data.get_source(
      ml_collections.ConfigDict(dict(source="synthetic_scenes")), "test")
  assert len(default) == 10000 and default.textures == "procedural"
  config.scenes.num_objects = 3
  with pytest.raises(ValueError, match="unknown field.*num_objects"):
    data.get_source(config, "train")


@pytest.mark.parametrize("kwargs, message", [
    (dict(split="val"), "unknown split 'val'"),
    (dict(num_scenes=0), "num_scenes must be an int >= 1"),
    (dict(frame_size=2), "frame_size must be an int >= 4"),
    (dict(min_objects=0), "min_objects must be an int >= 1"),
    (dict(min_objects=3, max_objects=2), "min_objects=3 is above"),
    (dict(near_depth=0.0), "0 < near_depth <= far_depth < background_depth"),
    (dict(far_depth=12.0), "0 < near_depth <= far_depth < background_depth"),
    (dict(near_depth=5.0, far_depth=4.0), "near_depth <= far_depth"),
    (dict(min_radius=0.0), "0 < min_radius <= max_radius"),
    (dict(min_radius=6.0, max_radius=5.0), "0 < min_radius <= max_radius"),
    (dict(camera_speed=-1.0), "camera_speed must be a finite number >= 0"),
    (dict(object_speed=float("nan")), "object_speed must be a finite"),
    (dict(max_rotation_deg="10"), "max_rotation_deg must be a finite"),
    (dict(textures="noise"), "unknown textures='noise'"),
])
def test_bad_arguments_raise_clear_errors(kwargs, message):
  kwargs = dict(kwargs)
  split = kwargs.pop("split", "train")
  with pytest.raises(ValueError, match=message):
    synthetic_scenes.SyntheticScenes(split, **kwargs)


def test_missing_texture_folder_is_reported(tmp_path):
  with pytest.raises(FileNotFoundError, match="no file"):
    synthetic_scenes.SyntheticScenes("train", textures="cifar10",
                                     texture_dir=str(tmp_path / "nowhere"))
