"""Stage 0: probe each ingested source and apply the profile's prefilter."""

from dagster import (
    AssetCheckResult,
    AssetCheckSpec,
    AssetExecutionContext,
    MaterializeResult,
    asset,
)

from talkvid_assets.core.pipeline import prefilter_video
from talkvid_assets.defs.partitions import video_partitions
from talkvid_assets.defs.resources import TalkvidResource


@asset(
    partitions_def=video_partitions,
    group_name="curation",
    kinds={"duckdb", "pyav"},
    code_version="1",
    check_specs=[AssetCheckSpec("probe_recorded", asset="raw_videos")],
)
def raw_videos(context: AssetExecutionContext, talkvid: TalkvidResource) -> MaterializeResult:
    """The source video's container facts, and `ok` or `rejected` with the reason."""
    store = talkvid.store()
    store.publish()
    row = prefilter_video(store, context.partition_key, talkvid.curation_profile())
    if row["status"] == "rejected":
        context.log.warning(f"rejected {row.get('source_path')}: {row['reject_reason']}")
    recorded = store.rows("raw_videos", context.partition_key)
    return MaterializeResult(
        metadata={
            "status": row["status"],
            "reject_reason": row.get("reject_reason") or "",
            "source_path": row.get("source_path") or "",
            "resolution": f"{row.get('width')}x{row.get('height')}",
            "duration_s": float(row.get("duration_s") or 0.0),
            "profile": row["profile"],
        },
        check_results=[AssetCheckResult(passed=len(recorded) == 1, check_name="probe_recorded")],
    )
