"""Tiny feature extractors built for the tests, plugged into `talkvid evaluate` as
``module:factory`` the way a project plugs its own network in.

They stand in for Inception (frames) and I3D (clips), which cannot be downloaded here: a fixed
random projection of small grey thumbnails, and for a clip the mean of those features with the
mean absolute change between consecutive frames. Their numbers are named ``tiny-*`` in the
results, never FID-with-Inception.
"""

from __future__ import annotations

import cv2
import numpy as np

from talkvid_assets.core.evaluate.extractors import FVD_FRAMES
from talkvid_assets.core.runtime import Runtime

THUMB = 16
DIM = 24


class TinyFrames:
    name = "tiny-projection"

    def __init__(self, runtime: Runtime) -> None:
        self._weights = np.random.default_rng(0).normal(size=(THUMB * THUMB, DIM)) / THUMB

    def ready(self) -> None:
        """Always: nothing to load."""

    def frame_features(self, frames: np.ndarray) -> np.ndarray:
        thumbs = [
            cv2.resize(cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY), (THUMB, THUMB), cv2.INTER_AREA)
            for frame in frames
        ]
        return np.stack(thumbs).reshape(len(thumbs), -1).astype(np.float64) / 255.0 @ self._weights


class TinyClips:
    name = "tiny-projection-motion"

    def __init__(self, runtime: Runtime) -> None:
        self._frames = TinyFrames(runtime)

    def ready(self) -> None:
        """Always: nothing to load."""

    def clip_features(self, frames: np.ndarray) -> np.ndarray:
        features = self._frames.frame_features(frames[:FVD_FRAMES])
        return np.concatenate([features.mean(axis=0), np.abs(np.diff(features, axis=0)).mean(0)])
