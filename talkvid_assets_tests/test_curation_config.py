"""curation.yaml: documented defaults, validation with one clear line, code versions that follow
exactly what an edit changes."""

import pytest

from talkvid_assets.core.config import (
    ConfigError,
    CurationConfig,
    code_versions,
    load_config,
    parse_config,
)
from talkvid_assets_tests.conftest import configure

TAGS = {"quality": "frame-stats@1", "motion": "lk@1", "head_detail": "dlib-hog@1"}


def test_a_new_home_gets_the_documented_defaults(tmp_path):
    config = load_config(tmp_path)
    assert config == CurationConfig()
    text = (tmp_path / "curation.yaml").read_text()
    assert "quality_score" in text and "profile: paper" in text and "inbox" in text


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"profil": "demo"}, "unknown setting 'profil'"),
        ({"profile": "papr"}, "unknown profile 'papr'"),
        ({"thresholds": {"quality": 5}}, "unknown threshold 'quality'"),
        ({"thresholds": {"quality_score": "high"}}, "threshold quality_score must be a number"),
        ({"thresholds": {"motion_ratio": 1.5}}, "threshold motion_ratio=1.5 is outside 0..1"),
        ({"backends": {"quality": "dover9"}}, "unknown quality backend 'dover9'"),
        ({"backends": {"faces": "x"}}, "unknown stage 'faces'"),
        ({"scene_detector": "magic"}, "unknown scene_detector 'magic'"),
        ({"inbox": [3]}, "inbox must be a list of folder paths"),
    ],
)
def test_each_mistake_is_one_line_naming_it(raw, message):
    with pytest.raises(ConfigError) as error:
        parse_config(raw)
    assert message in str(error.value) and "\n" not in str(error.value)


def test_bad_yaml_names_the_file_and_line(tmp_path):
    (tmp_path / "curation.yaml").write_text("profile: demo\nthresholds: [\n")
    with pytest.raises(ConfigError, match=r"curation.yaml: not valid YAML at line 3"):
        load_config(tmp_path)


def test_overrides_reach_the_judging_profile(tmp_path):
    configure(tmp_path, "demo", thresholds="{quality_score: 6.5, min_rotation: 10}")
    clip = load_config(tmp_path).judging_profile().clip
    assert set(clip.min_quality.values()) == {6.5}
    assert clip.head_detail["min_rotation"] == 10.0


def test_a_threshold_edit_changes_only_the_verdict_code_version():
    before = code_versions(CurationConfig(profile="demo"), TAGS)
    after = code_versions(CurationConfig(profile="demo", thresholds={"quality_score": 6.0}), TAGS)
    assert {key for key in before if before[key] != after[key]} == {"filtered_clips"}
    other_backend = code_versions(CurationConfig(), {**TAGS, "motion": "cotracker@3"})
    changed = {key for key in before if before[key] != other_backend[key]}
    assert changed == {"motion_scores", "raw_videos"}  # raw_videos: demo vs paper prefilter
    scenes = code_versions(CurationConfig(profile="demo", scene_detector="content"), TAGS)
    assert {key for key in before if before[key] != scenes[key]} == {"segments"}
    assert CurationConfig(profile="demo").digest != CurationConfig().digest
