"""The reference's motion windows and 2 fps sampling, fed from a stream of frames.

The reference knows a clip's duration before it reads it; the decode pass learns it only when the
clip ends. So frames are kept on a 2 fps grid, and only while some window could still need them:
the first window is fixed, the last window lies inside the candidate middle window's tail, and the
middle window can only move forward as the clip grows. Memory is bounded by half the clip's
length at 2 fps of small grey frames, never by the decode.
"""

from __future__ import annotations

import numpy as np

from talkvid_assets.core.video import TIME_EPS

SAMPLE_STEP_S = 0.5  # 2 fps within each window
EDGE_TRIM_S = 0.2  # dropped at both ends when the clip is longer than one second
WINDOW_S = 6.0


def reference_windows(duration: float) -> list[tuple[float, float]]:
    """Windows ``[start, end)`` over a clip of recorded ``duration`` seconds (spec, stage 2b)."""
    if duration <= WINDOW_S:
        return [(0.0, duration)]
    if duration <= 2 * WINDOW_S:
        return [(0.0, WINDOW_S), (duration - WINDOW_S, duration)]
    half = WINDOW_S / 2
    return [
        (0.0, WINDOW_S),
        (duration / 2 - half, duration / 2 + half),
        (duration - WINDOW_S, duration),
    ]


class WindowSampler:
    """Collects grid-aligned frames and cuts them into the reference windows at clip end.

    As in the reference, windows are laid on the recorded (0.1 s) duration and index into the
    clip with its first 0.2 s dropped, ending where the trimmed clip ends. Samples sit on a 2 fps
    grid from 0.2 s, so a window start snaps to the grid (at most 0.5 s later than the
    reference's; the reference's own start is a frame index rounded down).
    """

    def __init__(self) -> None:
        self._next = EDGE_TRIM_S
        self._kept: list[tuple[float, float, np.ndarray]] = []  # (grid time, frame time, image)

    def wants(self, clip_time: float) -> bool:
        return clip_time + TIME_EPS >= self._next

    def add(self, clip_time: float, image: np.ndarray) -> None:
        grid_time = self._next
        steps = int((clip_time + TIME_EPS - self._next) // SAMPLE_STEP_S) + 1
        self._next += steps * SAMPLE_STEP_S
        self._kept.append((grid_time, clip_time, image))
        # The final middle window starts no earlier than it would if the clip ended now.
        earliest_middle = EDGE_TRIM_S + clip_time / 2 - WINDOW_S / 2 - SAMPLE_STEP_S
        first_window_end = EDGE_TRIM_S + WINDOW_S
        self._kept = [
            item
            for item in self._kept
            if item[0] < first_window_end + TIME_EPS or item[0] >= earliest_middle
        ]

    def windows(self, duration: float) -> list[list[np.ndarray]]:
        """Frames of each reference window for a clip that turned out ``duration`` long."""
        recorded = max(round(duration, 1), 0.0)
        trim = EDGE_TRIM_S if recorded > 1 else 0.0
        trimmed_end = min(recorded, duration) - 2 * trim  # in trimmed-clip time
        present = [(grid - trim, image) for grid, time, image in self._kept if time < duration]
        return [
            [
                image
                for offset, image in present
                if start - TIME_EPS <= offset < min(end, trimmed_end) - TIME_EPS
            ]
            for start, end in reference_windows(recorded)
        ]
