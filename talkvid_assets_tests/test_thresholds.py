import pytest

from talkvid_assets.core.head_detail import HEAD_DETAIL_KEYS
from talkvid_assets.core.runtime import Runtime
from talkvid_assets.core.scoring import load_backend
from talkvid_assets.core.stages import BackendUnavailable
from talkvid_assets.core.thresholds import DEMO, PAPER, get_profile
from talkvid_assets.core.video import VideoProbe

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
    assert PAPER.clip.reasons(clip) == [
        "duration_s=5.0 (needs > 5.0)",
        "speech_ratio missing: no audio track or no decodable audio (decode_reports)",
        "quality_score=3.00 (needs >= 4.0 for frame-stats)",
        "min_rotation=44.40 (needs >= 60.0)",
    ]


def test_thresholds_are_per_backend():
    dover = {**GOOD_CLIP, "quality_backend": "dover", "quality_score": 4.5}
    assert PAPER.clip.reasons(dover) == ["quality_score=4.50 (needs >= 5.0 for dover)"]
    unknown = {**GOOD_CLIP, "motion_backend": "mystery"}
    assert PAPER.clip.reasons(unknown) == [
        "motion_ratio unjudged: profile has no threshold for backend 'mystery'"
    ]
    faceless = {**GOOD_CLIP, **dict.fromkeys(HEAD_DETAIL_KEYS)}
    assert PAPER.clip.reasons(faceless) == [
        "head_detail missing: no sampled frame with exactly one face"
    ]


def test_prefilter_of_paper_and_demo_profiles():
    small = VideoProbe("mp4", "h264", 176, 144, 30.0, 4.0, 120, False, None)
    assert PAPER.prefilter.reasons(small) == [
        "short side=144 (needs >= 1080)",
        "duration_s=4.00 (needs >= 5.4)",
        "no audio track (profile requires audio)",
    ]
    assert DEMO.prefilter.reasons(small) == []
    portrait = VideoProbe("mp4", "h264", 1080, 1920, 30.0, 60.0, 1800, True, "aac", rotation=90)
    assert PAPER.prefilter.reasons(portrait) == []  # a 1080x1920 phone video is 1080p
    phone_720 = VideoProbe("mp4", "h264", 720, 1280, 30.0, 60.0, 1800, True, "aac", rotation=90)
    assert PAPER.prefilter.reasons(phone_720) == ["short side=720 (needs >= 1080)"]
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
    assert release.clip.reasons(dover_6) == ["quality_score=6.00 (needs >= 7.5 for dover)"]
    static = {**models, "quality_score": 8.0, "motion_ratio": 1.0}
    assert PAPER.clip.reasons(static) == []
    assert release.clip.reasons(static) == [
        "motion_ratio=1.0000 (needs < 1.0 for cotracker3: static)"
    ]
    assert release.clip.reasons({**models, "quality_score": 8.0, "motion_ratio": 0.87}) == []
    assert PAPER.clip.reasons({**models, "quality_score": 8.0, "motion_ratio": 0.87}) != []


def test_head_detail_resolution_thresholds_are_per_face_backend():
    """dlib-hog's boxes cover 0.72x retinaface's area (benchmarks/head_detail_agreement.py):
    the same face passes each backend's resolution check at its own scale."""
    small = {**GOOD_CLIP, "avg_resolution": 40.0, "min_resolution": 35.0}
    assert PAPER.clip.reasons({**small, "head_detail_backend": "retinaface"}) == [
        "avg_resolution=40.00 (needs >= 50.0)",
        "min_resolution=35.00 (needs >= 40.0)",
    ]
    assert PAPER.clip.reasons({**small, "head_detail_backend": "dlib-hog"}) == []
    assert PAPER.clip.minimums["avg_resolution"]["dlib-hog"] == 36.0
