"""One decode pass per video: scene cuts, speech and every clip score together.

Frames stream from :func:`talkvid_assets.core.video.decode` into the scene detector; the clip of
the current scene (its bounds trimmed as the reference does) receives the same frames for all
scorers, and is closed when the next cut arrives (frames wait while a detector that reports cuts
late may still cut before them). The audio track streams into silero-vad in the same loop, and
into the clips of stages that hear it (lip sync), which finish once their audio is decoded. Every
segment gets every score, whatever its duration or speech: judging is left to
:mod:`talkvid_assets.core.thresholds`, so a threshold change never needs a re-score.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import numpy as np

from talkvid_assets.core.pictures import thumbnail_size
from talkvid_assets.core.scenes import CutDetector, KnownCuts, Scene, clip_start, cut_detector
from talkvid_assets.core.scoring import ClipScorer, ScorerBackend, Scores
from talkvid_assets.core.stages import DECODE, SCENES, VOICE
from talkvid_assets.core.video import (
    AUDIO_RATE,
    TIME_EPS,
    DecodeReport,
    Frame,
    VideoProbe,
    decode,
)
from talkvid_assets.core.voice import SpeechDetector

if TYPE_CHECKING:
    from talkvid_assets.core.runtime import Runtime

T = TypeVar("T")

RECENT_FRAMES = 64  # covers the 0.1 s end trim at up to 240 fps, with room to spare


class PassCancelled(Exception):
    """A decode pass on another thread was told to stop (its run was interrupted)."""


class StageClock:
    """CPU seconds of each part of a decode pass: where the time of a curation goes.

    Scene detection, voice detection and each scorer are timed on the thread that runs them;
    scorers' worker threads report their own time. ``decode`` (demuxing, decoding, audio
    resampling, handing frames over) is the remainder: of this thread's time when the pass
    decodes on its own thread, else of the whole process's, since FFmpeg's decoding threads
    cannot be timed one by one (a pass that decodes on FFmpeg's threads runs alone).
    """

    def __init__(self, own_thread: bool) -> None:
        self._own_thread = own_thread
        self._clock = time.thread_time if own_thread else time.process_time
        self._started = self._clock()
        self._charged = 0.0  # of the clock's seconds, those already charged to a stage
        self.cpu_s: dict[str, float] = {}

    def add(self, stage: str, seconds: float) -> None:
        """Charge ``seconds`` spent on another thread to ``stage``."""
        self.cpu_s[stage] = self.cpu_s.get(stage, 0.0) + seconds
        if not self._own_thread:
            self._charged += seconds

    def timed(self, stage: str, work: Callable[..., T], *args: object) -> T:
        """Run ``work(*args)`` on this thread and charge its CPU time to ``stage``."""
        started = time.thread_time()
        try:
            return work(*args)
        finally:
            spent = time.thread_time() - started
            self.cpu_s[stage] = self.cpu_s.get(stage, 0.0) + spent
            self._charged += spent

    def stop(self) -> dict[str, float]:
        """Every stage's CPU seconds, ``decode`` being the remainder."""
        spent = self._clock() - self._started
        return {DECODE: max(0.0, spent - self._charged), **self.cpu_s}


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
    cpu_s: dict[str, float] = field(default_factory=dict)  # by stage, see StageClock


class ClipAudio:
    """The decoded audio (16 kHz mono, from the video's start) kept while a clip that hears it
    is open or waiting: memory grows with a clip's length, not the source's."""

    def __init__(self) -> None:
        self._chunks: deque[np.ndarray] = deque()
        self._first = 0  # sample index of the first kept chunk
        self.samples = 0  # samples decoded so far

    def add(self, samples: np.ndarray) -> None:
        self._chunks.append(samples)
        self.samples += len(samples)

    def between(self, start_s: float, end_s: float) -> np.ndarray:
        """The samples from ``start_s`` to ``end_s`` (as far as decoded)."""
        kept = np.concatenate(self._chunks) if self._chunks else np.zeros(0, np.float32)
        start = max(0, round(start_s * AUDIO_RATE) - self._first)
        return kept[start : max(start, round(end_s * AUDIO_RATE) - self._first)]

    def forget_before(self, time_s: float) -> None:
        while self._chunks and self._first + len(self._chunks[0]) <= time_s * AUDIO_RATE:
            self._first += len(self._chunks.popleft())


@dataclass
class _Waiting:
    """A closed clip's scorer that finishes when the clip's audio has been decoded."""

    result: ClipResult
    stage: str
    scorer: ClipScorer
    start_s: float
    duration: float


class _OpenClip:
    """The clip of the scene being decoded, not yet knowing where it ends."""

    def __init__(
        self,
        index: int,
        start_frame: int,
        video: VideoProbe,
        backends: Mapping[str, ScorerBackend],
        clock: StageClock,
    ) -> None:
        self.index = index
        self._clock = clock
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
        for stage, scorer in self.scorers.items():
            self._clock.timed(stage, scorer.offer, frame, clip_index, clip_time)

    def close(self, end_frame: int, fps: float) -> tuple[ClipResult, list[_Waiting]]:
        """The clip's result, and the scorers that still wait for its audio (see ClipScorer)."""
        scene = Scene(self.index, self.start_frame, end_frame, fps)
        duration = max(0.0, scene.clip_end_s - scene.clip_start_s)
        past_end = sum(time >= scene.clip_end_s - TIME_EPS for time in self.recent_times)
        frame_count = self.offered - past_end
        result = ClipResult(scene, frame_count, {}, thumbnail=self.thumbnail)
        waiting = []
        for stage, scorer in self.scorers.items():
            if hasattr(scorer, "hear"):
                waiting.append(_Waiting(result, stage, scorer, self.start_time, duration))
            else:
                _finish(self._clock, result, stage, scorer, duration)
        return result, waiting


def _finish(
    clock: StageClock, result: ClipResult, stage: str, scorer: ClipScorer, duration: float
) -> None:
    """Put ``scorer``'s scores of the clip into ``result``, its CPU time on ``stage``."""
    result.scores[stage] = clock.timed(stage, scorer.finish, duration, result.frame_count)
    clock.add(stage, getattr(scorer, "worker_cpu_s", 0.0))  # see ClipScorer


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
        self,
        video: VideoProbe,
        backends: Mapping[str, ScorerBackend],
        latency: int,
        clock: StageClock,
    ) -> None:
        self._video = video
        self._backends = backends
        self._latency = latency
        self._clock = clock
        self._held: deque[Frame] = deque()
        self._current = _OpenClip(0, 0, video, backends, clock)
        self.clips: list[ClipResult] = []
        self._waiting: list[_Waiting] = []

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
            self._close(end_number)
        return self.clips

    def _close(self, end_frame: int) -> None:
        result, waiting = self._current.close(end_frame, self._video.fps)
        self.clips.append(result)
        self._waiting += waiting

    def settle(self, audio: ClipAudio | None, final: bool = False) -> None:
        """Finish the waiting scorers whose clip's audio is decoded (all of them when
        ``final``), handing each its clip's audio, and forget audio no clip needs any more."""
        decoded_s = audio.samples / AUDIO_RATE if audio is not None else 0.0
        still = []
        for wait in self._waiting:
            end_s = wait.start_s + wait.duration
            if not final and audio is not None and decoded_s < end_s:
                still.append(wait)
                continue
            samples = (
                audio.between(wait.start_s, end_s) if audio is not None else np.zeros(0, np.float32)
            )
            self._clock.timed(wait.stage, wait.scorer.hear, samples)  # type: ignore[attr-defined]
            _finish(self._clock, wait.result, wait.stage, wait.scorer, wait.duration)
        self._waiting = still
        if audio is not None:
            audio.forget_before(min([w.start_s for w in still] + [self._current.start_time]))

    def _cut(self, cuts: list[int]) -> None:
        for cut in cuts:
            if cut <= self._current.start_frame:
                continue
            while self._held and self._held[0].number < cut:
                self._current.offer(self._held.popleft())
            self._close(cut)
            self._current = _OpenClip(
                len(self.clips), cut, self._video, self._backends, self._clock
            )


@dataclass(frozen=True)
class DecodeOptions:
    """How the videos of a run are decoded: the same for each of them, so one value travels
    from the asset (or a caller) to every pass rather than five loose parameters.

    ``scene_detector``, ``runtime`` and ``integer_downscale`` go to the scene detector (see
    :func:`talkvid_assets.core.scenes.cut_detector`); ``decoder_threads`` goes to
    :func:`talkvid_assets.core.video.decode` (0: FFmpeg's choice; 1 when videos share the cores
    out, one each). Setting ``cancel`` stops a pass running on another thread at its next frame,
    with :class:`PassCancelled`; it is left None where options cross processes (Ray).
    """

    scene_detector: str = "histogram"
    runtime: Runtime | None = None
    integer_downscale: bool = False
    decoder_threads: int = 0
    cancel: threading.Event | None = None


def decode_pass(
    path: str | Path,
    video: VideoProbe,
    backends: Mapping[str, ScorerBackend],
    known_cuts: Sequence[int] | None = None,
    speech: bool = True,
    options: DecodeOptions | None = None,
) -> DecodePassResult:
    """Detect scenes, measure speech and score every clip of ``path`` in one decode.

    A video without any cut is one scene spanning the whole file (the reference would make no
    clip at all from it: a deliberate, documented deviation). Re-scoring some stages of a video
    whose segments are recorded passes their cuts as ``known_cuts`` (no scene detection, the same
    clips) and ``speech=False`` (no voice detection). ``options`` says how to decode (the
    defaults when None).
    """
    options = options or DecodeOptions()
    cuts: CutDetector = (
        cut_detector(options.scene_detector, video, options.runtime, options.integer_downscale)
        if known_cuts is None
        else KnownCuts(known_cuts)
    )
    clock = StageClock(own_thread=options.decoder_threads == 1)
    voice = SpeechDetector() if video.has_audio and speech else None
    listening = any(getattr(backend, "hears_audio", False) for backend in backends.values())
    audio = ClipAudio() if video.has_audio and listening else None
    report = DecodeReport()
    splitter = _ClipSplitter(video, backends, cuts.latency, clock)

    def hear(samples: np.ndarray) -> None:
        if voice is not None:
            clock.timed(VOICE, voice.feed, samples)
        if audio is not None:
            audio.add(samples)

    on_audio = hear if voice is not None or audio is not None else None
    for frame in decode(path, video.fps, on_audio, report, options.decoder_threads):
        if options.cancel is not None and options.cancel.is_set():
            raise PassCancelled(f"decode of {path} cancelled")
        splitter.add(frame, clock.timed(SCENES, cuts.push, frame))
        splitter.settle(audio)
    clips = splitter.finish(clock.timed(SCENES, cuts.flush), report.end_number)
    splitter.settle(audio, final=True)
    if voice is not None and voice.audio_s > 0 and not report.audio_unusable:
        for clip in clips:
            scene = clip.scene
            clip.speech_ratio = clock.timed(
                VOICE, voice.speech_ratio, scene.clip_start_s, scene.clip_end_s
            )
    return DecodePassResult(clips, report, voice.audio_s if voice else None, clock.stop())
