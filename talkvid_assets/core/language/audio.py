"""The audio of a video's clips, for language ID: the audio stream alone, decoded once.

The decode pass reads the audio too, but it runs before the verdict, and a clip's bounds are
known only when its scene ends: keeping the audio for the few clips that will pass would mean
keeping the whole track (115 MB an hour at 16 kHz) until the verdict. Decoding the audio stream
alone, with no video frame decoded, costs a few milliseconds per second of audio instead
(README, "Spoken language"), and only passing clips without a manifest language need it.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import av
import numpy as np

from talkvid_assets.core.video import AUDIO_RATE, AudioTimeline, FrameClock

ClipSpan = tuple[str, float, float]  # clip id, start and end in seconds on the video's clock


def clips_audio(
    path: str | Path, clips: Sequence[ClipSpan], fps: float, limit_s: float
) -> dict[str, np.ndarray]:
    """Up to ``limit_s`` seconds of 16 kHz mono audio from the start of each clip, on the video's
    clock as the decode pass lays it (core.video.AudioTimeline). A video without an audio track
    gives empty arrays; decoding stops once the last clip has what it needs."""
    wanted = {clip_id: (start, min(end, start + limit_s)) for clip_id, start, end in clips}
    if not wanted:
        return {}
    last = max(end for _, end in wanted.values())
    chunks: list[np.ndarray] = []
    with av.open(str(path), metadata_errors="ignore") as container:
        if not container.streams.audio or not container.streams.video:
            return {clip_id: np.empty(0, np.float32) for clip_id in wanted}
        timeline = AudioTimeline(
            FrameClock(container.streams.video[0], fps).origin_s, chunks.append
        )
        received = 0
        for packet in container.demux(container.streams.audio[0]):
            try:
                frames = packet.decode()
            except av.error.FFmpegError:
                continue  # a corrupt packet: the timeline fills its gap with silence
            for frame in frames:
                timeline.push(frame)
            received = sum(len(chunk) for chunk in chunks)
            if received / AUDIO_RATE >= last:
                break
        else:
            timeline.push(None)
    track = np.concatenate(chunks) if chunks else np.empty(0, np.float32)
    return {
        clip_id: track[int(start * AUDIO_RATE) : int(end * AUDIO_RATE)]
        for clip_id, (start, end) in wanted.items()
    }
