"""The ``cotracker3`` motion backend: Meta's CoTracker3 offline model on the reference protocol.

TalkVid's ``camera_filtering.py`` (spec, stage 2b) reads the clip at most 30 fps (by frame index
when the source is faster), shrinks frames to a quarter in each dimension (with torchvision's
antialiased bilinear ``Resize``: the configured ``gpu_preprocess``; reproduced here with torch on
the CPU, :func:`talkvid_assets.core.quality.dover.torchvision_resize`), drops int(0.2 * fps)
frames at each end of clips longer than one second, and lays up to three 6 s windows on the
recorded duration (:func:`talkvid_assets.core.motion.windows.reference_windows`). In each window
it takes every int(fps / 2)-th frame, tracks a 100 x 100 grid of points from the window's first
frame with the offline model (``scaled_offline.pth``, window length 60), and counts a point
visible where its visibility probability exceeds 0.9, query points always. A window's ratio is
the mean over points and frames; the clip's ``cotracker_ratio`` is the minimum over windows.
The protocol is pure functions here (which frames exist, which windows take which, the grid, the
ratio of a visibility array); the model is one call, :func:`track_visibility`.

The reference asks for backward tracking as well. With every query on the window's first frame
it changes nothing (only frames before a query's frame are taken from the backward pass) and
costs a second pass, so it is not run.

Streaming. The decode pass learns the clip's duration only at its end, so frames are kept on the
int(fps / 2) lattice that the first window uses, only while some window may still need them (the
first 6 s, and from the earliest possible start of the middle window on), plus every frame of the
first second (clips that short are not trimmed, which moves the lattice). A later window whose
reference start is off the lattice is moved, with its frame count kept, to the nearest lattice
frame (half a step, a quarter of a second, at most), or to the one before when that would run
past the clip's end (less than a step). Memory is half the clip at 2 fps of quarter-size
frames. Deviation: a clip under 5 fps is read untrimmed (the reference's
``frames[0:-0]`` leaves it no frame at all).

Needs the ``cotracker`` package, which is not on the package index (``pip install
git+https://github.com/facebookresearch/co-tracker``), and ``talkvid models fetch cotracker3``.
Both CoTracker's code and its weights are licensed CC-BY-NC 4.0: non-commercial use only.
"""

from __future__ import annotations

import functools
import importlib.util
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from talkvid_assets.core.motion.windows import WINDOW_S, reference_windows
from talkvid_assets.core.quality.dover import torchvision_resize
from talkvid_assets.core.runtime import Runtime
from talkvid_assets.core.stages import BackendUnavailable
from talkvid_assets.core.video import Frame, VideoProbe

MODEL_NAME = "cotracker3"
WEIGHT_FILE = "scaled_offline.pth"
INSTALL = "pip install git+https://github.com/facebookresearch/co-tracker"
MAX_FPS = 30.0
SCALE = 0.25
SAMPLE_FPS = 2.0
EDGE_TRIM_S = 0.2
GRID = 100
QUERY_FRAME = 0
VISIBLE_ABOVE = 0.9
MODEL_WINDOW_LEN = 60  # the offline model's sliding window, as the reference builds it
TRACKER_ITERATIONS = 6  # CoTrackerPredictor's refinement steps
PROTOCOL_VERSION = (
    f"fps{MAX_FPS:g}-x{SCALE}-grid{GRID}-{SAMPLE_FPS:g}fps"
    f"-trim{EDGE_TRIM_S}-vis{VISIBLE_ABOVE}-min-1"
)


# --- the protocol, pure ----------------------------------------------------------------------


def effective_fps(fps: float) -> float:
    """The rate frames are read at: the source's, capped at 30 fps."""
    return min(fps, MAX_FPS)


def subsample_indices(frame_count: int, fps: float) -> list[int]:
    """Source frame indices read from a clip of ``frame_count`` frames: all of them up to
    30 fps, else int(i * fps / 30) for i below int(frame_count / (fps / 30))."""
    if fps <= MAX_FPS:
        return list(range(frame_count))
    interval = fps / MAX_FPS
    return [int(i * interval) for i in range(int(frame_count / interval))]


def frame_step(fps: float) -> int:
    """Frames between window samples: int(fps / 2) at the read rate (at least 1)."""
    return max(1, int(effective_fps(fps) / SAMPLE_FPS))


def edge_trim(count: int, fps: float) -> int:
    """Frames dropped at each end: int(0.2 * fps) when the clip is longer than one second."""
    return int(EDGE_TRIM_S * effective_fps(fps)) if count > effective_fps(fps) else 0


def window_indices(count: int, fps: float, duration: float) -> list[range]:
    """The reference's frame indices (into the ``count`` trimmed frames) of each window laid on
    the recorded ``duration``: from floor(start * fps) to ceil(end * fps), every int(fps / 2)."""
    rate = effective_fps(fps)
    return [
        range(max(math.floor(start * rate), 0), min(math.ceil(end * rate), count), frame_step(fps))
        for start, end in reference_windows(duration)
    ]


def on_lattice(wanted: range, available: Sequence[int] | set[int], count: int) -> list[int]:
    """``wanted`` if every frame of it is available, else the same number of frames moved to the
    nearest start on the lattice of available frames (a multiple of the step), kept inside the
    ``count`` frames; frames still missing are left out."""
    if all(index in available for index in wanted):
        return list(wanted)
    step, frames = wanted.step, len(wanted)
    start = round(wanted.start / step) * step
    while start > 0 and start + (frames - 1) * step >= count:
        start -= step
    moved = range(start, start + frames * step, step)
    return [index for index in moved if index < count and index in available]


def grid_queries(grid: int, height: int, width: int) -> np.ndarray:
    """The ``grid`` x ``grid`` query points (frame, x, y) CoTracker lays on a ``height`` x
    ``width`` model input, row by row, inset by width / 64 from every border (float32, as
    torch's linspace gives them)."""
    import torch

    margin = width / 64
    ys = torch.linspace(margin, height - margin, grid)
    xs = torch.linspace(margin, width - margin, grid)
    grid_y, grid_x = torch.meshgrid(ys, xs, indexing="ij")
    points = torch.stack([grid_x, grid_y], dim=-1).reshape(-1, 2).numpy()
    frames = np.full((len(points), 1), QUERY_FRAME, np.float32)
    return np.hstack([frames, points])


def visible_points(probabilities: np.ndarray, query_frame: int = QUERY_FRAME) -> np.ndarray:
    """frames x points visibility: probability above 0.9, and every point on its query frame."""
    visible = probabilities > VISIBLE_ABOVE
    visible[query_frame] = True
    return visible


def visibility_ratio(visible: np.ndarray) -> float:
    """A window's ratio: the share of visible (point, frame) pairs."""
    return float(np.mean(visible, dtype=np.float32))


def clip_ratio(ratios: Sequence[float]) -> float | None:
    """The clip's ``cotracker_ratio``: its worst window, or None when no window ran."""
    return min(ratios) if ratios else None


# --- streaming -------------------------------------------------------------------------------


class ReferenceFrames:
    """Keeps, as the clip streams, the quarter-size frames the reference's windows may take."""

    def __init__(self, fps: float) -> None:
        self._fps = fps
        self._rate = effective_fps(fps)
        self._interval = fps / MAX_FPS if fps > MAX_FPS else 1.0
        self._step = frame_step(fps)
        self._trim = int(EDGE_TRIM_S * self._rate)  # the trim, if the clip outlasts a second
        self._untrimmed = math.floor(self._rate) + 1  # frames a clip of one second can have
        self._first_window = math.ceil(WINDOW_S * self._rate) + self._step
        self._read = 0  # frames read so far (at most 30 fps)
        self.kept: dict[int, np.ndarray] = {}  # read-frame number -> image

    def read_number(self, clip_index: int) -> int | None:
        """The read-frame number of clip frame ``clip_index``, None when the read skips it."""
        if clip_index != int(self._read * self._interval):
            return None
        self._read += 1
        return self._read - 1

    def keeps(self, number: int) -> bool:
        """Whether read frame ``number`` may be in a window: the first second, or the lattice
        inside the first window or past the earliest possible middle window."""
        if number < self._untrimmed:
            return True
        offset = number - self._trim
        return offset % self._step == 0 and (
            offset < self._first_window or offset >= self._earliest_middle(number)
        )

    def _earliest_middle(self, number: int) -> int:
        """A lower bound on where the middle (or last) window can start, in trimmed frames,
        once ``number`` frames were read: the clip lasts at least that long."""
        seconds = number / self._rate - 2 * EDGE_TRIM_S - 0.1  # less the trims and rounding
        return math.floor((seconds / 2 - WINDOW_S / 2) * self._rate) - 2 * self._step

    def add(self, number: int, image: np.ndarray) -> None:
        self.kept[number] = image
        earliest = self._earliest_middle(number)
        for old in [n for n in self.kept if n >= self._untrimmed]:
            offset = old - self._trim
            if self._first_window <= offset < earliest:
                del self.kept[old]

    def windows(self, duration: float, frame_count: int) -> list[list[np.ndarray]]:
        """The frames of each window of a clip that turned out ``frame_count`` frames and
        ``duration`` seconds long (windows on the recorded, 0.1 s, duration)."""
        read = len(subsample_indices(frame_count, self._fps))
        trim = edge_trim(read, self._fps)
        count = read - 2 * trim
        available = {number - trim for number in self.kept if trim <= number < trim + count}
        recorded = max(round(duration, 1), 0.0)
        return [
            [self.kept[index + trim] for index in on_lattice(wanted, available, count)]
            for wanted in window_indices(count, self._fps, recorded)
        ]


# --- the model -------------------------------------------------------------------------------


def track_visibility(model: Any, frames: Sequence[np.ndarray], device: str) -> np.ndarray:
    """frames x points visibility probabilities of the 100 x 100 grid on ``frames`` (RGB uint8),
    tracked from the first: frames resized to the model's resolution (bilinear, corners
    aligned) as CoTrackerPredictor does, 6 refinement steps."""
    import torch
    import torch.nn.functional as F

    height, width = model.model_resolution
    video = torch.from_numpy(np.stack(frames)).permute(0, 3, 1, 2).float().to(device)
    video = F.interpolate(video, (height, width), mode="bilinear", align_corners=True)[None]
    queries = torch.from_numpy(grid_queries(GRID, height, width)).to(device)[None]
    with torch.inference_mode():
        _, visibility, *_ = model(video=video, queries=queries, iters=TRACKER_ITERATIONS)
    return visibility[0].float().cpu().numpy()


def _load_tracker(path: Path, device: str) -> Any:
    """CoTracker3 offline from its checkpoint, once per device and version of the file (its
    size and modification time: a re-fetched checkpoint is loaded again)."""
    stat = path.stat()
    return _cached_tracker(path, stat.st_size, stat.st_mtime_ns, device)


@functools.cache
def _cached_tracker(path: Path, size: int, mtime_ns: int, device: str) -> Any:
    from cotracker.models.build_cotracker import build_cotracker

    model = build_cotracker(str(path), offline=True, window_len=MODEL_WINDOW_LEN, v2=False)
    return model.eval().to(device)


class CoTrackerMotion:
    """Clip scorer factory of the ``cotracker3`` backend (TalkVid's ``cotracker_ratio``)."""

    name = "cotracker3"

    def __init__(self, runtime: Runtime) -> None:
        """Cheap: names the checkpoint in the version; it loads when the first clip opens."""
        self._runtime = runtime
        weights = runtime.weight_tag(MODEL_NAME, WEIGHT_FILE)
        self.version = f"cotracker3-offline-{weights}-{PROTOCOL_VERSION}"

    def ready(self) -> None:
        """Whether Meta's ``cotracker`` package is installed (not imported) and the checkpoint
        fetched; the message says what to install or fetch."""
        if importlib.util.find_spec("cotracker") is None:
            raise BackendUnavailable(
                f"cotracker3 needs Meta's cotracker package (CC-BY-NC 4.0, not on the package "
                f"index): {INSTALL}"
            )
        self._runtime.weight(MODEL_NAME, WEIGHT_FILE)

    def tracker(self) -> tuple[Any, str]:
        """(model, device); a missing package or checkpoint says what to install or fetch."""
        self.ready()
        device = self._runtime.torch_device()
        return _load_tracker(self._runtime.weight(MODEL_NAME, WEIGHT_FILE), device), device

    def new_clip(self, video: VideoProbe) -> CoTrackerClip:
        model, device = self.tracker()
        return CoTrackerClip(model, device, video)


class CoTrackerClip:
    """Keeps the clip's candidate frames at quarter size and tracks each window at the end."""

    def __init__(self, model: Any, device: str, video: VideoProbe) -> None:
        self._model = model
        self._device = device
        self._size = (max(1, int(video.width * SCALE)), max(1, int(video.height * SCALE)))
        self._frames = ReferenceFrames(video.fps)

    def offer(self, frame: Frame, clip_index: int, clip_time: float) -> None:
        number = self._frames.read_number(clip_index)
        if number is not None and self._frames.keeps(number):
            self._frames.add(number, torchvision_resize(frame.image("rgb24"), *self._size))

    def finish(self, duration: float, frame_count: int) -> dict[str, float | None]:
        ratios = [
            visibility_ratio(visible_points(track_visibility(self._model, window, self._device)))
            for window in self._frames.windows(duration, frame_count)
            if window
        ]
        return {"motion_ratio": clip_ratio(ratios)}


def motion_backend(runtime: Runtime) -> CoTrackerMotion:
    """The ``cotracker3`` motion backend; the model loads when the first clip opens."""
    return CoTrackerMotion(runtime)
