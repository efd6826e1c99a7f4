"""Stage 5: the passing clips as TalkVid-format JSON, per video and as one dataset file.

`talkvid_dataset` is the merged file every route writes (`exports/talkvid.json`): the CLI
materializes it after curating, and in `dagster dev` it follows the per-video exports by itself.
"""

from collections import Counter
from collections.abc import Mapping

from dagster import (
    AssetExecutionContext,
    AssetsDefinition,
    AutomationCondition,
    MaterializeResult,
    asset,
)

from talkvid_assets.core.clip_files import cut_passing_clips
from talkvid_assets.core.export import write_records
from talkvid_assets.core.pipeline import export_records
from talkvid_assets.core.store import Store
from talkvid_assets.defs.metadata import describe_sources
from talkvid_assets.defs.partitions import backfill_policy, video_partitions
from talkvid_assets.defs.resources import TalkvidResource

VIDEO_EXPORT_DIR = "exports/talkvid"
CLIPS_DIR = "clips"
# Assets tagged so are left out of curation runs, staleness and the stale sensor.
ON_DEMAND_TAG = "talkvid/on_demand"
DATASET_FILE = "exports/talkvid.json"
# The dataset's metadata: when the latest verdict it may include was written (epoch seconds).
JUDGED_AT = "judged_at"


def latest_judging(store: Store) -> float:
    """When any video's verdicts were last written (0 before any): the dataset records it
    before reading the clips, so a later verdict is one it may not include. The files' times,
    not Dagster's events: a verdict is written before its materialization is recorded."""
    files = (store.tables_dir / "filtered_clips").glob("*.parquet")
    return max((path.stat().st_mtime for path in files), default=0.0)


# After any per-video export lands (and none is still running), rewrite the merged file. Unlike
# eager(), a video not yet curated does not hold the dataset back.
FOLLOWS_EXPORTS = (
    (
        AutomationCondition.newly_missing() | AutomationCondition.any_deps_updated()
    ).since_last_handled()
    & ~AutomationCondition.any_deps_in_progress()
    & ~AutomationCondition.in_progress()
).with_label("follows per-video exports")


def build_exports(code_versions: Mapping[str, str]) -> list[AssetsDefinition]:
    @asset(
        partitions_def=video_partitions,
        backfill_policy=backfill_policy,
        group_name="exports",
        deps=["filtered_clips", "annotations"],
        kinds={"json"},
        code_version=code_versions["talkvid_export"],
    )
    def talkvid_export(
        context: AssetExecutionContext, talkvid: TalkvidResource
    ) -> MaterializeResult:
        """``exports/talkvid/<video_id>.json`` under the home: a video's passing clips."""
        store = talkvid.store()
        records = export_records(store, context.partition_keys, speakers=False)
        for key in context.partition_keys:
            mine = [record for record in records if record["id"].startswith(f"{key}-")]
            write_records(store.home / VIDEO_EXPORT_DIR / f"{key}.json", mine)
        return MaterializeResult(
            metadata={
                **describe_sources(store, context.partition_keys),
                "records": len(records),
                "folder": str(store.home / VIDEO_EXPORT_DIR),
            }
        )

    @asset(
        group_name="exports",
        deps=["talkvid_export", "speakers"],
        kinds={"json"},
        code_version=code_versions["talkvid_dataset"],
        automation_condition=FOLLOWS_EXPORTS,
    )
    def talkvid_dataset(talkvid: TalkvidResource) -> MaterializeResult:
        """``exports/talkvid.json``: every passing clip of the home in one TalkVid JSON file."""
        store = talkvid.store()
        judged_at = latest_judging(store)  # before reading: see dataset_check
        records = export_records(store)
        path = store.home / DATASET_FILE
        write_records(path, records)
        videos = len({record["id"].rsplit("-", 1)[0] for record in records})
        return MaterializeResult(
            metadata={
                "records": len(records),
                "videos": videos,
                "path": str(path),
                JUDGED_AT: judged_at,
            }
        )

    @asset(
        partitions_def=video_partitions,
        backfill_policy=backfill_policy,
        group_name="exports",
        deps=["filtered_clips"],
        kinds={"mp4"},
        tags={ON_DEMAND_TAG: "true"},
        code_version=code_versions["clip_files"],
    )
    def clip_files(context: AssetExecutionContext, talkvid: TalkvidResource) -> MaterializeResult:
        """``clips/<clip_id>.mp4`` under the home (H.264 + AAC): on demand only, never part of
        a curation run (materialize it from the UI, or run `talkvid cut`)."""
        store = talkvid.store()
        made = cut_passing_clips(store, store.home / CLIPS_DIR, video_ids=context.partition_keys)
        modes = Counter(cut.mode for _, cut in made)
        return MaterializeResult(
            metadata={
                **describe_sources(store, context.partition_keys),
                "clips": len(made),
                "stream_copied": modes["copy"],
                "re_encoded": modes["encode"],
                "folder": str(store.home / CLIPS_DIR),
            }
        )

    return [talkvid_export, talkvid_dataset, clip_files]
