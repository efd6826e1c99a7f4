import shutil

from talkvid_assets.core.config import CurationConfig
from talkvid_assets.core.pipeline import (
    judge_clips,
    prefilter_video,
    record_decode_pass,
    register_source,
)
from talkvid_assets.core.subtitles import find_subtitles, has_speech_cue, parse_cues
from talkvid_assets.core.thresholds import DEMO
from talkvid_assets_tests.media import SAMPLES

VTT = """WEBVTT

00:00:00.000 --> 00:00:03.000
<c>[Music]</c>

00:00:09.500 --> 00:01:02.250 align:start
<v Speaker>Hello there</v>
"""
SRT = "1\n00:00:01,000 --> 00:00:02,500\n[Music]\n\n2\n00:00:04,000 --> 00:00:05,000\nHi\n"


def test_cues_parse_from_vtt_and_srt(tmp_path):
    (tmp_path / "a.vtt").write_text(VTT)
    (tmp_path / "b.en.srt").write_text(SRT)
    vtt = parse_cues(tmp_path / "a.vtt")
    assert [(cue.start_s, cue.end_s) for cue in vtt] == [(0.0, 3.0), (9.5, 62.25)]
    srt = parse_cues(tmp_path / "b.en.srt")
    assert [(cue.start_s, cue.text) for cue in srt] == [(1.0, "[Music]"), (4.0, "Hi")]
    assert not has_speech_cue(vtt, 0.3, 9.0)  # only [Music] overlaps
    assert has_speech_cue(vtt, 0.3, 9.6)
    assert find_subtitles(tmp_path / "a.mp4") == tmp_path / "a.vtt"
    assert find_subtitles(tmp_path / "b.mp4") == tmp_path / "b.en.srt"
    assert find_subtitles(tmp_path / "c.mp4") is None


def test_reference_voice_rule_judges_by_subtitles(tmp_path, store, backends):
    source = tmp_path / "talk [take 1].mp4"
    shutil.copyfile(SAMPLES / "talk_demo.mp4", source)
    (tmp_path / "talk [take 1].vtt").write_text(VTT.replace("00:00:09.500", "00:00:20.000"))
    reference = CurationConfig(profile="reference")  # paper's (= demo's) clip rules, subtitles
    key, _ = register_source(store, source)
    prefilter_video(store, key, DEMO)
    (segment,) = record_decode_pass(store, key, backends)["segments"]
    assert segment["subtitle_speech"] is False
    (verdict,) = judge_clips(store, [key], reference)
    assert verdict["reject_reasons"] == [
        "subtitle_speech: no subtitle cue with speech overlaps the clip"
    ]
    (tmp_path / "talk [take 1].vtt").unlink()  # no subtitles at all: the reference keeps it
    record_decode_pass(store, key, backends)
    assert judge_clips(store, [key], reference)[0]["passed"]
