"""Clip files: a curated clip cut out of its source video (spec, Stage 1).

The reference cuts each clip with the ffmpeg binary (libx264, audio to AAC in a separate file).
This does the same with PyAV, so no ffmpeg binary is needed, in one of two layouts: ``mp4``
(H.264 and AAC in one MP4) or ``split`` (the reference's: a video-only MP4 and an ``.m4a`` beside
it). A clip holds exactly the source frames shown in ``[start_s, end_s)``, times measured from
the video stream's start as everywhere in the pipeline.

The video is stream-copied when that gives those exact frames: an H.264 source whose first clip
frame is a keyframe and whose clip frames form a run of packets in decode order (no frame outside
the clip is needed to decode one inside it, as a B-frame's later anchor is). Otherwise it is
re-encoded with libx264. Either way the picture is stored as in the source and its display
matrix is kept, so a phone's portrait video stays portrait without a second scaling or rotation
of the pixels, and copied and encoded clips of one source are alike. The audio is always
re-encoded to AAC, trimmed to the sample to the span the clip's frames cover (AAC packets are
21 ms, too coarse to copy), so sound and picture stay in sync.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Collection, Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from fractions import Fraction
from itertools import groupby
from operator import itemgetter
from pathlib import Path
from typing import Any

import av
import av.error
import numpy as np
from av.video.frame import PictureType

from talkvid_assets.core.durable import follow_umask
from talkvid_assets.core.sources import source_problem
from talkvid_assets.core.store import Store
from talkvid_assets.core.video import TIME_EPS, FrameClock, probe

LAYOUTS = ("mp4", "split")
# Under the home: where the clip_files asset, `talkvid cut` and `talkvid export --with-media`
# put clip files unless told otherwise.
CLIPS_DIR = "clips"
AUDIO_SUFFIX = ".m4a"
X264_OPTIONS = {"preset": "veryfast", "crf": "18"}
# A seek lands on a keyframe at or before its target, except in indexes that list decode
# times; then the next target is earlier, and the last is the stream's start.
SEEK_BACKOFF_S = (0.0, 10.0)


@dataclass(frozen=True)
class ClipCut:
    """What :func:`cut_clip` wrote."""

    mode: str  # how the video was written: "copy" or "encode"
    frames: int
    video_s: float
    audio_s: float | None  # None when the source has no audio
    files: tuple[Path, ...]  # the clip's MP4, then its .m4a in the split layout


@dataclass(frozen=True)
class _Span:
    """The clip's frames as the source's packets say, read without decoding."""

    seek_s: float  # where reading starts: at or before the first clip frame's keyframe
    first_s: float  # the first clip frame's time
    end_s: float  # where the last clip frame ends: the audio is cut to [first_s, end_s)
    copy_pts: frozenset[int] | None  # the clip's packets when a stream copy gives its frames


@dataclass(frozen=True)
class _Packet:
    pts: int
    time: float
    duration: float
    keyframe: bool


def cut_clip(
    source: str | Path, start_s: float, end_s: float, out: str | Path, layout: str = "mp4"
) -> ClipCut:
    """Cut the frames shown in ``[start_s, end_s)`` of ``source`` into ``out`` (an MP4).

    With ``layout="split"`` the audio goes to ``out`` with an ``.m4a`` suffix instead; a source
    without audio gives a clip without audio. A span running past the source's end gives the
    frames there are (the report says how many); one with no frame at all is an error. Every
    file is written under a temporary name and renamed into place, the MP4 last, so a clip file
    present is a complete one.
    """
    if layout not in LAYOUTS:
        raise ValueError(f"unknown clip layout {layout!r}; known: {', '.join(LAYOUTS)}")
    if not end_s > start_s:
        raise ValueError(f"empty clip: end {end_s} is not after start {start_s}")
    info = probe(source)
    out = Path(out)
    targets = [out]
    if layout == "split" and info.has_audio:
        targets.append(out.with_suffix(AUDIO_SUFFIX))
    with av.open(str(source), metadata_errors="ignore") as container:
        stream = container.streams.video[0]
        span = _span(container, stream, start_s, end_s, info.fps)
        with _staged(targets) as temporaries, ExitStack() as outputs:
            video_out = outputs.enter_context(av.open(str(temporaries[0]), "w", format="mp4"))
            audio_out = video_out
            if len(temporaries) > 1:
                audio_out = outputs.enter_context(av.open(str(temporaries[1]), "w", format="ipod"))
            video = _video_writer(video_out, stream, span, start_s, end_s, info.rotation)
            audio = None
            if info.has_audio:
                origin = FrameClock(stream, info.fps).origin_s
                audio = _AudioCut(audio_out, container.streams.audio[0], span, origin)
            _copy_streams(container, span, video, audio)
    return ClipCut(
        mode=video.mode,
        frames=video.frames,
        video_s=video.duration_s(info.fps),
        audio_s=None if audio is None else audio.duration_s,
        files=tuple(targets),
    )


def _video_writer(
    out: av.container.OutputContainer,
    stream: av.video.stream.VideoStream,
    span: _Span,
    start_s: float,
    end_s: float,
    rotation: int,
) -> _CopyVideo | _EncodeVideo:
    copyable = stream.codec_context.name == "h264" and bool(stream.codec_context.extradata)
    if span.copy_pts is not None and copyable:
        return _CopyVideo(out, stream, span.copy_pts, rotation)
    return _EncodeVideo(out, stream, start_s, end_s, rotation)


def _copy_streams(
    container: av.container.InputContainer,
    span: _Span,
    video: _CopyVideo | _EncodeVideo,
    audio: _AudioCut | None,
) -> None:
    """One demux pass from the seek point feeds both writers until each has its span."""
    streams: list[av.stream.Stream] = [video.source]
    if audio is not None:
        streams.append(audio.source)
    _seek(container, video.source, span.seek_s)
    for packet in container.demux(*streams):
        if packet.stream.type == "video":
            if not video.done:
                video.push(packet)
        elif audio is not None and not audio.done:
            for frame in _decoded(packet):
                audio.push(frame)
        if video.done and (audio is None or audio.done):
            break
    video.finish()
    if audio is not None:
        audio.finish()


def _span(
    container: av.container.InputContainer,
    stream: av.video.stream.VideoStream,
    start_s: float,
    end_s: float,
    fps: float,
) -> _Span:
    """Find the clip's frames from packet timestamps alone: cheap, and enough to decide whether
    a stream copy gives exactly the frames a re-encode would."""
    seek_s = _seek_point(container, stream, start_s)
    _seek(container, stream, seek_s)
    packets: list[_Packet] = []
    for packet in container.demux(stream):
        if packet.size == 0:
            continue  # the demuxer's end-of-stream marker
        if packet.pts is None:
            return _Span(seek_s, start_s, end_s, None)  # no timestamps to plan a copy with
        time = _seconds(packet.pts, stream)
        duration = _seconds(packet.duration, stream, origin=0) if packet.duration else 1 / fps
        packets.append(_Packet(packet.pts, time, duration, packet.is_keyframe))
        decode_time = packet.dts if packet.dts is not None else packet.pts
        if _seconds(decode_time, stream) >= end_s - TIME_EPS:
            break  # decode times only grow, and no frame is shown before it is decoded
    inside = [i for i, p in enumerate(packets) if start_s - TIME_EPS <= p.time < end_s - TIME_EPS]
    if not inside:
        raise ValueError(f"no frame of the source is shown in [{start_s}, {end_s})")
    clip = [packets[i] for i in inside]
    first = min(clip, key=lambda p: p.time)
    last = max(clip, key=lambda p: p.time)
    contiguous = inside[-1] - inside[0] + 1 == len(inside)
    copyable = contiguous and clip[0] is first and first.keyframe
    copy_pts = frozenset(p.pts for p in clip) if copyable else None
    return _Span(seek_s, first.time, last.time + last.duration, copy_pts)


def _seek_point(
    container: av.container.InputContainer, stream: av.video.stream.VideoStream, start_s: float
) -> float:
    """The latest of a few seek targets whose first packet is shown no later than ``start_s``."""
    for backoff in SEEK_BACKOFF_S:
        target = max(start_s - backoff, 0.0)
        _seek(container, stream, target)
        first = next((p for p in container.demux(stream) if p.pts is not None), None)
        if first is not None and _seconds(first.pts, stream) <= start_s + TIME_EPS:
            return target
    return 0.0


def _seek(
    container: av.container.InputContainer, stream: av.video.stream.VideoStream, seconds: float
) -> None:
    origin = stream.start_time or 0
    container.seek(origin + int(seconds / stream.time_base), stream=stream, backward=True)


def _seconds(timestamp: int, stream: av.stream.Stream, origin: int | None = None) -> float:
    """A timestamp in seconds from the stream's start (the pipeline's clock)."""
    start = (stream.start_time or 0) if origin is None else origin
    return float((timestamp - start) * stream.time_base)


def _decoded(packet: av.Packet) -> list[av.frame.Frame]:
    """The packet's frames; a packet that fails to decode is skipped, as the decode pass does."""
    try:
        return packet.decode()
    except av.error.FFmpegError:
        return []


class _CopyVideo:
    """Muxes the clip's packets unchanged, with timestamps moved to start at zero."""

    mode = "copy"

    def __init__(
        self,
        out: av.container.OutputContainer,
        source: av.video.stream.VideoStream,
        pts: frozenset[int],
        rotation: int,
    ) -> None:
        self.source = source
        self._out = out
        self._stream = out.add_stream_from_template(source)
        if rotation:
            self._stream.set_display_rotation(rotation)
        self._pts = pts
        self._origin = min(pts)
        self._times: list[float] = []
        self._last_duration = 0.0
        self.frames = 0

    @property
    def done(self) -> bool:
        return self.frames == len(self._pts)

    def push(self, packet: av.Packet) -> None:
        if packet.pts not in self._pts:
            return
        self._times.append(_seconds(packet.pts, self.source))
        self._last_duration = _seconds(packet.duration or 0, self.source, origin=0)
        packet.pts -= self._origin
        if packet.dts is not None:
            packet.dts -= self._origin
        packet.stream = self._stream
        self._out.mux(packet)
        self.frames += 1

    def finish(self) -> None:
        """Nothing is buffered: each packet was muxed as it came."""

    def duration_s(self, fps: float) -> float:
        return _span_seconds(self._times, self._last_duration or 1 / fps)


class _EncodeVideo:
    """Decodes from the keyframe before the clip and encodes its frames with libx264."""

    mode = "encode"

    def __init__(
        self,
        out: av.container.OutputContainer,
        source: av.video.stream.VideoStream,
        start_s: float,
        end_s: float,
        rotation: int,
    ) -> None:
        self.source = source
        source.thread_type = "AUTO"
        self._out = out
        rate = source.average_rate or source.guessed_rate or Fraction(30)
        self._stream = out.add_stream("libx264", rate=rate)
        self._stream.width = source.codec_context.width
        self._stream.height = source.codec_context.height
        self._stream.pix_fmt = "yuv420p"
        self._stream.options = dict(X264_OPTIONS)
        # The source's clock keeps a variable frame rate as it was.
        self._stream.codec_context.time_base = source.time_base
        if rotation:
            self._stream.set_display_rotation(rotation)
        self._clock = _BestEffortClock(source, float(rate))
        self._start_s, self._end_s = start_s, end_s
        self._times: list[float] = []
        self._last_pts = -1
        self.done = False
        self.frames = 0

    def push(self, packet: av.Packet) -> None:
        for frame in _decoded(packet):
            time = self._clock(frame)
            if time >= self._end_s - TIME_EPS:
                self.done = True
            if self.done or time < self._start_s - TIME_EPS:
                continue
            self._times.append(time)
            # Strictly increasing, as x264 requires, even where the source repeats a timestamp.
            pts = round((time - self._times[0]) / self.source.time_base)
            frame.pts = self._last_pts = max(pts, self._last_pts + 1)
            frame.pict_type = PictureType.NONE  # let x264 choose; a decoder's types would bind it
            self._out.mux(self._stream.encode(frame))
            self.frames += 1

    def finish(self) -> None:
        self.done = True
        self._out.mux(self._stream.encode(None))

    def duration_s(self, fps: float) -> float:
        return _span_seconds(self._times, 1 / fps)


class _BestEffortClock:
    """Frame times as FFmpeg's best-effort timestamp chooses them: presentation times, unless
    they go backwards more often than decode times do, then decode times.

    An AVI with packed B-frames (Megamind.avi) labels decoded frames with presentation times
    out of order while its decode times count the frames as shown; an encoder needs the latter.
    """

    def __init__(self, stream: av.video.stream.VideoStream, fps: float) -> None:
        self._stream = stream
        self._step = 1 / fps
        self._last: dict[str, int] = {}
        self._faults = {"pts": 0, "dts": 0}
        self._time = -self._step

    def __call__(self, frame: av.VideoFrame) -> float:
        for name in ("pts", "dts"):
            value = getattr(frame, name)
            if value is not None:
                self._faults[name] += name in self._last and value <= self._last[name]
                self._last[name] = value
        trust_pts = frame.dts is None or self._faults["pts"] <= self._faults["dts"]
        timestamp = frame.pts if trust_pts and frame.pts is not None else frame.dts
        if timestamp is None:
            self._time += self._step
        else:
            self._time = _seconds(timestamp, self._stream)
        return self._time


def _span_seconds(times: Sequence[float], last_duration: float) -> float:
    """From the first frame shown to the end of the last one."""
    return max(times) - min(times) + last_duration if times else 0.0


class _AudioCut:
    """Re-encodes the audio shown with the clip's frames to AAC, exact to the sample.

    Samples are placed by their timestamps: audio before the clip is cut, and a gap (a lost
    packet, or sound that starts after the picture) becomes silence, so later speech is not
    pulled earlier. Mono stays mono; anything else becomes stereo.
    """

    def __init__(
        self,
        out: av.container.OutputContainer,
        source: av.audio.stream.AudioStream,
        span: _Span,
        video_origin_s: float,
    ) -> None:
        self.source = source
        self._out = out
        self._rate = source.codec_context.sample_rate
        layout = "mono" if source.codec_context.channels == 1 else "stereo"
        self._stream = out.add_stream("aac", rate=self._rate, layout=layout)
        self._resampler = av.AudioResampler(format="fltp", layout=layout, rate=self._rate)
        self._layout = layout
        self._start_s = video_origin_s + span.first_s  # audio timestamps are the container's
        self._total = round((span.end_s - span.first_s) * self._rate)
        self._written = 0
        self.done = False

    @property
    def duration_s(self) -> float:
        return self._written / self._rate

    def push(self, frame: av.AudioFrame) -> None:
        if frame.time is None:
            offset = self._written  # no timestamp: it follows the previous frame
        else:
            offset = round((frame.time - self._start_s) * self._rate)
        samples = self._samples(frame)
        if offset > self._written:
            self._emit(np.zeros((samples.shape[0], offset - self._written), np.float32))
        samples = samples[:, max(self._written - offset, 0) :]
        self._emit(samples)
        self.done = self._written >= self._total

    def _samples(self, frame: av.AudioFrame) -> np.ndarray:
        chunks = [chunk.to_ndarray() for chunk in self._resampler.resample(frame)]
        channels = 1 if self._layout == "mono" else 2
        return np.concatenate(chunks, axis=1) if chunks else np.zeros((channels, 0), np.float32)

    def _emit(self, samples: np.ndarray) -> None:
        samples = samples[:, : self._total - self._written]
        if not samples.shape[1]:
            return
        frame = av.AudioFrame.from_ndarray(
            np.ascontiguousarray(samples), format="fltp", layout=self._layout
        )
        frame.sample_rate = self._rate
        frame.pts = self._written
        frame.time_base = Fraction(1, self._rate)
        self._out.mux(self._stream.encode(frame))
        self._written += samples.shape[1]

    def finish(self) -> None:
        self.done = True
        self._out.mux(self._stream.encode(None))


@contextmanager
def _staged(targets: Sequence[Path]) -> Iterator[list[Path]]:
    """Temporary names beside ``targets``, renamed onto them (the first last) when the block
    succeeds and removed when it fails."""
    temporaries: list[Path] = []
    try:
        for target in targets:
            target.parent.mkdir(parents=True, exist_ok=True)
            descriptor, name = tempfile.mkstemp(
                dir=target.parent, prefix=f".{target.name}.", suffix=".tmp"
            )
            follow_umask(descriptor)
            os.close(descriptor)
            temporaries.append(Path(name))
        yield temporaries
        for temporary, target in reversed(list(zip(temporaries, targets, strict=True))):
            os.replace(temporary, target)
    finally:
        for temporary in temporaries:
            temporary.unlink(missing_ok=True)


PASSING_SPANS_SQL = """
    SELECT f.clip_id, f.video_id, c.start_time, c.end_time, v.source_path
    FROM filtered_clips f
    JOIN clip_scores c USING (clip_id)
    JOIN videos v ON v.video_id = f.video_id
    WHERE f.passed ORDER BY f.clip_id
"""
# A clip file is the clip's only while the clip keeps the bounds it was cut at (a new scene
# detector or a re-ingested source can move them).
CURRENT_CLIP_FILES_SQL = """
    SELECT f.clip_id, f.path
    FROM clip_files f JOIN segments s USING (clip_id)
    WHERE f.start_time = s.start_time AND f.end_time = s.end_time
      AND f.clip_id IN (SELECT unnest(:clip_ids))
"""


@dataclass(frozen=True)
class ClipCuts:
    """What :func:`cut_passing_clips` did: the clips cut, and each clip left out with why."""

    made: list[tuple[str, ClipCut]]
    skipped: list[tuple[str, str]]  # (clip_id, reason)


def cut_passing_clips(
    store: Store,
    out: Path,
    clip_ids: Collection[str] | None = None,
    video_ids: Collection[str] | None = None,
    layout: str = "mp4",
) -> ClipCuts:
    """Clip files ``out/<clip_id>.mp4`` of the passing clips (of the given clips or videos),
    each recorded in the ``clip_files`` table with its bounds, so an export finds it.

    A clip whose source is gone or no longer the content it was keyed by, or that cannot be
    cut, is skipped with the reason; the other clips are still cut.
    """
    spans = [
        span
        for span in store.query(PASSING_SPANS_SQL)
        if (clip_ids is None or span["clip_id"] in clip_ids)
        and (video_ids is None or span["video_id"] in video_ids)
    ]
    cuts = ClipCuts([], [])
    for video_id, group in groupby(spans, key=itemgetter("video_id")):
        video_spans = list(group)
        problem = source_problem(store, video_id)
        if problem:
            cuts.skipped.extend((span["clip_id"], problem.text()) for span in video_spans)
            continue
        made = []
        for span in video_spans:
            target = Path(out) / f"{span['clip_id']}.mp4"
            try:
                cut = cut_clip(
                    span["source_path"], span["start_time"], span["end_time"], target, layout
                )
            except (av.error.FFmpegError, OSError, ValueError) as exc:
                cuts.skipped.append((span["clip_id"], f"cannot cut: {exc}"))
                continue
            made.append((span, cut))
        _record_cuts(store, video_id, made)
        cuts.made.extend((span["clip_id"], cut) for span, cut in made)
    return cuts


def _record_cuts(
    store: Store, video_id: str, made: Sequence[tuple[Mapping[str, Any], ClipCut]]
) -> None:
    """Add the video's new clip files to its ``clip_files`` rows (a clip cut again moves)."""
    rows = {row["clip_id"]: row for row in store.rows("clip_files", video_id)}
    for span, cut in made:
        rows[span["clip_id"]] = {
            "clip_id": span["clip_id"],
            "video_id": video_id,
            "path": str(cut.files[0].resolve()),
            "start_time": span["start_time"],
            "end_time": span["end_time"],
            "mode": cut.mode,
        }
    store.write("clip_files", video_id, sorted(rows.values(), key=itemgetter("clip_id")))


def clip_media(store: Store, clip_ids: Collection[str]) -> dict[str, Path]:
    """The clip file of each of ``clip_ids`` that was cut at the clip's current bounds and is
    still there: what a WebDataset export packs beside the record."""
    rows = store.query(CURRENT_CLIP_FILES_SQL, {"clip_ids": sorted(clip_ids)})
    return {row["clip_id"]: Path(row["path"]) for row in rows if Path(row["path"]).is_file()}
