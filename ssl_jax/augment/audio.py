r"""Audio front end on device: short-time Fourier transform and log-mel
spectrograms, pure JAX (no host audio library).

The inputs of the audio subnetworks of the cross-modal methods
(audio-visual correspondence: Arandjelovic & Zisserman, "Look, Listen and
Learn", ICCV 2017, and "Objects that Sound", ECCV 2018, which feed a
log-spectrogram to a ConvNet). Every function works on the last axis of a
batch of waveforms and runs under ``jit`` and ``vmap``.

STFT of a signal :math:`x` with window :math:`w` of length :math:`N` (the
FFT size) and hop :math:`H`:

.. math::
   X[t, k] = \sum_{n=0}^{N-1} w[n] \, x[tH + n] \, e^{-2\pi i k n / N},
   \qquad k = 0, \dots, N/2,

with the periodic Hann window :math:`w[n] = \tfrac12 (1 - \cos(2\pi n/N))`.
With ``center=True`` the signal is first padded by :math:`N/2` on both sides
(reflected), so frame :math:`t` is centred on sample :math:`tH`.

Mel scale (O'Shaughnessy 1987, the HTK formula): :math:`m(f) = 2595
\log_{10}(1 + f / 700)`. The filterbank has ``num_mels`` triangular filters
whose corners are ``num_mels + 2`` points equally spaced in mel between
``fmin`` and ``fmax``; filter :math:`j` rises linearly from corner
:math:`j` to 1 at corner :math:`j + 1` and falls to 0 at corner
:math:`j + 2`, evaluated at the FFT bin frequencies :math:`k \cdot sr / N`.
The log-mel spectrogram is :math:`\log(\max(M |X|^2, \epsilon))`.
"""

import jax
import jax.numpy as jnp
import numpy as np

Array = jax.Array


def hann_window(length: int) -> np.ndarray:
  """The periodic Hann window of ``length`` samples (float32)."""
  n = np.arange(length)
  return (0.5 - 0.5 * np.cos(2.0 * np.pi * n / length)).astype(np.float32)


def _check_stft(signal, fft_size: int, hop_length: int, center: bool) -> None:
  if fft_size < 2 or hop_length < 1:
    raise ValueError(f"stft: need fft_size >= 2 and hop_length >= 1, got "
                     f"{fft_size} and {hop_length}.")
  length = signal.shape[-1]
  needed = fft_size // 2 + 1 if center else fft_size
  if length < needed:
    raise ValueError(
        f"stft: a signal of {length} samples is too short for fft_size="
        f"{fft_size} (center={center} needs at least {needed}); pad the "
        "signal or use a smaller fft_size.")


def stft(signal: Array, fft_size: int, hop_length: int,
         center: bool = True) -> Array:
  """Complex STFT of ``signal`` ``(..., L)``: ``(..., frames, fft_size//2+1)``.

  ``frames = 1 + (L' - fft_size) // hop_length`` with ``L' = L + fft_size``
  when ``center`` (reflect padding), else ``L``. See the module docstring.
  """
  signal = jnp.asarray(signal, jnp.float32)
  _check_stft(signal, fft_size, hop_length, center)
  if center:
    pad = [(0, 0)] * (signal.ndim - 1) + [(fft_size // 2, fft_size // 2)]
    signal = jnp.pad(signal, pad, mode="reflect")
  num_frames = 1 + (signal.shape[-1] - fft_size) // hop_length
  starts = np.arange(num_frames) * hop_length
  frame_index = starts[:, None] + np.arange(fft_size)[None, :]
  frames = signal[..., frame_index]  # (..., frames, fft_size)
  return jnp.fft.rfft(frames * hann_window(fft_size), axis=-1)


def hz_to_mel(frequency):
  """HTK mel of ``frequency`` in Hz: ``2595 log10(1 + f / 700)``."""
  return 2595.0 * np.log10(1.0 + np.asarray(frequency, np.float64) / 700.0)


def mel_to_hz(mel):
  """Inverse of :func:`hz_to_mel`."""
  return 700.0 * (10.0 ** (np.asarray(mel, np.float64) / 2595.0) - 1.0)


def mel_filterbank(num_mels: int, fft_size: int, sample_rate: float,
                   fmin: float = 0.0, fmax: float | None = None) -> np.ndarray:
  """Triangular mel filters, float32 ``(fft_size // 2 + 1, num_mels)``
  (peak 1; see the module docstring). ``fmax`` defaults to Nyquist."""
  fmax = sample_rate / 2.0 if fmax is None else fmax
  if not 0.0 <= fmin < fmax <= sample_rate / 2.0:
    raise ValueError(
        f"mel_filterbank: need 0 <= fmin < fmax <= sample_rate / 2 = "
        f"{sample_rate / 2}, got fmin={fmin}, fmax={fmax}.")
  if num_mels < 1:
    raise ValueError(f"mel_filterbank: num_mels must be >= 1, got {num_mels}.")
  corners = mel_to_hz(np.linspace(hz_to_mel(fmin), hz_to_mel(fmax),
                                  num_mels + 2))
  bins = np.arange(fft_size // 2 + 1) * sample_rate / fft_size
  lower, centre, upper = corners[:-2], corners[1:-1], corners[2:]
  rising = (bins[:, None] - lower) / (centre - lower)
  falling = (upper - bins[:, None]) / (upper - centre)
  return np.maximum(0.0, np.minimum(rising, falling)).astype(np.float32)


def log_mel_spectrogram(signal: Array, sample_rate: float, fft_size: int,
                        hop_length: int, num_mels: int, fmin: float = 0.0,
                        fmax: float | None = None, eps: float = 1e-6,
                        center: bool = True) -> Array:
  """``log(max(mel power, eps))`` of ``signal`` ``(..., L)``:
  ``(..., frames, num_mels)``, time first (an image of frames x mels)."""
  # Signals louder than 1 are divided by their peak s first and log(s^2)
  # added back: the power of a float32 signal above ~1e17 overflows (and
  # inf * 0 in the filterbank product gave NaN). Signals in [-1, 1] are not
  # rescaled, and give exactly log(max(mel power, eps)). s is at most 2^126:
  # XLA:CPU divides by multiplying with the reciprocal, which flushes to 0
  # above that.
  signal = jnp.asarray(signal, jnp.float32)
  peak = jnp.clip(jnp.max(jnp.abs(signal), axis=-1, keepdims=True), 1.0,
                  2.0 ** 126)
  power = jnp.abs(stft(signal / peak, fft_size, hop_length, center)) ** 2
  filters = mel_filterbank(num_mels, fft_size, sample_rate, fmin, fmax)
  mel = power @ filters
  tiny = jnp.finfo(jnp.float32).tiny  # log(0) = -inf would NaN the gradient
  return jnp.maximum(jnp.log(jnp.maximum(mel, tiny)) + 2.0 * jnp.log(peak)[
      ..., None], jnp.log(jnp.float32(eps)))
