"""Each curation stage of one source video as a plain function over the store.

These are what the Dagster assets call (and what a library user can call without Dagster). Each
reads its inputs from the store and replaces its own rows for that video, so any stage can be
re-run alone and stays idempotent.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import av.error

from talkvid_assets.core.analysis import VideoAnalysis, analyse_video
from talkvid_assets.core.export import EXPORT_SQL, talkvid_record
from talkvid_assets.core.ingest import video_key
from talkvid_assets.core.scoring import ScorerBackend
from talkvid_assets.core.store import Store
from talkvid_assets.core.subtitles import find_subtitles, has_speech_cue, parse_cues
from talkvid_assets.core.thresholds import Profile
from talkvid_assets.core.video import ProbeError, VideoProbe, probe

ANALYSIS_TABLES = ("segments", "quality_scores", "motion_scores", "head_detail_scores")
# A decode that covers less of the container's duration than this is called truncated.
TRUNCATION_TOLERANCE = 0.95


def register_source(store: Store, path: str | Path) -> tuple[str, bool]:
    """Record ``path`` under its content key; returns (key, newly registered).

    Re-ingesting the same content is a no-op, unless the first registered path has since
    disappeared, in which case the source moves to the new path.
    """
    path = Path(path).resolve()
    key = video_key(path)
    known = store.rows("sources", key)
    if known and Path(known[0]["source_path"]).exists():
        return key, False
    store.write(
        "sources",
        key,
        [
            {
                "video_id": key,
                "source_path": str(path),
                "size_bytes": path.stat().st_size,
                "ingested_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            }
        ],
    )
    return key, not known


def prefilter_video(store: Store, video_id: str, profile: Profile) -> dict[str, Any]:
    """Probe the source and apply the profile's prefilter; writes the ``raw_videos`` row."""
    row: dict[str, Any] = {"video_id": video_id, "profile": profile.tag, "status": "rejected"}
    sources = store.rows("sources", video_id)
    if not sources:
        row["reject_reason"] = "not ingested: no source registered for this key"
    else:
        row["source_path"] = sources[0]["source_path"]
        try:
            probed = probe(row["source_path"])
        except ProbeError as exc:
            row["reject_reason"] = str(exc)
        else:
            row.update(vars(probed))
            reasons = profile.prefilter.reasons(probed)
            row["status"] = "rejected" if reasons else "ok"
            row["reject_reason"] = "; ".join(reasons) or None
    store.write("raw_videos", video_id, [row])
    return row


def _video_probe(row: Mapping[str, Any]) -> VideoProbe:
    return VideoProbe(**{field.name: row[field.name] for field in dataclasses.fields(VideoProbe)})


def analyse_segments(
    store: Store,
    video_id: str,
    backends: Mapping[str, ScorerBackend],
    scene_detector: str = "histogram",
) -> dict[str, list[dict[str, Any]]]:
    """Scenes, speech and every score of an accepted video, from one decode.

    Writes ``segments`` and one table per scoring stage (empty for a rejected video), plus the
    decode report; a decode that fails outright is recorded there as the video's error.
    """
    video = store.rows("raw_videos", video_id)
    tables: dict[str, list[dict[str, Any]]] = {table: [] for table in ANALYSIS_TABLES}
    report: dict[str, Any] = {"video_id": video_id, "scene_detector": scene_detector}
    if video and video[0]["status"] == "ok":
        probed = _video_probe(video[0])
        try:
            analysis = analyse_video(video[0]["source_path"], probed, backends, scene_detector)
        except (av.error.FFmpegError, OSError) as exc:
            report["error"] = f"decode failed: {exc}"
        else:
            tables = _analysis_rows(video_id, analysis, backends)
            _mark_subtitle_speech(tables["segments"], video[0]["source_path"])
            report.update(
                frames_decoded=analysis.report.frames,
                video_packet_errors=analysis.report.video_packet_errors,
                audio_packet_errors=analysis.report.audio_packet_errors,
                stopped_early=analysis.report.stopped_early,
                audio_s=analysis.audio_s,
                note=_decode_note(analysis, probed),
            )
    for table, rows in tables.items():
        store.write(table, video_id, rows)
    store.write("decode_reports", video_id, [report])
    # Verdicts were made on the old segments; until filtered_clips runs again there are none.
    store.write("filtered_clips", video_id, [])
    return tables


def _mark_subtitle_speech(segments: list[dict[str, Any]], source_path: str) -> None:
    """Apply the reference's subtitle rule to each segment when the source has subtitles."""
    subtitles = find_subtitles(source_path)
    cues = parse_cues(subtitles) if subtitles else None
    for segment in segments:
        segment["subtitle_speech"] = (
            None
            if cues is None
            else has_speech_cue(cues, segment["start_time"], segment["end_time"])
        )


def _decode_note(analysis: VideoAnalysis, probed: VideoProbe) -> str | None:
    """What a user should know about a decode that did not go cleanly, or None."""
    report = analysis.report
    notes = []
    decoded_s = report.end_number / probed.fps
    if report.stopped_early or decoded_s < probed.duration_s * TRUNCATION_TOLERANCE:
        notes.append(
            f"truncated: decoded {decoded_s:.1f} of {probed.duration_s:.1f} s "
            f"({report.frames} frames); clips cover the decodable part"
        )
    if report.video_packet_errors:
        notes.append(f"{report.video_packet_errors} undecodable video packet(s) skipped")
    if report.audio_packet_errors:
        notes.append(f"{report.audio_packet_errors} undecodable audio packet(s) skipped")
    return "; ".join(notes) or None


def _analysis_rows(
    video_id: str, analysis: VideoAnalysis, backends: Mapping[str, ScorerBackend]
) -> dict[str, list[dict[str, Any]]]:
    backend_columns = {
        "quality": ("quality_scores", "quality_backend"),
        "motion": ("motion_scores", "motion_backend"),
        "head_detail": ("head_detail_scores", "face_backend"),
    }
    tables: dict[str, list[dict[str, Any]]] = {table: [] for table in ANALYSIS_TABLES}
    for clip in analysis.clips:
        scene = clip.scene
        keys = {"clip_id": f"{video_id}-{scene.index:04d}", "video_id": video_id}
        tables["segments"].append(
            {
                **keys,
                "scene_index": scene.index,
                "start_frame": scene.start_frame,
                "end_frame": scene.end_frame,
                "scene_start_s": scene.scene_start_s,
                "scene_end_s": scene.scene_end_s,
                "start_time": scene.clip_start_s,
                "end_time": scene.clip_end_s,
                "duration_s": scene.duration_s,
                "frame_count": clip.frame_count,
                "speech_ratio": clip.speech_ratio,
            }
        )
        for stage, scores in clip.scores.items():
            table, backend_column = backend_columns[stage]
            tables[table].append(
                {
                    **keys,
                    **scores,
                    backend_column: backends[stage].name,
                    "backend_version": backends[stage].version,
                }
            )
    return tables


CLIP_VERDICT_SQL = "SELECT * FROM clip_scores WHERE video_id = :video_id ORDER BY clip_id"


def judge_clips(store: Store, video_id: str, profile: Profile) -> list[dict[str, Any]]:
    """Apply every clip threshold at once and record the full list of failed checks."""
    verdicts = []
    for clip in store.query(CLIP_VERDICT_SQL, {"video_id": video_id}):
        reasons = profile.clip.reasons(clip)
        verdicts.append(
            {
                "clip_id": clip["clip_id"],
                "video_id": video_id,
                "passed": not reasons,
                "reject_reasons": reasons,
                "profile": profile.tag,
            }
        )
    store.write("filtered_clips", video_id, verdicts)
    return verdicts


def export_records(store: Store, video_ids: Iterable[str] | None = None) -> list[dict[str, Any]]:
    """TalkVid-format records of passing clips, for some videos or all of them."""
    sql, params = EXPORT_SQL, {}
    if video_ids is not None:
        sql += " AND c.video_id IN (SELECT unnest(:video_ids))"
        params["video_ids"] = list(video_ids)
    rows = store.query(sql + " ORDER BY c.video_id, c.start_time", params)
    return [talkvid_record(row) for row in rows]
