"""The reference's head-detail scores (spec, stage 3), as pure functions over detected faces.

Input is one entry per sampled frame (one frame per second, in time order), each the list of
faces found in it: ``{"bbox": [x1, y1, x2, y2], "kps": [[x, y] x 5], "pose": [pitch, yaw, roll]}``
with key points ordered left eye, right eye, nose, left mouth corner, right mouth corner. Only
frames with exactly one face are scored; face consistency looks at every sampled frame.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from statistics import fmean
from typing import Any

HEAD_DETAIL_KEYS = (
    "avg_movement",
    "min_movement",
    "avg_rotation",
    "min_rotation",
    "avg_completeness",
    "min_completeness",
    "avg_resolution",
    "min_resolution",
    "avg_orientation",
    "min_orientation",
    "face_consistency",
)
# Key-point groups and their weights in the completeness score.
COMPLETENESS_GROUPS = (((0, 1), 0.3), ((2,), 0.4), ((3, 4), 0.3))
RESOLUTION_FACTOR = 30.0
CONSISTENCY_PENALTY = 20.0

Face = Mapping[str, Any]


def movement(faces: Sequence[Face], width: float, height: float) -> tuple[float, float]:
    """(avg, min) movement: 100 minus the key points' mean displacement as % of the short side."""
    shifts = [
        fmean(
            abs(a - b) / min(width, height)
            for point_a, point_b in zip(first["kps"], second["kps"], strict=True)
            for a, b in zip(point_a, point_b, strict=True)
        )
        for first, second in itertools.pairwise(faces)
    ]
    if not shifts:
        return 100.0, 100.0
    return 100.0 - 100.0 * fmean(shifts), 100.0 - 100.0 * max(shifts)


def rotation(faces: Sequence[Face]) -> tuple[float, float]:
    """(avg, min) rotation: 100 minus the pose change between consecutive samples, in degrees."""
    turns = [
        math.sqrt(sum((b - a) ** 2 for a, b in zip(first["pose"], second["pose"], strict=True)))
        for first, second in itertools.pairwise(faces)
    ]
    if not turns:
        return 100.0, 100.0
    return 100.0 - fmean(turns), 100.0 - max(turns)


def completeness(face: Face, width: float, height: float) -> float:
    """Weighted share of eyes, nose and mouth key points inside the image, 0-100."""
    kps = face["kps"]
    return sum(
        weight
        * 100.0
        * sum(0 <= kps[i][0] < width and 0 <= kps[i][1] < height for i in group)
        / len(group)
        for group, weight in COMPLETENESS_GROUPS
    )


def resolution(face: Face, width: float, height: float) -> float:
    """Face box area as a percentage of the frame, times the reference's factor 30."""
    x1, y1, x2, y2 = face["bbox"]
    return RESOLUTION_FACTOR * (x2 - x1) * (y2 - y1) / (width * height) * 100.0


def orientation(face: Face) -> float:
    """Distance of [pitch, yaw, roll] from frontal, each angle as a percentage of 180 degrees."""
    return math.sqrt(sum((abs(angle) / 180.0 * 100.0) ** 2 for angle in face["pose"]))


def face_consistency(face_counts: Sequence[int]) -> float:
    """100 when every sampled frame has one face, minus 20 per frame that does not, floored at 0."""
    misses = sum(count != 1 for count in face_counts)
    return max(0.0, 100.0 - CONSISTENCY_PENALTY * misses)


def head_detail_scores(
    frames: Sequence[Sequence[Face]], width: float, height: float
) -> dict[str, float] | None:
    """The eleven head-detail scores of a clip, or None when no frame has exactly one face."""
    single = [faces[0] for faces in frames if len(faces) == 1]
    if not single:
        return None
    avg_movement, min_movement = movement(single, width, height)
    avg_rotation, min_rotation = rotation(single)
    completes = [completeness(face, width, height) for face in single]
    resolutions = [resolution(face, width, height) for face in single]
    orientations = [orientation(face) for face in single]
    return {
        "avg_movement": avg_movement,
        "min_movement": min_movement,
        "avg_rotation": avg_rotation,
        "min_rotation": min_rotation,
        "avg_completeness": fmean(completes),
        "min_completeness": min(completes),
        "avg_resolution": fmean(resolutions),
        "min_resolution": min(resolutions),
        "avg_orientation": 100.0 - fmean(orientations),
        "min_orientation": 100.0 - max(orientations),
        "face_consistency": face_consistency([len(faces) for faces in frames]),
    }
