"""Stage 0: probe each ingested source and apply the profile's prefilter."""

from dagster import AssetExecutionContext, AssetsDefinition, MaterializeResult, asset

from talkvid_assets.core.failures import describe
from talkvid_assets.core.verdicts import prefilter_video
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
        code_version="probe-3",  # reasons as structured failures
        automation_condition=VIDEO_AUTOMATION,
    )
    def raw_videos(context: AssetExecutionContext, talkvid: TalkvidResource) -> MaterializeResult:
        """The source video's container facts, and `ok` or `rejected` with the reason."""
        store, profile = talkvid.store(), talkvid.config().judging_profile()
        store.publish()
        metadata = {}
        for key in context.partition_keys:
            row = prefilter_video(store, key, profile)
            reasons = describe(row["reject_reasons"])
            if row["status"] == "rejected":
                context.log.warning(f"rejected {row.get('source_path')}: {reasons}")
            metadata[key] = {"reject_reasons": reasons or "none"}
        digests = {key: store.digest("raw_videos", key) for key in context.partition_keys}
        version = record_partitions(context, store, RAW_VIDEOS, digests, metadata)
        return MaterializeResult(metadata={"profile": profile.tag}, data_version=version)

    return raw_videos
