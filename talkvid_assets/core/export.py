"""TalkVid-format JSON records for passing clips (spec, "Output record").

Field names and formats follow the dataset release. Demographic ``info`` fields and the
``description`` caption come from the annotation stage; until a clip is annotated they are null.
A release field named after a model (``dover_scores``, ``cotracker_ratio``) carries that model's
number only; with an embedded stand-in it is null and the stand-in's score travels under its own
name in ``talkvid_assets`` (``frame_stats_quality_score``, ``lk_motion_ratio``), beside the
backends, profile and configuration behind the record. Which backend may fill which field is
the stage's declaration (``core/stages.py``), not a choice made here. Times are written at full
precision, as the reference writes them.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from talkvid_assets.core.durable import write_atomic
from talkvid_assets.core.sources import missing_sources
from talkvid_assets.core.stages import STAGES, Stage
from talkvid_assets.core.store import Store

# Under the home: the per-video exports (`<video_id>.json`) and the whole dataset's file.
VIDEO_EXPORT_DIR = "exports/talkvid"
DATASET_FILE = "exports/talkvid.json"
FIXED_FRAMES_DIR = "exports/fixed_frames"  # the release-shaped window records, per video
# Stages whose release field is one number (quality, motion); head detail's holds its scores.
SCALAR_STAGES = tuple(stage for stage in STAGES if len(stage.released_columns) == 1)
NESTED_STAGES = tuple(stage for stage in STAGES if len(stage.released_columns) > 1)

EXPORT_SQL = """
    SELECT c.*, coalesce(s.source_path, v.source_path) AS source_path, v.width, v.height, v.fps,
           f.profile, f.config_digest,
           coalesce(a.person_id, sp.speaker_id) AS person_id, sp.speaker_id, a.ethnicity,
           a.age_group, a.gender, a.video_link, a.language, a.category, a.description
    FROM filtered_clips f
    JOIN clip_scores c USING (clip_id)
    JOIN raw_videos v ON v.video_id = c.video_id
    LEFT JOIN sources s ON s.video_id = c.video_id
    LEFT JOIN annotations a ON a.clip_id = c.clip_id
    LEFT JOIN speakers sp ON sp.clip_id = c.clip_id AND :speakers
    WHERE f.passed
"""
# The release's `info` fields and the annotation columns that fill them.
INFO_COLUMNS = {
    "Person ID": "person_id",
    "Ethnicity": "ethnicity",
    "Age Group": "age_group",
    "Gender": "gender",
    "Video Link": "video_link",
    "Language": "language",
    "Video Category": "category",
}


def release_score(stage: Stage, row: Mapping[str, Any]) -> Any:
    """The stage's score for its release field: only a release backend's number, else null."""
    if row[stage.backend_column] in stage.release_backends:
        return row[stage.summary_column]
    return None


def own_score(stage: Stage, backend: str, row: Mapping[str, Any]) -> Any:
    """The stand-in ``backend``'s score under its own name: null unless it made this row's."""
    return row[stage.summary_column] if row[stage.backend_column] == backend else None


def write_records(path: Path, records: list[dict[str, Any]]) -> None:
    """Write records as a JSON array, atomically: a reader never sees half a file."""
    write_atomic(path, json.dumps(records, indent=2, ensure_ascii=False).encode())


def talkvid_record(row: Mapping[str, Any]) -> dict[str, Any]:
    """One release-format record from a row of :data:`EXPORT_SQL`."""
    info = {field: row.get(column) for field, column in INFO_COLUMNS.items()}
    info["Video Link"] = info["Video Link"] or row["source_path"]
    return {
        "id": row["clip_id"],
        "height": row["height"],
        "width": row["width"],
        "fps": row["fps"],
        "start-time": row["start_time"],
        "start-frame": row["start_frame"],
        "end-time": row["end_time"],
        "end-frame": row["end_frame"],
        "durations": f"{row['duration_s']:.1f}s",
        "info": info,
        "description": row.get("description"),
        **{stage.export_field: release_score(stage, row) for stage in SCALAR_STAGES},
        **{
            stage.export_field: {"scores": {key: row[key] for key in stage.released_columns}}
            for stage in NESTED_STAGES
        },
        "talkvid_assets": {
            **{stage.backend_column: row[stage.backend_column] for stage in STAGES},
            **{
                stage.own_field(backend): own_score(stage, backend, row)
                for stage in SCALAR_STAGES
                for backend in stage.stand_ins
            },
            "speaker_id": row.get("speaker_id"),
            "profile": row["profile"],
            "config_digest": row["config_digest"],
        },
    }


def export_records(
    store: Store, video_ids: Iterable[str] | None = None, speakers: bool = True
) -> list[dict[str, Any]]:
    """TalkVid-format records of passing clips, for some videos or all of them.

    Speaker ids are corpus-wide (assigned after every video's annotations), so a per-video
    export, written before them, leaves them out (``speakers=False``): its Person ID is the
    manifest's only. The merged dataset carries both. A video whose source vanished is left
    out (its link would be dead; ``videos`` says why), which costs a stat per video.
    """
    sql, params = EXPORT_SQL, {"speakers": speakers}
    if video_ids is not None:
        sql += " AND c.video_id IN (SELECT unnest(:video_ids))"
        params["video_ids"] = list(video_ids)
    rows = store.query(sql + " ORDER BY c.video_id, c.start_time", params)
    missing = missing_sources(store, {row["video_id"] for row in rows})
    return [talkvid_record(row) for row in rows if row["video_id"] not in missing]
