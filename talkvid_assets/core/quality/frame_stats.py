"""Embedded quality backend: a no-reference technical score from blur and blockiness.

DOVER's technical branch looks at native-resolution fragments, because compression and blur
show at the pixel level and vanish when a frame is resized. This backend samples the same kind
of view: a 7x7 grid of 64-pixel fragments of the luma plane, aligned to the 8-pixel coding grid,
from one frame per second. Two classic measures are taken on them:

- sharpness = 1 - blur, with the blur of Crete-Roffet et al. (2007): how much of the local
  variation survives a 9-tap low-pass filter; sharp content loses a lot, blurry content little.
- blockiness = mean absolute step across 8-pixel block boundaries divided by the mean step
  inside blocks; about 1 for clean video, well above 1 when the codec starved.

score = 10 * clamp((sharpness - 0.10) / 0.35, 0, 1) * exp(-4 * max(0, blockiness - 1)), from 0
to 10 (the range ``core/stages.py`` declares for this backend). It is a stand-in on its own
scale, not DOVER's: DOVER's fused score, which TalkVid keeps, is an unbounded mean of z-scores of
DOVER's aesthetic head (``core/quality/dover.py``), so the two are never compared and an export
never writes this score under ``dover_scores``. Calibration on the bundled samples: pristine
carphone 7.5, its 7 KB re-encode 2.0, talk_demo 6.7, bikes 4.8, the animated Megamind 1.8.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from talkvid_assets.core.runtime import Runtime
from talkvid_assets.core.video import Frame, VideoProbe

GRID = 7
FRAGMENT = 64
BLOCK = 8
BLUR_TAPS = 9
SHARPNESS_FLOOR, SHARPNESS_SPAN = 0.10, 0.35
BLOCKINESS_WEIGHT = 4.0


def fragments(luma: np.ndarray) -> list[np.ndarray]:
    """A GRID x GRID set of block-aligned FRAGMENT-pixel patches, or the frame if it is small."""
    height, width = luma.shape
    if height < GRID * FRAGMENT or width < GRID * FRAGMENT:
        return [luma]
    ys = np.linspace(0, height - FRAGMENT, GRID).astype(int) // BLOCK * BLOCK
    xs = np.linspace(0, width - FRAGMENT, GRID).astype(int) // BLOCK * BLOCK
    return [luma[y : y + FRAGMENT, x : x + FRAGMENT] for y in ys for x in xs]


def sharpness(patch: np.ndarray) -> tuple[float, float]:
    """(variation lost to a low-pass filter, total variation), summed over both directions."""
    patch = patch.astype(np.float32)
    lost = total = 0.0
    for axis, kernel in ((0, (1, BLUR_TAPS)), (1, (BLUR_TAPS, 1))):
        blurred = cv2.blur(patch, kernel[::-1])
        variation = np.abs(np.diff(patch, axis=axis))
        blurred_variation = np.abs(np.diff(blurred, axis=axis))
        lost += float(np.maximum(0.0, variation - blurred_variation).sum())
        total += float(variation.sum())
    return lost, total


def blockiness(patch: np.ndarray) -> tuple[float, float]:
    """(mean step across 8-pixel boundaries, mean step inside blocks), both directions."""
    patch = patch.astype(np.float32)
    across = inside = 0.0
    for axis in (0, 1):
        steps = np.abs(np.diff(patch, axis=axis))
        boundary = (np.arange(steps.shape[axis]) % BLOCK) == BLOCK - 1
        across += float(np.compress(boundary, steps, axis=axis).mean())
        inside += float(np.compress(~boundary, steps, axis=axis).mean())
    return across, inside


def frame_quality(luma: np.ndarray) -> float:
    """The 0-10 stand-in score of one luma plane (blur and blockiness)."""
    patches = fragments(luma)
    lost, total = map(sum, zip(*(sharpness(p) for p in patches), strict=True))
    across, inside = map(sum, zip(*(blockiness(p) for p in patches), strict=True))
    sharp = lost / total if total > 0 else 0.0
    blocky = across / inside if inside > 0 else 1.0
    detail = min(1.0, max(0.0, (sharp - SHARPNESS_FLOOR) / SHARPNESS_SPAN))
    return 10.0 * detail * math.exp(-BLOCKINESS_WEIGHT * max(0.0, blocky - 1.0))


class FrameStatisticsQuality:
    """Clip scorer factory for the embedded quality backend."""

    name = "frame-stats"
    version = "frame-stats-1"

    def __init__(self, runtime: Runtime | None = None) -> None:
        """Embedded: no weights, CPU only, so the runtime is not needed."""

    def ready(self) -> None:
        """Always: embedded, its dependencies are pinned."""

    def new_clip(self, video: VideoProbe) -> FrameStatisticsClip:
        return FrameStatisticsClip(video.second_step)


class FrameStatisticsClip:
    """Scores one frame per second as it is decoded; the clip score is their mean."""

    def __init__(self, step: int) -> None:
        self._step = step
        self._scores: list[tuple[float, float]] = []

    def offer(self, frame: Frame, clip_index: int, clip_time: float) -> None:
        if clip_index % self._step == 0:
            self._scores.append((clip_time, frame_quality(frame.luma())))

    def finish(self, duration: float, frame_count: int) -> dict[str, float | None]:
        kept = [score for time, score in self._scores if time < duration]
        return {"quality_score": float(np.mean(kept)) if kept else None}
