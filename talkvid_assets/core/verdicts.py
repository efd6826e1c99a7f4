"""The two verdicts of curation: a source's (the prefilter, on its probe) and each clip's (every
threshold of the judging profile at once), written with the failed checks that decided them
(``reject_reasons``: structured failures, ``core.failures``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from talkvid_assets.core.config import CurationConfig
from talkvid_assets.core.failures import Failure, FailureKind
from talkvid_assets.core.sources import source_problem
from talkvid_assets.core.store import Store
from talkvid_assets.core.thresholds import Profile
from talkvid_assets.core.video import ProbeError, probe


def prefilter_video(store: Store, video_id: str, profile: Profile) -> dict[str, Any]:
    """Probe the source and apply the profile's prefilter; writes the ``raw_videos`` row.

    A source whose content is no longer the one keyed ``video_id`` (or none registered) is
    rejected without a probe, so scores are never filed under another video's key.
    """
    row: dict[str, Any] = {"video_id": video_id, "profile": profile.tag}
    sources = store.rows("sources", video_id)
    if sources:
        row["source_path"] = sources[0]["source_path"]
    problem = source_problem(store, video_id)
    if problem:
        failures = [problem]
    else:
        try:
            probed = probe(row["source_path"])
        except ProbeError as exc:
            failures = [Failure("probe", FailureKind.NOT_A_VIDEO, detail=str(exc))]
        else:
            row.update(vars(probed))
            failures = profile.prefilter.reasons(probed)
    row["status"] = "rejected" if failures else "ok"
    row["reject_reasons"] = [failure.row() for failure in failures]
    store.write("raw_videos", video_id, [row])
    return row


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
                "reject_reasons": [reason.row() for reason in reasons],
                "profile": profile.tag,
                "config_digest": config.digest,
            }
        )
    for video_id, rows in verdicts.items():
        store.write("filtered_clips", video_id, rows)
    return [row for rows in verdicts.values() for row in rows]
