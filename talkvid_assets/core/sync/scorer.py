"""The ``syncnet`` backend of the ``sync`` stage: SyncNet on face crops and the clip's audio.

Frames are taken at SyncNet's 25 fps (the latest decoded frame at each 40 ms tick, whatever the
source's rate, so offsets are in 25 fps frames as published). Faces are found by the embedded
RetinaFace, the detector the head-detail stage counts faces with, on one tick in
``DETECT_EVERY``; the box is held in between. Each crop is a square around the face box, larger
by ``CROP_MARGIN`` on every side as ``syncnet_python``'s face tracks are, scaled to the network's
face size. Crops are embedded five at a time as they arrive, so a clip keeps only one embedding
per tick; the audio arrives when the clip's audio has been decoded (:meth:`SyncClip.hear`).
"""

from __future__ import annotations

import functools
from collections import deque
from pathlib import Path

import cv2
import numpy as np

from talkvid_assets.core.faces import FaceDetector, face_area, scale_face
from talkvid_assets.core.runtime import Runtime
from talkvid_assets.core.sync.mfcc import mfcc
from talkvid_assets.core.sync.offset import SyncResult, sync_offset
from talkvid_assets.core.video import AUDIO_RATE, Frame, VideoProbe

MODEL_NAME = "syncnet"
WEIGHT_FILE = "syncnet_v2.model"
SYNC_FPS = 25
MFCC_PER_FRAME = 4  # 100 MFCC frames per second over 25 video frames
DETECT_EVERY = 5  # ticks between face detections: 0.2 s, one SyncNet window
CROP_MARGIN = 0.4
BATCH = 32  # windows embedded at once
PROTOCOL_VERSION = "sync-1"
SCORE_NAMES = ("sync_offset", "sync_confidence", "sync_distance")


class SyncEmbedder:
    """Embeds a clip's face crops window by window, then its audio, and searches the offset.

    Independent of where crops come from: the clip scorer feeds it crops of detected faces,
    a test feeds it drawn mouths.
    """

    def __init__(self, network: object, device: str = "cpu") -> None:
        import torch

        self._torch = torch
        self._network = network
        self._device = device
        self._recent: deque[np.ndarray] = deque(maxlen=5)
        self._windows: list[np.ndarray] = []  # complete 5-crop windows waiting for a batch
        self._embedded: list[np.ndarray] = []

    def add(self, crop: np.ndarray) -> None:
        """The next 25 fps crop, ``(size, size, 3)`` uint8 BGR at the network's face size."""
        self._recent.append(crop)
        if len(self._recent) == 5:
            self._windows.append(np.stack(self._recent))
            if len(self._windows) >= BATCH:
                self._flush()

    def _flush(self) -> None:
        if not self._windows:
            return
        torch = self._torch
        batch = torch.from_numpy(np.stack(self._windows)).to(self._device)
        batch = batch.permute(0, 4, 1, 2, 3).float()  # (windows, 3, 5, size, size)
        with torch.inference_mode():
            self._embedded.append(self._network.forward_lip(batch).cpu().numpy())
        self._windows = []

    def result(self, audio: np.ndarray) -> SyncResult | None:
        """Offset, Sync-C and Sync-D of the crops so far against ``audio`` (16 kHz mono from
        the first crop's time); None when the clip is shorter than one window of either."""
        self._flush()
        torch = self._torch
        coefficients = mfcc(audio)
        starts = range(0, coefficients.shape[1] - 20 + 1, MFCC_PER_FRAME)
        if not self._embedded or not starts:
            return None
        windows = np.stack([coefficients[:, start : start + 20] for start in starts])
        audio_in = torch.from_numpy(windows[:, None]).float().to(self._device)
        with torch.inference_mode():
            audio_embedded = self._network.forward_aud(audio_in).cpu().numpy()
        return sync_offset(np.concatenate(self._embedded), audio_embedded)


def face_crop(bgr: np.ndarray, bbox: list[float], size: int) -> np.ndarray:
    """A square around ``bbox`` widened by CROP_MARGIN each side, scaled to ``size``;
    the frame is padded with black where the square leaves it."""
    x1, y1, x2, y2 = bbox
    half = max(x2 - x1, y2 - y1) / 2 * (1 + 2 * CROP_MARGIN)
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    pad = int(np.ceil(half)) + 1
    framed = cv2.copyMakeBorder(bgr, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=0)
    left, top = round(cx - half) + pad, round(cy - half) + pad
    side = max(1, round(2 * half))
    return cv2.resize(framed[top : top + side, left : left + side], (size, size))


class SyncClip:
    """One clip's SyncNet scores: crops streamed in, audio heard at the end."""

    def __init__(self, network: object, device: str, detector: FaceDetector) -> None:
        self._detector = detector
        self._size = network.shape.face_size  # type: ignore[attr-defined]
        self._embedder = SyncEmbedder(network, device)
        self._tick = 0
        self._box: list[float] | None = None
        self._audio = np.zeros(0, np.float32)
        self._first_crop_s: float | None = None

    def offer(self, frame: Frame, clip_index: int, clip_time: float) -> None:
        while self._tick / SYNC_FPS <= clip_time + 1e-6:
            if self._tick % DETECT_EVERY == 0:
                self._box = self._find_face(frame) or self._box
            if self._box is not None:  # held from the last detection that found a face
                if self._first_crop_s is None:  # the audio starts at the first crop's frame
                    self._first_crop_s = clip_time
                self._embedder.add(face_crop(frame.image("bgr24"), self._box, self._size))
            self._tick += 1

    def _find_face(self, frame: Frame) -> list[float] | None:
        width, height = self._detector.working_size(frame.width, frame.height)
        faces = self._detector.detect(frame.image("rgb24", width, height))
        if not faces:
            return None
        scale = (frame.width / width, frame.height / height)
        return scale_face(max(faces, key=face_area), *scale)["bbox"]

    def hear(self, samples: np.ndarray) -> None:
        """The clip's audio, 16 kHz mono from the clip's start."""
        self._audio = samples

    def result(self, duration: float) -> SyncResult | None:
        """The clip's offset, Sync-C and Sync-D over its first ``duration`` seconds; None
        when no face was found or the clip is shorter than one window."""
        if self._first_crop_s is None:
            return None
        start = round(self._first_crop_s * AUDIO_RATE)
        return self._embedder.result(self._audio[start : round(duration * AUDIO_RATE)])

    def finish(self, duration: float, frame_count: int) -> dict[str, float | None]:
        result = self.result(duration)
        if result is None:
            return dict.fromkeys(SCORE_NAMES)
        return {
            "sync_offset": result.offset,
            "sync_confidence": result.confidence,
            "sync_distance": result.distance,
        }


@functools.cache
def _cached_network(path: Path, size: int, mtime_ns: int, device: str) -> object:
    from talkvid_assets.core.sync.network import load_syncnet

    return load_syncnet(path, device)


class SyncNetScorer:
    """Clip scorer factory of the ``syncnet`` backend; hears the clip's audio."""

    name = "syncnet"
    hears_audio = True

    def __init__(self, runtime: Runtime) -> None:
        """Cheap: names the weights in the version; they load when the first clip opens."""
        self._runtime = runtime
        weights = runtime.weight_tag(MODEL_NAME, WEIGHT_FILE)
        self.version = f"syncnet-v2-{weights}-{PROTOCOL_VERSION}"

    def ready(self) -> None:
        """Whether the weights are fetched; the message names `talkvid models fetch syncnet`."""
        self._runtime.weight(MODEL_NAME, WEIGHT_FILE)

    def new_clip(self, video: VideoProbe) -> SyncClip:
        from talkvid_assets.core.faces.retinaface import OnnxRetinaFace

        path = self._runtime.weight(MODEL_NAME, WEIGHT_FILE)
        stat = path.stat()
        device = self._runtime.torch_device()
        network = _cached_network(path, stat.st_size, stat.st_mtime_ns, device)
        return SyncClip(network, device, OnnxRetinaFace(self._runtime))


def sync_backend(runtime: Runtime) -> SyncNetScorer:
    """The ``syncnet`` sync backend (weights: `talkvid models fetch syncnet`)."""
    return SyncNetScorer(runtime)
