"""Voice activity per clip with silero-vad, streamed from the shared decode pass.

The reference keeps a clip when a subtitle cue overlaps it; a subtitle says little about whether
somebody speaks in that very clip. Here silero-vad (its ONNX model ships in the wheel) scores each
32 ms window of the 16 kHz mono audio as the decode pass delivers it, and a clip's speech ratio is
the share of its time covered by silero's speech segments.
"""

from __future__ import annotations

import functools

import numpy as np
import torch
from silero_vad import load_silero_vad
from silero_vad.utils_vad import get_speech_timestamps_from_probs

from talkvid_assets.core.video import AUDIO_RATE

WINDOW = 512  # samples per silero window at 16 kHz


@functools.cache
def _model():  # loaded once per process; its recurrent state is reset per video
    return load_silero_vad(onnx=True)


class SpeechDetector:
    """Accumulates silero speech probabilities for one video's audio track."""

    def __init__(self) -> None:
        self._model = _model()
        self._model.reset_states()
        self._pending = np.empty(0, np.float32)
        self._probs: list[float] = []
        self._samples = 0
        self._segments: list[tuple[float, float]] | None = None

    def feed(self, samples: np.ndarray) -> None:
        """Take the next run of 16 kHz mono float32 samples."""
        self._samples += len(samples)
        pending = np.concatenate([self._pending, samples.astype(np.float32, copy=False)])
        usable = len(pending) - len(pending) % WINDOW
        for start in range(0, usable, WINDOW):
            window = torch.from_numpy(pending[start : start + WINDOW]).unsqueeze(0)
            self._probs.append(float(self._model(window, AUDIO_RATE)))
        self._pending = pending[usable:].copy()

    @property
    def audio_s(self) -> float:
        return self._samples / AUDIO_RATE

    def segments(self) -> list[tuple[float, float]]:
        """Speech segments in seconds, with silero's default hysteresis and padding."""
        if self._segments is None:
            found = get_speech_timestamps_from_probs(
                self._probs, sampling_rate=AUDIO_RATE, audio_length_samples=self._samples
            )
            self._segments = [(s["start"] / AUDIO_RATE, s["end"] / AUDIO_RATE) for s in found]
        return self._segments

    def speech_ratio(self, start_s: float, end_s: float) -> float | None:
        """Share of ``[start_s, end_s)`` covered by speech; None for an empty span."""
        if end_s <= start_s:
            return None
        covered = sum(
            max(0.0, min(end, end_s) - max(start, start_s)) for start, end in self.segments()
        )
        return covered / (end_s - start_s)
