"""TalkVid-format JSON records for passing clips (spec, "Output record").

Field names and formats follow the dataset release. Demographic ``info`` fields and the
``description`` caption come from the annotation stage; until a clip is annotated they are null.
Because ``dover_scores`` and ``cotracker_ratio`` may come from the embedded stand-ins rather than
the paper's models, each record also names the backends and profile behind it under
``talkvid_assets``, so a score is never mistaken for one it is not.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from talkvid_assets.core.head_detail import HEAD_DETAIL_KEYS
from talkvid_assets.core.stages import STAGES
from talkvid_assets.core.store import write_atomic

# Under the home: the per-video exports (`<video_id>.json`) and the whole dataset's file.
VIDEO_EXPORT_DIR = "exports/talkvid"
DATASET_FILE = "exports/talkvid.json"
# The release lists ten head-detail scores; face consistency is a filter input only.
EXPORTED_HEAD_DETAIL = tuple(key for key in HEAD_DETAIL_KEYS if key != "face_consistency")

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
        "start-time": round(row["start_time"], 3),
        "start-frame": row["start_frame"],
        "end-time": round(row["end_time"], 3),
        "end-frame": row["end_frame"],
        "durations": f"{row['duration_s']:.1f}s",
        "info": info,
        "description": row.get("description"),
        "dover_scores": None if row["quality_score"] is None else round(row["quality_score"], 2),
        "cotracker_ratio": row["motion_ratio"],
        "head_detail": {"scores": {key: row[key] for key in EXPORTED_HEAD_DETAIL}},
        "talkvid_assets": {
            **{stage.backend_column: row[stage.backend_column] for stage in STAGES},
            "speaker_id": row.get("speaker_id"),
            "profile": row["profile"],
            "config_digest": row["config_digest"],
        },
    }
