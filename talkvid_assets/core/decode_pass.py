"""One decode pass per video: scene cuts, speech and every clip score together.

Frames stream from :func:`talkvid_assets.core.video.decode` into the scene detector; the clip of
the current scene (its bounds trimmed as the reference does) receives the same frames for all
scorers, and is closed when the next cut arrives (frames wait while a detector that reports cuts
late may still cut before them). The audio track streams into silero-vad in the same loop. Every
segment gets every score, whatever its duration or speech: judging is left to
:mod:`talkvid_assets.core.thresholds`, so a threshold change never needs a re-score.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from talkvid_assets.core.pictures import thumbnail_size
from talkvid_assets.core.scenes import CutDetector, KnownCuts, Scene, clip_start, cut_detector
from talkvid_assets.core.scoring import ClipScorer, ScorerBackend, Scores
from talkvid_assets.core.video import TIME_EPS, DecodeReport, Frame, VideoProbe, decode

if TYPE_CHECKING:
    from talkvid_assets.core.runtime import Runtime

RECENT_FRAMES = 64  # covers the 0.1 s end trim at up to 240 fps, with room to spare


@dataclass
class ClipResult:
    """A detected scene, its clip and the scores of every stage."""

    scene: Scene
    frame_count: int
    scores: dict[str, Scores]
    speech_ratio: float | None = None
    thumbnail: np.ndarray | None = None  # RGB, the clip's first frame, for contact sheets


@dataclass
class DecodePassResult:
    clips: list[ClipResult]
    report: DecodeReport
    audio_s: float | None  # None when the video has no audio track


class _OpenClip:
    """The clip of the scene being decoded, not yet knowing where it ends."""

    def __init__(
        self, index: int, start_frame: int, video: VideoProbe, backends: Mapping[str, ScorerBackend]
    ) -> None:
        self.index = index
        self.start_frame = start_frame
        self.start_time = clip_start(start_frame / video.fps)
        self.first_index: int | None = None
        self.thumbnail: np.ndarray | None = None
        self.thumbnail_size = thumbnail_size(video.width, video.height)
        self.offered = 0
        # Times of the latest offered frames: the clip's end lies 0.1 s before the cut, so the
        # last few offered frames may turn out to lie past it.
        self.recent_times: deque[float] = deque(maxlen=RECENT_FRAMES)
        self.scorers: dict[str, ClipScorer] = {
            stage: backend.new_clip(video) for stage, backend in backends.items()
        }

    def offer(self, frame: Frame) -> None:
        if frame.time + TIME_EPS < self.start_time:
            return
        if self.first_index is None:
            self.first_index = frame.index
            self.thumbnail = frame.image("rgb24", *self.thumbnail_size)
        self.offered += 1
        self.recent_times.append(frame.time)
        clip_index = frame.index - self.first_index
        clip_time = frame.time - self.start_time
        for scorer in self.scorers.values():
            scorer.offer(frame, clip_index, clip_time)

    def close(self, end_frame: int, fps: float) -> ClipResult:
        scene = Scene(self.index, self.start_frame, end_frame, fps)
        duration = max(0.0, scene.clip_end_s - scene.clip_start_s)
        past_end = sum(time >= scene.clip_end_s - TIME_EPS for time in self.recent_times)
        frame_count = self.offered - past_end
        scores = {
            stage: scorer.finish(duration, frame_count) for stage, scorer in self.scorers.items()
        }
        return ClipResult(scene, frame_count, scores, thumbnail=self.thumbnail)


class _ClipSplitter:
    """Hands decoded frames to the clip of their scene, opening a clip at each cut.

    A detector that reports a cut up to ``latency`` frames late would leave frames of the new
    scene in the previous clip, so that many frames are held back from the scorers until the cuts
    among them are known. The held frames are whole decoded frames: at 1080p (yuv420p, 3.1 MB
    each) TransNetV2's 74 cost about 230 MB, at 4K about 920 MB. PySceneDetect and recorded cuts
    have latency 0, and then no frame waits. A held frame goes to the new clip from the first one
    numbered at or past the cut, the rule :class:`KnownCuts` replays the cut with.
    """

    def __init__(
        self, video: VideoProbe, backends: Mapping[str, ScorerBackend], latency: int
    ) -> None:
        self._video = video
        self._backends = backends
        self._latency = latency
        self._held: deque[Frame] = deque()
        self._current = _OpenClip(0, 0, video, backends)
        self.clips: list[ClipResult] = []

    def add(self, frame: Frame, cuts: list[int]) -> None:
        """Take the next decoded frame and the cuts the detector reported on it."""
        self._held.append(frame)
        self._cut(cuts)
        while len(self._held) > self._latency:
            self._current.offer(self._held.popleft())

    def finish(self, cuts: list[int], end_number: int) -> list[ClipResult]:
        """Apply the end-of-stream cuts, hand over the held frames and close the last clip."""
        self._cut(cuts)
        while self._held:
            self._current.offer(self._held.popleft())
        if end_number > self._current.start_frame:
            self.clips.append(self._current.close(end_number, self._video.fps))
        return self.clips

    def _cut(self, cuts: list[int]) -> None:
        for cut in cuts:
            if cut <= self._current.start_frame:
                continue
            while self._held and self._held[0].number < cut:
                self._current.offer(self._held.popleft())
            self.clips.append(self._current.close(cut, self._video.fps))
            self._current = _OpenClip(len(self.clips), cut, self._video, self._backends)


def decode_pass(
    path: str | Path,
    video: VideoProbe,
    backends: Mapping[str, ScorerBackend],
    scene_detector: str = "histogram",
    known_cuts: Sequence[int] | None = None,
    speech: bool = True,
    runtime: Runtime | None = None,
    integer_downscale: bool = False,
) -> DecodePassResult:
    """Detect scenes, measure speech and score every clip of ``path`` in one decode.

    A video without any cut is one scene spanning the whole file (the reference would make no
    clip at all from it: a deliberate, documented deviation). Re-scoring some stages of a video
    whose segments are recorded passes their cuts as ``known_cuts`` (no scene detection, the same
    clips) and ``speech=False`` (no voice detection). ``runtime`` and ``integer_downscale`` go to
    the scene detector (see :func:`talkvid_assets.core.scenes.cut_detector`).
    """
    cuts: CutDetector = (
        cut_detector(scene_detector, video, runtime, integer_downscale)
        if known_cuts is None
        else KnownCuts(known_cuts)
    )
    # silero-vad brings torch (1.7 s to import): only a pass that measures speech pays for it.
    from talkvid_assets.core.voice import SpeechDetector

    voice = SpeechDetector() if video.has_audio and speech else None
    report = DecodeReport()
    splitter = _ClipSplitter(video, backends, cuts.latency)
    for frame in decode(path, video.fps, voice.feed if voice else None, report):
        splitter.add(frame, cuts.push(frame))
    clips = splitter.finish(cuts.flush(), report.end_number)
    result = DecodePassResult(clips, report, voice.audio_s if voice else None)
    if voice is not None and voice.audio_s > 0:
        for clip in clips:
            clip.speech_ratio = voice.speech_ratio(clip.scene.clip_start_s, clip.scene.clip_end_s)
    return result
