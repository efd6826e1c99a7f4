"""PySceneDetect's detectors with the reference's settings, driven frame by frame.

Each detector receives the frames of the shared decode at the size SceneManager would analyse
them at, in the cheapest view that gives it what it reads, and reports a cut on the frame where
it finds it (latency 0), as SceneManager records it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, ClassVar

import cv2
import numpy as np
from scenedetect import ContentDetector, FrameTimecode, HistogramDetector, SceneDetector
from scenedetect.scene_manager import DEFAULT_MIN_WIDTH, compute_downscale_factor

from talkvid_assets.core.video import Frame

if TYPE_CHECKING:
    from talkvid_assets.core.runtime import Runtime
    from talkvid_assets.core.video import VideoProbe

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


def reference_downscale(width: int) -> int:
    """The reference's automatic downscale factor: scenedetect 0.6.4 divides the width by 256
    in integers (7 at 1920 px, analysing 1080p at 274x154), where 0.7 divides in floats (7.5,
    256x144). Cuts can differ between the two, so the reference profile can ask for this one."""
    return max(1, width // DEFAULT_MIN_WIDTH)


class PySceneDetectCuts(ABC):
    """A PySceneDetect detector driven frame by frame; a subclass per detector names it and
    builds it with the reference's settings.

    ``downscale`` is the factor frames are shrunk by before detection, as ``SceneManager``'s
    ``downscale`` with ``auto_downscale`` off; None uses the installed scenedetect's automatic
    factor (0.7's float factor of the width).
    """

    name: ClassVar[str]

    def __init__(self, fps: float, width: int, height: int, downscale: int | None = None) -> None:
        self._detector = self.detector()
        factor = compute_downscale_factor(width) if downscale is None else downscale
        self.analysis_size = (max(1, round(width / factor)), max(1, round(height / factor)))
        self._fps = fps
        self._last: FrameTimecode | None = None

    @classmethod
    def for_video(
        cls, video: VideoProbe, runtime: Runtime | None = None, integer_downscale: bool = False
    ) -> PySceneDetectCuts:
        """The detector for ``video`` (the scene-detector registry's constructor; PySceneDetect
        runs on the CPU, so ``runtime`` is unused)."""
        downscale = reference_downscale(video.width) if integer_downscale else None
        return cls(video.fps, video.width, video.height, downscale)

    @staticmethod
    @abstractmethod
    def detector() -> SceneDetector:
        """A new PySceneDetect detector with the reference's settings."""

    @staticmethod
    @abstractmethod
    def view(frame: Frame, size: tuple[int, int]) -> np.ndarray:
        """The cheapest frame view that gives the detector what it reads, at ``size``."""

    @property
    def latency(self) -> int:
        """Frames a cut may be reported late: the detector's own event buffer, which SceneManager
        sizes its frame buffer by (0 for the histogram detector, min_scene_len for content's
        MERGE flash filter)."""
        return self._detector.event_buffer_length

    def push(self, frame: Frame) -> list[int]:
        image = self.view(frame, self.analysis_size)
        self._last = FrameTimecode(frame.number, self._fps)
        cuts = self._detector.process_frame(self._last, image)
        return [cut.frame_num for cut in cuts]

    def flush(self) -> list[int]:
        """The detector's post-processing at the last frame, as SceneManager runs it."""
        if self._last is None:
            return []
        return [cut.frame_num for cut in self._detector.post_process(self._last)]


# Reference settings (spec, stage 1): the configured default and the documented alternative.
# Each detector keeps PySceneDetect's defaults beyond the threshold, as the reference constructs
# it: for ContentDetector that is the MERGE flash filter, which merges cuts closer than
# min_scene_len (15 frames) and so reports a cut up to 15 frames late (its latency); SUPPRESS
# would report it at once but keeps later cuts MERGE drops (A 40 frames, B 10, C 10, D 40:
# MERGE cuts at 40, SUPPRESS at 40 and 60).
class HistogramCuts(PySceneDetectCuts):
    """PySceneDetect's HistogramDetector at the reference's threshold, on the luma it reads."""

    name = "histogram"
    view = staticmethod(luma_view)

    @staticmethod
    def detector() -> SceneDetector:
        return HistogramDetector(threshold=0.085)


class ContentCuts(PySceneDetectCuts):
    """PySceneDetect's ContentDetector at the reference's threshold, on downscaled BGR."""

    name = "content"
    view = staticmethod(bgr_view)

    @staticmethod
    def detector() -> SceneDetector:
        return ContentDetector(threshold=10.0)
