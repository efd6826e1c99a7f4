"""Stage 5: the passing clips of a video as TalkVid-format JSON records."""

from dagster import AssetExecutionContext, MaterializeResult, asset

from talkvid_assets.core.export import write_records
from talkvid_assets.core.pipeline import export_records
from talkvid_assets.defs.partitions import video_partitions
from talkvid_assets.defs.resources import TalkvidResource

EXPORT_DIR = "exports/talkvid"


@asset(
    partitions_def=video_partitions, group_name="exports", deps=["filtered_clips"], kinds={"json"}
)
def talkvid_export(context: AssetExecutionContext, talkvid: TalkvidResource) -> MaterializeResult:
    """``exports/talkvid/<video_id>.json`` under the home; `talkvid export` merges them."""
    store = talkvid.store()
    records = export_records(store, [context.partition_key])
    path = store.home / EXPORT_DIR / f"{context.partition_key}.json"
    write_records(path, records)
    return MaterializeResult(metadata={"records": len(records), "path": str(path)})
