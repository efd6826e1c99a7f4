"""Embedded face backend: dlib's HOG detector and 68-point landmark model, offline and on CPU.

Both ship in pip packages (dlib-bin, face_recognition_models). The five key points insightface
reports are derived from the 68 landmarks: eye centres, nose tip and mouth corners.
"""

from __future__ import annotations

import functools
import threading
import warnings

import dlib
import numpy as np

from talkvid_assets.core.faces import HeadDetailScorer
from talkvid_assets.core.faces.pose import head_pose
from talkvid_assets.core.head_detail import Face
from talkvid_assets.core.runtime import Runtime

# 68-point indices: eyes as seen in the image (left = subject's right), nose tip, mouth corners.
LEFT_EYE = slice(36, 42)
RIGHT_EYE = slice(42, 48)
NOSE_TIP, LEFT_EYE_OUTER, RIGHT_EYE_OUTER, MOUTH_LEFT, MOUTH_RIGHT = 30, 36, 45, 48, 54
POSE_LANDMARKS = [NOSE_TIP, LEFT_EYE_OUTER, RIGHT_EYE_OUTER, MOUTH_LEFT, MOUTH_RIGHT]
# HOG finds faces of about 80 px and up: detect on frames at most this tall, and let dlib
# upsample once when frames are small.
MAX_WORKING_HEIGHT = 540
UPSAMPLE_BELOW_HEIGHT = 360
# dlib's detector and predictor are shared by the detection threads and keep scratch buffers of
# their own, so they run for one frame at a time.
_ONE_AT_A_TIME = threading.Lock()


@functools.cache
def _models() -> tuple[dlib.fhog_object_detector, dlib.shape_predictor]:
    with warnings.catch_warnings():  # face_recognition_models still imports pkg_resources
        warnings.simplefilter("ignore")
        import face_recognition_models

    predictor = dlib.shape_predictor(face_recognition_models.pose_predictor_model_location())
    return dlib.get_frontal_face_detector(), predictor


class DlibFaceDetector:
    """HOG face detection + 68 landmarks -> bbox, 5 key points and a solvePnP head pose."""

    name = "dlib-hog"
    version = "dlib-20.0-hog68-1"
    batch_size = 1

    def working_size(self, width: int, height: int) -> tuple[int, int]:
        if height <= MAX_WORKING_HEIGHT:
            return width, height
        scale = MAX_WORKING_HEIGHT / height
        return round(width * scale), MAX_WORKING_HEIGHT

    def ready(self) -> None:
        """Always: dlib and face_recognition_models (its landmark model) are pinned."""

    def detect(self, rgb: np.ndarray) -> list[Face]:
        detector, predictor = _models()
        height, width = rgb.shape[:2]
        upsample = 1 if height < UPSAMPLE_BELOW_HEIGHT else 0
        faces: list[Face] = []
        with _ONE_AT_A_TIME:
            boxes = list(detector(rgb, upsample))
            shapes = [predictor(rgb, box) for box in boxes]
        for box, shape in zip(boxes, shapes, strict=True):
            points = np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float64)
            kps = [
                points[LEFT_EYE].mean(axis=0),
                points[RIGHT_EYE].mean(axis=0),
                points[NOSE_TIP],
                points[MOUTH_LEFT],
                points[MOUTH_RIGHT],
            ]
            faces.append(
                {
                    "bbox": [
                        float(box.left()),
                        float(box.top()),
                        float(box.right()),
                        float(box.bottom()),
                    ],
                    "kps": [[float(x), float(y)] for x, y in kps],
                    "pose": head_pose(points[POSE_LANDMARKS], width, height),
                }
            )
        return faces


def head_detail_backend(runtime: Runtime) -> HeadDetailScorer:
    """The ``dlib-hog`` head-detail backend: this detector behind the reference's sampling
    (embedded: no weights to fetch, CPU only)."""
    return HeadDetailScorer(DlibFaceDetector())
