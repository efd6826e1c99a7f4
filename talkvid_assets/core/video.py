"""Probing and the single decode pass over a source video.

Decoding is the cost floor of the whole pipeline, so a video is demuxed and decoded exactly once:
:func:`decode` yields every video frame wrapped in a :class:`Frame` whose pixel conversions are
lazy and cached, and hands decoded audio to a callback in the same loop. Consumers (scene
detection, the voice detector and every clip scorer) ask the frame for the view they need, at the
size they need, and only frames somebody asks for are ever converted.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import av
import av.error
import numpy as np

# Demuxers that wrap still images; PyAV opens them as one-frame "videos".
STILL_IMAGE_FORMATS = frozenset(
    {"image2", "image2pipe", "jpeg_pipe", "png_pipe", "webp_pipe", "bmp_pipe", "gif", "tiff_pipe"}
)
PLANAR_YUV_FORMATS = frozenset(
    {"yuv420p", "yuvj420p", "yuv422p", "yuvj422p", "yuv444p", "yuvj444p"}
)
FULL_COLOR_RANGE = 2  # AVCOL_RANGE_JPEG
# After this many undecodable packets in a row the rest of the stream is treated as lost.
MAX_CONSECUTIVE_PACKET_ERRORS = 50
MAX_UNDECODABLE_AUDIO = 0.5  # of a video's audio packets: more, and speech is not measured
AUDIO_RATE = 16_000
TIME_EPS = 1e-6  # seconds: timestamps closer than this are the same instant


class ProbeError(Exception):
    """The file cannot be used as a source video; the message is the detail of the recorded
    failure (kind ``not a video``)."""


@dataclass(frozen=True)
class VideoProbe:
    """What the container says about a source video, checked by decoding its first frame."""

    container: str
    video_codec: str
    width: int
    height: int
    fps: float
    duration_s: float
    frame_count: int
    has_audio: bool
    audio_codec: str | None
    # Counter-clockwise degrees the display matrix turns the stored picture (0, 90, 180, 270);
    # width and height above are the displayed picture's, and frames reach scorers upright.
    rotation: int = 0
    video_streams: int = 1  # the first is curated; others are named in the decode report

    @property
    def second_step(self) -> int:
        """Frames between one-per-second samples, counted as the reference does: int(fps)."""
        return max(1, int(self.fps))


def _duration_s(container: av.container.InputContainer, stream: av.video.VideoStream) -> float:
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    if container.duration is not None:
        return container.duration / av.time_base
    return 0.0


def probe(path: str | Path) -> VideoProbe:
    """Read container metadata and decode the first video frame.

    Raises :class:`ProbeError` with a human-readable reason for anything that is not a decodable
    video (zero-byte or random files, images, streams whose first frame cannot be decoded), so
    ingest can record the reason instead of crashing.
    """
    path = Path(path)
    if not path.is_file():
        raise ProbeError("source file not found")
    if path.stat().st_size == 0:
        raise ProbeError("empty file (0 bytes)")
    try:
        container = av.open(str(path), metadata_errors="ignore")
    except (av.error.FFmpegError, UnicodeDecodeError, ValueError) as exc:
        detail = getattr(exc, "strerror", None) or str(exc)
        raise ProbeError(f"not a readable media container: {detail}") from exc
    with container:
        if container.format.name in STILL_IMAGE_FORMATS:
            raise ProbeError(f"still image ({container.format.name})")
        if not container.streams.video:
            raise ProbeError(f"no video stream in {container.format.name}")
        stream = container.streams.video[0]
        rate = stream.average_rate or stream.guessed_rate or stream.base_rate
        fps = float(rate) if rate else 0.0
        duration = _duration_s(container, stream)
        try:
            first = next(container.decode(stream), None)
        except av.error.FFmpegError as exc:
            raise ProbeError(f"first video frame cannot be decoded: {exc}") from exc
        if first is None:
            raise ProbeError("video stream has no decodable frame")
        if fps <= 0:
            raise ProbeError("video stream has no frame rate")
        audio = container.streams.audio[0] if container.streams.audio else None
        frame_count = stream.frames or round(duration * fps)
        turns = quarter_turns(first)
        width, height = (first.height, first.width) if turns % 2 else (first.width, first.height)
        return VideoProbe(
            container=container.format.name,
            video_codec=stream.codec_context.name,
            width=width,
            height=height,
            fps=fps,
            duration_s=duration or frame_count / fps,
            frame_count=frame_count,
            has_audio=audio is not None,
            audio_codec=audio.codec_context.name if audio is not None else None,
            rotation=turns * 90,
            video_streams=len(container.streams.video),
        )


def quarter_turns(frame: av.VideoFrame) -> int:
    """How many counter-clockwise quarter turns display the frame upright (its display matrix,
    as phones record portrait video), 0 to 3."""
    return round((frame.rotation or 0) / 90) % 4


class Frame:
    """One decoded video frame with cached pixel views.

    ``index`` counts decoded frames from 0. ``time`` is the presentation time from the stream
    start, and ``number`` is ``round(time * fps)``: the frame numbers PySceneDetect reports,
    which skip where a variable-rate stream skips (Megamind.avi does), keeping cuts and speech
    aligned with the audio.
    """

    __slots__ = ("_cache", "_frame", "_turns", "index", "number", "time")

    def __init__(
        self, frame: av.VideoFrame, index: int, time: float, number: int, turns: int = 0
    ) -> None:
        self._frame = frame
        self._cache: dict[tuple[str, int, int], np.ndarray] = {}
        self._turns = turns
        self.index = index
        self.time = time
        self.number = number

    @property
    def width(self) -> int:
        """Width of the displayed (upright) picture."""
        return self._frame.height if self._turns % 2 else self._frame.width

    @property
    def height(self) -> int:
        return self._frame.width if self._turns % 2 else self._frame.height

    def _upright(self, stored: np.ndarray) -> np.ndarray:
        if not self._turns:
            return stored
        return np.ascontiguousarray(np.rot90(stored, self._turns))

    def image(
        self, fmt: str = "rgb24", width: int | None = None, height: int | None = None
    ) -> np.ndarray:
        """The frame as an ``(h, w[, 3])`` uint8 array: ``rgb24``, ``bgr24`` or ``gray``.

        Scaling and colour conversion happen in one swscale call, which costs far less than
        converting a full-resolution frame and resizing it afterwards.
        """
        key = (fmt, width or self.width, height or self.height)
        cached = self._cache.get(key)
        if cached is None:
            stored = (key[2], key[1]) if self._turns % 2 else (key[1], key[2])
            cached = self._upright(
                self._frame.to_ndarray(
                    format=fmt, width=stored[0], height=stored[1], interpolation="AREA"
                )
            )
            self._cache[key] = cached
        return cached

    def luma(self) -> np.ndarray:
        """The native-resolution luma plane: a view of the decoder's buffer for 8-bit YUV,
        converted only for other pixel formats. Limited-range (16-235) like the source."""
        if self._frame.format.name in PLANAR_YUV_FORMATS:
            plane = self._frame.planes[0]
            rows = np.frombuffer(plane, np.uint8).reshape(plane.height, plane.line_size)
            return self._upright(rows[:, : plane.width])
        return self.image("gray")

    @property
    def full_range(self) -> bool:
        """Whether luma spans 0-255 (JPEG range) rather than video range 16-235."""
        name = self._frame.format.name
        return (
            name.startswith("yuvj")
            or name not in PLANAR_YUV_FORMATS
            or (self._frame.color_range == FULL_COLOR_RANGE)
        )


@dataclass
class DecodeReport:
    """What happened during a decode pass, for the record of the video."""

    frames: int = 0
    end_number: int = 0  # one past the last frame number, where the last scene ends
    video_packet_errors: int = 0
    audio_packets: int = 0  # audio packets demuxed, when audio was decoded
    audio_packet_errors: int = 0
    stopped_early: bool = False

    @property
    def audio_unusable(self) -> bool:
        """Whether most audio packets failed to decode: the gaps are filled with silence to
        keep the clock (AudioTimeline), so speech measured on it would be silence measured,
        not speech absent."""
        return self.audio_packet_errors > self.audio_packets * MAX_UNDECODABLE_AUDIO


class FrameClock:
    """Presentation times from timestamps as PySceneDetect reads them (pts minus the stream's
    start), stepping by one frame interval where a timestamp is missing."""

    def __init__(self, stream: av.video.VideoStream, fps: float) -> None:
        self._fps = fps
        self._origin = stream.start_time or 0
        self._time_base = stream.time_base
        self._last = -math.inf

    @property
    def origin_s(self) -> float:
        """The video stream's start, which every time in the pipeline is measured from."""
        return float(self._origin * self._time_base) if self._time_base else 0.0

    def __call__(self, frame: av.VideoFrame) -> tuple[float, int]:
        if frame.pts is not None and self._time_base is not None:
            time = float((frame.pts - self._origin) * self._time_base)
        else:
            time = max(self._last + 1 / self._fps, 0.0)
        self._last = time
        return time, round(time * self._fps)


class AudioTimeline:
    """Resamples audio to 16 kHz mono and lays it on the video's clock.

    Audio that starts after the video is preceded by silence, audio before it is cut, and a gap
    left by a skipped packet is filled with silence, so later speech is not pulled earlier.
    """

    GAP_TOLERANCE_S = 0.01  # below one AC3/AAC packet (21-32 ms), above resampler delay

    def __init__(self, origin_s: float, sink: Callable[[np.ndarray], None]) -> None:
        self._origin = origin_s
        self._sink = sink
        self._resampler = av.AudioResampler(format="flt", layout="mono", rate=AUDIO_RATE)
        self._emitted = 0
        self._skip = 0  # samples still to drop before the video's start

    def push(self, frame: av.AudioFrame | None) -> None:
        """Take the next decoded frame; ``None`` flushes the resampler at the end."""
        if frame is not None and frame.time is not None:
            gap = (frame.time - self._origin) - self._emitted / AUDIO_RATE
            if self._emitted == 0 and gap < 0:
                self._skip = round(-gap * AUDIO_RATE)
            elif gap > self.GAP_TOLERANCE_S:
                self._emit(np.zeros(round(gap * AUDIO_RATE), np.float32))
        for chunk in self._resampler.resample(frame):
            samples = chunk.to_ndarray().reshape(-1)
            if self._skip:
                dropped = min(self._skip, len(samples))
                samples, self._skip = samples[dropped:], self._skip - dropped
            self._emit(samples)

    def _emit(self, samples: np.ndarray) -> None:
        if len(samples):
            self._emitted += len(samples)
            self._sink(samples)


def decode(
    path: str | Path,
    fps: float,
    on_audio: Callable[[np.ndarray], None] | None = None,
    report: DecodeReport | None = None,
    threads: int = 0,
) -> Iterator[Frame]:
    """Decode ``path`` once, yielding video frames and passing audio to ``on_audio``.

    Audio arrives as 16 kHz mono float32 on the video's clock (see :class:`AudioTimeline`). A packet
    that fails to decode is skipped and counted (Megamind.avi carries one corrupt AC3 packet); a
    long run of failures ends the stream, as with a truncated file, instead of raising.
    ``threads`` 0 lets FFmpeg decode on threads of its own, one per core; 1 decodes on the
    calling thread, which costs less CPU in all when several videos are decoded at once.
    """
    report = report if report is not None else DecodeReport()
    with av.open(str(path), metadata_errors="ignore") as container:
        vstream = container.streams.video[0]
        if threads != 1:
            vstream.thread_type = "AUTO"
        vstream.codec_context.thread_count = threads
        clock = FrameClock(vstream, fps)
        streams: list[av.stream.Stream] = [vstream]
        audio = None
        if on_audio is not None and container.streams.audio:
            streams.append(container.streams.audio[0])
            audio = AudioTimeline(clock.origin_s, on_audio)
        consecutive_errors = 0
        turns: int | None = None
        for packet in container.demux(*streams):
            if packet.stream.type == "audio" and packet.size:  # not the empty flush packet
                report.audio_packets += 1
            try:
                decoded = packet.decode()
            except av.error.FFmpegError:
                if packet.stream.type == "video":
                    report.video_packet_errors += 1
                    consecutive_errors += 1
                    if consecutive_errors > MAX_CONSECUTIVE_PACKET_ERRORS:
                        report.stopped_early = True
                        break
                else:
                    report.audio_packet_errors += 1
                continue
            if packet.stream.type == "video":
                consecutive_errors = 0
                for frame in decoded:
                    time, number = clock(frame)
                    if turns is None:
                        turns = quarter_turns(frame)
                    yield Frame(frame, report.frames, time, number, turns)
                    report.frames += 1
                    report.end_number = number + 1
            elif audio is not None:
                for frame in decoded:
                    audio.push(frame)
        if audio is not None:
            audio.push(None)
