"""The release's second pass: each passing clip cut into windows of a fixed number of frames.

The records TalkVid released (ids like ``videovideoTr6MMsoWAog-scene1-scene1``, durations like
``"5.042s"``) come from a second pass over the first pass's clips, which the reference's default
configuration does not run (``find_scenes_new_fixed_frames``, ``utils.py`` lines 958-1143 of its
segmentation stage at commit b3e15e6). What that code does, and what this module repeats:

- A clip of N frames is split into windows of F frames from its first frame: [0, F), [F, 2F),
  ...; when frames are left over, one more window ends at the clip's last frame, [N - F, N), so
  the last two windows overlap.
- A window's record is its parent clip's record with ``id`` = ``video<parent id>-scene<k>``
  (k counted from 1), ``start-time`` / ``end-time`` = the parent's start plus the window's
  first / end frame over the frame rate, and ``durations`` = frames / fps rounded to 3
  decimals, with an ``s``.

What the reference leaves unpublished, and what is chosen here instead:

- F itself: the function takes it as an argument and nothing in the repository calls it. The
  default, 121 frames, is the window that gives the released example's ``"5.042s"`` at 24 fps
  (121 / 24 = 5.0417); any other is a setting of the asset.
- Where the pass sat among the stages (before or after scoring) and whether windows were scored
  again: the windows here carry their parent's scores and labels, as the reference's record
  update does (it copies the parent's record and changes only times, size and ids).
- ``start-frame`` / ``end-frame``: the reference leaves the parent's values (its lines setting
  them are commented out); here they are the window's own frames in the source.
- A clip shorter than F frames: the reference's last-window rule gives it a window starting F - N
  frames before the clip (its start-time moves back, the file holds the whole clip); here it is
  one window, the whole clip, at the clip's own start.
- Frame counts: the reference counts the frames of its re-encoded clip file; here a clip's
  frames are the source frames whose times fall in [start, end) at the source's constant rate.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

# Frames per window by default (see the module docstring: the reference publishes none).
DEFAULT_WINDOW_FRAMES = 121
# Slack for float times that should sit exactly on a frame boundary.
_EPSILON = 1e-6


def fixed_frame_windows(frame_count: int, window: int) -> list[tuple[int, int]]:
    """The reference's windows ``[first, end)`` over a clip of ``frame_count`` frames."""
    if window < 1:
        raise ValueError(f"window of {window} frames: needs at least 1")
    if frame_count <= window:
        return [(0, frame_count)] if frame_count > 0 else []
    windows = [(start, start + window) for start in range(0, frame_count - window + 1, window)]
    if windows[-1][1] < frame_count:
        windows.append((frame_count - window, frame_count))
    return windows


def clip_frames(start_s: float, end_s: float, fps: float) -> tuple[int, int]:
    """The source frames ``[first, stop)`` whose times fall in ``[start_s, end_s)``."""
    return math.ceil(start_s * fps - _EPSILON), math.ceil(end_s * fps - _EPSILON)


def window_records(record: Mapping[str, Any], window: int) -> list[dict[str, Any]]:
    """Release-shaped records of one clip's fixed-frame windows (see the module docstring)."""
    fps = record["fps"]
    first, stop = clip_frames(record["start-time"], record["end-time"], fps)
    parent_start = record["start-time"]
    return [
        {
            **record,
            "id": f"video{record['id']}-scene{number}",
            "start-time": parent_start + start / fps,
            "start-frame": first + start,
            "end-time": parent_start + end / fps,
            "end-frame": first + end,
            "durations": f"{round((end - start) / fps, 3)}s",
            "talkvid_assets": {**record["talkvid_assets"], "parent_id": record["id"]},
        }
        for number, (start, end) in enumerate(fixed_frame_windows(stop - first, window), 1)
    ]
