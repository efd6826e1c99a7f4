"""Voice activity per clip with silero-vad, streamed from the shared decode pass.

The reference keeps a clip when a subtitle cue overlaps it; a subtitle says little about whether
somebody speaks in that very clip. Here silero-vad scores each 32 ms window of the 16 kHz mono
audio as the decode pass delivers it, and a clip's speech ratio is the share of its time covered
by silero's speech segments.

The wheel ships the same network exported for sequences (``silero_vad_16k_sequence.onnx``): it
takes a block of windows, each led by the previous window's last 64 samples, and carries the LSTM
state between blocks, giving bit-identical probabilities to the one-window-per-call model for a
quarter of the CPU. It is run here on onnxruntime directly, without importing the ``silero_vad``
package, whose import pulls in torch (about a second of start-up and 300 MB that nothing else in
a default curation needs).
"""

from __future__ import annotations

import functools
import importlib.util
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from talkvid_assets.core.runtime import onnx_session
from talkvid_assets.core.video import AUDIO_RATE

if TYPE_CHECKING:
    import onnxruntime

WINDOW = 512  # samples per silero window at 16 kHz
CONTEXT = 64  # samples of the previous window that lead each one
BLOCK_WINDOWS = 512  # windows per network call: 16.4 s of audio
STATE_SHAPE = (1, 1, 128)
SEQUENCE_MODEL = "silero_vad_16k_sequence.onnx"

# silero's defaults for turning window probabilities into speech segments (its
# get_speech_timestamps), in samples at 16 kHz.
THRESHOLD = 0.5
NEG_THRESHOLD = THRESHOLD - 0.15  # speech ends only below this
MIN_SPEECH = AUDIO_RATE * 250 / 1000
MIN_SILENCE = AUDIO_RATE * 100 / 1000
SPEECH_PAD = AUDIO_RATE * 30 / 1000


def model_path() -> Path:
    """The sequence model inside the installed silero-vad wheel, found without importing it."""
    spec = importlib.util.find_spec("silero_vad")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("silero-vad is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / "data" / SEQUENCE_MODEL


@functools.cache
def _session() -> onnxruntime.InferenceSession:  # loaded once per process
    return onnx_session(model_path(), ("CPUExecutionProvider",))


def speech_segments(probs: np.ndarray, audio_samples: int) -> list[tuple[int, int]]:
    """silero's speech segments (start, end in samples) from per-window probabilities.

    The rules of silero-vad's ``get_speech_timestamps`` with its defaults (no maximum segment
    length): speech starts at a window at or above 0.5 and ends where the probability has stayed
    below 0.35 for 100 ms; segments of 250 ms or less are dropped; then each segment is padded
    by 30 ms, or by half the silence when two segments are closer than 60 ms.
    """
    found: list[list[float]] = []
    start: int | None = None
    silence_from = 0  # where the current run of low probabilities began (0: none)
    for index, prob in enumerate(probs.tolist()):  # Python floats, compared as silero does
        sample = WINDOW * index
        if prob >= THRESHOLD:
            silence_from = 0
            if start is None:
                start = sample
                continue
        if start is not None and prob < NEG_THRESHOLD:
            silence_from = silence_from or sample
            if sample - silence_from < MIN_SILENCE:
                continue
            if silence_from - start > MIN_SPEECH:
                found.append([start, silence_from])
            start, silence_from = None, 0
    if start is not None and audio_samples - start > MIN_SPEECH:
        found.append([start, audio_samples])
    for index, segment in enumerate(found):
        if index == 0:
            segment[0] = int(max(0, segment[0] - SPEECH_PAD))
        if index + 1 < len(found):
            following = found[index + 1]
            gap = following[0] - segment[1]
            if gap < 2 * SPEECH_PAD:
                segment[1] += int(gap // 2)
                following[0] = int(max(0, following[0] - gap // 2))
            else:
                segment[1] = int(min(audio_samples, segment[1] + SPEECH_PAD))
                following[0] = int(max(0, following[0] - SPEECH_PAD))
        else:
            segment[1] = int(min(audio_samples, segment[1] + SPEECH_PAD))
    return [(int(start), int(end)) for start, end in found]


class SpeechDetector:
    """Accumulates silero speech probabilities for one video's audio track.

    Audio waits until a block of windows is complete; a last partial window is not scored.
    """

    def __init__(self) -> None:
        self._session = _session()
        self._pending: list[np.ndarray] = []
        self._pending_samples = 0
        self._context = np.zeros(CONTEXT, np.float32)
        self._state = (np.zeros(STATE_SHAPE, np.float32), np.zeros(STATE_SHAPE, np.float32))
        self._probs: list[np.ndarray] = []
        self._samples = 0
        self._segments: list[tuple[float, float]] | None = None

    def feed(self, samples: np.ndarray) -> None:
        """Take the next run of 16 kHz mono float32 samples."""
        self._samples += len(samples)
        self._pending.append(samples.astype(np.float32, copy=False))
        self._pending_samples += len(samples)
        if self._pending_samples >= BLOCK_WINDOWS * WINDOW:
            self._run(BLOCK_WINDOWS)

    def _run(self, limit: int) -> None:
        """Score the pending whole windows, ``limit`` at a time."""
        pending = np.concatenate(self._pending) if self._pending else np.empty(0, np.float32)
        usable = len(pending) - len(pending) % WINDOW
        for start in range(0, usable, limit * WINDOW):
            windows = pending[start : min(usable, start + limit * WINDOW)].reshape(-1, WINDOW)
            leads = np.empty((len(windows), CONTEXT), np.float32)
            leads[0] = self._context
            leads[1:] = windows[:-1, -CONTEXT:]
            self._context = windows[-1, -CONTEXT:].copy()
            probs, hidden, cell = self._session.run(
                ["speech_probs", "hn", "cn"],
                {"input": np.hstack([leads, windows]), "h": self._state[0], "c": self._state[1]},
            )
            self._state = (hidden, cell)
            self._probs.append(probs.reshape(-1))
        rest = pending[usable:]
        self._pending, self._pending_samples = [rest], len(rest)

    @property
    def audio_s(self) -> float:
        return self._samples / AUDIO_RATE

    def probabilities(self) -> np.ndarray:
        """Speech probability of every whole 32 ms window received so far."""
        self._run(BLOCK_WINDOWS)
        return np.concatenate(self._probs) if self._probs else np.empty(0, np.float32)

    def segments(self) -> list[tuple[float, float]]:
        """Speech segments in seconds, with silero's default hysteresis and padding."""
        if self._segments is None:
            found = speech_segments(self.probabilities(), self._samples)
            self._segments = [(start / AUDIO_RATE, end / AUDIO_RATE) for start, end in found]
        return self._segments

    def speech_ratio(self, start_s: float, end_s: float) -> float | None:
        """Share of ``[start_s, end_s)`` covered by speech; None for an empty span."""
        if end_s <= start_s:
            return None
        covered = sum(
            max(0.0, min(end, end_s) - max(start, start_s)) for start, end in self.segments()
        )
        return covered / (end_s - start_s)
