"""Invariants of a curated video, as plain functions returning the problems found.

Each one re-reads what was written, so it catches a bug or a damaged table, not just the
happy path: the Dagster asset checks are thin wrappers around these, and tests break each
invariant on purpose to see it reported.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from talkvid_assets.core.failures import Failure, describe
from talkvid_assets.core.stages import STAGES, Stage
from talkvid_assets.core.store import Store

# Durations are rounded to 0.1 s; clip ends may sit up to a frame past the probed duration.
DURATION_TOLERANCE_S = 0.05 + 1e-9
MAX_LISTED = 5


def _listed(problems: list[str]) -> list[str]:
    extra = len(problems) - MAX_LISTED
    return problems[:MAX_LISTED] + ([f"... and {extra} more"] if extra > 0 else [])


def probe_problems(store: Store, video_id: str) -> list[str]:
    """An accepted video must have a plausible probe and a source that is still there."""
    problems = []
    for row in store.rows("raw_videos", video_id):
        if row["status"] != "ok":
            continue
        for column in ("width", "height", "fps", "duration_s"):
            if not (row.get(column) or 0) > 0:
                problems.append(f"{video_id}: accepted with {column}={row.get(column)}")
        if not Path(row["source_path"]).is_file():
            problems.append(f"{video_id}: source {row['source_path']} is gone")
    return problems


def segment_problems(store: Store, video_id: str) -> list[str]:
    """Clip bounds inside the video, start before end (or an empty clip of duration 0),
    the recorded duration consistent with the bounds, and no clip id twice."""
    video = store.rows("raw_videos", video_id)
    length = (video[0].get("duration_s") or 0.0) if video else 0.0
    fps = (video[0].get("fps") or 0.0) if video else 0.0
    limit = length + (1.0 / fps if fps else 0.0) + 1e-6
    problems = []
    segments = store.rows("segments", video_id)
    for row in segments:
        clip, start, end = row["clip_id"], row["start_time"], row["end_time"]
        if not 0.0 <= start <= limit or not 0.0 <= end <= limit:
            problems.append(f"{clip}: bounds {start:.3f}..{end:.3f} s outside 0..{length:.3f} s")
        if start >= end and row["duration_s"] != 0.0:
            problems.append(f"{clip}: start {start:.3f} >= end {end:.3f}")
        expected = max(end - start, 0.0)
        if abs(row["duration_s"] - expected) > DURATION_TOLERANCE_S:
            problems.append(
                f"{clip}: duration {row['duration_s']} s but bounds span {expected:.3f}"
            )
        if row["start_frame"] >= row["end_frame"]:
            problems.append(f"{clip}: scene frames {row['start_frame']}..{row['end_frame']}")
    repeated = [clip for clip, n in Counter(r["clip_id"] for r in segments).items() if n > 1]
    problems += [f"{clip}: clip id appears more than once" for clip in repeated]
    return _listed(problems)


def decode_coverage_problems(store: Store, video_id: str) -> list[str]:
    """A decode that failed or stopped short of the source (clips cover only a part): the
    decode reports' failures, which hold exactly those."""
    return [
        Failure.of(failure).text()
        for report in store.rows("decode_reports", video_id)
        for failure in report.get("failures") or []
    ]


def score_problems(store: Store, video_id: str, stage: Stage) -> list[str]:
    """One row of ``stage`` for every segment, and every score in its formula's range or NULL."""
    segments = {row["clip_id"] for row in store.rows("segments", video_id)}
    rows = store.rows(stage.table, video_id)
    scored = Counter(row["clip_id"] for row in rows)
    problems = [f"{clip}: no {stage.name} row" for clip in sorted(segments - set(scored))]
    problems += [
        f"{clip}: {stage.name} row without a segment" for clip in scored if clip not in segments
    ]
    problems += [f"{clip}: {n} {stage.name} rows" for clip, n in scored.items() if n > 1]
    for row in rows:
        for column in stage.score_columns:
            value = row.get(column.name)
            low, high = stage.scale(row.get(stage.backend_column), column.name)
            if value is not None and not low <= value <= high:
                problems.append(
                    f"{row['clip_id']}: {column.name}={value} outside {low:g}..{high:g}"
                )
    return _listed(problems)


def verdict_problems(store: Store, video_ids: Sequence[str]) -> dict[str, list[str]]:
    """Per video: a verdict for every segment; a clip passes only without reasons; a NULL score
    never passes silently: the verdict names the missing column. One query for all the videos
    (a ranged run's), not one per video."""
    clips = store.query(
        "SELECT * FROM clips WHERE video_id IN (SELECT unnest(:ids))", {"ids": list(video_ids)}
    )
    problems: dict[str, list[str]] = {video: [] for video in video_ids}
    for clip in clips:
        found = problems[clip["video_id"]]
        reasons = clip["reject_reasons"] or []
        if clip["passed"] is None:
            found.append(f"{clip['clip_id']}: no verdict")
            continue
        if clip["passed"] == bool(reasons):
            found.append(
                f"{clip['clip_id']}: passed={clip['passed']} with reasons [{describe(reasons)}]"
            )
        checks = {reason["check"] for reason in reasons}
        for stage in (stage for stage in STAGES if stage.always_judged):
            column = stage.summary_column
            explained = bool(checks & {column, stage.name})
            if clip.get(column) is None and not explained:
                found.append(f"{clip['clip_id']}: {column} is NULL and no reason says why")
    return {video: _listed(found) for video, found in problems.items()}


def _exported_ids(export_files: Sequence[Path]) -> Counter[str] | list[str]:
    """The clip ids the export files hold, or the one problem that stops reading them."""
    exported: Counter[str] = Counter()
    for export_file in export_files:
        if not export_file.exists():
            return [f"{export_file} is missing"]
        try:
            exported.update(record["id"] for record in json.loads(export_file.read_text()))
        except (ValueError, KeyError, TypeError) as exc:
            return [f"{export_file} is not a TalkVid record list: {exc}"]
    return exported


def _compare(exported: Counter[str], passing: set[str]) -> list[str]:
    problems = [f"{clip}: passing but not exported" for clip in sorted(passing - set(exported))]
    problems += [f"{clip}: exported but not passing" for clip in sorted(set(exported) - passing)]
    problems += [f"{clip}: exported {n} times" for clip, n in exported.items() if n > 1]
    return _listed(problems)


# The clips an export must hold: the passing ones, less those of videos whose source went
# missing (never exported).
EXPORTABLE_SQL = (
    "SELECT video_id, clip_id FROM clips WHERE passed "
    "AND video_id NOT IN (SELECT video_id FROM videos WHERE status = 'missing')"
)


def export_problems(store: Store, export_files: Sequence[Path]) -> list[str]:
    """The export files together hold exactly the corpus's exportable clips."""
    exported = _exported_ids(export_files)
    if isinstance(exported, list):
        return exported
    passing = {row["clip_id"] for row in store.query(EXPORTABLE_SQL)}
    return _compare(exported, passing)


def video_export_problems(
    store: Store, export_dir: Path, video_ids: Sequence[str]
) -> dict[str, list[str]]:
    """Per video: its export file ``<export_dir>/<video_id>.json`` holds exactly its
    exportable clips. One query for all the videos."""
    passing: dict[str, set[str]] = {video: set() for video in video_ids}
    rows = store.query(
        f"{EXPORTABLE_SQL} AND video_id IN (SELECT unnest(:ids))", {"ids": list(video_ids)}
    )
    for row in rows:
        passing[row["video_id"]].add(row["clip_id"])
    problems = {}
    for video in video_ids:
        exported = _exported_ids([export_dir / f"{video}.json"])
        problems[video] = (
            exported if isinstance(exported, list) else _compare(exported, passing[video])
        )
    return problems
