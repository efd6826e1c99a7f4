"""The one Definitions object: what `dagster dev`, the CLI and the tests all load."""

from dagster import AssetSelection, Definitions, define_asset_job

from talkvid_assets.defs.filtered_clips import filtered_clips
from talkvid_assets.defs.partitions import video_partitions
from talkvid_assets.defs.raw_videos import raw_videos
from talkvid_assets.defs.resources import default_resource
from talkvid_assets.defs.segments import decode_pass
from talkvid_assets.defs.talkvid_export import talkvid_export

CURATION_ASSETS = [raw_videos, decode_pass, filtered_clips, talkvid_export]

curate_job = define_asset_job(
    "curate",
    selection=AssetSelection.all(),
    partitions_def=video_partitions,
    description="The whole curation graph for one source video",
)

defs = Definitions(
    assets=CURATION_ASSETS,
    jobs=[curate_job],
    resources={"talkvid": default_resource()},
)
