"""Stage 4: every threshold of the configuration applied at once, every failed check listed."""

from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

from dagster import AssetExecutionContext, AssetsDefinition, MaterializeResult, asset

from talkvid_assets.core.pipeline import judge_clips
from talkvid_assets.defs.metadata import describe_sources, histogram, table
from talkvid_assets.defs.partitions import backfill_policy, video_partitions
from talkvid_assets.defs.resources import TalkvidResource

CLIP_TABLE_SQL = """
    SELECT clip_id, start_time, duration_s, speech_ratio, quality_score, motion_ratio,
           min_rotation, face_consistency, passed, reject_reasons
    FROM clips WHERE video_id IN (SELECT unnest(:keys)) ORDER BY clip_id LIMIT 500
"""


# Metadata key of this run's own counts per video: what progress lines report, since the
# clips table may already hold a concurrent curate's newer (or half-written) rows.
VERDICTS_BY_VIDEO = "verdicts_by_video"


def verdict_counts(
    video_ids: Sequence[str], verdicts: Sequence[Mapping[str, Any]]
) -> dict[str, dict[str, int]]:
    """Clips judged and passed per video, zero for a video without clips."""
    counts = {video_id: {"clips": 0, "passed": 0} for video_id in video_ids}
    for verdict in verdicts:
        counts[verdict["video_id"]]["clips"] += 1
        counts[verdict["video_id"]]["passed"] += int(verdict["passed"])
    return counts


def build_filtered_clips(code_versions: Mapping[str, str]) -> AssetsDefinition:
    @asset(
        partitions_def=video_partitions,
        backfill_policy=backfill_policy,
        group_name="curation",
        deps=["segments", *(key for key in code_versions if key.endswith("_scores"))],
        kinds={"duckdb"},
        code_version=code_versions["filtered_clips"],
    )
    def filtered_clips(
        context: AssetExecutionContext, talkvid: TalkvidResource
    ) -> MaterializeResult:
        """Pass/fail per clip with the list of failed checks and the configuration used."""
        store, config = talkvid.store(), talkvid.config()
        verdicts = judge_clips(store, context.partition_keys, config)
        reasons = Counter(
            reason.split("=")[0].split(" ")[0] for v in verdicts for reason in v["reject_reasons"]
        )
        clips = store.query(CLIP_TABLE_SQL, {"keys": list(context.partition_keys)})
        quality = config.judging_profile().clip.min_quality.get(config.backends["quality"])
        return MaterializeResult(
            metadata={
                **describe_sources(store, context.partition_keys),
                "clips": len(verdicts),
                "passed": sum(v["passed"] for v in verdicts),
                VERDICTS_BY_VIDEO: verdict_counts(context.partition_keys, verdicts),
                "profile": config.judging_profile().tag,
                "config_digest": config.digest,
                "failed_checks": dict(reasons.most_common()) or "none",
                "clip_table": table(clips, list(clips[0]) if clips else ["clip_id"]),
                "quality_vs_threshold": histogram(
                    [clip["quality_score"] for clip in clips], (0.0, 10.0), quality, "quality"
                ),
            }
        )

    return filtered_clips
