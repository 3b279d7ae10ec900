r"""Optical flow by Horn--Schunck, coarse to fine with warping, in JAX.

Horn & Schunck, "Determining Optical Flow", Artificial Intelligence 17
(1981) 185-203, in the multi-scale form of Meinhardt-Llopis, Sanchez and
Kondermann, "Horn-Schunck Optical Flow with a Multi-Scale Strategy", Image
Processing On Line 3 (2013) 151-172 (https://doi.org/10.5201/ipol.2013.20).

Convention: the flow ``w = (u, v)`` of a pixel ``(y, x)`` of the first frame
is where it went in the second, ``I_1(y, x) \approx I_2(y + v, x + u)``;
``u`` runs along the columns (x, to the right) and ``v`` along the rows (y,
down). :func:`horn_schunck` returns ``(H, W, 2)`` with channel 0 = u = dx
and channel 1 = v = dy, in pixels per frame.

The energy, with the data term linearised around a current flow
``w_0`` (the warping) and summed over the frames' C channels (each channel
is a brightness-constancy constraint: a colour data term, as in Golland and
Bruckstein, "Motion from Color", CVIU 68 (1997); one channel is Horn and
Schunck's),

.. math::
   E(u, v) = \sum_{y,x} \sum_c \big(I_{2,c}^{w} + I_{x,c} (u - u_0)
   + I_{y,c} (v - v_0) - I_{1,c}\big)^2
   + \alpha^2 \big(|\nabla u|^2 + |\nabla v|^2\big),

with :math:`I_2^{w}(y, x) = I_2(y + v_0, x + u_0)` (bilinear, coordinates
clamped to the frame), is minimised by the Jacobi iteration of Horn and
Schunck (their eqs. 14-16, IPOL eq. 7): with :math:`g_c = (I_{x,c},
I_{y,c})`, the structure tensor :math:`J = \sum_c g_c g_c^\top` and
:math:`b = \sum_c g_c (I_{2,c}^w - I_{1,c} - g_c \cdot w_0)`, every pixel
solves the 2x2 system

.. math::
   (\alpha^2 \mathbb{1} + J)\, w^{n+1} = \alpha^2 \bar w^n - b,

which for one channel is their update
:math:`u^{n+1} = \bar u^n - I_x \rho / (\alpha^2 + I_x^2 + I_y^2)` (and
the same for v with :math:`I_y`), :math:`\rho = I_2^w - I_1 + I_x(\bar u^n
- u_0) + I_y(\bar v^n - v_0)`. :math:`\bar u` is Horn and Schunck's local
average (their Sec. 8): 1/6 of each 4-neighbour plus 1/12 of each diagonal
neighbour, the frame's border replicated (a Neumann boundary). The spatial
derivatives are central differences, :math:`I_x(y, x) = (I(y, x+1) -
I(y, x-1)) / 2` (the border replicated), of the mean of the first frame and
the warped second, :math:`I_x = \tfrac12(\partial_x I_1 + \partial_x
I_2^w)` (the averaged derivatives of Sun, Roth and Black, "Secrets of
Optical Flow Estimation", CVPR 2010, Sec. 3, there weighted 0.4 / 0.6).

Coarse to fine (IPOL Sec. 2.2, zoom factor 1/2): both frames are reduced
``num_scales - 1`` times by 2x2 block means; the flow starts at zero on the
coarsest scale; on every scale ``num_warps`` times the second frame is
warped by the current flow and ``num_iters`` Jacobi iterations refine it
(starting from it, :math:`w^0 = w_0`); the result is enlarged bilinearly to
the next finer scale (pixel centres aligned, ``(i + 0.5) / 2 - 0.5``) and
doubled; :math:`\alpha` is the same on every scale. With ``num_scales=1``
and ``num_warps=1`` this is the classical single-scale Horn--Schunck with
central differences.

In practice: warps recover motions of 2-3 px on smooth images at one
scale; coarser scales help larger motions of smooth images, but on sparse,
sharp images (digits on black) and small ``alpha`` the quadratic data term
can throw the coarse flow far off. The Jacobi iteration spreads the flow
about a pixel per iteration into textureless regions (Horn and Schunck's
fill-in); a few iterations per warp keep it near the moving edges.

Every function is pure, with static shapes and a fixed number of
iterations (``lax.fori_loop``), so it works under ``jit``, ``vmap``,
``grad`` and inside ``shard_map``. Frames are floats, ``(H, W)`` or
``(H, W, C)`` (intensities in [0, 1] set the scale of ``alpha``);
:func:`luminance` reduces RGB to one channel for a flow of brightness alone.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax

from ssl_jax.augment.color import LUMA_WEIGHTS

__all__ = [
    "flow_to_image",
    "horn_schunck",
    "luminance",
    "neighbour_average",
    "sample_bilinear",
    "spatial_gradients",
    "upsample_flow",
    "warp",
]

Array = jax.Array


def _channels_first(frame: Array) -> Array:
  """A float frame ``(H, W)`` or ``(H, W, C)`` as ``(C, H, W)``."""
  frame = jnp.asarray(frame)
  if not jnp.issubdtype(frame.dtype, jnp.floating):
    raise ValueError(
        f"optical flow: frames must be floats (e.g. uint8 / 255), got "
        f"{frame.dtype}.")
  if frame.ndim == 2:
    return frame[None]
  if frame.ndim == 3:
    return jnp.moveaxis(frame, -1, 0)
  raise ValueError(
      f"optical flow: a frame must be (H, W) or (H, W, C), got shape "
      f"{frame.shape}; vmap over a batch of frames.")


def luminance(frame: Array) -> Array:
  """``(H, W)`` ITU-R 601 luma ``0.299 R + 0.587 G + 0.114 B`` of an RGB
  float frame ``(H, W, 3)``, for a flow of the brightness alone."""
  if frame.ndim != 3 or frame.shape[-1] != 3:
    raise ValueError(f"luminance: expected an RGB frame (H, W, 3), got shape "
                     f"{frame.shape}.")
  return jnp.tensordot(frame, jnp.asarray(LUMA_WEIGHTS, frame.dtype),
                       axes=(-1, 0))


def _shift(field: Array, dy: int, dx: int) -> Array:
  """``field[y + dy, x + dx]`` with indices clamped to the frame."""
  h, w = field.shape
  padded = jnp.pad(field, 1, mode="edge")
  return padded[1 + dy:1 + dy + h, 1 + dx:1 + dx + w]


def spatial_gradients(image: Array) -> tuple[Array, Array]:
  r"""Central differences ``(I_x, I_y)`` of an ``(H, W)`` image:
  :math:`I_x(y, x) = (I(y, x+1) - I(y, x-1)) / 2`, indices clamped."""
  return (0.5 * (_shift(image, 0, 1) - _shift(image, 0, -1)),
          0.5 * (_shift(image, 1, 0) - _shift(image, -1, 0)))


def neighbour_average(field: Array) -> Array:
  r"""Horn and Schunck's local average :math:`\bar u`: 1/6 of each
  4-neighbour plus 1/12 of each diagonal one, the border replicated."""
  h, w = field.shape
  padded = jnp.pad(field, 1, mode="edge")

  def at(dy, dx):
    return padded[1 + dy:1 + dy + h, 1 + dx:1 + dx + w]

  edges = at(-1, 0) + at(1, 0) + at(0, -1) + at(0, 1)
  corners = at(-1, -1) + at(-1, 1) + at(1, -1) + at(1, 1)
  return edges / 6.0 + corners / 12.0


def sample_bilinear(image: Array, rows: Array, cols: Array) -> Array:
  """``image`` ``(H, W)`` at real coordinates ``rows``, ``cols`` (any equal
  shapes), bilinearly, coordinates clamped to ``[0, H-1] x [0, W-1]``."""
  h, w = image.shape
  rows = jnp.clip(rows, 0.0, h - 1.0)
  cols = jnp.clip(cols, 0.0, w - 1.0)
  r0 = jnp.floor(rows)
  c0 = jnp.floor(cols)
  fr, fc = rows - r0, cols - c0
  r0 = r0.astype(jnp.int32)
  c0 = c0.astype(jnp.int32)
  r1 = jnp.minimum(r0 + 1, h - 1)
  c1 = jnp.minimum(c0 + 1, w - 1)
  top = image[r0, c0] * (1.0 - fc) + image[r0, c1] * fc
  bottom = image[r1, c0] * (1.0 - fc) + image[r1, c1] * fc
  return top * (1.0 - fr) + bottom * fr


def warp(image: Array, flow: Array) -> Array:
  """``I(y + v, x + u)``: ``image`` ``(H, W)`` pulled back by ``flow``
  ``(H, W, 2)`` (u = dx, v = dy), bilinearly, clamped to the frame."""
  h, w = image.shape
  rows, cols = jnp.meshgrid(jnp.arange(h, dtype=image.dtype),
                            jnp.arange(w, dtype=image.dtype), indexing="ij")
  return sample_bilinear(image, rows + flow[..., 1], cols + flow[..., 0])


def upsample_flow(flow: Array) -> Array:
  """A flow ``(h, w, 2)`` on the grid twice as fine, ``(2h, 2w, 2)``:
  bilinear (fine pixel i sits at coarse coordinate ``(i + 0.5) / 2 - 0.5``,
  clamped) and doubled, since a pixel of the coarse scale is two fine ones."""
  h, w = flow.shape[:2]

  def coarse(n):
    return (jnp.arange(2 * n, dtype=flow.dtype) + 0.5) / 2 - 0.5

  rows, cols = jnp.meshgrid(coarse(h), coarse(w), indexing="ij")
  return 2.0 * jnp.stack([sample_bilinear(flow[..., k], rows, cols)
                         for k in range(2)], axis=-1)


def _downsample(image: Array) -> Array:
  """2x2 block means: ``(H, W)`` -> ``(H/2, W/2)``."""
  h, w = image.shape
  return image.reshape(h // 2, 2, w // 2, 2).mean(axis=(1, 3))


def _refine(first: Array, second: Array, flow: Array, alpha: float,
            num_iters: int) -> Array:
  """``num_iters`` Jacobi iterations of the energy linearised at ``flow``;
  ``first``, ``second`` ``(C, H, W)``, ``flow`` ``(H, W, 2)``."""
  warped = jax.vmap(warp, in_axes=(0, None))(second, flow)
  gx1, gy1 = jax.vmap(spatial_gradients)(first)
  gx2, gy2 = jax.vmap(spatial_gradients)(warped)
  ix, iy = 0.5 * (gx1 + gx2), 0.5 * (gy1 + gy2)
  u0, v0 = flow[..., 0], flow[..., 1]
  residual0 = warped - first - ix * u0 - iy * v0  # (C, H, W)
  # The 2x2 system (alpha^2 + J) w = alpha^2 w_bar - b per pixel, with the
  # structure tensor J = sum_c g_c g_c^T and b = sum_c g_c residual0_c.
  jxx = jnp.sum(ix * ix, 0) + alpha ** 2
  jxy = jnp.sum(ix * iy, 0)
  jyy = jnp.sum(iy * iy, 0) + alpha ** 2
  bx, by = jnp.sum(ix * residual0, 0), jnp.sum(iy * residual0, 0)
  determinant = jxx * jyy - jxy * jxy

  def iteration(_, uv):
    ru = alpha ** 2 * neighbour_average(uv[0]) - bx
    rv = alpha ** 2 * neighbour_average(uv[1]) - by
    return jnp.stack([(jyy * ru - jxy * rv) / determinant,
                      (jxx * rv - jxy * ru) / determinant])

  uv = lax.fori_loop(0, num_iters, iteration, jnp.stack([u0, v0]))
  return jnp.stack([uv[0], uv[1]], axis=-1)


def horn_schunck(frame1: Array, frame2: Array, *, alpha: float = 0.1,
                 num_iters: int = 50, num_scales: int = 1,
                 num_warps: int = 3) -> Array:
  r"""Optical flow from ``frame1`` to ``frame2``; see the module docstring.

  Args:
    frame1, frame2: float frames ``(H, W)`` or ``(H, W, C)`` (all C
      channels enter the data term), intensities in [0, 1] (the scale
      ``alpha`` is set for).
    alpha: the smoothness weight :math:`\alpha` (in intensity units: with
      intensities in [0, 255] the same flow needs 255 times it).
    num_iters: Jacobi iterations per warp (static).
    num_scales: pyramid levels (static, >= 1); H and W must be divisible
      by ``2 ** (num_scales - 1)``.
    num_warps: warps (linearisations) per scale (static, >= 1).

  Returns:
    ``(H, W, 2)`` float flow, channel 0 = u = dx (columns), channel 1 =
    v = dy (rows), in pixels: ``frame1[y, x] ~ frame2[y + v, x + u]``.
  """
  first, second = _channels_first(frame1), _channels_first(frame2)
  if first.shape != second.shape:
    raise ValueError(
        f"horn_schunck: the frames differ in shape, {frame1.shape} and "
        f"{frame2.shape}; resize them to one size first.")
  for name, value, low in (("num_iters", num_iters, 0),
                           ("num_scales", num_scales, 1),
                           ("num_warps", num_warps, 1)):
    if not isinstance(value, int) or value < low:
      raise ValueError(
          f"horn_schunck: {name} must be a static int >= {low}, got "
          f"{value!r}.")
  factor = 2 ** (num_scales - 1)
  h, w = first.shape[1:]
  if h % factor or w % factor:
    raise ValueError(
        f"horn_schunck: a {h}x{w} frame cannot be halved {num_scales - 1} "
        f"times (num_scales={num_scales}); use fewer scales or a size "
        f"divisible by {factor}.")
  dtype = jnp.promote_types(first.dtype, jnp.float32)
  pyramid = [(first.astype(dtype), second.astype(dtype))]
  for _ in range(num_scales - 1):
    pyramid.append(tuple(jax.vmap(_downsample)(x) for x in pyramid[-1]))
  # zeros_like keeps the frames' varying axes inside a shard_map, so that
  # the loops' carries keep one type.
  zero = jnp.zeros_like(pyramid[-1][0][0] + pyramid[-1][1][0])
  flow = jnp.stack([zero, zero], axis=-1)
  for level, (one, two) in enumerate(reversed(pyramid)):
    if level:
      flow = upsample_flow(flow)
    flow = lax.fori_loop(
        0, num_warps,
        lambda _, f, one=one, two=two: _refine(one, two, f, alpha, num_iters),
        flow)
  return flow


def flow_to_image(flow: Array, max_flow: float) -> Array:
  r"""A flow ``(..., 2)`` as a 3-channel network input ``(..., 3)``:
  :math:`(u, v, \sqrt{u^2 + v^2}) / \text{max\_flow}`, each clipped to
  [-1, 1] (the magnitude to [0, 1]); ``max_flow`` in pixels, e.g. the
  fastest motion expected."""
  if not max_flow > 0:
    raise ValueError(f"flow_to_image: max_flow must be > 0, got {max_flow!r}.")
  scaled = flow / max_flow
  # The floor keeps the gradient finite at zero flow.
  magnitude = jnp.sqrt(jnp.maximum(
      jnp.sum(scaled * scaled, axis=-1, keepdims=True), 1e-24))
  return jnp.concatenate([jnp.clip(scaled, -1.0, 1.0),
                          jnp.minimum(magnitude, 1.0)], axis=-1)
