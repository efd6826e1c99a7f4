"""The ``insightface`` head-detail backend: the reference's own models, insightface ``buffalo_l``.

The reference runs insightface ``FaceAnalysis`` with ``det_size=(640, 640)``: ``det_10g.onnx``
(SCRFD-10GF: boxes and five key points) and ``1k3d68.onnx`` (68 3-D landmarks, from which the
head pose is fitted). Both come from ``talkvid models fetch insightface-buffalo_l`` (the models
are for non-commercial research only) and run on onnxruntime. The pre- and post-processing are
our own, written after insightface's ``model_zoo/scrfd.py``, ``model_zoo/landmark.py`` and
``utils/transform.py`` so that the same float32 numbers come out:

- detection: the frame is scaled, keeping its aspect, to fit 640 x 640 (bilinear) and put at the
  top left of a black 640 x 640 canvas; input (x - 127.5) / 128, RGB. Three levels (strides 8,
  16, 32) with two anchors per location give scores, box distances and key-point offsets in
  stride units; anchors scoring >= 0.5 are decoded and greedy NMS at IoU 0.4 keeps the best of
  overlapping ones (with insightface's +1-pixel box areas).
- landmarks: a 192 x 192 crop centred on the box, scaled so 1.5 x its longer side fills it; the
  input is raw 0-255 RGB, because 1k3d68 normalises inside its graph (insightface finds its
  Sub/Mul nodes and uses mean 0, std 1). The output's last 68 (x, y, z) triples, in [-1, 1] of
  the crop, are mapped back to frame pixels, z scaled like x and y.
- pose: the least-squares 3-D affine map from insightface's mean shape
  (:mod:`.insightface_meanshape`) to those landmarks; its first two rows, normalised, and their
  cross product make a rotation, read as Euler angles [pitch, yaw, roll] in degrees.

The reference feeds OpenCV's BGR frames and insightface swaps them to RGB; frames arrive here as
RGB, at their full size, as the reference reads them (the landmark crop is cut from the frame,
not from the 640 px detection input). buffalo_l's other models (recognition, gender and age, 2-D
landmarks) run in the reference too but change no score, so they are not run here.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from talkvid_assets.core.faces import HeadDetailScorer
from talkvid_assets.core.faces.insightface_meanshape import mean_shape
from talkvid_assets.core.head_detail import Face
from talkvid_assets.core.runtime import Runtime, onnx_session
from talkvid_assets.core.stages import BackendUnavailable

MODEL_NAME = "insightface-buffalo_l"
DETECTOR_FILE = "det_10g.onnx"
LANDMARK_FILE = "1k3d68.onnx"
# SCRFD as FaceAnalysis.prepare(det_size=(640, 640), det_thresh=0.5) sets it up.
DETECTION_SIZE = 640
DETECTION_MEAN, DETECTION_STD = 127.5, 128.0
STRIDES = (8, 16, 32)
ANCHORS_PER_LOCATION = 2
SCORE_THRESHOLD = 0.5
NMS_THRESHOLD = 0.4
KEY_POINTS = 5
# SCRFD with key points has three outputs per stride: scores, box distances, key-point offsets.
DETECTOR_OUTPUTS = 3 * len(STRIDES)
# 1k3d68: a 192 px crop, 1.5 x the box's longer side; 3309 outputs = 1103 (x, y, z) triples of
# which the last 68 are the 68-point landmarks (the width insightface recognises the model by).
LANDMARK_SIZE = 192
CROP_MARGIN = 1.5
LANDMARK_POINTS = 68
LANDMARK_OUTPUTS = 3309
SINGULAR_ROTATION = 1e-6  # matrix2angle's gimbal-lock test
POSTPROCESS_VERSION = f"scrfd{DETECTION_SIZE}-s{SCORE_THRESHOLD}-nms{NMS_THRESHOLD}-1k3d68pose-1"


def letterbox(rgb: np.ndarray, size: int = DETECTION_SIZE) -> tuple[np.ndarray, float]:
    """The frame scaled (aspect kept, bilinear) into the top left of a black ``size`` square,
    and the scale factor (detections are divided by it to return to frame pixels)."""
    height, width = rgb.shape[:2]
    ratio = height / width
    if ratio > 1.0:  # taller than the square input
        new_height, new_width = size, int(size / ratio)
    else:
        new_width, new_height = size, int(size * ratio)
    canvas = np.zeros((size, size, 3), np.uint8)
    canvas[:new_height, :new_width] = cv2.resize(rgb, (new_width, new_height))
    return canvas, new_height / height


def detection_input(canvas: np.ndarray) -> np.ndarray:
    """1 x 3 x S x S float32 (x - 127.5) / 128 of an RGB canvas, as SCRFD was trained."""
    blob = (canvas.astype(np.float32) - np.float32(DETECTION_MEAN)) * np.float32(
        1.0 / DETECTION_STD
    )
    return np.ascontiguousarray(blob.transpose(2, 0, 1)[None])


@functools.cache
def anchor_centres(size: int, stride: int) -> np.ndarray:
    """(x, y) pixel centres of one level's anchors in output order: row by row, column by
    column, each location repeated for its two anchors. Read-only: shared through the cache."""
    cells = size // stride
    rows, cols = np.mgrid[:cells, :cells]
    centres = np.stack([cols, rows], axis=-1).astype(np.float32).reshape(-1, 2) * stride
    centres = np.repeat(centres, ANCHORS_PER_LOCATION, axis=0)
    centres.flags.writeable = False
    return centres


def decode_level(
    scores: np.ndarray,
    distances: np.ndarray,
    offsets: np.ndarray,
    stride: int,
    threshold: float = SCORE_THRESHOLD,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(scores K, boxes K x 4, key points K x 5 x 2) in canvas pixels of one level's anchors
    scoring at least ``threshold``: box edges and key points are the anchor centre plus the
    predicted distances and offsets, which are in units of the stride."""
    scores = scores.reshape(-1)
    chosen = np.flatnonzero(scores >= threshold)
    centres = anchor_centres(DETECTION_SIZE, stride)[chosen]
    edges = distances.reshape(-1, 4)[chosen] * np.float32(stride)
    boxes = np.hstack([centres - edges[:, :2], centres + edges[:, 2:]])
    points = offsets.reshape(-1, 2 * KEY_POINTS)[chosen] * np.float32(stride)
    kps = points.reshape(-1, KEY_POINTS, 2) + centres[:, None, :]
    return scores[chosen], boxes, kps


def nms(detections: np.ndarray, threshold: float = NMS_THRESHOLD) -> list[int]:
    """Rows of ``detections`` ([x1, y1, x2, y2, score]) kept by greedy NMS, best first.

    As insightface's SCRFD does it, areas count the end pixel (width = x2 - x1 + 1), and a box
    goes when it overlaps a kept one by more than ``threshold`` intersection over union."""
    x1, y1, x2, y2, scores = detections.T
    areas = (x2 - x1 + 1) * (y2 - y1 + 1)
    order = np.argsort(-scores, kind="stable")
    keep: list[int] = []
    while order.size:
        best, rest = order[0], order[1:]
        keep.append(int(best))
        width = np.maximum(0.0, np.minimum(x2[best], x2[rest]) - np.maximum(x1[best], x1[rest]) + 1)
        height = np.maximum(
            0.0, np.minimum(y2[best], y2[rest]) - np.maximum(y1[best], y1[rest]) + 1
        )
        inter = width * height
        overlap = inter / (areas[best] + areas[rest] - inter)
        order = rest[overlap <= threshold]
    return keep


def detect_faces(outputs: Sequence[np.ndarray], scale: float) -> tuple[np.ndarray, np.ndarray]:
    """(detections N x 5 [x1, y1, x2, y2, score], key points N x 5 x 2) in frame pixels from
    SCRFD's nine outputs (scores x 3, box distances x 3, key-point offsets x 3, by stride).

    A model exported with a batch axis gives 3-D outputs; the first (only) image is taken."""
    levels = len(STRIDES)
    outputs = [out[0] if out.ndim == 3 else out for out in outputs]
    found = [
        decode_level(outputs[i], outputs[i + levels], outputs[i + 2 * levels], stride)
        for i, stride in enumerate(STRIDES)
    ]
    scores = np.concatenate([level[0] for level in found])
    boxes = np.concatenate([level[1] for level in found]) / np.float32(scale)
    kps = np.concatenate([level[2] for level in found]) / np.float32(scale)
    candidates = np.hstack([boxes, scores[:, None]]).astype(np.float32, copy=False)
    order = np.argsort(-scores, kind="stable")
    candidates, kps = candidates[order], kps[order]
    keep = nms(candidates)
    return candidates[keep], kps[keep]


def crop_matrix(box: Sequence[float]) -> np.ndarray:
    """The 2 x 3 similarity (no rotation) taking frame pixels to the 192 px landmark crop.

    float32 where insightface computes in float32 (the box, its centre and the scale), so the
    crop and the landmarks mapped back through it match the reference's to the last bit."""
    x1, y1, x2, y2 = (np.float32(value) for value in box[:4])
    centre_x, centre_y = (x2 + x1) / 2, (y2 + y1) / 2
    scale = LANDMARK_SIZE / (max(x2 - x1, y2 - y1) * np.float32(CROP_MARGIN))
    half = LANDMARK_SIZE / 2
    return np.array(
        [
            [float(scale), 0.0, half - float(centre_x * scale)],
            [0.0, float(scale), half - float(centre_y * scale)],
        ]
    )


def landmark_input(rgb: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """The 1 x 3 x 192 x 192 float32 raw-RGB crop 1k3d68 reads (black outside the frame)."""
    crop = cv2.warpAffine(rgb, matrix, (LANDMARK_SIZE, LANDMARK_SIZE), borderValue=0.0)
    return np.ascontiguousarray(crop.astype(np.float32).transpose(2, 0, 1)[None])


def landmarks_from_output(output: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """68 x 3 float32 landmarks in frame pixels from one crop's 3309 outputs: the last 68
    triples, from [-1, 1] of the crop to crop pixels, then through the inverse crop matrix (z
    scaled by the same factor as x and y)."""
    points = np.array(output, dtype=np.float32).reshape(-1, 3)[-LANDMARK_POINTS:]
    half = np.float32(LANDMARK_SIZE // 2)
    points[:, :2] = (points[:, :2] + np.float32(1)) * half
    points[:, 2] *= half
    inverse = cv2.invertAffineTransform(matrix)
    homogeneous = np.hstack([points[:, :2], np.ones((len(points), 1), np.float32)])
    mapped = np.empty_like(points)
    mapped[:, :2] = homogeneous.astype(np.float64) @ inverse.T
    # float64 products rounded to float32, as insightface stores them
    factor = np.sqrt(inverse[0, 0] * inverse[0, 0] + inverse[0, 1] * inverse[0, 1])
    mapped[:, 2] = points[:, 2].astype(np.float64) * factor
    return mapped


def euler_angles(rotation: np.ndarray) -> tuple[float, float, float]:
    """(pitch, yaw, roll) in degrees of a rotation matrix, x-y-z as insightface's matrix2angle
    reads it (roll 0 at gimbal lock)."""
    side = math.hypot(rotation[0, 0], rotation[1, 0])
    yaw = math.atan2(-rotation[2, 0], side)
    if side < SINGULAR_ROTATION:
        pitch, roll = math.atan2(-rotation[1, 2], rotation[1, 1]), 0.0
    else:
        pitch = math.atan2(rotation[2, 1], rotation[2, 2])
        roll = math.atan2(rotation[1, 0], rotation[0, 0])
    return math.degrees(pitch), math.degrees(yaw), math.degrees(roll)


def head_pose(landmarks: np.ndarray) -> list[float]:
    """[pitch, yaw, roll] in degrees (float32 values, as insightface reports them) of 68 3-D
    landmarks: the rotation of the affine map from the mean shape that fits them best."""
    shape = mean_shape()
    homogeneous = np.hstack([shape, np.ones((len(shape), 1))])
    affine = np.linalg.lstsq(homogeneous, landmarks, rcond=None)[0].T
    first = affine[0, :3] / np.linalg.norm(affine[0, :3])
    second = affine[1, :3] / np.linalg.norm(affine[1, :3])
    rotation = np.stack([first, second, np.cross(first, second)])
    return [float(angle) for angle in np.array(euler_angles(rotation), dtype=np.float32)]


def _session(path: Path, providers: tuple[str, ...]):  # -> onnxruntime.InferenceSession
    """One onnxruntime session per version of a model file (its size and modification time:
    a re-fetched file is loaded again) and providers, for the whole process."""
    stat = path.stat()
    return _cached_session(path, stat.st_size, stat.st_mtime_ns, providers)


@functools.cache
def _cached_session(path: Path, size: int, mtime_ns: int, providers: tuple[str, ...]):
    return onnx_session(path, providers)


class InsightFaceDetector:
    """buffalo_l's SCRFD and 1k3d68 on onnxruntime -> bbox, 5 key points, pose per face."""

    name = "insightface"
    # det_10g's input has a fixed batch of one image (shape [1, 3, ?, ?]): frames go one by one.
    batch_size = 1

    def __init__(self, runtime: Runtime) -> None:
        """Cheap: only names the weights; the sessions open on the first detection."""
        self._runtime = runtime
        tags = [
            f"{file}:{runtime.weight_tag(MODEL_NAME, file)}"
            for file in (DETECTOR_FILE, LANDMARK_FILE)
        ]
        self.version = f"buffalo_l-{'-'.join(tags)}-{POSTPROCESS_VERSION}"

    def working_size(self, width: int, height: int) -> tuple[int, int]:
        """Full size, as the reference reads frames: the landmark crop is cut from the frame."""
        return width, height

    def _files(self) -> tuple[Path, Path]:
        """(SCRFD, 1k3d68); a missing one names ``talkvid models fetch insightface-buffalo_l``."""
        return (
            self._runtime.weight(MODEL_NAME, DETECTOR_FILE),
            self._runtime.weight(MODEL_NAME, LANDMARK_FILE),
        )

    def ready(self) -> None:
        """Whether both ONNX files are unpacked from the fetched zip (onnxruntime is pinned)."""
        self._files()

    def _sessions(self):  # -> tuple[InferenceSession, InferenceSession]
        providers = tuple(self._runtime.onnx_providers())
        detector_file, landmark_file = self._files()
        detector = _session(detector_file, providers)
        landmarker = _session(landmark_file, providers)
        if len(detector.get_outputs()) != DETECTOR_OUTPUTS:
            raise BackendUnavailable(
                f"{DETECTOR_FILE} has {len(detector.get_outputs())} outputs, not SCRFD's "
                f"{DETECTOR_OUTPUTS}: re-fetch with `talkvid models fetch {MODEL_NAME}`"
            )
        width = landmarker.get_outputs()[0].shape[-1]
        if isinstance(width, int) and width != LANDMARK_OUTPUTS:
            raise BackendUnavailable(
                f"{LANDMARK_FILE} outputs {width} values, not 1k3d68's {LANDMARK_OUTPUTS}: "
                f"re-fetch with `talkvid models fetch {MODEL_NAME}`"
            )
        return detector, landmarker

    def detect(self, rgb: np.ndarray) -> list[Face]:
        detector, landmarker = self._sessions()
        canvas, scale = letterbox(rgb)
        outputs = detector.run(None, {detector.get_inputs()[0].name: detection_input(canvas)})
        boxes, kps = detect_faces(outputs, scale)
        faces: list[Face] = []
        for box, points in zip(boxes, kps, strict=True):
            matrix = crop_matrix(box)
            crop = landmark_input(rgb, matrix)
            output = landmarker.run(None, {landmarker.get_inputs()[0].name: crop})[0]
            landmarks = landmarks_from_output(output[0], matrix)
            faces.append(
                {
                    "bbox": [float(value) for value in box[:4]],
                    "kps": [[float(x), float(y)] for x, y in points],
                    "pose": head_pose(landmarks),
                }
            )
        return faces

    def detect_batch(self, frames: Sequence[np.ndarray]) -> list[list[Face]]:
        """The faces of each frame, one frame at a time (see :attr:`batch_size`)."""
        return [self.detect(rgb) for rgb in frames]


def head_detail_backend(runtime: Runtime) -> HeadDetailScorer:
    """The ``insightface`` head-detail backend: the reference's buffalo_l models behind its
    one-frame-per-second sampling. Cheap: the models load on the first detection, and missing
    weights are reported then, naming ``talkvid models fetch insightface-buffalo_l``."""
    return HeadDetailScorer(InsightFaceDetector(runtime))
