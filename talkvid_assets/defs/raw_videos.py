"""Stage 0: probe each ingested source and apply the profile's prefilter."""

from collections.abc import Mapping

from dagster import AssetExecutionContext, AssetsDefinition, MaterializeResult, asset

from talkvid_assets.core.pipeline import prefilter_video
from talkvid_assets.defs.metadata import describe_sources
from talkvid_assets.defs.partitions import backfill_policy, video_partitions
from talkvid_assets.defs.resources import TalkvidResource


def build_raw_videos(code_versions: Mapping[str, str]) -> AssetsDefinition:
    @asset(
        partitions_def=video_partitions,
        backfill_policy=backfill_policy,
        group_name="curation",
        kinds={"duckdb", "pyav"},
        code_version=code_versions["raw_videos"],
    )
    def raw_videos(context: AssetExecutionContext, talkvid: TalkvidResource) -> MaterializeResult:
        """The source video's container facts, and `ok` or `rejected` with the reason."""
        store, profile = talkvid.store(), talkvid.config().judging_profile()
        store.publish()
        rows = []
        for key in context.partition_keys:
            row = prefilter_video(store, key, profile)
            rows.append(row)
            if row["status"] == "rejected":
                context.log.warning(f"rejected {row.get('source_path')}: {row['reject_reason']}")
        rejected = [row for row in rows if row["status"] == "rejected"]
        return MaterializeResult(
            metadata={
                **describe_sources(store, context.partition_keys),
                "rejected": len(rejected),
                "reject_reasons": "; ".join(row["reject_reason"] for row in rejected) or "none",
                "profile": profile.tag,
            }
        )

    return raw_videos
