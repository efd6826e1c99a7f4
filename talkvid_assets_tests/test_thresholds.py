import pytest

from talkvid_assets.core.failures import Failure, FailureKind, describe
from talkvid_assets.core.head_detail import HEAD_DETAIL_KEYS
from talkvid_assets.core.runtime import Runtime
from talkvid_assets.core.scoring import load_backend
from talkvid_assets.core.stages import BackendUnavailable
from talkvid_assets.core.thresholds import DEMO, NO_FACE, PAPER, get_profile
from talkvid_assets.core.video import VideoProbe

MISSING, UNJUDGED = FailureKind.MISSING, FailureKind.UNJUDGED

GOOD_CLIP = {
    "duration_s": 6.0,
    "speech_ratio": 0.9,
    "quality_score": 8.0,
    "quality_backend": "frame-stats",
    "motion_ratio": 0.8,
    "motion_backend": "lk",
    **dict.fromkeys(HEAD_DETAIL_KEYS, 100.0),
    "head_detail_backend": "retinaface",
}


def test_a_clip_meeting_every_threshold_passes():
    assert PAPER.clip.reasons(GOOD_CLIP) == []


def test_every_failed_check_is_listed_not_just_the_first():
    clip = {
        **GOOD_CLIP,
        "duration_s": 5.0,
        "speech_ratio": None,
        "quality_score": 3.0,
        "min_rotation": 44.4,
    }
    reasons = PAPER.clip.reasons(clip)
    assert [(reason.check, reason.kind) for reason in reasons] == [
        ("duration_s", "threshold"),
        ("speech_ratio", "missing"),
        ("quality_score", "threshold"),
        ("min_rotation", "threshold"),
    ]
    assert reasons[0] == Failure("duration_s", value=5.0, rule=">", threshold=5.0)
    assert reasons[2] == Failure(
        "quality_score", value=3.0, rule=">=", threshold=4.0, backend="frame-stats"
    )
    assert describe(reasons) == (
        "duration_s=5 (needs > 5); "
        "speech_ratio missing: no audio track or no decodable audio (decode_reports); "
        "quality_score=3 (needs >= 4 for frame-stats); "
        "min_rotation=44.4 (needs >= 60 for retinaface)"
    )


def test_failures_are_stored_as_plain_structs_and_read_back():
    """A verdict's reasons are written as structs of plain values and read back equal, so no
    reader ever parses text."""
    found = PAPER.clip.reasons({**GOOD_CLIP, "motion_backend": "mystery", "speech_ratio": 0.1})
    rows = [reason.row() for reason in found]
    assert all(type(row["kind"]) is str for row in rows)
    assert [Failure.of(row) for row in rows] == found
    assert describe(rows) == (
        "speech_ratio=0.1 (needs >= 0.5); "
        "motion_ratio unjudged: profile has no threshold for backend 'mystery'"
    )
    gone = Failure("source", FailureKind.SOURCE_GONE, detail="/videos/talk.mp4")
    assert gone.text() == "source gone: /videos/talk.mp4"


def test_thresholds_are_per_backend():
    dover = {**GOOD_CLIP, "quality_backend": "dover", "quality_score": 4.5}
    assert PAPER.clip.reasons(dover) == [
        Failure("quality_score", value=4.5, rule=">=", threshold=5.0, backend="dover")
    ]
    unknown = {**GOOD_CLIP, "motion_backend": "mystery"}
    assert PAPER.clip.reasons(unknown) == [Failure("motion_ratio", UNJUDGED, backend="mystery")]
    faceless = {**GOOD_CLIP, **dict.fromkeys(HEAD_DETAIL_KEYS)}
    assert PAPER.clip.reasons(faceless) == [
        Failure("head_detail", MISSING, backend="retinaface", detail=NO_FACE)
    ]


def test_prefilter_of_paper_and_demo_profiles():
    small = VideoProbe("mp4", "h264", 176, 144, 30.0, 4.0, 120, False, None)
    assert PAPER.prefilter.reasons(small) == [
        Failure("short_side", value=144, rule=">=", threshold=1080),
        Failure("duration_s", value=4.0, rule=">=", threshold=5.4),
        Failure("audio", MISSING, detail="no audio track (profile requires audio)"),
    ]
    assert DEMO.prefilter.reasons(small) == []
    portrait = VideoProbe("mp4", "h264", 1080, 1920, 30.0, 60.0, 1800, True, "aac", rotation=90)
    assert PAPER.prefilter.reasons(portrait) == []  # a 1080x1920 phone video is 1080p
    phone_720 = VideoProbe("mp4", "h264", 720, 1280, 30.0, 60.0, 1800, True, "aac", rotation=90)
    assert PAPER.prefilter.reasons(phone_720) == [
        Failure("short_side", value=720, rule=">=", threshold=1080)
    ]
    assert DEMO.clip == PAPER.clip
    assert get_profile("demo") is DEMO
    with pytest.raises(ValueError, match="unknown profile"):
        get_profile("lenient")


def test_an_unknown_or_unfetched_backend_says_so(tmp_path):
    with pytest.raises(BackendUnavailable, match="available: frame-stats, dover"):
        load_backend("quality", "musiq")
    dover = load_backend("quality", "dover", Runtime(tmp_path / "models", "cpu"))  # cheap
    probe = VideoProbe("mp4", "h264", 1920, 1080, 30.0, 60.0, 1800, True, "aac")
    with pytest.raises(BackendUnavailable, match="talkvid models fetch dover"):
        dover.new_clip(probe)


def test_release_profile_is_stricter_than_the_codes_thresholds():
    """A DOVER 6.0 clip passes the code's threshold (5) and fails the release's edge (7.5); a
    static clip (every tracked point visible) passes paper's one-sided rule, not release's."""
    release = get_profile("release")
    models = {**GOOD_CLIP, "quality_backend": "dover", "motion_backend": "cotracker3"}
    dover_6 = {**models, "quality_score": 6.0, "motion_ratio": 0.95}
    assert PAPER.clip.reasons(dover_6) == []
    assert release.clip.reasons(dover_6) == [
        Failure("quality_score", value=6.0, rule=">=", threshold=7.5, backend="dover")
    ]
    static = {**models, "quality_score": 8.0, "motion_ratio": 1.0}
    assert PAPER.clip.reasons(static) == []
    (still,) = release.clip.reasons(static)
    assert still == Failure(
        "motion_ratio", value=1.0, rule="<", threshold=1.0, backend="cotracker3", detail="static"
    )
    assert still.text() == "motion_ratio=1 (needs < 1 for cotracker3: static)"
    assert release.clip.reasons({**models, "quality_score": 8.0, "motion_ratio": 0.87}) == []
    assert PAPER.clip.reasons({**models, "quality_score": 8.0, "motion_ratio": 0.87}) != []


def test_head_detail_resolution_thresholds_are_per_face_backend():
    """dlib-hog's boxes cover 0.72x retinaface's area (benchmarks/head_detail_agreement.py):
    the same face passes each backend's resolution check at its own scale."""
    small = {**GOOD_CLIP, "avg_resolution": 40.0, "min_resolution": 35.0}
    assert PAPER.clip.reasons({**small, "head_detail_backend": "retinaface"}) == [
        Failure("avg_resolution", value=40.0, rule=">=", threshold=50.0, backend="retinaface"),
        Failure("min_resolution", value=35.0, rule=">=", threshold=40.0, backend="retinaface"),
    ]
    assert PAPER.clip.reasons({**small, "head_detail_backend": "dlib-hog"}) == []
    assert PAPER.clip.minimums["avg_resolution"]["dlib-hog"] == 36.0
