"""From per-window embeddings to SyncNet's offset, confidence (Sync-C) and distance (Sync-D).

Every video window is compared with the audio windows up to ``MAX_SHIFT`` frames before and
after it; the distances are averaged over the clip for each shift. The shift with the smallest
mean distance is the offset, that distance is Sync-D, and the median mean distance minus it is
Sync-C: how much the best shift stands out. As in ``syncnet_python`` (whose evaluation the
published Sync-C / Sync-D and Wav2Lip's LSE-C / LSE-D numbers come from), audio windows beyond
either end of the clip count as zero embeddings, and ``MAX_SHIFT`` is 15 frames.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MAX_SHIFT = 15  # frames at 25 fps: +-0.6 s


@dataclass(frozen=True)
class SyncResult:
    """``offset`` > 0: the mouth shows a sound that many frames after the audio plays it
    (the audio leads); < 0: the audio lags the picture."""

    offset: int
    confidence: float  # Sync-C (LSE-C)
    distance: float  # Sync-D (LSE-D)
    windows: int


def shift_distances(video: np.ndarray, audio: np.ndarray, max_shift: int = MAX_SHIFT) -> np.ndarray:
    """Mean distance between video window ``i`` and audio window ``i + s`` over the clip, for
    ``s`` from ``-max_shift`` to ``max_shift``; audio outside the clip is a zero embedding."""
    count = min(len(video), len(audio))
    video, audio = video[:count], audio[:count]
    padded = np.zeros((count + 2 * max_shift, audio.shape[1]), audio.dtype)
    padded[max_shift : max_shift + count] = audio
    shifts = np.arange(2 * max_shift + 1)
    rows = padded[np.arange(count)[:, None] + shifts[None, :]]  # (count, shifts, dim)
    return np.linalg.norm(rows - video[:, None, :], axis=2).mean(axis=0)


def sync_offset(video: np.ndarray, audio: np.ndarray, max_shift: int = MAX_SHIFT) -> SyncResult:
    """The offset, Sync-C and Sync-D of a clip's window embeddings (``(windows, dim)`` each)."""
    means = shift_distances(video, audio, max_shift)
    best = int(np.argmin(means))
    return SyncResult(
        offset=max_shift - best,
        confidence=float(np.median(means) - means[best]),
        distance=float(means[best]),
        windows=min(len(video), len(audio)),
    )
