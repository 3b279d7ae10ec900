"""Optical flow (Horn--Schunck, coarse to fine with warping): known
translations of a smooth pattern, the digits of the moving-digits videos,
zero flow on identical frames, and a plain-loop numpy implementation of the
same algorithm."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import ndimage

from ssl_jax import augment
from ssl_jax.augment import flow
from ssl_jax.data import video

SIZE = 32


def smooth_pattern(dy=0.0, dx=0.0, size=SIZE):
  """A smooth image ``(size, size)`` moved by ``(dy, dx)`` pixels: frame 2
  of a flow ``(u, v) = (dx, dy)`` from ``smooth_pattern()``."""
  y, x = np.mgrid[0:size, 0:size].astype(np.float64)
  y, x = y - dy, x - dx
  image = (0.3 + 0.2 * np.sin(2 * np.pi * x / 29 + 0.3)
           * np.cos(2 * np.pi * y / 23 + 0.5)
           + 0.4 * np.exp(-((x - 14) ** 2 + (y - 17) ** 2) / 40))
  return image.astype(np.float32)


@pytest.mark.parametrize("shift,settings,tolerance", [
    ((0.4, -0.7), dict(num_scales=1, num_warps=1), 0.06),  # sub-pixel
    ((2.0, 1.0), dict(num_scales=1, num_warps=3), 0.08),  # integer
    ((-1.0, 1.5), dict(num_scales=2, num_warps=3), 0.2),
    ((3.0, -2.0), dict(num_scales=2, num_warps=3), 0.4),
])
def test_a_translated_pattern_gives_its_shift_in_the_interior(
    shift, settings, tolerance):
  dy, dx = shift
  estimate = np.asarray(jax.jit(lambda a, b: flow.horn_schunck(
      a, b, alpha=0.05, num_iters=200, **settings))(
          smooth_pattern(), smooth_pattern(dy, dx)))
  assert estimate.shape == (SIZE, SIZE, 2)
  interior = estimate[8:-8, 8:-8]  # where no content enters or leaves
  np.testing.assert_allclose(interior[..., 0], dx, atol=tolerance)  # u = dx
  np.testing.assert_allclose(interior[..., 1], dy, atol=tolerance)  # v = dy
  np.testing.assert_allclose(interior.mean((0, 1)), [dx, dy], atol=0.07)


def test_identical_frames_give_zero_flow():
  frame = np.random.default_rng(0).uniform(size=(SIZE, SIZE, 3))
  frame = jnp.asarray(frame, jnp.float32)
  estimate = jax.jit(lambda a, b: flow.horn_schunck(
      a, b, num_iters=20, num_scales=3, num_warps=2))(frame, frame)
  np.testing.assert_array_equal(np.asarray(estimate), 0.0)


def separated_digits(source, t, min_gap=2):
  """Digits of ``source``'s sequences whose masks at t and t + 1 stay
  ``min_gap`` pixels clear of the other digit's and that moved at least a
  pixel: ``(frame t, frame t + 1, mask of the digit at t, displacement
  (dy, dx), ink of either frame)``."""
  for i in range(len(source)):
    seq = source.sequence(i)
    for k in range(source.num_digits):
      near_other = False
      for s in (t, t + 1):
        mine = seq["masks"][s] == k + 1
        other = (seq["masks"][s] > 0) & ~mine
        rows, cols = np.nonzero(mine)
        box = other[max(rows.min() - min_gap, 0):rows.max() + min_gap + 1,
                    max(cols.min() - min_gap, 0):cols.max() + min_gap + 1]
        near_other |= bool(box.any())
      moved = seq["positions"][t + 1, k] - seq["positions"][t, k]
      if not near_other and np.hypot(*moved) >= 1.0:
        yield (seq["video"][t], seq["video"][t + 1], seq["masks"][t] == k + 1,
               moved.astype(np.float64), seq["masks"][t:t + 2].max(0) > 0)


def test_moving_digits_flow_points_along_each_digits_displacement():
  source = video.MovingDigits("train", num_sequences=48)
  cases = list(separated_digits(source, t=5))
  assert len(cases) >= 20
  first = jnp.asarray(np.stack([c[0] for c in cases]), jnp.float32) / 255.0
  second = jnp.asarray(np.stack([c[1] for c in cases]), jnp.float32) / 255.0
  estimates = np.asarray(jax.jit(jax.vmap(lambda a, b: flow.horn_schunck(
      a, b, alpha=0.3, num_iters=10, num_scales=1, num_warps=3)))(
          first, second))
  for (_, _, mask, moved, _), estimate in zip(cases, estimates):
    mean = estimate[mask].mean(axis=0)[::-1]  # (v, u) = (dy, dx)
    cosine = mean @ moved / (np.linalg.norm(mean) * np.linalg.norm(moved))
    assert cosine > 0.8, (moved, mean)
    assert 0.4 < np.linalg.norm(mean) / np.linalg.norm(moved) < 1.5, (
        moved, mean)
  # Stopped after 10 iterations per warp, the flow fills in little of the
  # black background: more than 8 px from any ink it hardly moves.
  distance = np.stack([ndimage.distance_transform_edt(~c[4]) for c in cases])
  assert np.linalg.norm(estimates, axis=-1)[distance > 8].mean() < 0.1


def test_vmap_matches_one_frame_pair_at_a_time_and_rgb_differs_from_grey():
  rng = np.random.default_rng(1)
  first = jnp.asarray(rng.uniform(size=(3, 16, 16, 3)), jnp.float32)
  second = jnp.roll(first, 1, axis=2)
  settings = dict(alpha=0.2, num_iters=20, num_scales=2, num_warps=2)
  one = jax.jit(lambda a, b: flow.horn_schunck(a, b, **settings))
  batched = jax.jit(jax.vmap(one))(first, second)
  for i in range(3):
    np.testing.assert_allclose(batched[i], one(first[i], second[i]), atol=1e-5)
  grey = one(flow.luminance(first[0]), flow.luminance(second[0]))
  assert grey.shape == (16, 16, 2)
  assert np.abs(np.asarray(grey) - np.asarray(batched[0])).max() > 1e-3
  assert augment.flow is flow  # exported as ssl_jax.augment.flow


def test_flow_to_image_scales_clips_and_adds_the_magnitude():
  field = jnp.asarray([[[3.0, -4.0], [0.0, 0.0], [-10.0, 0.5]]])
  image = np.asarray(flow.flow_to_image(field, max_flow=10.0))
  np.testing.assert_allclose(image[0, 0], [0.3, -0.4, 0.5], rtol=1e-6)
  np.testing.assert_allclose(image[0, 1], [0.0, 0.0, 0.0], atol=1e-6)
  np.testing.assert_allclose(image[0, 2], [-1.0, 0.05, 1.0], rtol=1e-6)
  gradient = jax.grad(lambda f: flow.flow_to_image(f, 4.0).sum())(
      jnp.zeros((2, 2, 2)))
  assert np.isfinite(np.asarray(gradient)).all()


def test_bad_inputs_are_refused():
  frame = np.zeros((12, 12, 3), np.float32)
  with pytest.raises(ValueError, match="differ in shape"):
    flow.horn_schunck(frame, frame[:8])
  with pytest.raises(ValueError, match="cannot be halved"):
    flow.horn_schunck(frame, frame, num_scales=4)
  with pytest.raises(ValueError, match="floats"):
    flow.horn_schunck(frame.astype(np.uint8), frame.astype(np.uint8))
  with pytest.raises(ValueError, match="num_warps"):
    flow.horn_schunck(frame, frame, num_warps=0)
  with pytest.raises(ValueError, match="max_flow"):
    flow.flow_to_image(jnp.zeros((2, 2, 2)), 0.0)


# ---------------------------------------------------------------------------
# An independent implementation: the same algorithm, pixel by pixel in numpy.
# ---------------------------------------------------------------------------


def _at(image, y, x):
  """``image[y, x]`` with the indices clamped to the frame."""
  h, w = image.shape
  return image[min(max(y, 0), h - 1), min(max(x, 0), w - 1)]


def _bilinear(image, y, x):
  h, w = image.shape
  y, x = min(max(y, 0.0), h - 1.0), min(max(x, 0.0), w - 1.0)
  y0, x0 = int(np.floor(y)), int(np.floor(x))
  y1, x1 = min(y0 + 1, h - 1), min(x0 + 1, w - 1)
  fy, fx = y - y0, x - x0
  return ((1 - fy) * ((1 - fx) * image[y0, x0] + fx * image[y0, x1])
          + fy * ((1 - fx) * image[y1, x0] + fx * image[y1, x1]))


def loop_horn_schunck(frame1, frame2, alpha, num_iters, num_scales, num_warps):
  """Horn--Schunck as in the module docstring of ssl_jax.augment.flow,
  written out pixel by pixel (float64). Frames ``(H, W, C)``."""
  first = np.moveaxis(np.asarray(frame1, np.float64), -1, 0)
  second = np.moveaxis(np.asarray(frame2, np.float64), -1, 0)
  channels = first.shape[0]
  pyramid = [(first, second)]
  for _ in range(num_scales - 1):
    coarser = []
    for image in pyramid[-1]:
      c, h, w = image.shape
      small = np.zeros((c, h // 2, w // 2))
      for ch in range(c):
        for y in range(h // 2):
          for x in range(w // 2):
            small[ch, y, x] = image[ch, 2 * y:2 * y + 2, 2 * x:2 * x + 2].mean()
      coarser.append(small)
    pyramid.append(tuple(coarser))
  h, w = pyramid[-1][0].shape[1:]
  u, v = np.zeros((h, w)), np.zeros((h, w))
  for level, (one, two) in enumerate(reversed(pyramid)):
    h, w = one.shape[1:]
    if level:  # bilinear enlargement of the coarser flow, doubled
      fine_u, fine_v = np.zeros((h, w)), np.zeros((h, w))
      for y in range(h):
        for x in range(w):
          cy, cx = (y + 0.5) / 2 - 0.5, (x + 0.5) / 2 - 0.5
          fine_u[y, x] = 2 * _bilinear(u, cy, cx)
          fine_v[y, x] = 2 * _bilinear(v, cy, cx)
      u, v = fine_u, fine_v
    for _ in range(num_warps):
      u0, v0 = u.copy(), v.copy()
      warped = np.zeros_like(two)
      for ch in range(channels):
        for y in range(h):
          for x in range(w):
            warped[ch, y, x] = _bilinear(two[ch], y + v0[y, x], x + u0[y, x])
      ix, iy = np.zeros_like(two), np.zeros_like(two)
      for ch in range(channels):
        for y in range(h):
          for x in range(w):
            for image in (one[ch], warped[ch]):
              ix[ch, y, x] += 0.25 * (_at(image, y, x + 1) - _at(image, y, x - 1))
              iy[ch, y, x] += 0.25 * (_at(image, y + 1, x) - _at(image, y - 1, x))
      for _ in range(num_iters):
        new_u, new_v = np.zeros((h, w)), np.zeros((h, w))
        for y in range(h):
          for x in range(w):
            averages = []
            for field in (u, v):
              averages.append(
                  (_at(field, y - 1, x) + _at(field, y + 1, x)
                   + _at(field, y, x - 1) + _at(field, y, x + 1)) / 6
                  + (_at(field, y - 1, x - 1) + _at(field, y - 1, x + 1)
                     + _at(field, y + 1, x - 1) + _at(field, y + 1, x + 1)) / 12)
            # (alpha^2 I + sum_c g g^T) w = alpha^2 w_bar - sum_c g r0
            system = alpha ** 2 * np.eye(2)
            right = alpha ** 2 * np.asarray(averages)
            for ch in range(channels):
              g = np.asarray([ix[ch, y, x], iy[ch, y, x]])
              r0 = (warped[ch, y, x] - one[ch, y, x] - g[0] * u0[y, x]
                    - g[1] * v0[y, x])
              system += np.outer(g, g)
              right -= g * r0
            new_u[y, x], new_v[y, x] = np.linalg.solve(system, right)
        u, v = new_u, new_v
  return np.stack([u, v], axis=-1)


@pytest.mark.parametrize("channels,settings", [
    (3, dict(alpha=0.1, num_iters=8, num_scales=2, num_warps=2)),
    (1, dict(alpha=0.05, num_iters=12, num_scales=1, num_warps=1)),
])
def test_matches_a_plain_loop_numpy_implementation(channels, settings):
  first = np.stack([smooth_pattern(size=16)] * channels, -1)
  first = first * np.linspace(0.5, 1.0, channels)
  second = np.stack([smooth_pattern(1.2, -0.8, size=16)] * channels, -1)
  second = second * np.linspace(0.5, 1.0, channels)
  expected = loop_horn_schunck(first, second, **settings)
  got = np.asarray(jax.jit(lambda a, b: flow.horn_schunck(a, b, **settings))(
      jnp.asarray(first, jnp.float32), jnp.asarray(second, jnp.float32)))
  assert np.abs(expected).max() > 0.3  # a real flow, not zeros
  np.testing.assert_allclose(got, expected, atol=1e-4)
  if channels == 1:  # (H, W) frames are one channel
    grey = jax.jit(lambda a, b: flow.horn_schunck(a, b, **settings))(
        jnp.asarray(first[..., 0]), jnp.asarray(second[..., 0]))
    np.testing.assert_allclose(grey, got, atol=1e-6)
