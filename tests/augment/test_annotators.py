"""Classical annotators against OpenCV, scikit-image and numpy references:
grey and Sobel (cv2.cvtColor, cv2.Sobel, skimage.filters.sobel), Canny
(cv2.Canny with L2gradient=True, pixel for pixel on CIFAR-10 images and
synthetic shapes), frame differencing (cv2.absdiff + cv2.threshold +
cv2.dilate), depth from a known parallax flow and spectral-residual
saliency (a numpy transcription of Hou & Zhang's algorithm)."""

import pathlib

import cv2
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import ndimage
from scipy import stats
from skimage import filters

from ssl_jax import augment
from ssl_jax.augment import annotators

CIFAR = (pathlib.Path(__file__).resolve().parents[2].parent / "shared"
         / "datasets" / "cifar10" / "test.npz")


@pytest.fixture(scope="module")
def cifar():
  """16 real CIFAR-10 test images, uint8 ``(16, 32, 32, 3)``."""
  if not CIFAR.exists():
    pytest.skip(f"no CIFAR-10 test split at {CIFAR}")
  return np.load(CIFAR)["image"][:16]


def synthetic_shapes():
  """uint8 grey images ``(48, 64)`` of drawn shapes: filled and outlined,
  axis-aligned and oblique, touching the border, blurred and sharp."""
  images = []
  canvas = np.full((48, 64), 40, np.uint8)
  cv2.circle(canvas, (20, 22), 12, 200, -1)
  cv2.rectangle(canvas, (38, 6), (60, 30), 120, -1)
  cv2.line(canvas, (0, 47), (63, 30), 255, 1)
  images.append(canvas)
  images.append(cv2.GaussianBlur(canvas, (5, 5), 1.2))
  polygon = np.zeros((48, 64), np.uint8)
  cv2.fillPoly(polygon, [np.array([[5, 40], [30, 3], [62, 25], [40, 47]])],
               180)
  cv2.ellipse(polygon, (15, 15), (14, 6), 30, 0, 360, 90, 2)
  images.append(polygon)
  y, x = np.mgrid[0:48, 0:64]
  images.append(((x // 8 + y // 8) % 2 * 150 + 50).astype(np.uint8))
  images.append((127 + 100 * np.sin(x / 5.0) * np.cos(y / 7.0)).astype(
      np.uint8))
  return images


def agreement(ours, reference):
  return float(np.mean(np.asarray(ours) == np.asarray(reference)))


# ---------------------------------------------------------------- grey


def test_grey_uses_opencv_weights(cifar):
  rgb = cifar.astype(np.float32) / 255.0
  ours = jax.vmap(annotators.grey)(rgb)
  reference = np.stack([cv2.cvtColor(x, cv2.COLOR_RGB2GRAY) for x in rgb])
  np.testing.assert_allclose(ours, reference, atol=1e-6)
  # One channel, and (H, W), are returned as they are.
  np.testing.assert_array_equal(annotators.grey(rgb[0, ..., :1]),
                                rgb[0, ..., 0])
  np.testing.assert_array_equal(annotators.grey(rgb[0, ..., 0]),
                                rgb[0, ..., 0])


def test_grey_uint8_is_opencvs_8bit_conversion(cifar):
  rng = np.random.default_rng(0)
  colours = rng.integers(0, 256, size=(256, 256, 3), dtype=np.uint8)
  for image in [colours, *cifar[:4]]:
    ours = annotators.grey(image / 255.0, uint8=True)
    np.testing.assert_array_equal(
        ours, cv2.cvtColor(image, cv2.COLOR_RGB2GRAY).astype(np.float32))


# ---------------------------------------------------------------- Sobel


@pytest.mark.parametrize("border,cv_border", [
    ("reflect_101", cv2.BORDER_DEFAULT),  # BORDER_REFLECT_101
    ("replicate", cv2.BORDER_REPLICATE),
])
def test_sobel_matches_cv2(cifar, border, cv_border):
  rng = np.random.default_rng(1)
  images = [rng.uniform(size=(23, 37, 1)).astype(np.float32),
            rng.uniform(size=(32, 32, 3)).astype(np.float32),
            *(cifar[:4].astype(np.float32) / 255.0)]
  for image in images:
    gx, gy = jax.jit(lambda x: annotators.sobel(x, border=border))(image)
    g = np.asarray(annotators.grey(image), np.float64)
    np.testing.assert_allclose(
        gx, cv2.Sobel(g, cv2.CV_64F, 1, 0, ksize=3, borderType=cv_border),
        atol=2e-6)
    np.testing.assert_allclose(
        gy, cv2.Sobel(g, cv2.CV_64F, 0, 1, ksize=3, borderType=cv_border),
        atol=2e-6)


def test_gradient_magnitude_is_skimage_sobel_times_4_sqrt2(cifar):
  # skimage.filters.sobel: kernels [1, 2, 1] / 4 x [1, 0, -1], magnitude
  # sqrt((h^2 + v^2) / 2), so ours = 4 * sqrt(2) * skimage's. Its "mirror"
  # mode is OpenCV's BORDER_REFLECT_101; its default "reflect" differs on
  # the border only.
  for image in cifar[:4].astype(np.float32) / 255.0:
    ours = np.asarray(annotators.gradient_magnitude(image))
    g = np.asarray(annotators.grey(image), np.float64)
    np.testing.assert_allclose(
        ours, 4 * np.sqrt(2) * filters.sobel(g, mode="mirror"), atol=2e-6)
    np.testing.assert_allclose(
        ours[1:-1, 1:-1], 4 * np.sqrt(2) * filters.sobel(g)[1:-1, 1:-1],
        atol=2e-6)


# ---------------------------------------------------------------- Canny


def cv2_canny(grey_u8, low, high):
  return cv2.Canny(grey_u8, low, high, L2gradient=True) > 0


@pytest.mark.parametrize("low,high", [(50, 150), (100, 200), (10, 30),
                                      (30.5, 77.3), (120, 40)])
def test_canny_equals_cv2_on_cifar(cifar, low, high):
  ours = jax.jit(jax.vmap(lambda x: annotators.canny(x, low, high)))(
      cifar / 255.0)
  reference = np.stack([
      cv2_canny(cv2.cvtColor(x, cv2.COLOR_RGB2GRAY), low, high)
      for x in cifar])
  assert ours.dtype == jnp.bool_ and ours.shape == reference.shape
  assert 0.05 < reference.mean() < 0.5  # edges and non-edges both occur
  # Measured: 100% of pixels agree (16 images x 1024 pixels).
  np.testing.assert_array_equal(ours, reference)


@pytest.mark.parametrize("low,high", [(20, 60), (50, 150), (100, 300)])
def test_canny_equals_cv2_on_synthetic_shapes(low, high):
  references = []
  for image in synthetic_shapes():
    ours = annotators.canny(image[..., None] / 255.0, low, high)
    references.append(cv2_canny(image, low, high))
    np.testing.assert_array_equal(ours, references[-1])
  assert sum(r.any() for r in references) >= 4


def test_canny_float_path(cifar):
  """Without rounding (``quantize=False``), on the cv2 grey levels the
  gradients are the same up to float rounding: measured equal. On the
  unrounded float grey of the RGB image the input itself differs from cv2's
  uint8 grey by up to half a level, which flips threshold and NMS ties:
  measured 99.2-99.7% agreement (256 images, thresholds 20/60 to
  100/200), not an error of the algorithm."""
  greys = np.stack([cv2.cvtColor(x, cv2.COLOR_RGB2GRAY) for x in cifar])
  reference = np.stack([cv2_canny(g, 50, 150) for g in greys])
  same_levels = jax.vmap(lambda x: annotators.canny(
      x, 50, 150, quantize=False))(greys[..., None] / 255.0)
  np.testing.assert_array_equal(same_levels, reference)
  float_grey = jax.vmap(lambda x: annotators.canny(
      x, 50, 150, quantize=False))(cifar / 255.0)
  assert agreement(float_grey, reference) >= 0.99


def test_canny_hysteresis_keeps_weak_pixels_connected_to_strong_ones():
  # A vertical step whose contrast falls from strong (top) to weak (bottom),
  # and a separate weak step: the first edge is kept whole, the second
  # dropped.
  image = np.zeros((40, 40), np.float32)
  image[:, 10:] = np.linspace(0.6, 0.15, 40)[:, None]
  image[:, 30:] += 0.1  # weak everywhere
  edges = np.asarray(annotators.canny(image, 40, 300))
  reference = cv2_canny(np.round(image * 255).astype(np.uint8), 40, 300)
  np.testing.assert_array_equal(edges, reference)
  assert edges[:, 9:11].any(axis=1).all()  # the whole step, weak part too
  assert not edges[:, 28:32].any()


def test_canny_traced_thresholds_and_vmap_match_single_calls(cifar):
  images = cifar[:4] / 255.0
  traced = jax.jit(jax.vmap(annotators.canny, in_axes=(0, 0, 0)))(
      images, jnp.array([20.0, 50, 80, 100]), jnp.array([60.0, 150, 160, 250]))
  for i, (low, high) in enumerate([(20, 60), (50, 150), (80, 160),
                                   (100, 250)]):
    np.testing.assert_array_equal(traced[i],
                                  annotators.canny(images[i], low, high))


# ---------------------------------------------------------------- motion


def moving_frames(seed=2):
  """Two uint8 RGB frames ``(40, 48, 3)``: noise plus a moving block."""
  rng = np.random.default_rng(seed)
  a = rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)
  b = np.clip(a.astype(int) + rng.integers(-12, 13, a.shape), 0, 255)
  b = b.astype(np.uint8)
  b[10:20, 15:30] = rng.integers(0, 256, (10, 15, 3), dtype=np.uint8)
  return a, b


@pytest.mark.parametrize("threshold", [0, 10, 25.5, 60])
@pytest.mark.parametrize("dilate", [0, 1, 2])
def test_motion_mask_equals_cv2(threshold, dilate):
  a, b = moving_frames()
  difference = cv2.absdiff(a, b).max(axis=-1)
  _, reference = cv2.threshold(difference, threshold, 255, cv2.THRESH_BINARY)
  if dilate:
    reference = cv2.dilate(reference, np.ones((3, 3), np.uint8),
                           iterations=dilate)
  reference = reference > 0
  ours = annotators.motion_mask(a, b, threshold, dilate=dilate)
  assert ours.dtype == jnp.bool_
  np.testing.assert_array_equal(ours, reference)
  # Float frames in [0, 1] with the threshold between two grey levels.
  if float(threshold).is_integer():
    floats = annotators.motion_mask(a / 255.0, b / 255.0,
                                    (threshold + 0.5) / 255.0, dilate=dilate)
    np.testing.assert_array_equal(floats, reference)


def test_motion_mask_on_grey_frames_and_under_vmap():
  a, b = moving_frames(3)
  frames_a = np.stack([a[..., 0], a[..., 1]])
  frames_b = np.stack([b[..., 0], b[..., 1]])
  batch = jax.jit(jax.vmap(lambda x, y: annotators.motion_mask(
      x, y, 20, dilate=1)))(frames_a, frames_b)
  for i in range(2):
    _, reference = cv2.threshold(cv2.absdiff(frames_a[i], frames_b[i]), 20,
                                 255, cv2.THRESH_BINARY)
    reference = cv2.dilate(reference, np.ones((3, 3), np.uint8)) > 0
    np.testing.assert_array_equal(batch[i], reference)


# ---------------------------------------------------------------- depth


def parallax_flow(depth, shift):
  """The flow ``-s / z`` of a static scene, ``(H, W, 2)`` (u, v)."""
  return -np.asarray(shift)[None, None, :] / depth[..., None]


def smooth_depth(h=24, w=32):
  y, x = np.mgrid[0:h, 0:w]
  return 1.0 + 4.0 * (x / w) + 2.0 * np.sin(y / 5.0) ** 2


def test_depth_from_an_exact_parallax_flow():
  depth = smooth_depth()
  shift = np.array([3.0, -1.5])
  flow = parallax_flow(depth, shift).astype(np.float32)
  recovered = annotators.relative_depth_from_parallax(flow, shift)
  np.testing.assert_allclose(recovered, depth, rtol=1e-5)
  np.testing.assert_allclose(
      annotators.relative_depth_from_parallax(flow, shift, inverse=True),
      1.0 / depth, rtol=1e-5)
  # Flow across the camera motion carries no depth and is ignored.
  across = np.array([1.5, 3.0]) / np.hypot(1.5, 3.0)
  noisy = flow + np.random.default_rng(4).normal(
      size=depth.shape)[..., None] * across
  np.testing.assert_allclose(
      annotators.relative_depth_from_parallax(noisy.astype(np.float32),
                                              shift),
      depth, rtol=1e-5)
  # The scale of the camera shift scales the depth; its direction alone
  # fixes the order.
  np.testing.assert_allclose(
      annotators.relative_depth_from_parallax(flow, 2 * shift), 2 * depth,
      rtol=1e-5)


def test_depth_is_clipped_where_there_is_no_parallax():
  flow = np.zeros((4, 5, 2), np.float32)
  flow[0, 0] = [0.5, 0.0]  # against the expected direction
  flow[1, 1] = [-2.0, 0.0]
  depth = np.asarray(annotators.relative_depth_from_parallax(
      flow, np.array([4.0, 0.0]), eps=0.01))
  assert np.isfinite(depth).all()
  assert depth[1, 1] == pytest.approx(2.0)
  np.testing.assert_allclose(np.delete(depth.ravel(), 6), 4.0 / 0.01)


def test_depth_rank_order_survives_noise():
  rng = np.random.default_rng(5)
  shift = np.array([2.0, 1.0])
  # Four planes at depths 1, 2, 4, 8: parallax 2.24, 1.12, 0.56, 0.28 px.
  levels = np.array([1.0, 2.0, 4.0, 8.0])
  labels = rng.integers(0, 4, size=(24, 32))
  depth = levels[labels]
  flow = parallax_flow(depth, shift) + rng.normal(0, 0.03, (24, 32, 2))
  recovered = np.asarray(annotators.relative_depth_from_parallax(
      flow.astype(np.float32), shift, eps=0.05))
  for k in range(3):
    assert recovered[labels == k].max() < recovered[labels == k + 1].min()
  smooth = smooth_depth()
  flow = parallax_flow(smooth, shift) + rng.normal(0, 0.01, (24, 32, 2))
  recovered = annotators.relative_depth_from_parallax(
      flow.astype(np.float32), shift)
  assert stats.spearmanr(np.ravel(recovered), smooth.ravel())[0] > 0.99


# ---------------------------------------------------------------- saliency


def numpy_spectral_residual(grey, sigma=2.5, eps=1e-3):
  """Hou & Zhang (CVPR 2007), float64 numpy / scipy."""
  spectrum = np.fft.fft2(grey)
  log_amplitude = np.log(np.abs(spectrum) + eps * np.sqrt(grey.size))
  residual = log_amplitude - ndimage.uniform_filter(log_amplitude, 3,
                                                    mode="nearest")
  energy = np.abs(np.fft.ifft2(np.exp(residual + 1j * np.angle(
      spectrum)))) ** 2
  smooth = ndimage.gaussian_filter(energy, sigma, mode="reflect",
                                   truncate=4.0)
  return (smooth - smooth.min()) / (smooth.max() - smooth.min())


@pytest.mark.parametrize("sigma", [1.0, 2.5])
def test_spectral_residual_matches_numpy(cifar, sigma):
  images = cifar[:6].astype(np.float32) / 255.0
  ours = jax.jit(jax.vmap(lambda x: annotators.spectral_residual_saliency(
      x, sigma=sigma)))(images)
  for image, saliency in zip(images, ours):
    reference = numpy_spectral_residual(
        np.asarray(annotators.grey(image), np.float64), sigma)
    np.testing.assert_allclose(saliency, reference, atol=2e-5)
    assert float(saliency.min()) == 0.0
    assert float(saliency.max()) == pytest.approx(1.0)


def test_spectral_residual_finds_a_bright_square():
  image = np.full((64, 64), 0.2, np.float32)
  image[36:46, 12:22] = 0.9
  saliency = np.asarray(annotators.spectral_residual_saliency(image))
  inside = saliency[36:46, 12:22].mean()
  far = np.ones_like(saliency, bool)
  far[26:56, 2:32] = False  # more than 10 px from the square
  assert inside > 0.3 and inside > 5 * saliency[far].mean()
  np.testing.assert_allclose(
      saliency, numpy_spectral_residual(image.astype(np.float64)), atol=2e-5)
  assert np.isfinite(annotators.spectral_residual_saliency(
      np.full((16, 16), 0.5, np.float32))).all()


# ---------------------------------------------------------------- batching


def test_jit_vmap_equals_per_image_calls(cifar):
  images = cifar[:3].astype(np.float32) / 255.0

  def everything(x, y):
    gx, gy = annotators.sobel(x)
    return (gx, gy, annotators.gradient_magnitude(x),
            annotators.canny(x, 30, 90),
            annotators.motion_mask(x, y, 0.1, dilate=1),
            annotators.spectral_residual_saliency(x))

  shifted = np.roll(images, 2, axis=2)
  batched = jax.jit(jax.vmap(everything))(images, shifted)
  for i in range(len(images)):
    for got, want in zip(batched, everything(images[i], shifted[i])):
      np.testing.assert_allclose(got[i], want, atol=1e-6)


def test_exported_from_augment():
  assert augment.annotators is annotators
  from ssl_jax.augment import annotators as imported
  assert imported.canny is annotators.canny
