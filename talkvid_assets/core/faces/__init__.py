"""Face backends and the head-detail clip scorer.

A face backend turns one RGB frame into the faces the reference's insightface model would
report: a box, five key points (left eye, right eye, nose, left and right mouth corner, image
sides) and a head pose [pitch, yaw, roll] in degrees. The clip scorer samples frames the way the
reference does and hands the detections to
:func:`talkvid_assets.core.head_detail.head_detail_scores`.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Protocol

import numpy as np

from talkvid_assets.core.head_detail import HEAD_DETAIL_KEYS, Face, head_detail_scores
from talkvid_assets.core.runtime import usable_cores
from talkvid_assets.core.video import Frame, VideoProbe


class FaceDetector(Protocol):
    """Finds faces in an RGB image; coordinates are in that image's pixels."""

    name: str
    version: str
    # Sampled frames handed over at once: 1 for CPU detectors, more where a GPU batch pays.
    batch_size: int

    def detect(self, rgb: np.ndarray) -> list[Face]: ...

    def detect_batch(self, frames: Sequence[np.ndarray]) -> list[list[Face]]:
        """The faces of each frame (used when ``batch_size`` > 1)."""
        ...

    def working_size(self, width: int, height: int) -> tuple[int, int]:
        """The size frames should be handed over at, so the decoder does the resizing."""
        ...

    def ready(self) -> None:
        """Raise BackendUnavailable naming what to install or fetch when the detector cannot
        run here, without loading it (see :meth:`.scoring.ScorerBackend.ready`)."""
        ...


def face_area(face: Face) -> float:
    """The area of a face's box (zero for a degenerate one): how faces are ranked by size."""
    x1, y1, x2, y2 = face["bbox"]
    return max(0.0, x2 - x1) * max(0.0, y2 - y1)


def scale_face(face: Face, sx: float, sy: float) -> Face:
    """Map a face found on a resized image back to source-frame pixels."""
    x1, y1, x2, y2 = face["bbox"]
    return {
        "bbox": [x1 * sx, y1 * sy, x2 * sx, y2 * sy],
        "kps": [[x * sx, y * sy] for x, y in face["kps"]],
        "pose": list(face["pose"]),
    }


class HeadDetailScorer:
    """Clip scorer factory: the reference's one-frame-per-second head-detail sampling."""

    def __init__(self, detector: FaceDetector) -> None:
        self.detector = detector
        self.name = detector.name
        self.version = f"{detector.version}+head-detail-1"

    def ready(self) -> None:
        """Whether the detector can run here: the sampling needs nothing more."""
        self.detector.ready()

    def new_clip(self, video: VideoProbe) -> HeadDetailClip:
        return HeadDetailClip(self.detector, video)


@functools.cache
def _detection_workers() -> ThreadPoolExecutor:
    """Threads for face detection, one per core this process may use: detection overlaps the
    decode (onnxruntime, dlib and OpenCV release the GIL), and several videos decoded at once
    detect in parallel."""
    return ThreadPoolExecutor(max_workers=usable_cores(), thread_name_prefix="talkvid-faces")


def _detect_scaled(
    detector: FaceDetector, frames: list[np.ndarray], scales: list[tuple[float, float]]
) -> tuple[list[list[Face]], float]:
    """The faces of each frame in source pixels, and the worker's CPU seconds spent on them."""
    started = time.thread_time()
    found = detector.detect_batch(frames) if len(frames) > 1 else [detector.detect(frames[0])]
    scaled = [
        [scale_face(face, sx, sy) for face in faces]
        for faces, (sx, sy) in zip(found, scales, strict=True)
    ]
    return scaled, time.thread_time() - started


class HeadDetailClip:
    """Detects faces on clip frames ``sec * int(fps)`` and scores them when the clip ends.

    Detection runs on a worker thread, ``batch_size`` sampled frames at a time (a GPU detector
    runs a batch of 32 about 40 times faster per frame than one frame alone on an H100); at most
    MAX_IN_FLIGHT batches wait for it, so a slow detector slows the decode down instead of
    piling up frames in memory.
    """

    MAX_IN_FLIGHT = 4

    def __init__(self, detector: FaceDetector, video: VideoProbe) -> None:
        self._detector = detector
        self._width, self._height = video.width, video.height
        self._size = detector.working_size(video.width, video.height)
        self._step = video.second_step
        self._queued: list[tuple[int, np.ndarray, tuple[float, float]]] = []
        self._jobs: list[tuple[list[int], Future[tuple[list[list[Face]], float]]]] = []
        self.worker_cpu_s = 0.0

    def offer(self, frame: Frame, clip_index: int, clip_time: float) -> None:
        if clip_index % self._step:
            return
        scale = (frame.width / self._size[0], frame.height / self._size[1])
        self._queued.append((clip_index, frame.image("rgb24", *self._size), scale))
        if len(self._queued) >= self._detector.batch_size:
            self._submit()

    def _submit(self) -> None:
        pending = [job for _, job in self._jobs[-self.MAX_IN_FLIGHT :] if not job.done()]
        if len(pending) >= self.MAX_IN_FLIGHT:
            pending[0].result()
        indices, frames, scales = (list(column) for column in zip(*self._queued, strict=True))
        job = _detection_workers().submit(_detect_scaled, self._detector, frames, scales)
        self._jobs.append((indices, job))
        self._queued = []

    def finish(self, duration: float, frame_count: int) -> dict[str, float | None]:
        if self._queued:
            self._submit()
        seconds = frame_count // self._step
        detected = []
        for indices, job in self._jobs:  # samples past the end ran too: errors surface
            found, cpu_s = job.result()
            detected += zip(indices, found, strict=True)
            self.worker_cpu_s += cpu_s
        frames = [faces for index, faces in detected if index // self._step < seconds]
        scores = head_detail_scores(frames, self._width, self._height)
        result: dict[str, float | None] = dict.fromkeys(HEAD_DETAIL_KEYS)
        if scores is not None:
            result.update(scores)
        result["sampled_frames"] = len(frames)
        result["single_face_frames"] = sum(len(faces) == 1 for faces in frames)
        return result
