"""Head pose from facial landmarks with a perspective-n-point fit.

insightface reports [pitch, yaw, roll] in degrees, all near 0 for a face looking into the camera.
The same is recovered here by fitting a generic 3-D face to five landmarks with OpenCV's SQPnP
solver (the ITERATIVE solver converges to a mirrored solution with flipped signs on these
inputs). The chin is left out on purpose: a speaking jaw moves it, and a rigid fit then reads
every open mouth as a nod (on talk_demo.mp4 that alone swings pitch by 20 degrees). The model
is expressed in camera axes (x right, y down, z away from the camera), so a frontal face has the
identity rotation and zero angles.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

# A generic face in millimetre-like units: nose tip, outer eye corners (image left, right),
# mouth corners (image left, right). Commonly used average proportions.
FACE_MODEL = np.array(
    [
        (0.0, 0.0, 0.0),
        (-225.0, -170.0, 135.0),
        (225.0, -170.0, 135.0),
        (-150.0, 150.0, 125.0),
        (150.0, 150.0, 125.0),
    ],
    dtype=np.float64,
)


def head_pose(
    points: np.ndarray, width: int, height: int, model: np.ndarray = FACE_MODEL
) -> list[float]:
    """[pitch, yaw, roll] in degrees from five landmarks matching ``model``'s points (by
    default :data:`FACE_MODEL`: nose tip, outer eye corners, mouth corners)."""
    camera = np.array(
        [[width, 0.0, width / 2], [0.0, width, height / 2], [0.0, 0.0, 1.0]], dtype=np.float64
    )
    ok, rvec, _ = cv2.solvePnP(
        model, points.astype(np.float64), camera, None, flags=cv2.SOLVEPNP_SQPNP
    )
    if not ok:
        return [0.0, 0.0, 0.0]
    rotation, _ = cv2.Rodrigues(rvec)
    pitch = math.degrees(math.atan2(rotation[2, 1], rotation[2, 2]))
    yaw = math.degrees(math.asin(max(-1.0, min(1.0, -rotation[2, 0]))))
    roll = math.degrees(math.atan2(rotation[1, 0], rotation[0, 0]))
    return [pitch, yaw, roll]
