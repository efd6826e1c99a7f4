"""Scene detection fed from the shared decode pass, and the reference's clip-bound rule.

The reference runs PySceneDetect's ``SceneManager`` over the whole file. Here the same detector
classes, with the reference's settings and the same automatic downscale, receive frames from our
one decode pass instead, so scene detection costs no decode of its own.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import cv2
import numpy as np
from scenedetect import ContentDetector, FrameTimecode, HistogramDetector, SceneDetector
from scenedetect.detector import FlashFilter
from scenedetect.scene_manager import compute_downscale_factor

from talkvid_assets.core.video import Frame

FrameView = Callable[[Frame, tuple[int, int]], np.ndarray]

# Video-range luma (16-235) to the full range a BGR conversion would give.
_FULL_RANGE_LUT = np.clip((np.arange(256) - 16) * 255 / 219 + 0.5, 0, 255).astype(np.uint8)


def luma_view(frame: Frame, size: tuple[int, int]) -> np.ndarray:
    """What HistogramDetector looks at, made cheaply: it only reads the luma of its BGR input.

    SceneManager converts each frame to BGR, resizes it with INTER_LINEAR, and the detector
    converts back to YUV to histogram Y. When the frame is downscaled, resizing the decoder's
    luma plane with INTER_LINEAR and stretching it to full range gives that Y for a tenth of the
    cost on 1080p. Small frames (no downscale) are cheap to convert exactly, and on starved
    encodes the colour clipping of the BGR round trip matters, so they take SceneManager's path.
    """
    if size == (frame.width, frame.height):
        return frame.image("bgr24")
    small = cv2.resize(frame.luma(), size, interpolation=cv2.INTER_LINEAR)
    if not frame.full_range:
        small = cv2.LUT(small, _FULL_RANGE_LUT)
    return cv2.cvtColor(small, cv2.COLOR_GRAY2BGR)


def bgr_view(frame: Frame, size: tuple[int, int]) -> np.ndarray:
    """A downscaled BGR frame, for detectors that use colour."""
    return frame.image("bgr24", *size)


# Reference settings (spec, stage 1): the configured default and the documented alternative,
# each with the cheapest frame view that gives the detector what it reads.
REFERENCE_DETECTORS: dict[str, tuple[Callable[[], SceneDetector], FrameView]] = {
    "histogram": (lambda: HistogramDetector(threshold=0.085), luma_view),
    # ContentDetector's default MERGE flash filter reports a cut min_scene_len frames late;
    # SUPPRESS reports it on the frame it is found, which a streaming pass needs.
    "content": (
        lambda: ContentDetector(threshold=10.0, filter_mode=FlashFilter.Mode.SUPPRESS),
        bgr_view,
    ),
}
# Clip bounds trim the scene: start = s + 0.4 - 0.1, end = e - 0.1 (spec, stage 1).
SCENE_START_PAD_S = 0.4
CLIP_TRIM_S = 0.1


def clip_start(scene_start_s: float) -> float:
    """The reference's clip start, in its own order of float operations: rounding the duration
    to 0.1 s decides the > 5.0 s rule, so (s + 0.3) would flip some clips."""
    return max((scene_start_s + SCENE_START_PAD_S) - CLIP_TRIM_S, 0.0)


class CutDetector(Protocol):
    """Streaming shot-boundary detector.

    ``push`` receives every decoded frame in order and returns the frame numbers of the cuts it
    has found so far. A cut may be reported a little late: anything under 0.3 s late loses
    nothing, because a clip starts 0.3 s after its scene does. TransNetV2 will slot in here.
    """

    def push(self, frame: Frame) -> list[int]: ...


class KnownCuts:
    """Cuts recorded by an earlier decode pass, replayed when only some scores are recomputed:
    the clips (and their ids) stay exactly those already recorded, and no detector runs."""

    def __init__(self, cuts: Sequence[int]) -> None:
        self._pending = sorted(cuts, reverse=True)

    def push(self, frame: Frame) -> list[int]:
        reached = []
        while self._pending and self._pending[-1] <= frame.number:
            reached.append(self._pending.pop())
        return reached


class PySceneDetectCuts:
    """A PySceneDetect detector driven frame by frame, at SceneManager's automatic downscale."""

    def __init__(self, fps: float, width: int, height: int, detector: str = "histogram") -> None:
        try:
            factory, self._view = REFERENCE_DETECTORS[detector]
        except KeyError:
            known = ", ".join(REFERENCE_DETECTORS)
            raise ValueError(f"unknown scene detector {detector!r}; known: {known}") from None
        self._detector = factory()
        factor = compute_downscale_factor(width)
        self._size = (max(1, round(width / factor)), max(1, round(height / factor)))
        self._fps = fps

    def push(self, frame: Frame) -> list[int]:
        image = self._view(frame, self._size)
        cuts = self._detector.process_frame(FrameTimecode(frame.number, self._fps), image)
        return [cut.frame_num for cut in cuts]


@dataclass(frozen=True)
class Scene:
    """A detected shot ``[start_frame, end_frame)`` and the clip the reference cuts from it."""

    index: int
    start_frame: int
    end_frame: int
    fps: float

    @property
    def scene_start_s(self) -> float:
        return self.start_frame / self.fps

    @property
    def scene_end_s(self) -> float:
        return self.end_frame / self.fps

    @property
    def clip_start_s(self) -> float:
        """The reference's start; a scene too short to hold a clip (under 0.4 s) gets an empty
        clip at its trimmed end instead of one starting after it ends, or after the video."""
        return min(clip_start(self.scene_start_s), self.clip_end_s)

    @property
    def clip_end_s(self) -> float:
        return max(self.scene_end_s - CLIP_TRIM_S, 0.0)

    @property
    def duration_s(self) -> float:
        """Clip duration as the reference records it: rounded to 0.1 s, never negative."""
        return max(round(self.clip_end_s - self.clip_start_s, 1), 0.0)
