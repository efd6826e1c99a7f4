"""Real test media made from the bundled samples with PyAV: short variants and hostile files."""

from __future__ import annotations

from collections.abc import Iterable
from fractions import Fraction
from functools import cache
from pathlib import Path

import av
import numpy as np

SAMPLES = Path(__file__).resolve().parents[1] / "data" / "samples"
AUDIO_RATE = 48_000


@cache
def read_sample(name: str) -> tuple[tuple[np.ndarray, ...], np.ndarray | None, float]:
    """RGB frames, mono float32 audio at 48 kHz (or None) and the frame rate of a sample, read
    once per process (a second of CPU for talk_demo.mp4): the arrays are read-only and the
    frames a tuple, so no caller can change what the next one reads."""
    audio: list[np.ndarray] = []
    with av.open(str(SAMPLES / name)) as container:
        fps = float(container.streams.video[0].average_rate)
        frames = tuple(frame.to_ndarray(format="rgb24") for frame in container.decode(video=0))
    with av.open(str(SAMPLES / name)) as container:
        if container.streams.audio:
            resampler = av.AudioResampler(format="flt", layout="mono", rate=AUDIO_RATE)
            for frame in container.decode(audio=0):
                audio += [chunk.to_ndarray().reshape(-1) for chunk in resampler.resample(frame)]
    sound = np.concatenate(audio) if audio else None
    for array in (*frames, *([sound] if sound is not None else [])):
        array.flags.writeable = False
    return frames, sound, fps


def video_frame(image: np.ndarray) -> av.VideoFrame:
    """An RGB frame, or a grey one (2-D) as YUV 4:2:0 with neutral chroma."""
    if image.ndim == 3:
        return av.VideoFrame.from_ndarray(image, format="rgb24")
    chroma = np.full((image.shape[0] // 2, image.shape[1]), 128, np.uint8)
    return av.VideoFrame.from_ndarray(np.concatenate([image, chroma]), format="yuv420p")


def write_video(
    path: Path,
    frames: Iterable[np.ndarray],
    fps: float,
    audio: np.ndarray | None = None,
    preset: str = "veryfast",
    faststart: bool = False,
    display_rotation: int = 0,
) -> Path:
    """Encode RGB frames as H.264 (and mono audio as AAC) into an MP4 at ``path``. A 2-D frame
    is grey (luma only) and goes to the encoder as is, without a colour conversion: four times
    quicker for the largest pictures.

    ``faststart`` puts the index first, so a truncated copy still opens and decodes partly.
    ``display_rotation`` (counter-clockwise degrees) is written as the display matrix, as a
    phone does when it stores a portrait video sideways.
    """
    frames = iter(frames)
    first = next(frames)
    options = {"movflags": "faststart"} if faststart else {}
    with av.open(str(path), "w", format="mp4", options=options) as out:
        video = out.add_stream("libx264", rate=Fraction(fps).limit_denominator(1001))
        video.height, video.width = first.shape[:2]
        video.pix_fmt = "yuv420p"
        video.options = {"preset": preset}
        if display_rotation:
            video.set_display_rotation(display_rotation)
        sound = None
        if audio is not None:
            sound = out.add_stream("aac", rate=AUDIO_RATE, layout="mono")
        for image in [first, *frames]:
            out.mux(video.encode(video_frame(image)))
        out.mux(video.encode(None))
        if sound is not None:
            step = 1024
            for start in range(0, len(audio), step):
                chunk = audio[start : start + step].astype(np.float32)
                frame = av.AudioFrame.from_ndarray(
                    chunk.reshape(1, -1), format="flt", layout="mono"
                )
                frame.sample_rate = AUDIO_RATE
                frame.pts = start
                out.mux(sound.encode(frame))
            out.mux(sound.encode(None))
    return path


def talk_excerpt(path: Path, seconds: float, faststart: bool = False) -> Path:
    """The first ``seconds`` of talk_demo.mp4 (face and speech), re-encoded."""
    frames, audio, fps = read_sample("talk_demo.mp4")
    count = round(seconds * fps)
    sound = audio[: round(seconds * AUDIO_RATE)]
    return write_video(path, frames[:count], fps, sound, faststart=faststart)


HOSTILE_NAME = 'it\'s a "talk"; $(touch pwned) \u2013 ñandú 話.mp4'


def write_two_video_streams(path: Path, frames: list[np.ndarray], fps: float) -> Path:
    """An MKV holding ``frames`` as its first video stream and a half-size grey second one."""
    with av.open(str(path), "w", format="matroska") as out:
        streams = []
        for scale in (1, 2):
            stream = out.add_stream("libx264", rate=Fraction(fps).limit_denominator(1001))
            stream.height, stream.width = (side // scale for side in frames[0].shape[:2])
            stream.pix_fmt = "yuv420p"
            streams.append(stream)
        grey = np.full((streams[1].height, streams[1].width, 3), 128, np.uint8)
        for image in frames:
            out.mux(streams[0].encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
            out.mux(streams[1].encode(av.VideoFrame.from_ndarray(grey, format="rgb24")))
        for stream in streams:
            out.mux(stream.encode(None))
    return path


def hostile_inputs(folder: Path) -> dict[str, Path]:
    """The bad inputs of issue 3, by what they are; each must end as a row with a reason or
    be curated correctly."""
    folder.mkdir(parents=True, exist_ok=True)
    talk = (SAMPLES / "talk_demo.mp4").read_bytes()
    files = {
        "zero_byte": folder / "zero.mp4",
        "truncated": folder / "truncated.mp4",
        "truncated_indexed": folder / "truncated_indexed.mp4",
        "text": folder / "notes.mp4",
        "random": folder / "random.mp4",
        "no_audio": folder / "silent_film.mp4",
        "two_seconds": folder / "two_seconds.mp4",
        "hostile_name": folder / HOSTILE_NAME,
        "two_video_streams": folder / "two_angles.mkv",
    }
    files["zero_byte"].write_bytes(b"")
    files["truncated"].write_bytes(talk[: len(talk) // 3])
    files["text"].write_text("This is a text file, renamed to .mp4.\n" * 40)
    files["random"].write_bytes(np.random.default_rng(3).bytes(64 * 1024))
    frames, _, fps = read_sample("carphone_pristine.mp4")
    write_video(files["no_audio"], frames + frames[::-1], fps)
    write_two_video_streams(files["two_video_streams"], frames, fps)
    talk_excerpt(files["two_seconds"], 2.0)
    talk_excerpt(files["hostile_name"], 6.5)
    whole = talk_excerpt(folder / "whole.mp4", 12.0, faststart=True)
    files["truncated_indexed"].write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    whole.unlink()
    return files
