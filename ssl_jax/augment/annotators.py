r"""Classical automatic annotators: dense pseudo-labels from pixels alone.

Hand-designed, label-free "annotators" whose outputs serve as regression or
segmentation targets for auxiliary pretext tasks: grey level, Sobel
gradients, Canny edges, a frame-difference motion mask, depth from known
ego-motion parallax and spectral-residual saliency.

Every function works on ONE image (or frame pair, or flow field) and is a
pure JAX function with static shapes: it runs under ``jit`` (the arguments
marked static must be Python values) and batches with ``jax.vmap``. Images
are ``(H, W, C)`` channels last with C = 1 or 3 (or a plain ``(H, W)``
grey image), floats in [0, 1] unless said otherwise. RGB is reduced to grey
with the ITU-R 601 luma weights that OpenCV's ``COLOR_RGB2GRAY`` uses,
:math:`Y = 0.299 R + 0.587 G + 0.114 B`.

Conventions shared with OpenCV, so that :func:`sobel`, :func:`canny` and
:func:`motion_mask` reproduce ``cv2.Sobel``, ``cv2.Canny`` and
``cv2.absdiff`` + ``cv2.threshold`` + ``cv2.dilate``:

* Sobel (3x3) correlates with :math:`[1, 2, 1]^\top [-1, 0, 1]` (x, along
  the columns) and its transpose (y, along the rows), unnormalised; the
  default border is OpenCV's ``BORDER_REFLECT_101`` (``gfedcb|abcdefgh``).
* Canny works on the grey image in 0..255 units and takes its thresholds in
  those units, as ``cv2.Canny`` does on a uint8 image.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from jax import lax

from ssl_jax.augment.color import LUMA_WEIGHTS
from ssl_jax.augment.color import gaussian_kernel1d

__all__ = [
    "canny",
    "dilate3x3",
    "gradient_magnitude",
    "grey",
    "motion_mask",
    "relative_depth_from_parallax",
    "sobel",
    "spectral_residual_saliency",
]

Array = jax.Array

# OpenCV's fixed-point RGB -> grey for 8-bit images (imgproc
# color_rgb.simd.hpp, RY15 / GY15 / BY15 with gray_shift = 15): 2^15 *
# (0.299, 0.587, 0.114) rounded so that the weights sum to 2^15. Checked
# equal to cv2.cvtColor(.., COLOR_RGB2GRAY) (OpenCV 5.1) on all 2^24 colours.
_CV_GREY_WEIGHTS_Q15 = (9798, 19235, 3735)
_CV_GREY_SHIFT = 15
# OpenCV's Canny sector test (canny.cpp): tan(22.5 deg) = sqrt(2) - 1 in
# fixed point with CANNY_SHIFT = 15, and tan(67.5 deg) = tan(22.5 deg) + 2.
_CANNY_SHIFT = 15
_CANNY_TG22 = int(0.4142135623730950488016887242097 * (1 << _CANNY_SHIFT)
                  + 0.5)  # 13573

_BORDERS = {"reflect_101": "reflect", "replicate": "edge"}


def _as_channels(image: Array, fn: str) -> Array:
  """``image`` as ``(H, W, C)``, C = 1 or 3, from ``(H, W)`` or HWC."""
  image = jnp.asarray(image)
  if image.ndim == 2:
    image = image[..., None]
  if image.ndim != 3 or image.shape[-1] not in (1, 3):
    raise ValueError(
        f"{fn}: expected one image (H, W), (H, W, 1) or (H, W, 3), got shape "
        f"{image.shape}; vmap over a batch.")
  return image


def grey(image: Array, *, uint8: bool = False) -> Array:
  r"""Grey level ``(H, W)`` of an image ``(H, W, C)`` (C = 1 or 3) or
  ``(H, W)``.

  For RGB, :math:`Y = 0.299 R + 0.587 G + 0.114 B` (ITU-R BT.601 luma, the
  weights of OpenCV's ``COLOR_RGB2GRAY`` on float images); one channel is
  returned as it is.

  Args:
    image: the image, floats in [0, 1].
    uint8: static. If True, reproduce ``cv2.cvtColor(u8, COLOR_RGB2GRAY)``
      of the 8-bit image ``u8 = round(255 * image)`` exactly: OpenCV's
      fixed-point rule :math:`Y = (9798 R + 19235 G + 3735 B + 2^{14}) \gg
      15` on the 0..255 levels. The result is then in 0..255 units (integral
      values, float dtype), not in [0, 1].

  Returns:
    ``(H, W)`` floats: in [0, 1], or 0..255 levels if ``uint8``.
  """
  image = _as_channels(image, "grey")
  dtype = jnp.promote_types(image.dtype, jnp.float32)
  if not uint8:
    if image.shape[-1] == 1:
      return image[..., 0].astype(dtype)
    return jnp.tensordot(image.astype(dtype),
                         jnp.asarray(LUMA_WEIGHTS, dtype), axes=(-1, 0))
  levels = jnp.round(jnp.clip(image.astype(dtype), 0.0, 1.0) * 255.0)
  levels = levels.astype(jnp.int32)
  if image.shape[-1] == 1:
    return levels[..., 0].astype(dtype)
  weights = jnp.asarray(_CV_GREY_WEIGHTS_Q15, jnp.int32)
  fixed = jnp.sum(levels * weights, axis=-1) + (1 << (_CV_GREY_SHIFT - 1))
  return jnp.right_shift(fixed, _CV_GREY_SHIFT).astype(dtype)


def _sobel_2d(plane: Array, border: str) -> tuple[Array, Array]:
  """Unnormalised 3x3 Sobel ``(gx, gy)`` of an ``(H, W)`` plane."""
  if border not in _BORDERS:
    raise ValueError(f"sobel: border must be one of {sorted(_BORDERS)}, got "
                     f"{border!r}.")
  h, w = plane.shape
  padded = jnp.pad(plane, 1, mode=_BORDERS[border])

  def at(dy, dx):
    return padded[1 + dy:1 + dy + h, 1 + dx:1 + dx + w]

  gx = ((at(-1, 1) - at(-1, -1)) + 2.0 * (at(0, 1) - at(0, -1))
        + (at(1, 1) - at(1, -1)))
  gy = ((at(1, -1) - at(-1, -1)) + 2.0 * (at(1, 0) - at(-1, 0))
        + (at(1, 1) - at(-1, 1)))
  return gx, gy


def sobel(image: Array, *, border: str = "reflect_101") -> tuple[Array, Array]:
  r"""3x3 Sobel derivatives ``(gx, gy)`` of the grey image, each ``(H, W)``.

  Sobel & Feldman (1968), as ``cv2.Sobel(g, cv2.CV_64F, 1, 0, ksize=3)``
  and ``(0, 1)``: the correlations

  .. math::
     g_x = \begin{pmatrix} -1 & 0 & 1 \\ -2 & 0 & 2 \\ -1 & 0 & 1
     \end{pmatrix} \star Y, \qquad g_y = g_x\text{'s kernel transposed}
     \star Y,

  unnormalised (a unit step gives 4), ``gx`` along the columns (x, to the
  right), ``gy`` along the rows (y, down); in the units of :func:`grey`.

  Args:
    image: ``(H, W, C)`` (C = 1 or 3) or ``(H, W)`` float image.
    border: static; ``"reflect_101"`` (OpenCV's default
      ``BORDER_REFLECT_101``, ``gfedcb|abcdefgh``) or ``"replicate"``
      (``BORDER_REPLICATE``, ``aaaaaa|abcdefgh``, what ``cv2.Canny`` uses).

  Returns:
    ``(gx, gy)``, floats ``(H, W)``.
  """
  return _sobel_2d(grey(image), border)


def gradient_magnitude(image: Array, *,
                       border: str = "reflect_101") -> Array:
  r"""``(H, W)`` Sobel gradient magnitude :math:`\sqrt{g_x^2 + g_y^2}`.

  Same scale as :func:`sobel`; ``skimage.filters.sobel`` (``mode="mirror"``
  for the same border) divides its kernels by 4 and the sum of squares by
  the number of axes, so it returns this divided by :math:`4\sqrt2`.
  """
  gx, gy = sobel(image, border=border)
  return jnp.sqrt(gx * gx + gy * gy)


def _shift(field: Array, dy: int, dx: int, fill) -> Array:
  """``field[y + dy, x + dx]``, ``fill`` outside the ``(H, W)`` field."""
  h, w = field.shape
  padded = jnp.pad(field, 1, mode="constant", constant_values=fill)
  return padded[1 + dy:1 + dy + h, 1 + dx:1 + dx + w]


def dilate3x3(mask: Array, iterations: int = 1) -> Array:
  """Binary dilation of an ``(H, W)`` bool mask by a 3x3 square,
  ``iterations`` times (static); outside the frame counts as False, like
  ``cv2.dilate`` with its default border."""
  mask = jnp.asarray(mask, bool)
  for _ in range(iterations):
    grown = mask
    for dy in (-1, 0, 1):
      for dx in (-1, 0, 1):
        if dy or dx:
          grown = grown | _shift(mask, dy, dx, False)
    mask = grown
  return mask


def canny(image: Array, low: float, high: float, *,
          quantize: bool = True) -> Array:
  r"""Canny (1986) edges ``(H, W)`` bool, as ``cv2.Canny(.., L2gradient=True)``.

  J. Canny, "A Computational Approach to Edge Detection", IEEE TPAMI 8(6)
  (1986) 679-698, in the form of OpenCV's ``cv::Canny`` (imgproc/src/
  canny.cpp) with ``apertureSize=3`` and ``L2gradient=True``:

  1. Grey image :math:`Y` in 0..255 units; 3x3 Sobel :math:`g_x, g_y` with
     ``BORDER_REPLICATE``; squared magnitude :math:`m = g_x^2 + g_y^2`.
  2. Non-maximum suppression along the gradient direction quantised to 4
     sectors with :math:`t = \tan 22.5^\circ = \sqrt2 - 1` (OpenCV: the
     fixed point ``TG22 = 13573 / 2^15``) and :math:`\tan 67.5^\circ =
     t + 2`: horizontal if :math:`|g_y| < t |g_x|`, vertical if
     :math:`|g_y| > (t + 2) |g_x|`, else diagonal. A pixel survives if
     :math:`m > m_\text{left}` and :math:`m \ge m_\text{right}`
     (horizontal), :math:`m > m_\text{up}` and :math:`m \ge m_\text{down}`
     (vertical), or, diagonal, strictly above both neighbours
     :math:`(y - 1, x - s)` and :math:`(y + 1, x + s)` with :math:`s = -1`
     if exactly one of :math:`g_x, g_y` is negative (0 counts as positive)
     and :math:`s = 1` otherwise. Outside the image :math:`m = 0`.
  3. Double threshold (strict, on the squared magnitude): weak if
     :math:`m > \text{low}^2`, strong if also :math:`m > \text{high}^2`;
     ``low`` and ``high`` are swapped if ``low > high``. On integral
     :math:`m`, this is OpenCV's ``m > floor(low^2)``.
  4. Hysteresis: the edges are the strong pixels and the weak ones
     8-connected to them through weak pixels, computed as the fixed point
     of :math:`E \leftarrow E \lor (W \land \text{dilate}_{3\times3}(E))`
     (``lax.while_loop``; under ``vmap`` it runs until every image of the
     batch has converged).

  With ``quantize=True`` (the default) the grey image is the 8-bit one that
  ``cv2.cvtColor(u8, COLOR_RGB2GRAY)`` makes of ``u8 = round(255 *
  image)`` (see :func:`grey` with ``uint8=True``), so the gradients are
  integers and ``canny(u8 / 255, low, high)`` equals ``cv2.Canny(
  cv2.cvtColor(u8, cv2.COLOR_RGB2GRAY), low, high, L2gradient=True) > 0``
  exactly (for a grey ``(H, W, 1)`` image ``u8 / 255``, ``cv2.Canny(u8,
  ...)``). With ``quantize=False`` the grey image is ``255 * grey(image)``
  unrounded: the same algorithm on real-valued gradients.

  Args:
    image: ``(H, W, C)`` (C = 1 or 3) or ``(H, W)`` float image in [0, 1].
    low, high: hysteresis thresholds on the gradient magnitude
      :math:`\sqrt{g_x^2 + g_y^2}` of the 0..255 grey image, i.e. in the
      same units as ``cv2.Canny``'s ``threshold1`` / ``threshold2`` on a
      uint8 image (e.g. 100 and 200). May be traced.
    quantize: static; see above.

  Returns:
    ``(H, W)`` bool edge map (``cv2.Canny``'s 255 is True).
  """
  if quantize:
    levels = grey(image, uint8=True)
  else:
    levels = 255.0 * grey(image)
  gx, gy = _sobel_2d(levels, "replicate")
  if quantize:  # exact integer arithmetic, as OpenCV's (|g| <= 1020)
    gx, gy = gx.astype(jnp.int32), gy.astype(jnp.int32)
  magnitude = gx * gx + gy * gy

  low = jnp.asarray(low, jnp.float32)
  high = jnp.asarray(high, jnp.float32)
  low, high = jnp.minimum(low, high), jnp.maximum(low, high)

  def squared(threshold):  # OpenCV: clamp to 32767, square if positive.
    threshold = jnp.minimum(threshold, 32767.0)
    return jnp.where(threshold > 0, threshold * threshold, threshold)

  # m > floor(t^2) (OpenCV) is m > t^2 for integral m.
  low2, high2 = squared(low), squared(high)

  ax, ay = jnp.abs(gx), jnp.abs(gy)
  if quantize:
    tg22x = ax * _CANNY_TG22
    ay_fixed = jnp.left_shift(ay, _CANNY_SHIFT)
    horizontal = ay_fixed < tg22x
    vertical = ay_fixed > tg22x + jnp.left_shift(ax, _CANNY_SHIFT + 1)
  else:
    tan22 = _CANNY_TG22 / (1 << _CANNY_SHIFT)
    horizontal = ay < tan22 * ax
    vertical = ay > (tan22 + 2.0) * ax
  s_negative = (gx < 0) != (gy < 0)  # OpenCV's (xs ^ ys) < 0: s = -1

  def m(dy, dx):
    return _shift(magnitude, dy, dx, 0)

  passes_horizontal = (magnitude > m(0, -1)) & (magnitude >= m(0, 1))
  passes_vertical = (magnitude > m(-1, 0)) & (magnitude >= m(1, 0))
  # s = 1: (y - 1, x - 1) and (y + 1, x + 1); s = -1: (y - 1, x + 1) and
  # (y + 1, x - 1).
  passes_diagonal = jnp.where(
      s_negative,
      (magnitude > m(-1, 1)) & (magnitude > m(1, -1)),
      (magnitude > m(-1, -1)) & (magnitude > m(1, 1)))
  maximum = jnp.where(horizontal, passes_horizontal,
                      jnp.where(vertical, passes_vertical, passes_diagonal))
  weak = maximum & (magnitude > low2)
  strong = weak & (magnitude > high2)

  def grow(carry):
    edges, _ = carry
    grown = edges | (weak & dilate3x3(edges))
    return grown, jnp.any(grown != edges)

  edges, _ = lax.while_loop(lambda carry: carry[1], grow,
                            (strong, jnp.any(strong)))
  return edges


def motion_mask(frame_a: Array, frame_b: Array, threshold: float, *,
                dilate: int = 0) -> Array:
  r"""Foreground mask ``(H, W)`` bool by frame differencing.

  .. math::
     M(y, x) = \max_c |a_c(y, x) - b_c(y, x)| > \tau,

  optionally dilated ``dilate`` times by a 3x3 square (:func:`dilate3x3`):
  the classical background-subtraction-by-differencing baseline (e.g.
  Jain & Nagel, "On the Analysis of Accumulative Difference Pictures from
  Image Sequences of Real World Scenes", IEEE TPAMI 1(2) 1979). Equal, on
  uint8 frames, to ``cv2.threshold(cv2.absdiff(a, b).max(-1), tau, 255,
  cv2.THRESH_BINARY)`` followed by ``cv2.dilate(.., np.ones((3, 3)),
  iterations=dilate)``.

  Args:
    frame_a, frame_b: frames of one shape, ``(H, W)`` or ``(H, W, C)``;
      floats (in [0, 1]) or integers (e.g. uint8, differenced exactly in
      int32).
    threshold: :math:`\tau` in the units of the frames: [0, 1] intensity for
      float frames, 0..255 levels for uint8 ones. Strict: a difference of
      exactly :math:`\tau` is background. May be traced.
    dilate: static number of 3x3 dilations (0: none).

  Returns:
    ``(H, W)`` bool mask, True where the frames differ.
  """
  frame_a, frame_b = jnp.asarray(frame_a), jnp.asarray(frame_b)
  if frame_a.shape != frame_b.shape:
    raise ValueError(f"motion_mask: the frames differ in shape, "
                     f"{frame_a.shape} and {frame_b.shape}.")
  if frame_a.ndim not in (2, 3):
    raise ValueError(f"motion_mask: a frame must be (H, W) or (H, W, C), got "
                     f"{frame_a.shape}; vmap over a batch.")
  if not isinstance(dilate, int) or dilate < 0:
    raise ValueError(f"motion_mask: dilate must be a static int >= 0, got "
                     f"{dilate!r}.")
  if (jnp.issubdtype(frame_a.dtype, jnp.integer)
      and jnp.issubdtype(frame_b.dtype, jnp.integer)):
    difference = jnp.abs(frame_a.astype(jnp.int32) - frame_b.astype(jnp.int32))
  else:
    dtype = jnp.promote_types(
        jnp.promote_types(frame_a.dtype, frame_b.dtype), jnp.float32)
    difference = jnp.abs(frame_a.astype(dtype) - frame_b.astype(dtype))
  if difference.ndim == 3:
    difference = jnp.max(difference, axis=-1)
  return dilate3x3(difference > threshold, dilate)


def relative_depth_from_parallax(flow: Array, camera_shift: Array,
                                 eps: float = 1e-3, *,
                                 inverse: bool = False) -> Array:
  r"""Depth ``(H, W)`` of a static scene from the flow of a known sideways
  camera motion (motion parallax).

  A pinhole camera (focal length :math:`f` pixels) translating by
  :math:`T = (T_x, T_y, 0)` parallel to its image plane sees a static point
  at depth :math:`z` move by

  .. math::
     w = -\frac{f T}{z} = -\frac{s}{z}\ \text{pixels}, \qquad s = f T,

  (Longuet-Higgins & Prazdny, "The interpretation of a moving retinal
  image", Proc. R. Soc. Lond. B 208 (1980) 385-397, the translational
  flow with :math:`T_z = 0`; Hartley & Zisserman, *Multiple View Geometry*,
  2nd ed., Sec. 9.7 / 11.12 for depth from a known pure translation). The
  flow projected on the known direction :math:`\hat s = s / |s|`,
  :math:`p = -w \cdot \hat s = |s| / z` (the inverse depth, scaled), gives

  .. math::
     z = \frac{|s|}{\max(p, \epsilon)}.

  Projecting on :math:`\hat s` uses the component of the flow that carries
  depth and discards the noise across it. Pixels with :math:`p \le
  \epsilon` (no parallax: far away, or flow against the expected direction,
  i.e. noise or independently moving objects) get the largest depth
  :math:`|s| / \epsilon`. Depth is metric (in the units of :math:`T`) if
  :math:`s = f T` is known in pixels, and relative (up to the scale of
  :math:`s`) otherwise; only the direction of :math:`s` fixes the order.

  Args:
    flow: ``(H, W, 2)`` optical flow, channel 0 = u = dx (columns),
      channel 1 = v = dy (rows), in pixels (the convention of
      :mod:`ssl_jax.augment.flow`: ``frame1[y, x] ~ frame2[y + v, x + u]``).
    camera_shift: ``(2,)`` :math:`s = f T = (s_x, s_y)`, the image shift
      of a point at unit depth is :math:`-s`; non-zero. May be traced.
    eps: the smallest parallax :math:`\epsilon > 0` in pixels.
    inverse: static; if True return the inverse depth :math:`\max(p,
      \epsilon) / |s| = 1 / z` instead.

  Returns:
    ``(H, W)`` depth (or inverse depth) floats.
  """
  flow = jnp.asarray(flow)
  if flow.ndim != 3 or flow.shape[-1] != 2:
    raise ValueError(f"relative_depth_from_parallax: flow must be (H, W, 2), "
                     f"got shape {flow.shape}; vmap over a batch.")
  dtype = jnp.promote_types(flow.dtype, jnp.float32)
  shift = jnp.asarray(camera_shift, dtype)
  if shift.shape != (2,):
    raise ValueError(f"relative_depth_from_parallax: camera_shift must be "
                     f"(2,) = (s_x, s_y), got shape {shift.shape}.")
  norm = jnp.sqrt(jnp.sum(shift * shift))
  parallax = -jnp.tensordot(flow.astype(dtype), shift / norm, axes=(-1, 0))
  parallax = jnp.maximum(parallax, eps)
  return parallax / norm if inverse else norm / parallax


def _blur_same(plane: Array, taps: Array, pad_mode: str) -> Array:
  """Separable correlation of ``(H, W)`` with symmetric ``taps`` along both
  axes, the border extended by ``jnp.pad`` mode ``pad_mode``."""
  radius = taps.shape[0] // 2
  h, w = plane.shape
  out = plane
  padded = jnp.pad(out, ((radius, radius), (0, 0)), mode=pad_mode)
  out = sum(taps[k] * padded[k:k + h] for k in range(taps.shape[0]))
  padded = jnp.pad(out, ((0, 0), (radius, radius)), mode=pad_mode)
  return sum(taps[k] * padded[:, k:k + w] for k in range(taps.shape[0]))


def spectral_residual_saliency(image: Array, *, sigma: float = 2.5,
                               truncate: float = 4.0,
                               eps: float = 1e-3) -> Array:
  r"""Saliency map ``(H, W)`` in [0, 1] by the spectral residual.

  Hou & Zhang, "Saliency Detection: A Spectral Residual Approach", CVPR
  2007. With :math:`F = \mathcal F[Y]` the 2-D DFT of the grey image,

  .. math::
     L = \log |F|, \quad P = \arg F, \quad R = L - h_3 \star L, \quad
     S = g_\sigma \star \big|\mathcal F^{-1}[\exp(R + i P)]\big|^2,

  :math:`h_3` the 3x3 mean filter, :math:`g_\sigma` a Gaussian; :math:`S`
  is rescaled to [0, 1] by its minimum and maximum (MATLAB's ``mat2gray``;
  a constant map gives 0). Borders follow the authors' reference MATLAB
  code for :math:`h_3` (``imfilter(.., 'replicate')``: edge pixels
  repeated, ``scipy.ndimage`` mode ``"nearest"``); the Gaussian reflects
  the map (``scipy.ndimage`` mode ``"reflect"``, ``dcba|abcd``) where that
  code pads with zeros, so borders are not darkened. :math:`\log |F|` is
  taken as :math:`\log(|F| + \epsilon \sqrt{HW})`: :math:`\epsilon
  \sqrt{HW}` is the expected DFT amplitude of white noise of standard
  deviation :math:`\epsilon` per pixel, so the floor is a noise level in
  intensity units whatever the image size. Without it, frequencies where
  :math:`F` vanishes (many, for synthetic images: a box's sinc has exact
  zeros) have :math:`\log |F| \to -\infty`, or round-off of it, and the
  3x3 mean spreads that into a spurious residual at their neighbours; the
  default, 1e-3, is the rounding noise of 8-bit images,
  :math:`1 / (255 \sqrt{12}) \approx 1.1 \cdot 10^{-3}`.

  The paper computes the map on the image downsampled to 64 pixels wide,
  where the reference code's Gaussian has :math:`\sigma = 2.5`; the scale
  of the salient structures is set by the image size, so resize first
  (e.g. :func:`ssl_jax.augment.resize`) for comparable maps.

  Args:
    image: ``(H, W, C)`` (C = 1 or 3) or ``(H, W)`` float image in [0, 1].
    sigma: static Gaussian standard deviation in pixels (> 0).
    truncate: static; the Gaussian has radius ``int(truncate * sigma +
      0.5)``, as ``scipy.ndimage.gaussian_filter``.
    eps: :math:`\epsilon`, the amplitude floor of the log, as a per-pixel
      noise standard deviation in intensity units (> 0).

  Returns:
    ``(H, W)`` float saliency in [0, 1].
  """
  if not sigma > 0:
    raise ValueError(f"spectral_residual_saliency: sigma must be > 0, got "
                     f"{sigma!r}.")
  plane = grey(image)
  spectrum = jnp.fft.fft2(plane)
  floor = eps * math.sqrt(plane.shape[0] * plane.shape[1])
  log_amplitude = jnp.log(jnp.abs(spectrum) + floor)
  phase = jnp.angle(spectrum)
  mean3 = _blur_same(log_amplitude, jnp.full((3,), 1.0 / 3.0,
                                             log_amplitude.dtype), "edge")
  residual = log_amplitude - mean3
  recombined = jnp.exp(residual) * (jnp.cos(phase) + 1j * jnp.sin(phase))
  energy = jnp.abs(jnp.fft.ifft2(recombined)) ** 2
  energy = energy.astype(plane.dtype)
  radius = int(truncate * sigma + 0.5)
  taps = gaussian_kernel1d(sigma, 2 * radius + 1).astype(plane.dtype)
  smooth = _blur_same(energy, taps, "symmetric")
  low, high = jnp.min(smooth), jnp.max(smooth)
  spread = high - low
  return jnp.where(spread > 0, (smooth - low) / jnp.where(spread > 0, spread,
                                                          1.0), 0.0)
