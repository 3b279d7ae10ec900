"""Synthetic scenes: seeded textured frame pairs with exact dense labels.

:class:`SyntheticScenes` renders, on the fly and with numpy alone, pairs of
consecutive frames of a simple 3-D scene together with labels that no
annotator could give exactly: depth, semantic and instance segmentation,
occlusion boundaries and optical flow. Such rendered data stand in for the
synthetic video games and simulators used to pre-train dense tasks (e.g.
Richter et al., "Playing for Data", ECCV 2016; Mayer et al., FlyingThings3D,
CVPR 2016); the optional ``real_image`` of every record pairs the rendered
frames with real images for domain adaptation.

Coordinates. Pixel ``(row i, column j)`` is the unit square centred at the
point ``(x, y) = (j, i)``: x runs along the columns (right), y along the rows
(down), and the frame covers ``[-0.5, W - 0.5] x [-0.5, H - 0.5]``. Every
point, centre, velocity and flow vector below is ``(x, y)``, the order of the
flow's channels ``(u, v)`` in :mod:`ssl_jax.augment.flow` (whose ``warp``
also puts pixel centres at integer coordinates). An angle ``phi`` rotates by
``R(phi) = [[cos, -sin], [sin, cos]]`` acting on ``(x, y)``; since y points
down, a positive angle turns clockwise on the screen.

Scale. Every length argument (radii, ``camera_speed``, ``object_speed``) is
in pixels of a 32-pixel frame and is multiplied by ``frame_size / 32``, as
are the periods of the procedural textures, so a larger frame shows the same
scene at a finer resolution.

The scene. A textured background plane at depth ``background_depth`` and K
flat, fronto-parallel textured objects. Object k has a shape class (1 disc,
2 square, 3 equilateral triangle; 0 is the background), a depth z_k, a
size r_k (the radius of the disc of equal area: a square has half side
``r sqrt(pi) / 2``, a triangle circumradius ``r sqrt(4 pi / (3 sqrt 3))``,
so the three classes cover the same area on average), a centre ``c_k`` and an
angle ``phi_k``. Objects are numbered in drawing order, far to near (painter's
algorithm: z_0 > z_1 > ...), and object k carries instance id ``k + 1``, so
on every pixel the front-most surface is the covering object of largest id.

Motion from frame t to frame t+1. The camera translates parallel to the
image plane; ``camera_translation`` is that translation times the focal
length, in pixels, so a point at depth z shifts by
``-camera_translation / z`` pixels (motion parallax: nearer moves more). Its
magnitude is ``camera_speed`` (default 5: the background at depth 10 shifts
0.5 px, objects at depth 8..2 shift 0.6..2.5 px at 32 px). Each object also
moves by its own velocity ``v_k`` (magnitude uniform in ``[0,
object_speed]``, direction uniform) and turns by ``omega_k``, uniform in
``+-max_rotation_deg``: ``c'_k = c_k - camera_translation / z_k + v_k`` and
``phi'_k = phi_k + omega_k``. The background only shifts, by
``b = -camera_translation / background_depth``.

Rendering. Object k (pose ``c, phi``) covers pixel p when its local
coordinate ``q = R(-phi) (p - c)`` lies inside its shape (the disc's, the
square's or the triangle's centroid at q = 0; at angle 0 the square's sides
are axis-aligned and the triangle points up, to -y). Its colour there is its
texture, a continuous function of q; the background's colour at p in frame
f is its texture at ``p - (W - 1, H - 1) / 2 - b_f`` (``b_t = 0``,
``b_{t+1} = b``). No anti-aliasing: a pixel shows the front-most surface at
its centre. Frame t+1 uses the moved poses, so a point of a surface keeps
its colour and the flow below is exact. Colours are rounded to uint8.

Textures (``textures=``):

* ``'procedural'`` (default, no data): ``colour(q) = m + sum_j a_j cos(w_j .
  q + psi_j)`` over four plane waves, clipped to [0, 255], each surface one
  of three kinds with equal probability: low-pass noise (four waves with
  periods of 8..20 px and random colours), stripes (one wave with a period
  of 7..12 px between two random colours, plus weak noise), or smooth checks
  (``cos(a x') cos(a y')`` as two waves, checks of 4.5..8 px, plus weak
  noise). Evaluated analytically at q (no sampling).
* ``'cifar10'``: real images. Every surface (background and objects) shows
  a crop of its own image of the split's CIFAR-10 images
  (``sources.load_npz(texture_dir, split)``, so 'test' scenes show unseen
  images), enlarged ``texture_zoom`` times bilinearly (2 at 32 px; more if
  the frame or shapes are too large for a 32-px image at 2x): colour(q) is
  the image sampled bilinearly at ``o + q / texture_zoom`` (column, row),
  with a centre ``o`` uniform where the whole surface (the shape's
  circumcircle, or the frame plus the background's shift) stays inside the
  image.

Labels of frame t, exact from the renderer:

* ``depth`` float32 (H, W): the depth of the front-most surface
  (``background_depth`` where no object covers the pixel).
* ``instances`` int32 (H, W): 0 background, ``k + 1`` for object k.
* ``semantics`` int32 (H, W): 0 background, 1..3 the shape class.
* ``edges`` uint8 (H, W): 1 where a 4-neighbour (inside the frame) has
  another instance id and a larger depth: the nearer side of every
  occlusion boundary, one pixel wide.
* ``flow`` float32 (H, W, 2), ``(u, v) = (d column, d row)`` in pixels: where
  the surface point seen at p in frame t is in frame t+1,
  ``c'_k + R(phi'_k) q - p`` on object k (whose local coordinate at p is q)
  and ``b`` on the background. As in :mod:`ssl_jax.augment.flow`,
  ``image(p) ~ next_image(p + flow(p))`` wherever that point is visible in
  frame t+1.

Scene ``i`` of a split is a pure function of ``(seed, split, i)``: a
``numpy.random.default_rng((seed, split_id, i))`` ('train' 0, 'test' 1)
draws, in this order, K (uniform in ``[min_objects, max_objects]``); the
classes; the depths (uniform in ``[near_depth, far_depth]``, sorted far to
near); the sizes (uniform in ``[min_radius, max_radius]``); the centres
(uniform over the frame); the angles (uniform); the camera's direction; the
objects' speeds, directions and turns; the textures (background first);
and, last, the index of ``real_image`` (uniform over ``load_npz(real_dir,
split)``), so a scene does not depend on whether ``real_dir`` is set.

Records: ``{"image": uint8 (H, W, 3) frame t, "next_image": uint8 (H, W, 3)
frame t+1, "depth", "semantics", "instances", "edges", "flow", "label": int}``
(plus ``"real_image"`` uint8 (H, W, 3) when ``real_dir`` is set), where
``label`` is the class minus 1 (0 disc, 1 square, 2 triangle) of the object
with the most visible pixels in frame t (the farthest of a tie), so
``num_classes = 3``. :meth:`SyntheticScenes.scene` gives everything the
generator knows.

Measured (32 x 32, defaults, one core of a shared 2-core machine,
``experiments/synthetic_scenes.py``): 0.33 ms per scene with procedural
textures and 0.36 ms with CIFAR-10 textures (geometry in float64, textures
in float32). Warping frame t+1 back by the flow (bilinear sampling at
``p + flow``) reproduces frame t on the pixels whose four bilinear
neighbours in frame t+1 show the instance of p and lie inside the frame
(about 82% of the pixels), over 500 'test' scenes of seed 0, with a mean
absolute error (0..255, per channel) of 1.08 (99th percentile 6.3, largest
26) for procedural textures and 0.97 (99th percentile 7.7, largest 29) for
CIFAR-10 textures; the same pixels without motion compensation (zero flow)
differ by 8.0 and 5.7 on average. The residual is the bilinear
interpolation of the textures between pixel centres and the rounding of
both frames to uint8.
"""

from __future__ import annotations

import functools
import math
import os
from typing import Any, Sequence

import numpy as np

from ssl_jax.data import sources

__all__ = [
    "CLASS_NAMES",
    "DEFAULTS",
    "SyntheticScenes",
    "TEXTURES",
    "load_synthetic_scenes",
]

_SPLIT_IDS = {"train": 0, "test": 1}
#: The values of ``textures``.
TEXTURES = ("procedural", "cifar10")
#: Shape classes 1..3 (``semantics``); a record's label is the class - 1.
CLASS_NAMES = ("disc", "square", "triangle")
# Circumradius of each class over the radius of the disc of equal area.
_CIRCUMRADIUS = np.array([1.0, math.sqrt(math.pi / 2.0),
                          math.sqrt(4.0 * math.pi / (3.0 * math.sqrt(3.0)))])
# What each class's gauge (below) is compared to, over r: the disc's radius,
# the square's half side, the triangle's inradius (half its circumradius).
_GAUGE_SCALE = np.array([1.0, math.sqrt(math.pi) / 2.0, _CIRCUMRADIUS[2] / 2])
_SQRT3_2 = math.sqrt(3.0) / 2.0
_NUM_WAVES = 4  # plane waves per procedural texture

#: The constructor's defaults (``num_scenes`` aside), the fields of
#: ``config.data.scenes`` besides ``num_scenes_train`` / ``num_scenes_test``.
DEFAULTS = dict(
    frame_size=32, min_objects=2, max_objects=4, near_depth=2.0,
    far_depth=8.0, background_depth=10.0, min_radius=4.0, max_radius=10.0,
    camera_speed=5.0, object_speed=1.0, max_rotation_deg=10.0,
    textures="procedural", texture_dir="../shared/datasets/cifar10",
    real_dir="", seed=0)


@functools.lru_cache(maxsize=8)
def _npz_images(directory: str, split: str) -> np.ndarray:
  """``load_npz(directory, split)``'s images, read-only, once per process."""
  images = sources.load_npz(directory, split).images
  if images.ndim != 4:
    raise ValueError(
        f"SyntheticScenes: {directory}/{split}.npz holds videos of shape "
        f"{images.shape}; textures and real images must be still images "
        "(N, H, W, C).")
  if images.shape[-1] == 1:
    images = np.repeat(images, 3, axis=-1)
  images.setflags(write=False)
  return images


class SyntheticScenes:
  """Seeded frame pairs of textured 3-D scenes with exact dense labels.

  A random-access source (``len``, ``[i]``, ``read_batch``) of ``num_scenes``
  scenes; see the module docstring for the scene, the motion, the textures
  and the labels. Lengths are in pixels of a 32-pixel frame (scaled by
  ``frame_size / 32``).

  Args:
    split: 'train' or 'test' (separate random streams; with CIFAR-10
      textures or real images, the images of that split).
    num_scenes: number of scenes in the split.
    frame_size: side of the square frames, in pixels.
    min_objects, max_objects: the number of objects is uniform in this
      range (at least 1).
    near_depth, far_depth: object depths are uniform in this range, which
      lies in ``(0, background_depth)``.
    background_depth: depth of the background plane.
    min_radius, max_radius: object sizes (the radius of the disc of equal
      area) are uniform in this range.
    camera_speed: image shift, in pixels, of a point at depth 1.
    object_speed: largest speed of an object's own motion, pixels per frame.
    max_rotation_deg: largest in-plane turn of an object between the
      frames, degrees.
    textures: 'procedural' or 'cifar10'.
    texture_dir: folder of ``<split>.npz`` images for 'cifar10' textures.
    real_dir: folder of ``<split>.npz`` real images of the frame's shape to
      pair with every record as ``real_image`` ('' for none).
    seed: the generator's seed.

  Attributes:
    image_shape: ``(frame_size, frame_size, 3)``.
    scale: ``frame_size / 32``, the factor of every length argument.
    texture_zoom: the enlargement of the CIFAR-10 textures (1.0, unused,
      for procedural ones).

  Raises:
    ValueError: for an argument out of its range (the message names it and
      the range), or real images of another shape than the frames.
    FileNotFoundError: when ``texture_dir`` (with 'cifar10' textures) or
      ``real_dir`` lacks ``<split>.npz``.
  """

  num_classes = len(CLASS_NAMES)

  def __init__(self, split: str = "train", *, num_scenes: int = 10000,
               frame_size: int = 32, min_objects: int = 2,
               max_objects: int = 4, near_depth: float = 2.0,
               far_depth: float = 8.0, background_depth: float = 10.0,
               min_radius: float = 4.0, max_radius: float = 10.0,
               camera_speed: float = 5.0, object_speed: float = 1.0,
               max_rotation_deg: float = 10.0,
               textures: str = "procedural",
               texture_dir: str = "../shared/datasets/cifar10",
               real_dir: str = "", seed: int = 0):
    if split not in _SPLIT_IDS:
      raise ValueError(
          f"SyntheticScenes: unknown split {split!r}; use 'train' or 'test'.")
    for name, value, low in (("num_scenes", num_scenes, 1),
                             ("frame_size", frame_size, 4),
                             ("min_objects", min_objects, 1),
                             ("max_objects", max_objects, 1)):
      if isinstance(value, bool) or not isinstance(value, (int, np.integer)) \
          or value < low:
        raise ValueError(
            f"SyntheticScenes: {name} must be an int >= {low}, got "
            f"{value!r}.")
    if min_objects > max_objects:
      raise ValueError(
          f"SyntheticScenes: min_objects={min_objects} is above "
          f"max_objects={max_objects}; the number of objects is drawn from "
          "[min_objects, max_objects].")
    floats = dict(near_depth=near_depth, far_depth=far_depth,
                  background_depth=background_depth, min_radius=min_radius,
                  max_radius=max_radius, camera_speed=camera_speed,
                  object_speed=object_speed,
                  max_rotation_deg=max_rotation_deg)
    for name, value in floats.items():
      if isinstance(value, bool) or not isinstance(
          value, (int, float, np.integer, np.floating)) or not np.isfinite(
              value) or value < 0:
        raise ValueError(
            f"SyntheticScenes: {name} must be a finite number >= 0, got "
            f"{value!r}.")
    if not 0 < near_depth <= far_depth < background_depth:
      raise ValueError(
          f"SyntheticScenes: depths must satisfy 0 < near_depth <= far_depth "
          f"< background_depth, got near_depth={near_depth}, far_depth="
          f"{far_depth}, background_depth={background_depth}; every object "
          "lies in front of the background.")
    if not 0 < min_radius <= max_radius:
      raise ValueError(
          f"SyntheticScenes: radii must satisfy 0 < min_radius <= max_radius, "
          f"got min_radius={min_radius}, max_radius={max_radius}.")
    if textures not in TEXTURES:
      raise ValueError(
          f"SyntheticScenes: unknown textures={textures!r}; use one of "
          f"{list(TEXTURES)}.")
    self.split = split
    self.num_scenes = int(num_scenes)
    self.frame_size = int(frame_size)
    self.min_objects = int(min_objects)
    self.max_objects = int(max_objects)
    self.near_depth = float(near_depth)
    self.far_depth = float(far_depth)
    self.background_depth = float(background_depth)
    self.min_radius = float(min_radius)
    self.max_radius = float(max_radius)
    self.camera_speed = float(camera_speed)
    self.object_speed = float(object_speed)
    self.max_rotation_deg = float(max_rotation_deg)
    self.textures = textures
    self.texture_dir = os.fspath(texture_dir)
    self.real_dir = os.fspath(real_dir) if real_dir else ""
    self.seed = int(seed)
    self.scale = self.frame_size / 32.0
    self.image_shape = (self.frame_size, self.frame_size, 3)
    self.name = f"synthetic_scenes/{split}"
    self._axis = np.arange(self.frame_size, dtype=np.float64)
    self._index = (np.arange(2)[:, None, None],
                   np.arange(self.frame_size)[None, :, None],
                   np.arange(self.frame_size)[None, None, :])
    # Largest distance from a surface's texture centre at which it is seen:
    # the background's (per axis: half the frame plus its shift) and the
    # largest circumradius.
    self._background_extent = ((self.frame_size - 1) / 2.0 + self.scale
                               * self.camera_speed / self.background_depth)
    self.texture_zoom = 1.0
    if textures == "cifar10":
      images = _npz_images(self.texture_dir, split)  # fails early if missing
      half = (min(images.shape[1:3]) - 1) / 2.0
      extent = max(self._background_extent,
                   self.scale * self.max_radius * _CIRCUMRADIUS.max())
      self.texture_zoom = max(2.0, extent / half)
    if self.real_dir:
      real = _npz_images(self.real_dir, split)
      if real.shape[1:] != self.image_shape:
        raise ValueError(
            f"SyntheticScenes: the real images in {self.real_dir}/{split}.npz "
            f"have shape {real.shape[1:]}, but the frames are "
            f"{self.image_shape}; resize the real images or set frame_size="
            f"{real.shape[1]} (square images only).")

  def __len__(self) -> int:
    return self.num_scenes

  # --------------------------------------------------------------------------
  # Drawing a scene
  # --------------------------------------------------------------------------

  def _procedural_textures(self, rng: np.random.Generator, layers: int):
    """Per surface: mean colour (L, 3), wave vectors (L, 4, 2) in radians per
    pixel, phases (L, 4) and colour amplitudes (L, 4, 3)."""
    two_pi = 2.0 * np.pi
    kind = rng.integers(0, 3, size=layers)  # 0 noise, 1 stripes, 2 checks
    c0, c1 = rng.uniform(0.0, 255.0, size=(2, layers, 3))
    direction = rng.uniform(0.0, two_pi, size=(layers, _NUM_WAVES))
    period = rng.uniform(8.0, 20.0, size=(layers, _NUM_WAVES))
    phase = rng.uniform(0.0, two_pi, size=(layers, _NUM_WAVES))
    amp = rng.uniform(-35.0, 35.0, size=(layers, _NUM_WAVES, 3))
    theta = rng.uniform(0.0, two_pi, size=layers)
    unit = rng.uniform(size=layers)
    waves = (two_pi / period)[..., None] * np.stack(
        [np.cos(direction), np.sin(direction)], axis=-1)
    mean = 0.5 * (c0 + c1)
    half = 0.5 * (c1 - c0)
    e1 = np.stack([np.cos(theta), np.sin(theta)], axis=-1)
    e2 = np.stack([-np.sin(theta), np.cos(theta)], axis=-1)
    stripes, checks = kind == 1, kind == 2
    weak = stripes | checks
    amp[weak] *= 0.3
    # Stripes: one wave of period 7..12 px between the two colours.
    stripe_k = two_pi / (7.0 + 5.0 * unit)
    waves[stripes, 0] = (stripe_k[:, None] * e1)[stripes]
    amp[stripes, 0] = half[stripes]
    # Checks: cos(a x') cos(a y') = (cos(a (x' + y')) + cos(a (x' - y'))) / 2,
    # squares of 4.5..8 px (half a period of cos(a x')).
    check_a = np.pi / (4.5 + 3.5 * unit)
    waves[checks, 0] = (check_a[:, None] * (e1 + e2))[checks]
    waves[checks, 1] = (check_a[:, None] * (e1 - e2))[checks]
    amp[checks, 0] = amp[checks, 1] = 0.75 * half[checks]
    return tuple(a.astype(np.float32)
                 for a in (mean, waves / self.scale, phase, amp))

  def _cifar_textures(self, rng: np.random.Generator, extents: np.ndarray):
    """Per surface: an image (L, h, w, 3) of the split and the texture
    centre ``o`` (L, 2) as (column, row), the surface inside the image."""
    images = _npz_images(self.texture_dir, self.split)
    which = rng.integers(0, len(images), size=len(extents))
    reach = extents[:, None] / self.texture_zoom
    size = np.array([images.shape[2], images.shape[1]], np.float64) - 1.0
    low = np.minimum(reach, size / 2.0)
    centre = rng.uniform(low, size - low)
    return images[which], centre

  def _draws(self, index: int) -> dict[str, Any]:
    """Everything drawn for scene ``index`` (see the module docstring)."""
    rng = np.random.default_rng((self.seed, _SPLIT_IDS[self.split], index))
    s = self.scale
    k = int(rng.integers(self.min_objects, self.max_objects + 1))
    classes = rng.integers(1, len(CLASS_NAMES) + 1, size=k)
    depths = np.sort(rng.uniform(self.near_depth, self.far_depth, size=k))
    depths = depths[::-1].copy()  # drawing order: far to near
    radii = s * rng.uniform(self.min_radius, self.max_radius, size=k)
    centres = rng.uniform(-0.5, self.frame_size - 0.5, size=(k, 2))
    angles = rng.uniform(0.0, 2.0 * np.pi, size=k)
    heading = rng.uniform(0.0, 2.0 * np.pi)
    camera = s * self.camera_speed * np.array([np.cos(heading),
                                               np.sin(heading)])
    speed = s * rng.uniform(0.0, self.object_speed, size=k)
    course = rng.uniform(0.0, 2.0 * np.pi, size=k)
    velocities = speed[:, None] * np.stack([np.cos(course), np.sin(course)],
                                           axis=-1)
    turns = np.deg2rad(rng.uniform(-self.max_rotation_deg,
                                   self.max_rotation_deg, size=k))
    draws = dict(classes=classes, depths=depths, radii=radii, centres=centres,
                 angles=angles, camera=camera, velocities=velocities,
                 turns=turns)
    if self.textures == "procedural":
      draws["texture"] = self._procedural_textures(rng, k + 1)
    else:
      extents = np.concatenate([[self._background_extent],
                                radii * _CIRCUMRADIUS[classes - 1]])
      draws["texture"] = self._cifar_textures(rng, extents)
    if self.real_dir:
      draws["real_index"] = int(rng.integers(
          0, len(_npz_images(self.real_dir, self.split))))
    return draws

  # --------------------------------------------------------------------------
  # Rendering
  # --------------------------------------------------------------------------

  def _colours(self, texture, surface: np.ndarray, q: np.ndarray):
    """Colours (..., 3) in [0, 255] of ``surface`` (...) at local ``q``."""
    if self.textures == "procedural":
      mean, waves, phase, amp = texture
      # float32 (numpy's float64 cosine is some 20x slower); every surface's
      # wave sum at every pixel is one matmul, then each pixel takes its own.
      w = waves[surface]
      q = q.astype(np.float32)
      arg = w[..., 0] * q[..., :1] + w[..., 1] * q[..., 1:] + phase[surface]
      cosines = np.cos(arg).reshape(-1, _NUM_WAVES)
      sums = (cosines @ amp.transpose(1, 0, 2).reshape(_NUM_WAVES, -1))
      sums = sums.reshape(len(cosines), -1, 3)
      flat = surface.ravel()
      colour = mean[flat] + sums[np.arange(len(flat)), flat]
      return np.clip(colour, 0.0, 255.0).reshape(surface.shape + (3,))
    # Bilinear: the image at (column, row) = o + q / zoom, clamped.
    images, centre = texture
    _, h, w, _ = images.shape
    uv = (centre[surface] + q / self.texture_zoom).astype(np.float32)
    col = np.clip(uv[..., 0], 0.0, w - 1.0)
    row = np.clip(uv[..., 1], 0.0, h - 1.0)
    c0 = np.minimum(col.astype(np.intp), w - 2)
    r0 = np.minimum(row.astype(np.intp), h - 2)
    fc = (col - c0)[..., None]
    fr = (row - r0)[..., None]
    flat = images.reshape(-1, 3).astype(np.float32)
    i00 = (surface * h + r0) * w + c0
    top = flat[i00] + fc * (flat[i00 + 1] - flat[i00])
    bottom = flat[i00 + w] + fc * (flat[i00 + w + 1] - flat[i00 + w])
    return top + fr * (bottom - top)

  def scene(self, index: int) -> dict[str, Any]:
    """Scene ``index`` with everything its generator knows.

    Returns:
      The record's arrays (``image``, ``next_image``, the labels of frame t
      and ``label``; ``real_image`` with ``real_dir``), ``next_instances``
      int32 (H, W) (the instance ids of frame t+1), and per object k
      (drawing order, far to near): ``classes`` int32 (K,), ``depths``
      float32 (K,), ``radii`` (K,) (the equal-area disc radius, pixels),
      ``centres`` (2, K, 2) and ``angles`` (2, K) (radians) in frames t and
      t+1, ``velocities`` (K, 2) (own motion, pixels), ``turns`` (K,)
      (radians); ``camera_translation`` (2,) (pixels at depth 1, points at
      depth z shift by ``-camera_translation / z``) and
      ``background_shift`` (2,). Vectors are (x, y).
    """
    if not 0 <= index < self.num_scenes:
      raise IndexError(
          f"{self.name}: index {index} out of range [0, {self.num_scenes}).")
    d = self._draws(index)
    classes, depths, radii = d["classes"], d["depths"], d["radii"]
    k = len(classes)
    size = self.frame_size
    shift = -d["camera"] / self.background_depth
    middle = np.full(2, (size - 1) / 2.0)
    # Surfaces: 0 the background, k + 1 object k; poses in frames t, t+1.
    centres = np.empty((2, k + 1, 2))
    centres[0, 0], centres[1, 0] = middle, middle + shift
    centres[0, 1:] = d["centres"]
    centres[1, 1:] = (d["centres"] - d["camera"] / depths[:, None]
                      + d["velocities"])
    angles = np.zeros((2, k + 1))
    angles[0, 1:] = d["angles"]
    angles[1, 1:] = d["angles"] + d["turns"]
    # Local coordinates q = R(-phi) (p - c) of every pixel p = (x, y) on
    # every surface, (2, L, H, W) each: affine in x and y, so outer sums.
    cos, sin = np.cos(angles)[..., None], np.sin(angles)[..., None]
    axis = self._axis
    shift_x = cos * centres[..., :1] + sin * centres[..., 1:]
    shift_y = cos * centres[..., 1:] - sin * centres[..., :1]
    qx = (cos * axis - shift_x)[..., None, :] + (sin * axis)[..., :, None]
    qy = (-sin * axis - shift_y)[..., None, :] + (cos * axis)[..., :, None]
    # Painter's algorithm: objects are in drawing order, far to near.
    instances = np.zeros((2, size, size), np.int32)
    for j in range(k):
      x, y = qx[:, j + 1], qy[:, j + 1]
      limit = radii[j] * _GAUGE_SCALE[classes[j] - 1]
      if classes[j] == 1:
        inside = x * x + y * y <= limit * limit
      elif classes[j] == 2:
        inside = np.maximum(np.abs(x), np.abs(y)) <= limit
      else:  # the edges' outer normals are (0, 1) and (+-sqrt(3)/2, -1/2)
        inside = np.maximum(y, _SQRT3_2 * np.abs(x) - 0.5 * y) <= limit
      instances[inside] = j + 1
    # Local coordinates of the front-most surface of every pixel.
    frame, row, col = self._index
    q = np.stack([qx[frame, instances, row, col],
                  qy[frame, instances, row, col]], axis=-1)
    colours = self._colours(d["texture"], instances, q)
    frames = np.round(colours).astype(np.uint8)
    # Labels of frame t.
    inst = instances[0]
    depth_of = np.concatenate([[self.background_depth], depths])
    class_of = np.concatenate([[0], classes]).astype(np.int32)
    depth = depth_of[inst].astype(np.float32)
    # p = c + R(phi) q moves to c' + R(phi') q: the flow is
    # (c' - c) + (R(phi') - R(phi)) q (exactly the shift where nothing turns).
    dcos, dsin = (cos[1] - cos[0])[inst], (sin[1] - sin[0])[inst]
    qx0, qy0 = q[0, ..., :1], q[0, ..., 1:]
    flow = ((centres[1] - centres[0])[inst]
            + np.concatenate([dcos * qx0 - dsin * qy0,
                              dsin * qx0 + dcos * qy0], axis=-1))
    flow = flow.astype(np.float32)
    edges = np.zeros((size, size), bool)
    for vertical in (True, False):  # each pair of 4-neighbours, both ways
      lo = (slice(None, -1), slice(None)) if vertical else (
          slice(None), slice(None, -1))
      hi = (slice(1, None), slice(None)) if vertical else (
          slice(None), slice(1, None))
      other = inst[lo] != inst[hi]
      edges[lo] |= other & (depth[hi] > depth[lo])
      edges[hi] |= other & (depth[lo] > depth[hi])
    visible = np.bincount(inst.ravel(), minlength=k + 1)[1:]
    out = {
        "image": frames[0],
        "next_image": frames[1],
        "depth": depth,
        "semantics": class_of[inst],
        "instances": inst.astype(np.int32),
        "edges": edges.astype(np.uint8),
        "flow": flow,
        "label": int(classes[int(np.argmax(visible))]) - 1,
        "next_instances": instances[1].astype(np.int32),
        "classes": classes.astype(np.int32),
        "depths": depths.astype(np.float32),
        "radii": radii,
        "centres": centres[:, 1:],
        "angles": angles[:, 1:],
        "velocities": d["velocities"],
        "turns": d["turns"],
        "camera_translation": d["camera"],
        "background_shift": shift,
    }
    if self.real_dir:
      out["real_image"] = _npz_images(self.real_dir, self.split)[
          d["real_index"]]
    return out

  # --------------------------------------------------------------------------
  # The source protocol
  # --------------------------------------------------------------------------

  def record_keys(self) -> tuple[str, ...]:
    """The keys of a record, ``label`` last."""
    keys = ("image", "next_image", "depth", "semantics", "instances",
            "edges", "flow")
    return keys + (("real_image",) if self.real_dir else ()) + ("label",)

  def __getitem__(self, index: int) -> dict[str, Any]:
    scene = self.scene(int(index))
    return {key: scene[key] for key in self.record_keys()}

  def __getitems__(self, indices: Sequence[int]) -> list[dict[str, Any]]:
    return [self[i] for i in indices]

  def read_batch(self, indices: Sequence[int]) -> dict[str, np.ndarray]:
    """The records at ``indices`` stacked per key (``label`` int32 (B,))."""
    records = self.__getitems__(indices)
    batch = {key: np.stack([r[key] for r in records])
             for key in self.record_keys() if key != "label"}
    batch["label"] = np.asarray([r["label"] for r in records], np.int32)
    return batch

  def __repr__(self) -> str:
    return (f"SyntheticScenes(split={self.split!r}, num_scenes="
            f"{self.num_scenes}, frame_size={self.frame_size}, objects="
            f"{self.min_objects}..{self.max_objects}, depths={self.near_depth}"
            f"..{self.far_depth}|{self.background_depth}, radius="
            f"{self.min_radius}..{self.max_radius}, camera_speed="
            f"{self.camera_speed}, object_speed={self.object_speed}, "
            f"max_rotation_deg={self.max_rotation_deg}, textures="
            f"{self.textures!r}, real_dir={self.real_dir!r}, seed={self.seed})")


def load_synthetic_scenes(split: str,
                          scenes_config: Any = None) -> SyntheticScenes:
  """A :class:`SyntheticScenes` split from a config section
  (``config.data.scenes``): any missing field takes the class default,
  ``num_scenes_<split>`` sets the length, the other fields are the
  constructor's keywords (:data:`DEFAULTS`); an unknown field is an error."""
  fields = {} if scenes_config is None else dict(scenes_config)
  known = set(DEFAULTS) | {"num_scenes_train", "num_scenes_test"}
  unknown = sorted(set(fields) - known)
  if unknown:
    raise ValueError(
        f"config.data.scenes has unknown field(s) {unknown}; the fields are "
        f"{sorted(known)}.")
  kwargs = {name: fields[name] for name in DEFAULTS if name in fields}
  count = fields.get(f"num_scenes_{split}")
  if count is not None:
    kwargs["num_scenes"] = count
  return SyntheticScenes(split, **kwargs)
