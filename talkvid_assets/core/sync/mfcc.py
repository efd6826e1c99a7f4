"""SyncNet's audio features: 13 MFCCs per 10 ms of 16 kHz audio.

SyncNet's published weights were trained on ``python_speech_features.mfcc`` with its defaults
(25 ms rectangular windows every 10 ms, pre-emphasis 0.97, a 512-point FFT, 26 mel filters up to
8 kHz, an orthonormal DCT-II keeping 13 coefficients, sine liftering by 22, the first coefficient
replaced by the log frame energy) on 16-bit sample values. That package is not installed, so the
same computation is written here in NumPy from its documented definition; the published weights
only see numbers on the scale they were trained on when samples are scaled to 16-bit.
"""

from __future__ import annotations

import functools

import numpy as np

from talkvid_assets.core.video import AUDIO_RATE

WINDOW = 400  # 25 ms at 16 kHz
STEP = 160  # 10 ms: 100 feature frames per second, four per 25 fps video frame
FFT_SIZE = 512
FILTERS = 26
COEFFICIENTS = 13
LIFTER = 22
PREEMPHASIS = 0.97
INT16_SCALE = 32768.0


def _hz_to_mel(hz: np.ndarray | float) -> np.ndarray:
    return 2595.0 * np.log10(1.0 + np.asarray(hz) / 700.0)


def _mel_to_hz(mel: np.ndarray) -> np.ndarray:
    return 700.0 * (10.0 ** (mel / 2595.0) - 1.0)


@functools.cache
def _filterbank() -> np.ndarray:
    """Triangular mel filters over the FFT bins, ``(FILTERS, FFT_SIZE // 2 + 1)``."""
    mels = np.linspace(_hz_to_mel(0.0), _hz_to_mel(AUDIO_RATE / 2), FILTERS + 2)
    bins = np.floor((FFT_SIZE + 1) * _mel_to_hz(mels) / AUDIO_RATE).astype(int)
    bank = np.zeros((FILTERS, FFT_SIZE // 2 + 1))
    for j in range(FILTERS):
        low, mid, high = bins[j], bins[j + 1], bins[j + 2]
        for i in range(low, mid):
            bank[j, i] = (i - low) / (mid - low)
        for i in range(mid, high):
            bank[j, i] = (high - i) / (high - mid)
    return bank


@functools.cache
def _dct_matrix() -> np.ndarray:
    """The orthonormal DCT-II rows that keep the first ``COEFFICIENTS`` of ``FILTERS``."""
    n = np.arange(FILTERS)
    k = np.arange(COEFFICIENTS)[:, None]
    matrix = np.cos(np.pi * k * (2 * n + 1) / (2 * FILTERS)) * np.sqrt(2.0 / FILTERS)
    matrix[0] /= np.sqrt(2.0)
    return matrix


def mfcc(samples: np.ndarray) -> np.ndarray:
    """MFCCs of 16 kHz mono float samples in [-1, 1], as ``(COEFFICIENTS, frames)``."""
    signal = np.asarray(samples, np.float64) * INT16_SCALE
    if len(signal) == 0:
        return np.zeros((COEFFICIENTS, 0))
    signal = np.append(signal[0], signal[1:] - PREEMPHASIS * signal[:-1])
    frames = 1 + max(0, int(np.ceil((len(signal) - WINDOW) / STEP)))
    padded = np.zeros((frames - 1) * STEP + WINDOW)
    padded[: len(signal)] = signal
    index = np.arange(WINDOW)[None, :] + STEP * np.arange(frames)[:, None]
    power = np.abs(np.fft.rfft(padded[index], FFT_SIZE)) ** 2 / FFT_SIZE
    eps = np.finfo(float).eps
    energy = np.maximum(power.sum(axis=1), eps)
    mel = np.log(np.maximum(power @ _filterbank().T, eps))
    cepstra = mel @ _dct_matrix().T
    cepstra *= 1.0 + (LIFTER / 2.0) * np.sin(np.pi * np.arange(COEFFICIENTS) / LIFTER)
    cepstra[:, 0] = np.log(energy)
    return cepstra.T
