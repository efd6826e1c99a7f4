"""Reading bench clips and generated videos for evaluation: RGB frames and 16 kHz audio.

A reference clip is the span ``[start_time, end_time)`` of its source, on the pipeline's clock;
a generated video is read whole. Frames are kept scaled to a long side of at most
``MAX_LONG_SIDE`` (every extractor resizes further: Inception to 299, I3D to 224, RetinaFace to
640), so a ten-second clip costs about 150 MB while it is evaluated.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from talkvid_assets.core.video import AUDIO_RATE, decode, probe

MAX_LONG_SIDE = 640


@dataclass(frozen=True)
class ClipMedia:
    frames: np.ndarray  # (frames, height, width, 3) uint8 RGB
    fps: float
    audio: np.ndarray  # 16 kHz mono float32 from the first frame's time

    @property
    def duration_s(self) -> float:
        return len(self.frames) / self.fps


def read_clip(path: Path, start_s: float = 0.0, end_s: float | None = None) -> ClipMedia:
    """The frames shown in ``[start_s, end_s)`` of ``path`` (all of it when ``end_s`` is None)
    and the audio of the same span."""
    probed = probe(path)
    scale = min(1.0, MAX_LONG_SIDE / max(probed.width, probed.height))
    size = (max(2, round(probed.width * scale)), max(2, round(probed.height * scale)))
    chunks: list[np.ndarray] = []
    frames = []
    for frame in decode(path, probed.fps, chunks.append if probed.has_audio else None):
        if frame.time + 1e-6 < start_s:
            continue
        if end_s is not None and frame.time >= end_s - 1e-6:
            break
        frames.append(frame.image("rgb24", *size))
    audio = np.concatenate(chunks) if chunks else np.zeros(0, np.float32)
    last = len(audio) if end_s is None else round(end_s * AUDIO_RATE)
    return ClipMedia(
        np.stack(frames) if frames else np.zeros((0, size[1], size[0], 3), np.uint8),
        probed.fps,
        audio[round(start_s * AUDIO_RATE) : last],
    )
