"""What a user reads out of an export means what the TalkVid release's fields mean: a field named
after a model holds that model's numbers only, and every documented score range is the one the
stage declares."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from talkvid_assets.core.config import LANGUAGE_PART, ConfigError, config_parts, parse_config
from talkvid_assets.core.decode_runs import record_decode_pass
from talkvid_assets.core.export import talkvid_record
from talkvid_assets.core.export_formats import CardInfo, write_export
from talkvid_assets.core.fixed_frames import fixed_frame_windows, window_records
from talkvid_assets.core.head_detail import HEAD_DETAIL_KEYS
from talkvid_assets.core.sources import register_source
from talkvid_assets.core.stages import STAGES, STAGES_BY_NAME
from talkvid_assets.core.thresholds import DEMO
from talkvid_assets.core.verdicts import prefilter_video
from talkvid_assets_tests.media import SAMPLES

README = Path(__file__).resolve().parents[1] / "README.md"
QUALITY, MOTION = STAGES_BY_NAME["quality"], STAGES_BY_NAME["motion"]


def _row(quality_backend: str, motion_backend: str, **changes: Any) -> dict[str, Any]:
    """A row as EXPORT_SQL returns it, scored by the named backends."""
    row = {
        "clip_id": "0123456789abcdef-0001",
        "source_path": "/data/talk.mp4",
        "height": 1080,
        "width": 1920,
        "fps": 29.97,
        "start_time": 1.2345678901,
        "start_frame": 28,
        "end_time": 9.8765432109,
        "end_frame": 296,
        "duration_s": 8.6,
        "quality_score": 6.94,
        "motion_ratio": 0.5957,
        **{key: 90.0 for key in HEAD_DETAIL_KEYS},
        "quality_backend": quality_backend,
        "motion_backend": motion_backend,
        "head_detail_backend": "retinaface",
        "sync_backend": "none",
        "profile": "demo",
        "config_digest": "abc",
    }
    return {**row, **changes}


def test_stand_in_scores_never_go_under_a_models_name() -> None:
    record = talkvid_record(_row("frame-stats", "lk"))
    assert record["dover_scores"] is None and record["cotracker_ratio"] is None
    assert record["talkvid_assets"]["frame_stats_quality_score"] == 6.94
    assert record["talkvid_assets"]["lk_motion_ratio"] == 0.5957
    model = talkvid_record(_row("dover", "cotracker3", quality_score=8.55, motion_ratio=0.92))
    assert (model["dover_scores"], model["cotracker_ratio"]) == (8.55, 0.92)
    assert model["talkvid_assets"]["frame_stats_quality_score"] is None
    assert model["talkvid_assets"]["lk_motion_ratio"] is None


@pytest.mark.parametrize("stage", [QUALITY, MOTION], ids=lambda stage: stage.name)
def test_a_field_named_after_a_model_is_filled_by_that_model_only(stage) -> None:
    """Every backend of the stage, run through the export: the release field is non-null for
    the paper's model only, and each stand-in's number appears under its own name."""
    assert stage.release_backends <= stage.model_backends, "a stand-in declared as the release's"
    for backend in stage.backends:
        others = {s.backend_column: s.default_backend for s in STAGES}
        row = {**_row("frame-stats", "lk"), **others, stage.backend_column: backend}
        record = talkvid_record(row)
        value = row[stage.summary_column]
        released = record[stage.export_field]
        assert released == (value if backend in stage.model_backends else None), backend
        own = {name: record["talkvid_assets"][stage.own_field(name)] for name in stage.stand_ins}
        assert own == {name: value if name == backend else None for name in stage.stand_ins}


def test_exported_times_keep_full_precision() -> None:
    record = talkvid_record(_row("frame-stats", "lk"))
    assert (record["start-time"], record["end-time"]) == (1.2345678901, 9.8765432109)


def _readme_rows() -> dict[tuple[str, str], list[str]]:
    rows = {}
    for line in README.read_text().splitlines():
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        if len(cells) == 5 and re.fullmatch(r"`[\w-]+`", cells[1]) and cells[0] in STAGES_BY_NAME:
            rows[cells[0], cells[1].strip("`")] = cells
    return rows


def test_documented_score_ranges_are_the_declared_ones(tmp_path: Path) -> None:
    """The README's score table and the dataset card state, per backend, the field and the
    range the stage declares; nothing calls DOVER's fused score a 0-10 scale."""
    rows = _readme_rows()
    card_path = write_export(
        "hf", [talkvid_record(_row("frame-stats", "lk"))], tmp_path, "all", CardInfo("demo", "a")
    )
    card = (card_path / "README.md").read_text()
    declared = [(s, name, scale) for s in STAGES for name, scale in s.scales.items()]
    assert {(s.name, name) for s, name, _ in declared} == set(rows)
    for stage, name, scale in declared:
        _, _, field, documented, _ = rows[stage.name, name]
        expected_field = (
            stage.export_field
            if name in stage.release_backends
            else f"talkvid_assets.{stage.own_field(name)}"
        )
        assert field == f"`{expected_field}`", name
        assert documented == f"{scale.low:g} to {scale.high:g}", name
        assert f"`{name}` → `{expected_field}`, {scale.low:g} to {scale.high:g}: " in card
    assert "DOVER's 0\N{EN DASH}10" not in README.read_text()


def test_fixed_frame_windows_follow_the_reference() -> None:
    """Windows from the first frame, and one more ending at the last frame when frames are
    left over; a clip shorter than a window is one window."""
    assert fixed_frame_windows(363, 121) == [(0, 121), (121, 242), (242, 363)]
    assert fixed_frame_windows(400, 121) == [(0, 121), (121, 242), (242, 363), (279, 400)]
    assert fixed_frame_windows(100, 121) == [(0, 100)]
    record = talkvid_record(_row("frame-stats", "lk", fps=24.0, start_time=2.0, end_time=12.5))
    windows = window_records(record, 121)  # 252 frames at 24 fps
    assert [w["id"] for w in windows] == [f"video{record['id']}-scene{n}" for n in (1, 2, 3)]
    assert [w["durations"] for w in windows] == ["5.042s"] * 3  # the release's example
    assert [w["start-frame"] for w in windows] == [48, 169, 179]
    assert windows[-1]["end-time"] == pytest.approx(12.5)


def test_model_stages_can_score_the_reencoded_clip(store, backends) -> None:
    """With ``reencoded`` a model step scores each recorded clip from its x264 re-encode (as
    the reference scores its clip files): talk_demo's quality drops from 6.94 to about 6.61
    on the embedded scorer, and the source's score stays cached apart."""
    key, _ = register_source(store, SAMPLES / "talk_demo.mp4")
    prefilter_video(store, key, DEMO)
    record_decode_pass(store, key, backends)
    (source,) = store.rows("quality_scores", key)
    quality = {"quality": backends["quality"]}
    tables = record_decode_pass(store, key, quality, segments=False, reencoded=True)
    (again,) = tables["quality_scores"]
    assert again["clip_id"] == source["clip_id"]
    assert again["quality_score"] == pytest.approx(6.61, abs=0.05)
    assert again["quality_score"] < source["quality_score"] - 0.2
    (back,) = record_decode_pass(store, key, quality, segments=False)["quality_scores"]
    assert back["quality_score"] == source["quality_score"]


def test_model_input_is_a_checked_setting_of_the_model_stages() -> None:
    clip = parse_config({"model_input": "clip", "backends": {"quality": "dover"}})
    tags = {stage.name: f"{stage.name}@1" for stage in STAGES} | {LANGUAGE_PART: "none"}
    assert config_parts(clip, tags)["quality"] == "quality@1 on clip"
    assert config_parts(clip, tags)["motion"] == "motion@1"  # an embedded stage: unchanged
    with pytest.raises(ConfigError, match="model_input"):
        parse_config({"model_input": "file"})
