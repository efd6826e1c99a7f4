"""Stage 0: probe each ingested source and apply the profile's prefilter."""

from dagster import AssetExecutionContext, AssetsDefinition, MaterializeResult, asset

from talkvid_assets.core.config import CODE_VERSIONS
from talkvid_assets.core.pipeline import prefilter_video
from talkvid_assets.defs.automation import VIDEO_AUTOMATION
from talkvid_assets.defs.names import CURATION_GROUP, RAW_VIDEOS, config_asset
from talkvid_assets.defs.partitions import backfill_policy, video_partitions
from talkvid_assets.defs.per_partition import record_partitions
from talkvid_assets.defs.resources import TalkvidResource


def build_raw_videos() -> AssetsDefinition:
    @asset(
        partitions_def=video_partitions,
        backfill_policy=backfill_policy,
        group_name=CURATION_GROUP,
        deps=[config_asset("prefilter")],
        kinds={"duckdb", "pyav"},
        code_version=CODE_VERSIONS["raw_videos"],
        automation_condition=VIDEO_AUTOMATION,
    )
    def raw_videos(context: AssetExecutionContext, talkvid: TalkvidResource) -> MaterializeResult:
        """The source video's container facts, and `ok` or `rejected` with the reason."""
        store, profile = talkvid.store(), talkvid.config().judging_profile()
        store.publish()
        metadata = {}
        for key in context.partition_keys:
            row = prefilter_video(store, key, profile)
            if row["status"] == "rejected":
                context.log.warning(f"rejected {row.get('source_path')}: {row['reject_reason']}")
            metadata[key] = {"reject_reason": row.get("reject_reason") or "none"}
        digests = {key: store.digest("raw_videos", key) for key in context.partition_keys}
        version = record_partitions(context, store, RAW_VIDEOS, digests, metadata)
        return MaterializeResult(metadata={"profile": profile.tag}, data_version=version)

    return raw_videos
