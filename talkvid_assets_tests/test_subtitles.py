import shutil

from talkvid_assets.core.config import CurationConfig
from talkvid_assets.core.decode_runs import record_decode_pass
from talkvid_assets.core.failures import Failure, FailureKind
from talkvid_assets.core.sources import register_source
from talkvid_assets.core.subtitles import find_subtitles, has_speech_cue, parse_cues
from talkvid_assets.core.thresholds import DEMO, NO_SPEECH_CUE
from talkvid_assets.core.verdicts import judge_clips, prefilter_video
from talkvid_assets_tests.media import SAMPLES

VTT = """WEBVTT

00:00:00.000 --> 00:00:03.000
<c>[Music]</c>

00:00:09.500 --> 00:01:02.250 align:start position:0%
<v Speaker>Hello there</v>

"""
NO_CUE = Failure("subtitle_speech", FailureKind.MISSING, detail=NO_SPEECH_CUE).row()
SRT = "1\n00:00:01,000 --> 00:00:02,500\n[Music]\n\n2\n00:00:04,000 --> 00:00:05,000\nHi\n\n"


def test_only_vtt_cues_followed_by_a_blank_line_are_read(tmp_path):
    """The reference's pattern: dotted two-digit-hour times, text up to a blank line; an SRT
    file's comma times match nothing, and a last cue without a blank line after it is lost."""
    (tmp_path / "a.vtt").write_text(VTT)
    (tmp_path / "b.en.srt").write_text(SRT)
    (tmp_path / "c.vtt").write_text(VTT.rstrip("\n") + "\n")
    vtt = parse_cues(tmp_path / "a.vtt")
    assert [(cue.start_s, cue.end_s) for cue in vtt] == [(0.0, 3.0), (9.5, 62.25)]
    assert parse_cues(tmp_path / "b.en.srt") == []
    assert [cue.start_s for cue in parse_cues(tmp_path / "c.vtt")] == [0.0]
    (tmp_path / "a.srt").write_text(SRT)
    assert find_subtitles(tmp_path / "a.mp4") == tmp_path / "a.vtt"  # VTT before SRT
    assert find_subtitles(tmp_path / "b.mp4") == tmp_path / "b.en.srt"
    assert find_subtitles(tmp_path / "d.mp4") is None


def test_a_cue_touching_the_clip_boundary_counts(tmp_path):
    (tmp_path / "a.vtt").write_text(VTT)
    cues = parse_cues(tmp_path / "a.vtt")
    assert not has_speech_cue(cues, 0.3, 9.4)  # only [Music] overlaps
    assert has_speech_cue(cues, 0.3, 9.5)  # the cue starts exactly at the clip's end
    assert has_speech_cue(cues, 62.25, 70.0)  # and ends exactly at the clip's start
    assert not has_speech_cue(cues, 62.26, 70.0)


def test_music_is_matched_case_sensitively(tmp_path):
    cue = "00:00:00.000 --> 00:00:03.000\n{}\n\n"
    (tmp_path / "upper.vtt").write_text("WEBVTT\n\n" + cue.format("<i>[Music]</i>"))
    (tmp_path / "lower.vtt").write_text("WEBVTT\n\n" + cue.format("[music]"))
    assert not has_speech_cue(parse_cues(tmp_path / "upper.vtt"), 0.3, 2.9)
    assert has_speech_cue(parse_cues(tmp_path / "lower.vtt"), 0.3, 2.9)


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
    assert verdict["reject_reasons"] == [NO_CUE]
    (tmp_path / "talk [take 1].vtt").unlink()  # no subtitles at all: the reference keeps it
    record_decode_pass(store, key, backends)
    assert judge_clips(store, [key], reference)[0]["passed"]
    # Only an .srt, with speech over the whole clip: the reference reads no cue from it, so the
    # source's every clip is lost.
    speech = "1\n00:00:00,000 --> 00:00:20,000\nHello there\n\n"
    (tmp_path / "talk [take 1].srt").write_text(speech)
    record_decode_pass(store, key, backends)
    (verdict,) = judge_clips(store, [key], reference)
    assert verdict["reject_reasons"] == [NO_CUE]
