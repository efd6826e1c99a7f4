"""The two verdicts of curation: a source's (the prefilter, on its probe) and each clip's (every
threshold of the judging profile at once), written with the failed checks that decided them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from talkvid_assets.core.config import CurationConfig
from talkvid_assets.core.sources import NOT_INGESTED, source_problem
from talkvid_assets.core.store import Store
from talkvid_assets.core.thresholds import Profile
from talkvid_assets.core.video import ProbeError, VideoProbe, probe


def prefilter_video(store: Store, video_id: str, profile: Profile) -> dict[str, Any]:
    """Probe the source and apply the profile's prefilter; writes the ``raw_videos`` row."""
    row: dict[str, Any] = {"video_id": video_id, "profile": profile.tag, "status": "rejected"}
    sources = store.rows("sources", video_id)
    if not sources:
        row["reject_reason"] = NOT_INGESTED
    else:
        row["source_path"] = sources[0]["source_path"]
        try:
            probed = _probe_keyed_source(store, video_id, row["source_path"])
        except ProbeError as exc:
            row["reject_reason"] = str(exc)
        else:
            row.update(vars(probed))
            reasons = profile.prefilter.reasons(probed)
            row["status"] = "rejected" if reasons else "ok"
            row["reject_reason"] = "; ".join(reasons) or None
    store.write("raw_videos", video_id, [row])
    return row


def _probe_keyed_source(store: Store, video_id: str, path: str) -> VideoProbe:
    """Probe the source, refusing one whose content is no longer the one keyed ``video_id``."""
    problem = source_problem(store, video_id)
    if problem:
        raise ProbeError(problem)
    return probe(path)


CLIP_VERDICT_SQL = (
    "SELECT * FROM clip_scores WHERE video_id IN (SELECT unnest(:video_ids)) ORDER BY clip_id"
)


def judge_clips(
    store: Store, video_ids: Sequence[str], config: CurationConfig
) -> list[dict[str, Any]]:
    """Apply every clip threshold at once and record the full list of failed checks, with the
    configuration that judged them; one query for all ``video_ids``, one file per video."""
    profile = config.judging_profile()
    verdicts: dict[str, list[dict[str, Any]]] = {video_id: [] for video_id in video_ids}
    for clip in store.query(CLIP_VERDICT_SQL, {"video_ids": list(video_ids)}):
        reasons = profile.clip.reasons(clip)
        verdicts[clip["video_id"]].append(
            {
                "clip_id": clip["clip_id"],
                "video_id": clip["video_id"],
                "passed": not reasons,
                "reject_reasons": reasons,
                "profile": profile.tag,
                "config_digest": config.digest,
            }
        )
    for video_id, rows in verdicts.items():
        store.write("filtered_clips", video_id, rows)
    return [row for rows in verdicts.values() for row in rows]
