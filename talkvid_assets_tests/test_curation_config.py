"""curation.yaml: documented defaults, validation with one clear line, parts (observed by
Dagster) that follow exactly what an edit changes."""

import pytest

from talkvid_assets.core.config import (
    ConfigError,
    CurationConfig,
    config_parts,
    fingerprint,
    load_config,
    parse_config,
)
from talkvid_assets_tests.commands import talkvid, talkvid_in_process
from talkvid_assets_tests.conftest import configure

TAGS = {
    "quality": "frame-stats@1",
    "motion": "lk@1",
    "head_detail": "dlib-hog@1",
    "language": "whisper-base@unfetched",
    "sync": "none@1",
}


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
    assert set(clip.minimums["quality_score"].values()) == {6.5}
    assert set(clip.minimums["min_rotation"].values()) == {10.0}


def changed_parts(before: CurationConfig, after: CurationConfig, tags=TAGS) -> set[str]:
    old, new = config_parts(before, TAGS), config_parts(after, tags)
    return {part for part in old if fingerprint(old[part]) != fingerprint(new[part])}


def test_an_edit_changes_only_the_parts_it_decides():
    demo = CurationConfig(profile="demo")
    edited = CurationConfig(profile="demo", thresholds={"quality_score": 6.0})
    assert changed_parts(demo, edited) == {"thresholds"}
    # A backend: that stage's part, and the digest every verdict records.
    assert changed_parts(demo, demo, {**TAGS, "motion": "cotracker@3"}) == {"motion"}
    motion = CurationConfig(profile="demo", backends={**demo.backends, "motion": "cotracker3"})
    assert changed_parts(demo, motion) == {"thresholds"}  # the tags given are the same here
    scenes = CurationConfig(profile="demo", scene_detector="content")
    assert changed_parts(demo, scenes) == {"scenes", "thresholds"}
    assert changed_parts(demo, CurationConfig(profile="demo", bench_seed=3)) == {"bench"}
    # Language ID: its threshold, or its weights fetched, re-labels and decodes nothing else.
    surer = CurationConfig(profile="demo", language_min_confidence=0.8)
    assert changed_parts(demo, surer) == {"language"}
    assert changed_parts(demo, demo, {**TAGS, "language": "whisper-base@fw/145217607B"}) == {
        "language"
    }
    assert "prefilter" in changed_parts(demo, CurationConfig())
    assert CurationConfig(profile="demo").digest != CurationConfig().digest


ALIAS_BOMB = "\n".join(  # nine levels of nine: 387 million strings
    ["a: &a [x, x, x, x, x, x, x, x, x]"]
    + [
        f"{name}: &{name} [{', '.join([f'*{previous}'] * 9)}]"
        for previous, name in zip("abcdefgh", "bcdefghi", strict=True)
    ]
    + ["inbox: *i"]
)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (ALIAS_BOMB.encode(), "aliases (*name) are not allowed"),
        (b"profile: [demo]\n", "unknown profile ['demo']"),
        (b"backends: {quality: [dover]}\n", "unknown quality backend ['dover']"),
        (b"device: [cpu]\n", "device must be one of"),
        (b"profile: demo\n# caf\xe9 in Latin-1\n", "not UTF-8 text (byte 20)"),
        (b"gpu_slots: 1001\n", "gpu_slots must be a whole number from 1 to 1000"),
        (b"inbox: ['.']\n", "inbox '.' holds this home itself"),
        (b"inbox: [/]\n", "inbox '/' holds this home itself"),
        (b"inbox: [exports/incoming]\n", "inside the home's own exports/ folder"),
        (b"1: x\nfoo: y\n", "unknown setting 'foo'"),
    ],
)
def test_a_hostile_curation_yaml_is_one_line(tmp_path, text, message):
    (tmp_path / "curation.yaml").write_bytes(text)
    with pytest.raises(ConfigError) as error:
        load_config(tmp_path)
    assert message in str(error.value) and "\n" not in str(error.value)


def test_an_inbox_beside_the_homes_own_folders_is_accepted(tmp_path):
    configure(tmp_path, "demo", inbox=f"[inbox, drops/today, {tmp_path.parent / 'elsewhere'}]")
    assert len(load_config(tmp_path).inbox) == 3


DEV = pytest.param(["dev", "--port", "0"], marks=pytest.mark.slow)  # its own process


@pytest.mark.parametrize("command", [["config"], ["curate"], DEV])
def test_config_curate_and_dev_refuse_a_hostile_file_in_one_line(tmp_path, command):
    (tmp_path / "curation.yaml").write_bytes(b"profile: [demo]\nbackends: \xff\n")
    if command[0] == "dev":  # its own process: were the file taken, a server would start
        result = talkvid(tmp_path, *command, check=False, timeout=120)
    else:
        result = talkvid_in_process(tmp_path, *command, check=False)
    assert result.returncode == 1
    assert "not UTF-8 text" in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
