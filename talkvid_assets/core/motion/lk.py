"""Embedded motion backend: a pyramidal Lucas-Kanade stand-in for the CoTracker visibility ratio.

CoTracker3 tracks a 100x100 grid from the first frame of each window and predicts per-point
visibility; a clip whose points stay visible has a steady camera and nothing sweeping through it.
Here a 50x50 grid (a quarter of CoTracker's points: LK pays per point, and the ratio is a share)
is tracked with OpenCV's pyramidal LK from each window's query frame, with a forward-backward
check standing in for the visibility head.
The windows and 2 fps sampling follow :mod:`talkvid_assets.core.motion.windows`.
"""

from __future__ import annotations

import cv2
import numpy as np

from talkvid_assets.core.motion.windows import WindowSampler
from talkvid_assets.core.runtime import Runtime
from talkvid_assets.core.video import Frame, VideoProbe

REFERENCE_SCALE = 0.25  # the reference resizes frames by 0.25 in each dimension
MIN_TRACKING_SIDE = 144  # ... but LK needs some pixels: never shrink the short side below this
LK_PARAMS = {
    "winSize": (21, 21),
    "maxLevel": 4,
    # At most 10 iterations to 0.03 px per level: OpenCV's default of 30 to 0.01 px cost 36%
    # more CPU on the samples' windows and moved no sample clip's ratio by more than 0.012.
    "criteria": (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 10, 0.03),
    # Flat regions (a plain wall) are still visible; only a failed round trip loses a point.
    "minEigThreshold": 1e-6,
    "flags": cv2.OPTFLOW_USE_INITIAL_FLOW,
}
FORWARD_BACKWARD_MAX_PX = 2.0  # at the working size
# Mean absolute grey difference between the query patch and the tracked patch: above it, the
# point is no longer the same surface (occluded, or the scene changed under it).
MAX_PATCH_ERROR = 24.0


def tracking_size(width: int, height: int) -> tuple[int, int]:
    """Working size: the reference's quarter scale, floored so small videos stay trackable."""
    scale = max(REFERENCE_SCALE, min(1.0, MIN_TRACKING_SIDE / min(width, height)))
    return max(8, round(width * scale)), max(8, round(height * scale))


def grid_points(width: int, height: int, grid: int) -> np.ndarray:
    """A ``grid`` x ``grid`` lattice of query points inside the frame, as LK wants them."""
    xs = np.linspace(0, width - 1, grid + 2, dtype=np.float32)[1:-1]
    ys = np.linspace(0, height - 1, grid + 2, dtype=np.float32)[1:-1]
    return np.stack(np.meshgrid(xs, ys), axis=-1).reshape(-1, 1, 2)


def visibility_ratio(frames: list[np.ndarray], grid: int) -> float:
    """Mean share of the query grid visible in each frame of a window.

    Like CoTracker, every point is tracked from the window's query frame (the first) to each
    later frame, so a point lost for a moment can come back. LK starts from the point's last good
    position; the result must survive the backward trip to the query frame and still look like
    the query patch. A point outside the frame or failing either check is invisible there. The
    query frame counts as fully visible, as CoTracker reports its query points.
    """
    query_frame = frames[0]
    height, width = query_frame.shape
    queries = grid_points(width, height, grid)
    last_good = queries.copy()
    visible = [1.0]
    for frame in frames[1:]:
        moved, forward_ok, patch_error = cv2.calcOpticalFlowPyrLK(
            query_frame, frame, queries, last_good.copy(), **LK_PARAMS
        )
        x, y = moved[:, 0, 0], moved[:, 0, 1]
        ok = (
            (forward_ok[:, 0] == 1)
            & (patch_error[:, 0] < MAX_PATCH_ERROR)
            & (x >= 0)
            & (x < width)
            & (y >= 0)
            & (y < height)
        )
        # LK tracks every point on its own, so only points that survived the forward trip need
        # the backward one.
        alive = np.flatnonzero(ok)
        if alive.size:
            back, backward_ok, _ = cv2.calcOpticalFlowPyrLK(
                frame, query_frame, moved[alive], queries[alive].copy(), **LK_PARAMS
            )
            round_trip = np.linalg.norm((back - queries[alive]).reshape(-1, 2), axis=1)
            ok[alive] = (backward_ok[:, 0] == 1) & (round_trip < FORWARD_BACKWARD_MAX_PX)
        last_good = np.where(ok[:, None, None], moved, last_good)
        visible.append(float(ok.mean()))
    return float(np.mean(visible))


class LucasKanadeMotion:
    """Clip scorer factory for the embedded motion backend."""

    name = "lk"
    version = "lk-fb-2"

    def __init__(self, runtime: Runtime | None = None, grid: int = 50) -> None:
        """Embedded: no weights, CPU only, so the runtime is not needed."""
        self.grid = grid

    def ready(self) -> None:
        """Always: embedded, its dependencies are pinned."""

    def new_clip(self, video: VideoProbe) -> LucasKanadeClip:
        return LucasKanadeClip(self.grid, tracking_size(video.width, video.height))


class LucasKanadeClip:
    """Buffers the clip's 2 fps grey frames the windows may need, then tracks each window."""

    def __init__(self, grid: int, size: tuple[int, int]) -> None:
        self._grid = grid
        self._size = size
        self._sampler = WindowSampler()

    def offer(self, frame: Frame, clip_index: int, clip_time: float) -> None:
        if self._sampler.wants(clip_time):
            self._sampler.add(clip_time, frame.image("gray", *self._size))

    def finish(self, duration: float, frame_count: int) -> dict[str, float | None]:
        ratios = [
            visibility_ratio(window, self._grid)
            for window in self._sampler.windows(duration)
            if window
        ]
        return {"motion_ratio": min(ratios) if ratios else None}
