"""Hostile media made with PyAV: odd streams, odd timing, odd names, odd links, a held database
and a killed run. Each file ends as a row with a readable reason or is curated with sane
numbers, and every run succeeds."""

from __future__ import annotations

import os
import shutil
import signal
import struct
import subprocess
import sys
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from talkvid_assets.core.export_formats import SAFE_KEY
from talkvid_assets.core.failures import Failure, FailureKind
from talkvid_assets.core.partition_keys import partition_key
from talkvid_assets.core.source_files import video_key
from talkvid_assets.core.store import Store
from talkvid_assets.core.thresholds import NO_AUDIO
from talkvid_assets_tests.commands import start_talkvid, talkvid_in_process, wait_for_step
from talkvid_assets_tests.conftest import ingest_and_curate, project_instance
from talkvid_assets_tests.media import AUDIO_RATE, SAMPLES, read_sample, talk_excerpt

pytestmark = pytest.mark.slow

DASH_NAME = "-rf talk.mp4"
ABSURD_FRAMES, ABSURD_SIDE = 2**31 - 1, 60000
NEWLINE_NAME = "line\nbreak.mp4"


def encode(
    path: Path,
    frames: list[np.ndarray],
    audio: np.ndarray | None,
    codec: str = "libx264",
    pix_fmt: str = "yuv420p",
    fps: float = 30,
    pts_ms: list[int] | None = None,
) -> Path:
    """An MP4 of RGB ``frames`` encoded with ``codec``/``pix_fmt``, mono AAC ``audio`` beside it;
    ``pts_ms`` gives each frame its own presentation time (milliseconds) for a variable rate."""
    with av.open(str(path), "w", format="mp4") as out:
        video = out.add_stream(codec, rate=Fraction(fps).limit_denominator(1001))
        video.height, video.width = frames[0].shape[:2]
        video.pix_fmt = pix_fmt
        video.options = {"preset": "ultrafast"}
        if codec == "libx265":
            video.options = {"preset": "ultrafast", "x265-params": "log-level=error"}
        if pts_ms is not None:
            video.time_base = video.codec_context.time_base = Fraction(1, 1000)
        sound = None if audio is None else out.add_stream("aac", rate=AUDIO_RATE, layout="mono")
        for index, image in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            if pts_ms is not None:
                frame.pts, frame.time_base = pts_ms[index], Fraction(1, 1000)
            out.mux(video.encode(frame))
        out.mux(video.encode(None))
        if sound is not None:
            write_audio(out, sound, audio)
    return path


def write_audio(out: av.container.OutputContainer, sound, audio: np.ndarray) -> None:
    for start in range(0, len(audio), 1024):
        chunk = audio[start : start + 1024].astype(np.float32).reshape(1, -1)
        frame = av.AudioFrame.from_ndarray(chunk, format="flt", layout="mono")
        frame.sample_rate, frame.pts = AUDIO_RATE, start
        out.mux(sound.encode(frame))
    out.mux(sound.encode(None))


def audio_only(path: Path, audio: np.ndarray) -> Path:
    with av.open(str(path), "w", format="mp4") as out:
        write_audio(out, out.add_stream("aac", rate=AUDIO_RATE, layout="mono"), audio)
    return path


def absurd_avi(path: Path, frames: list[np.ndarray], fps: float) -> Path:
    """An AVI of ``frames`` whose headers claim 2**31-1 frames (two years at 30 fps)
    of 60000x60000 pixels: the main header, the stream header and the bitmap header patched."""
    with av.open(str(path), "w", format="avi") as out:
        video = out.add_stream("mpeg4", rate=Fraction(fps).limit_denominator(1001))
        video.height, video.width = frames[0].shape[:2]
        video.pix_fmt = "yuv420p"
        for image in frames:
            out.mux(video.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        out.mux(video.encode(None))
    data = bytearray(path.read_bytes())
    main = data.find(b"avih") + 8  # MainAVIHeader: dwTotalFrames at 16, width/height at 32
    struct.pack_into("<I", data, main + 16, ABSURD_FRAMES)
    struct.pack_into("<II", data, main + 32, ABSURD_SIDE, ABSURD_SIDE)
    stream = data.find(b"strh") + 8  # AVIStreamHeader: dwLength at 32
    struct.pack_into("<I", data, stream + 32, ABSURD_FRAMES)
    bitmap = data.find(b"strf") + 8  # BITMAPINFOHEADER: biWidth, biHeight at 4
    struct.pack_into("<ii", data, bitmap + 4, ABSURD_SIDE, ABSURD_SIDE)
    path.write_bytes(data)
    return path


def irregular_pts_ms(count: int) -> list[int]:
    """Frame times with uneven steps (20, 20, 60 ms: 30 fps on average) and one 400 ms gap."""
    times, now = [], 0
    for index in range(count):
        times.append(now)
        now += 400 if index == count // 2 else (60 if index % 3 == 2 else 20)
    return times


def encoder_skip(codec: str, pix_fmt: str) -> str | None:
    if codec not in av.codecs_available:
        return f"{codec} is not in this PyAV build"
    formats = {fmt.name for fmt in av.Codec(codec, "w").video_formats or []}
    if pix_fmt not in formats:
        return f"{codec} cannot encode {pix_fmt} in this PyAV build"
    return None


def undecodable_audio(source: Path, path: Path, kept: int) -> Path:
    """``source`` remuxed with random bytes in every audio packet except the ``kept``-th: a
    stream that demuxes fine and mostly does not decode."""
    rng = np.random.default_rng(0)
    with av.open(str(source)) as inp, av.open(str(path), "w") as out:
        video, audio = inp.streams.video[0], inp.streams.audio[0]
        targets = {
            video.index: out.add_stream_from_template(video),
            audio.index: out.add_stream_from_template(audio),
        }
        number = 0
        for packet in inp.demux(video, audio):
            if packet.dts is None:
                continue
            target = targets[packet.stream.index]
            if packet.stream.type == "audio":
                number += 1
                if number != kept:
                    noise = av.Packet(rng.integers(0, 256, packet.size, np.uint8).tobytes())
                    for name in ("pts", "dts", "time_base", "duration"):
                        setattr(noise, name, getattr(packet, name))
                    packet = noise
            packet.stream = target
            out.mux(packet)
    return path


TEN_BIT = {"hevc_10bit": ("libx265", "yuv420p10le"), "h264_422_10bit": ("libx264", "yuv422p10le")}


def hostile_media(folder: Path) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    frames, audio, fps = read_sample("talk_demo.mp4")
    seconds = 6.5
    count, samples = round(seconds * fps), round(seconds * AUDIO_RATE)
    files = {
        "audio_only": audio_only(folder / "podcast.m4a", audio[: 3 * AUDIO_RATE]),
        "vfr": encode(
            folder / "vfr.mp4", frames[:count], audio[:samples], pts_ms=irregular_pts_ms(count)
        ),
        "long_audio": encode(
            folder / "long_audio.mp4",
            frames[: round(3 * fps)],
            np.concatenate([audio, audio])[: 20 * AUDIO_RATE],
            fps=fps,
        ),
        "newline_name": talk_excerpt(folder / NEWLINE_NAME, 7.0),
        "absurd_header": absurd_avi(folder / "absurd.avi", frames[:count], fps),
        "dash_name": talk_excerpt(folder / DASH_NAME, seconds),
        "one_frame": encode(folder / "one_frame.mp4", frames[:1], None, fps=fps),
        "undecodable_audio": undecodable_audio(
            SAMPLES / "talk_demo.mp4", folder / "noise.mp4", kept=700
        ),
    }
    for kind, (codec, pix_fmt) in TEN_BIT.items():
        if encoder_skip(codec, pix_fmt) is None:
            path = folder / f"{kind}.mp4"
            files[kind] = encode(path, frames[:count], audio[:samples], codec, pix_fmt, fps)
    return files


@pytest.fixture(scope="module")
def outcome(tmp_path_factory):
    root = tmp_path_factory.mktemp("hostile_media")
    files = hostile_media(root / "inbox")
    store = Store(root / "home")
    with project_instance(root / "dagster") as instance:
        keys, outcomes = ingest_and_curate(instance, store, list(files.values()))
    videos = {row["video_id"]: row for row in store.query("SELECT * FROM videos")}
    by_kind = {kind: videos.get(keys[path]) for kind, path in files.items()}
    return store, keys, files, outcomes, by_kind


def clips_of(store: Store, video_id: str) -> list[dict]:
    return store.query("SELECT * FROM clips WHERE video_id = :id", {"id": video_id})


def test_every_run_succeeds_and_every_file_has_a_row(outcome):
    store, keys, files, outcomes, by_kind = outcome
    assert all(run.success for run in outcomes), [run.error for run in outcomes]
    assert len(set(keys.values())) == len(files), "each hostile file is its own content"
    assert {key for run in outcomes for key in run.videos} == set(keys.values())
    assert all(row is not None for row in by_kind.values()), by_kind
    assert store.query("SELECT count(*) AS n FROM videos") == [{"n": len(files)}]


def test_an_audio_only_file_is_rejected_as_not_a_video(outcome):
    video = outcome[4]["audio_only"]
    assert video["status"] == "rejected"
    (failure,) = [Failure.of(row) for row in video["reject_reasons"]]
    assert (failure.check, failure.kind) == ("probe", FailureKind.NOT_A_VIDEO)
    assert failure.text() == "not a video: no video stream in mov,mp4,m4a,3gp,3g2,mj2"


def test_a_one_frame_video_has_a_row_and_no_crash(outcome):
    store, _, _, _, by_kind = outcome
    video = by_kind["one_frame"]
    if video["status"] == "rejected":
        assert video["reject_reasons"], "a rejection always says why"
    else:
        assert video["status"] == "ok"
        assert (video["width"], video["height"]) == (176, 144)
        for clip in clips_of(store, video["video_id"]):  # too short to hold a clip: empty
            assert clip["start_time"] == clip["end_time"] <= video["duration_s"], clip
            assert clip["duration_s"] == 0.0
            assert clip["passed"] is False and clip["reject_reasons"], clip


def test_a_variable_frame_rate_video_is_curated(outcome):
    store, _, _, _, by_kind = outcome
    video = by_kind["vfr"]
    assert video["status"] == "ok", video["reject_reasons"]
    assert 5.0 < video["duration_s"] < 9.0
    clips = clips_of(store, video["video_id"])
    assert clips
    for clip in clips:
        assert 0 <= clip["start_time"] < clip["end_time"] <= video["duration_s"] + 0.1
        assert clip["quality_score"] is not None


@pytest.mark.parametrize("kind", sorted(TEN_BIT))
def test_ten_bit_video_is_curated_with_a_quality_score(outcome, kind):
    reason = encoder_skip(*TEN_BIT[kind])
    if reason:
        pytest.skip(reason)
    store, _, _, _, by_kind = outcome
    video = by_kind[kind]
    assert video["status"] == "ok", video["reject_reasons"]
    assert (video["width"], video["height"]) == (176, 144)
    clips = clips_of(store, video["video_id"])
    assert clips and all(clip["quality_score"] is not None for clip in clips)


def test_headers_claiming_absurd_sizes_are_curated_on_what_decodes(outcome):
    """The probe believes 2**31-1 frames; the decode pass stops at the real end, says so, and
    every clip lies inside the decoded part, judged on the real picture size."""
    store, keys, files, _, by_kind = outcome
    key, video = keys[files["absurd_header"]], by_kind["absurd_header"]
    assert (video["width"], video["height"]) == (176, 144)
    (report,) = store.rows("decode_reports", key)
    assert report["frames_decoded"] == round(6.5 * video["fps"])
    claimed = ABSURD_FRAMES / video["fps"]
    (truncated,) = [Failure.of(row) for row in report["failures"]]
    assert truncated.kind == FailureKind.TRUNCATED
    assert (truncated.value, truncated.threshold) == pytest.approx((6.5, claimed), abs=0.05)
    clips = clips_of(store, key)
    assert clips and max(clip["start_time"] + clip["duration_s"] for clip in clips) <= 6.51


def test_audio_longer_than_the_video_does_not_stretch_it(outcome):
    store, _, _, _, by_kind = outcome
    video = by_kind["long_audio"]
    assert video["status"] == "ok", video["reject_reasons"]
    assert video["has_audio"]
    assert video["duration_s"] < 6
    clips = clips_of(store, video["video_id"])
    assert clips
    for clip in clips:
        assert clip["end_time"] <= video["duration_s"] + 0.1
        assert clip["speech_ratio"] is None or 0.0 <= clip["speech_ratio"] <= 1.0


@pytest.mark.parametrize("kind", ["dash_name", "newline_name"])
def test_a_file_name_with_a_dash_or_newline_is_curated_under_its_real_path(outcome, kind):
    store, keys, files, _, by_kind = outcome
    video = by_kind[kind]
    assert video["status"] == "ok", video["reject_reasons"]
    assert video["source_path"] == str(files[kind].resolve())
    assert SAFE_KEY.fullmatch(keys[files[kind]])  # the name made safe, then the content key
    assert clips_of(store, video["video_id"])


def test_ingesting_a_folder_with_a_link_loop_and_a_dangling_link(tmp_path):
    folder = tmp_path / "inbox"
    folder.mkdir()
    good = folder / "good.mp4"
    shutil.copyfile(SAMPLES / "talk_demo.mp4", good)
    (folder / "dangling.mp4").symlink_to(folder / "gone.mp4")
    (folder / "a.mp4").symlink_to(folder / "b.mp4")
    (folder / "b.mp4").symlink_to(folder / "a.mp4")
    started = time.monotonic()
    result = talkvid_in_process(tmp_path / "home", "ingest", str(folder), check=False)
    assert time.monotonic() - started < 60  # a loop followed forever would never return
    assert "Traceback" not in result.stderr
    # discover() keeps only what Path.is_file() says is a file, which is False for a dangling
    # link and for a link loop (ELOOP): both are skipped silently and the good file registers
    assert result.returncode == 0, result.stderr
    assert [line for line in result.stderr.splitlines() if not line.startswith("profile ")] == []
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 1
    key, path = lines[0].split("\t")
    assert path == str(good) and key == partition_key(good, video_key(good))
    sources = Store(tmp_path / "home").query("SELECT video_id, source_path FROM sources")
    assert sources == [{"video_id": key, "source_path": str(good.resolve())}]


READER = """
import sys, duckdb
connection = duckdb.connect(sys.argv[1], read_only=True)
connection.execute("SELECT 1").fetchall()
print("holding", flush=True)
sys.stdin.read()
"""


def test_curation_succeeds_while_a_reader_holds_the_database(tmp_path):
    store = Store(tmp_path / "home")
    store.publish()
    assert store.database_path.exists()
    reader = subprocess.Popen(
        [sys.executable, "-c", READER, str(store.database_path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert reader.stdout.readline().strip() == "holding", reader.stderr.read()
        with project_instance(tmp_path / "dagster") as instance:
            keys, outcomes = ingest_and_curate(instance, store, [SAMPLES / "carphone_pristine.mp4"])
        assert reader.poll() is None, "the reader still holds the file"
    finally:
        reader.communicate(input="", timeout=30)
    assert all(run.success for run in outcomes), [run.error for run in outcomes]
    (key,) = keys.values()
    clips = Store(tmp_path / "home").query(
        "SELECT clip_id FROM clips WHERE video_id = :id", {"id": key}
    )
    assert clips


CLIP_TABLE = "SELECT clip_id, duration_s, quality_score, motion_ratio, passed FROM clips"


def test_a_run_killed_mid_decode_then_resumed_gives_the_clean_tables(
    tmp_path, curated_talk_megamind
):
    home = tmp_path / "home"
    talkvid_in_process(home, "ingest", *map(str, curated_talk_megamind.keys))
    run = start_talkvid(
        home,
        *("curate", "--profile", "demo"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    assert run.stdout.readline().startswith("curating")
    wait_for_step(home, run, "decode_pass")  # several seconds, even on a quiet machine
    assert run.poll() is None, "killed while still curating"
    os.killpg(run.pid, signal.SIGKILL)
    run.communicate(timeout=30)
    assert run.returncode == -signal.SIGKILL
    resumed = talkvid_in_process(home, "curate")
    assert "Traceback" not in resumed.stderr

    expected = curated_talk_megamind.store.query(f"{CLIP_TABLE} ORDER BY clip_id")
    assert expected
    assert Store(home).query(f"{CLIP_TABLE} ORDER BY clip_id") == expected


def test_mostly_undecodable_audio_is_no_speech_measurement(outcome):
    store, keys, files, _, _ = outcome
    key = keys[files["undecodable_audio"]]
    (report,) = store.rows("decode_reports", key)
    assert "speech not measured: 749 of 751 audio packets undecodable" in report["note"]
    clips = clips_of(store, key)
    assert clips and all(clip["speech_ratio"] is None for clip in clips), clips
    missing = Failure("speech_ratio", FailureKind.MISSING, detail=NO_AUDIO).row()
    assert all(missing in clip["reject_reasons"] for clip in clips)
