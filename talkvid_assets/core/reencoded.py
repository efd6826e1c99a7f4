"""Scoring clips the way the reference does: on the x264 re-encoded clip file, not the source.

The reference cuts every clip to a file first (``ffmpeg -ss START -i SOURCE -t DURATION -c:v
libx264 -preset medium -an``, so x264's default CRF 23) and its DOVER and CoTracker stages read
those files; our decode pass scores frames decoded from the source, which is cheaper and is what
the clip files are cut from. The two differ where a model reacts to compression (DOVER's
technical branch does; so does the embedded quality scorer, README "Scoring on re-encoded
clips" gives the measured effect). With ``model_input: clip`` in curation.yaml the model stages
score this way.

One decode of the source feeds every clip's encoder (clips of one video never overlap); each
file is then decoded and offered to the scorers as one clip. Frames pass through RGB on the way
to the encoder (ffmpeg's transcode stays in YUV: the round trip moves a pixel by about one
level, far below what CRF 23 changes) and upright, as ffmpeg's transcode auto-rotates.
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping, Sequence
from fractions import Fraction
from pathlib import Path
from typing import Any

import av

from talkvid_assets.core.scoring import ScorerBackend, Scores
from talkvid_assets.core.video import TIME_EPS, VideoProbe, decode, probe

# What the reference's ffmpeg call amounts to: libx264, preset medium, x264's default CRF.
REFERENCE_X264 = {"preset": "medium", "crf": "23"}


class _ClipEncoder:
    """One clip's re-encode, fed upright RGB frames in order."""

    def __init__(self, path: Path, fps: float) -> None:
        self.path = path
        self.frames = 0
        self._fps = fps
        self._container: av.container.OutputContainer | None = None
        self._stream: Any = None

    def add(self, rgb: Any) -> None:
        if self._container is None:
            self._container = av.open(str(self.path), "w", format="mp4")
            rate = Fraction(self._fps).limit_denominator(1001)
            self._stream = self._container.add_stream("libx264", rate=rate)
            self._stream.height, self._stream.width = rgb.shape[:2]
            self._stream.pix_fmt = "yuv420p"
            self._stream.options = dict(REFERENCE_X264)
        frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
        frame.pts = self.frames
        self._container.mux(self._stream.encode(frame))
        self.frames += 1

    def close(self) -> None:
        if self._container is not None:
            self._container.mux(self._stream.encode(None))
            self._container.close()


def reencode_clips(
    source: str | Path, video: VideoProbe, spans: Sequence[tuple[float, float]], folder: Path
) -> list[Path | None]:
    """The frames shown in each ``[start, end)`` of ``source`` re-encoded as the reference
    cuts them, one MP4 per span in ``folder``; None for a span holding no frame."""
    encoders = [
        _ClipEncoder(folder / f"clip-{index:04d}.mp4", video.fps) for index in range(len(spans))
    ]
    try:
        for frame in decode(source, video.fps):
            for (start, end), encoder in zip(spans, encoders, strict=True):
                if start - TIME_EPS <= frame.time < end - TIME_EPS:
                    encoder.add(frame.image("rgb24"))
                    break
    finally:
        for encoder in encoders:
            encoder.close()
    return [encoder.path if encoder.frames else None for encoder in encoders]


def score_file(
    path: Path, backends: Mapping[str, ScorerBackend], duration: float
) -> dict[str, Scores]:
    """Every backend's scores of the whole file at ``path`` as one clip."""
    clip = probe(path)
    scorers = {name: backend.new_clip(clip) for name, backend in backends.items()}
    count = 0
    for frame in decode(path, clip.fps):
        for scorer in scorers.values():
            scorer.offer(frame, frame.index, frame.time)
        count += 1
    return {name: scorer.finish(duration, count) for name, scorer in scorers.items()}


def score_reencoded(
    source: str | Path,
    video: VideoProbe,
    segments: Sequence[Mapping[str, Any]],
    backends: Mapping[str, ScorerBackend],
) -> list[dict[str, Scores] | None]:
    """Each segment's scores from its re-encoded clip file (None: no frame to encode)."""
    spans = [(row["start_time"], row["end_time"]) for row in segments]
    with tempfile.TemporaryDirectory(prefix="talkvid-reencoded-") as folder:
        files = reencode_clips(source, video, spans, Path(folder))
        return [
            None if path is None else score_file(path, backends, end - start)
            for path, (start, end) in zip(files, spans, strict=True)
        ]
