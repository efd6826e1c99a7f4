import numpy as np
import pytest

from talkvid_assets.core.video import DecodeReport, ProbeError, decode, probe
from talkvid_assets_tests.media import SAMPLES, hostile_inputs


def test_probe_reads_the_container_and_first_frame():
    talk = probe(SAMPLES / "talk_demo.mp4")
    assert (talk.width, talk.height, talk.fps) == (176, 144, 30.0)
    assert talk.duration_s == pytest.approx(16.0)
    assert talk.frame_count == 480
    assert talk.has_audio and talk.audio_codec == "aac"
    assert not probe(SAMPLES / "bikes.mp4").has_audio


def test_an_image_is_not_a_video():
    with pytest.raises(ProbeError, match=r"^still image \(image2\)$"):
        probe(SAMPLES / "messi5.jpg")


def test_hostile_files_are_refused_with_reasons(tmp_path):
    files = hostile_inputs(tmp_path)
    refusals = {}
    for kind in ("zero_byte", "truncated", "text", "random"):
        with pytest.raises(ProbeError) as refused:
            probe(files[kind])
        refusals[kind] = str(refused.value)
    assert refusals["zero_byte"] == "empty file (0 bytes)"
    assert all("not a readable media container: " in refusals[k] for k in ("text", "random"))
    assert probe(files["hostile_name"]).duration_s == pytest.approx(6.5, abs=0.05)


def test_one_decode_survives_megamind_corrupt_audio_packet():
    video = probe(SAMPLES / "Megamind.avi")
    report = DecodeReport()
    audio = []
    frames = sum(1 for _ in decode(SAMPLES / "Megamind.avi", video.fps, audio.append, report))
    assert frames == report.frames == 270
    assert report.audio_packet_errors == 1 and report.video_packet_errors == 0
    assert sum(map(len, audio)) / 16_000 == pytest.approx(video.duration_s, abs=0.2)


def test_frame_views_are_converted_on_demand_and_cached():
    frame = next(decode(SAMPLES / "carphone_pristine.mp4", 29.97))
    small = frame.image("bgr24", 88, 72)
    assert small.shape == (72, 88, 3) and small.dtype == np.uint8
    assert frame.image("bgr24", 88, 72) is small
    luma = frame.luma()
    assert luma.shape == (144, 176)
    gray = frame.image("gray").astype(float)  # full-range grey vs the limited-range Y plane
    assert np.corrcoef(luma.astype(float).ravel(), gray.ravel())[0, 1] > 0.999
