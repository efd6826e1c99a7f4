"""The clip-scorer protocol every model stage implements, and the backend registry.

A backend is a factory of per-clip scorers. The decode pass offers each scorer every frame of
its clip as it is decoded; the scorer converts and keeps only what it samples, and reports its
scores when the clip ends. That is how one decode feeds every model, and why memory does not
grow with the length of the source.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from talkvid_assets.core.faces import HeadDetailScorer
from talkvid_assets.core.faces.dlib_hog import DlibFaceDetector
from talkvid_assets.core.motion.lk import LucasKanadeMotion
from talkvid_assets.core.quality.frame_stats import FrameStatisticsQuality
from talkvid_assets.core.video import Frame, VideoProbe

Scores = dict[str, float | None]


class ClipScorer(Protocol):
    def offer(self, frame: Frame, clip_index: int, clip_time: float) -> None:
        """Look at the next frame of the clip (index and time counted from the clip start)."""
        ...

    def finish(self, duration: float, frame_count: int) -> Scores:
        """Scores of the clip, ignoring samples at or after ``duration`` seconds."""
        ...


class ScorerBackend(Protocol):
    name: str
    version: str

    def new_clip(self, video: VideoProbe) -> ClipScorer: ...


class BackendUnavailable(RuntimeError):
    """A backend was asked for that cannot run here; the message says why and what to do."""


# Stage -> backend name -> factory. The paper's models (DOVER, CoTracker3, RetinaFace) register
# here next to the embedded CPU defaults.
BACKENDS: dict[str, dict[str, Callable[[], ScorerBackend]]] = {
    "quality": {"frame-stats": FrameStatisticsQuality},
    "motion": {"lk": LucasKanadeMotion},
    "head_detail": {"dlib-hog": lambda: HeadDetailScorer(DlibFaceDetector())},
}
DEFAULT_BACKENDS = {"quality": "frame-stats", "motion": "lk", "head_detail": "dlib-hog"}


def load_backend(stage: str, name: str) -> ScorerBackend:
    """Instantiate backend ``name`` for ``stage`` or explain which ones exist."""
    known = BACKENDS.get(stage)
    if known is None:
        raise BackendUnavailable(f"unknown stage {stage!r}; stages: {', '.join(BACKENDS)}")
    factory = known.get(name)
    if factory is None:
        raise BackendUnavailable(
            f"no {stage} backend {name!r} in this installation; available: {', '.join(known)}"
        )
    return factory()
