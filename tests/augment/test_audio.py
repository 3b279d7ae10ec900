"""STFT and log-mel against independent references: scipy's STFT and a
numpy loop over frames; mel filters against the HTK formula's corners."""

import jax
import numpy as np
import pytest
from scipy import signal as scipy_signal

from ssl_jax.augment import audio

RNG = np.random.default_rng(0)


def test_stft_equals_scipy():
  x = RNG.standard_normal((3, 1000)).astype(np.float32)
  ours = np.asarray(jax.jit(lambda s: audio.stft(s, 256, 64, center=False))(x))
  # scipy divides by the window's sum; its 'hann' is the periodic window.
  _, _, reference = scipy_signal.stft(
      x, window="hann", nperseg=256, noverlap=256 - 64, boundary=None,
      padded=False, detrend=False, return_onesided=True)
  reference = np.swapaxes(reference, -1, -2) * audio.hann_window(256).sum()
  assert ours.shape == reference.shape == (3, 1 + (1000 - 256) // 64, 129)
  np.testing.assert_allclose(ours, reference, atol=2e-3, rtol=1e-4)


def test_centred_stft_frames_are_centred_on_the_hop():
  x = RNG.standard_normal(800).astype(np.float32)
  ours = np.asarray(audio.stft(x, 128, 80))
  padded = np.pad(x, 64, mode="reflect")
  frames = [padded[t * 80:t * 80 + 128] for t in range(1 + 800 // 80)]
  reference = np.fft.rfft(np.asarray(frames) * audio.hann_window(128))
  np.testing.assert_allclose(ours, reference, atol=1e-3, rtol=1e-4)


def test_a_pure_tone_lands_in_its_bin_and_its_mel_band():
  rate, freq = 8000, 1000.0
  t = np.arange(8000) / rate
  tone = np.sin(2 * np.pi * freq * t).astype(np.float32)
  spectrum = np.abs(np.asarray(audio.stft(tone, 256, 128)))
  assert np.all(np.argmax(spectrum[2:-2], axis=-1) == freq * 256 / rate)
  log_mel = np.asarray(audio.log_mel_spectrogram(tone, rate, 256, 128, 40))
  filters = audio.mel_filterbank(40, 256, rate)
  assert np.all(np.argmax(log_mel[2:-2], -1) == np.argmax(filters[32]))


def test_mel_filters_follow_the_htk_corners():
  filters = audio.mel_filterbank(10, 512, 16000, fmin=100.0, fmax=7000.0)
  assert filters.shape == (257, 10)
  corners = audio.mel_to_hz(np.linspace(audio.hz_to_mel(100.0),
                                        audio.hz_to_mel(7000.0), 12))
  bins = np.arange(257) * 16000 / 512
  for j in range(10):
    inside = (bins > corners[j]) & (bins < corners[j + 2])
    assert np.all(filters[inside, j] > 0) and np.all(filters[~inside, j] == 0)
    assert filters[:, j].max() <= 1.0
  np.testing.assert_allclose(audio.mel_to_hz(audio.hz_to_mel(440.0)), 440.0)
  np.testing.assert_allclose(audio.hz_to_mel(700.0), 2595 * np.log10(2))


def test_log_mel_floor_and_bad_input():
  silence = np.zeros(1000, np.float32)
  out = np.asarray(audio.log_mel_spectrogram(silence, 8000, 256, 128, 20))
  np.testing.assert_allclose(out, np.log(1e-6), rtol=1e-6)
  with pytest.raises(ValueError, match="too short"):
    audio.stft(np.zeros(100, np.float32), 256, 64, center=False)
  with pytest.raises(ValueError, match="fmax"):
    audio.mel_filterbank(20, 256, 8000, fmax=5000.0)
