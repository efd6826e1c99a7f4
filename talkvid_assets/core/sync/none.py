"""The ``none`` backend of the ``sync`` stage: no lip-sync scores, said as such.

No package ships SyncNet's weights, so a default curation cannot measure sync offline. This
backend records every clip's sync scores as missing under the name ``none`` (never a number
under SyncNet's name); the sync thresholds are unset by default, so verdicts do not change.
``talkvid models fetch syncnet`` and ``backends: {sync: syncnet}`` turn the stage on.
"""

from __future__ import annotations

from talkvid_assets.core.runtime import Runtime
from talkvid_assets.core.sync.scorer import SCORE_NAMES
from talkvid_assets.core.video import Frame, VideoProbe


class SyncNoneClip:
    def offer(self, frame: Frame, clip_index: int, clip_time: float) -> None:
        """Nothing to look at."""

    def finish(self, duration: float, frame_count: int) -> dict[str, float | None]:
        return dict.fromkeys(SCORE_NAMES)


class SyncNone:
    name = "none"
    version = "none-1"

    def __init__(self, runtime: Runtime) -> None:
        """Takes the runtime as every backend factory does; needs nothing from it."""

    def ready(self) -> None:
        """Always: it needs nothing."""

    def new_clip(self, video: VideoProbe) -> SyncNoneClip:
        return SyncNoneClip()
