"""The clip-scorer protocol every model stage implements.

A backend is a factory of per-clip scorers. The decode pass offers each scorer every frame of
its clip as it is decoded; the scorer converts and keeps only what it samples, and reports its
scores when the clip ends. That is how one decode feeds every model, and why memory does not
grow with the length of the source.
"""

from __future__ import annotations

from typing import Protocol

from talkvid_assets.core.runtime import Runtime
from talkvid_assets.core.stages import get_stage
from talkvid_assets.core.video import Frame, VideoProbe

Scores = dict[str, float | None]


class ClipScorer(Protocol):
    """A scorer that works on threads of its own (face detection does) may also expose
    ``worker_cpu_s``, the CPU seconds they spent for this clip: the decode pass times everything
    else on its own thread and adds it, so the stage's recorded cost is complete."""

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


def load_backend(stage: str, name: str, runtime: Runtime | None = None) -> ScorerBackend:
    """Instantiate backend ``name`` of ``stage`` (see :mod:`talkvid_assets.core.stages`)."""
    return get_stage(stage).load_backend(name, runtime)
