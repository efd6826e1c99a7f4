"""Stage 4: every threshold of the configuration applied at once, every failed check listed."""

from collections import Counter

from dagster import AssetExecutionContext, AssetsDefinition, MaterializeResult, asset

from talkvid_assets.core.failures import describe
from talkvid_assets.core.stages import STAGES
from talkvid_assets.core.verdicts import judge_clips
from talkvid_assets.defs.automation import VIDEO_AUTOMATION
from talkvid_assets.defs.metadata import histogram, table
from talkvid_assets.defs.names import CURATION_GROUP, FILTERED_CLIPS, SEGMENTS, config_asset
from talkvid_assets.defs.partitions import backfill_policy, video_partitions
from talkvid_assets.defs.per_partition import record_partitions
from talkvid_assets.defs.resources import TalkvidResource

CLIP_TABLE_SQL = """
    SELECT video_id, clip_id, start_time, duration_s, speech_ratio, quality_score, motion_ratio,
           min_rotation, face_consistency, passed, reject_reasons
    FROM clips WHERE video_id IN (SELECT unnest(:keys)) ORDER BY clip_id
"""
# A video's own counts on its partition: what progress lines report, since the clips table may
# already hold a concurrent curate's newer (or half-written) rows.
CLIPS, PASSED = "clips", "passed"
SHOWN_CLIPS = 500  # a video's clip table in the UI stops there


def build_filtered_clips() -> AssetsDefinition:
    @asset(
        partitions_def=video_partitions,
        backfill_policy=backfill_policy,
        group_name=CURATION_GROUP,
        deps=[SEGMENTS, *(stage.table for stage in STAGES), config_asset("thresholds")],
        kinds={"duckdb"},
        code_version="verdict-4",  # reasons as structured failures (3: two-sided motion)
        automation_condition=VIDEO_AUTOMATION,
    )
    def filtered_clips(
        context: AssetExecutionContext, talkvid: TalkvidResource
    ) -> MaterializeResult:
        """Pass/fail per clip with the list of failed checks and the configuration used."""
        store, config = talkvid.store(), talkvid.config()
        verdicts = judge_clips(store, context.partition_keys, config)
        quality = (
            config.judging_profile().clip.minimums["quality_score"].get(config.backends["quality"])
        )
        shown: dict[str, list[dict]] = {key: [] for key in context.partition_keys}
        for clip in store.query(CLIP_TABLE_SQL, {"keys": list(context.partition_keys)}):
            shown[clip.pop("video_id")].append(
                {**clip, "reject_reasons": describe(clip["reject_reasons"]) or "-"}
            )
        metadata = {}
        for key in context.partition_keys:
            mine = [verdict for verdict in verdicts if verdict["video_id"] == key]
            reasons = Counter(
                reason["check"] for verdict in mine for reason in verdict["reject_reasons"]
            )
            clips = shown[key][:SHOWN_CLIPS]
            metadata[key] = {
                CLIPS: len(mine),
                PASSED: sum(verdict["passed"] for verdict in mine),
                "failed_checks": dict(reasons.most_common()) or "none",
                "clip_table": table(clips, list(clips[0]) if clips else ["clip_id"]),
                "quality_vs_threshold": histogram(
                    [clip["quality_score"] for clip in clips], (0.0, 10.0), quality, "quality"
                ),
            }
        digests = {key: store.digest("filtered_clips", key) for key in context.partition_keys}
        return MaterializeResult(
            metadata={"profile": config.judging_profile().tag, "config_digest": config.digest},
            data_version=record_partitions(context, store, FILTERED_CLIPS, digests, metadata),
        )

    return filtered_clips
