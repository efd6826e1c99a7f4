"""Scene cuts fed from the shared decode pass, and the reference's clip-bound rule.

The reference runs PySceneDetect's ``SceneManager`` over the whole file. Here every scene backend
(:mod:`.pyscenedetect` with the reference's detectors, :mod:`.transnetv2` with the TransNetV2
network) receives frames from our one decode pass instead, behind one streaming protocol
(:class:`CutDetector`), so scene detection costs no decode of its own.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from talkvid_assets.core.stages import SCENE_DETECTORS, load_entry

if TYPE_CHECKING:
    from talkvid_assets.core.runtime import Runtime
    from talkvid_assets.core.video import Frame, VideoProbe

# Clip bounds trim the scene: start = s + 0.4 - 0.1, end = e - 0.1 (spec, stage 1).
SCENE_START_PAD_S = 0.4
CLIP_TRIM_S = 0.1


def clip_start(scene_start_s: float) -> float:
    """The reference's clip start, in its own order of float operations: rounding the duration
    to 0.1 s decides the > 5.0 s rule, so (s + 0.3) would flip some clips."""
    return max((scene_start_s + SCENE_START_PAD_S) - CLIP_TRIM_S, 0.0)


class CutDetector(Protocol):
    """Streaming shot-boundary detector with an end of stream.

    ``push`` receives every decoded frame in order and returns the frame numbers of the cuts it
    has found so far; ``flush`` is called once after the last frame and returns the cuts only
    the end of the stream decides. A cut is a frame number where a new scene starts.

    ``latency`` bounds how late a cut is reported: a cut at the frame decoded ``k``-th is
    returned by ``push`` of frame ``k + latency`` at the latest (or by ``flush``). The decode
    pass holds that many decoded frames back from the clip scorers, so every frame still reaches
    the clip of its own scene; a detector that reports cuts on the frame they start has 0.
    """

    @property
    def latency(self) -> int: ...

    def push(self, frame: Frame) -> list[int]: ...

    def flush(self) -> list[int]: ...


class KnownCuts:
    """Cuts recorded by an earlier decode pass, replayed when only some scores are recomputed:
    the clips (and their ids) stay exactly those already recorded, and no detector runs."""

    latency = 0

    def __init__(self, cuts: Sequence[int]) -> None:
        self._pending = sorted(cuts, reverse=True)

    def push(self, frame: Frame) -> list[int]:
        reached = []
        while self._pending and self._pending[-1] <= frame.number:
            reached.append(self._pending.pop())
        return reached

    def flush(self) -> list[int]:
        """Nothing: a recorded cut past the last decoded frame makes no clip."""
        return []


def cut_detector(
    name: str,
    video: VideoProbe,
    runtime: Runtime | None = None,
    integer_downscale: bool = False,
) -> CutDetector:
    """The ``scene_detector`` called ``name`` for ``video``.

    The detectors are registered in :data:`talkvid_assets.core.stages.SCENE_DETECTORS` and
    imported only when chosen (TransNetV2 brings torch). ``integer_downscale`` analyses
    PySceneDetect's frames at scenedetect 0.6.4's integer factor, as the reference does,
    instead of 0.7's float one (see :func:`.pyscenedetect.reference_downscale`). ``runtime``
    picks TransNetV2's torch device.
    """
    if name not in SCENE_DETECTORS:
        raise ValueError(f"unknown scene detector {name!r}; known: {', '.join(SCENE_DETECTORS)}")
    detector = load_entry("scene detector", name, SCENE_DETECTORS[name])
    return detector.for_video(video, runtime, integer_downscale)


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
