"""Stage 5: the passing clips as TalkVid-format JSON, per video and as one dataset file.

`talkvid_dataset` is the merged file every route writes (`exports/talkvid.json`): the CLI
materializes it after curating, and in `dagster dev` it follows the per-video exports by itself.
"""

from collections import Counter

from dagster import (
    AssetExecutionContext,
    AssetsDefinition,
    Config,
    DataVersion,
    MaterializeResult,
    asset,
)

from talkvid_assets.core.clip_files import CLIPS_DIR, cut_passing_clips
from talkvid_assets.core.config import fingerprint
from talkvid_assets.core.export import (
    DATASET_FILE,
    FIXED_FRAMES_DIR,
    VIDEO_EXPORT_DIR,
    export_records,
    write_records,
)
from talkvid_assets.core.fixed_frames import DEFAULT_WINDOW_FRAMES, window_records
from talkvid_assets.core.store import Store
from talkvid_assets.defs.automation import CORPUS_AUTOMATION, VIDEO_AUTOMATION
from talkvid_assets.defs.names import (
    ANNOTATIONS,
    EXPORTS_GROUP,
    FILTERED_CLIPS,
    FIXED_FRAME_RECORDS,
    ON_DEMAND_TAG,
    SPEAKERS,
    TALKVID_EXPORT,
)
from talkvid_assets.defs.partitions import backfill_policy, video_partitions
from talkvid_assets.defs.per_partition import record_partitions
from talkvid_assets.defs.resources import TalkvidResource

# The dataset's metadata: when the latest verdict it may include was written (epoch seconds).
JUDGED_AT = "judged_at"


def latest_judging(store: Store) -> float:
    """When any video's verdicts were last written (0 before any): the dataset records it
    before reading the clips, so a later verdict is one it may not include. The files' times,
    not Dagster's events: a verdict is written before its materialization is recorded."""
    folder = store.tables_dir / "filtered_clips"
    files = [*folder.glob("*.parquet"), *folder.glob("_compacted/*.parquet")]
    return max((path.stat().st_mtime for path in files), default=0.0)


def build_exports() -> list[AssetsDefinition]:
    @asset(
        partitions_def=video_partitions,
        backfill_policy=backfill_policy,
        group_name=EXPORTS_GROUP,
        deps=[FILTERED_CLIPS, ANNOTATIONS],
        kinds={"json"},
        code_version="talkvid-json-3",  # stand-ins under their own names, full-precision times
        automation_condition=VIDEO_AUTOMATION,
    )
    def talkvid_export(
        context: AssetExecutionContext, talkvid: TalkvidResource
    ) -> MaterializeResult:
        """``exports/talkvid/<video_id>.json`` under the home: a video's passing clips."""
        store = talkvid.store()
        records = export_records(store, context.partition_keys, speakers=False)
        digests, metadata = {}, {}
        for key in context.partition_keys:
            mine = [record for record in records if record["id"].startswith(f"{key}-")]
            path = store.home / VIDEO_EXPORT_DIR / f"{key}.json"
            write_records(path, mine)
            digests[key] = fingerprint(mine)
            metadata[key] = {"records": len(mine), "path": str(path)}
        return MaterializeResult(
            data_version=record_partitions(context, store, TALKVID_EXPORT, digests, metadata)
        )

    @asset(
        group_name=EXPORTS_GROUP,
        deps=[TALKVID_EXPORT, SPEAKERS],
        kinds={"json"},
        code_version="talkvid-json-3",
        automation_condition=CORPUS_AUTOMATION,
    )
    def talkvid_dataset(talkvid: TalkvidResource) -> MaterializeResult:
        """``exports/talkvid.json``: every passing clip of the home in one TalkVid JSON file."""
        store = talkvid.store()
        store.compact()  # whichever corpus-wide asset runs first merges; the other returns
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
            },
            data_version=DataVersion(fingerprint(records)),
        )

    @asset(
        partitions_def=video_partitions,
        backfill_policy=backfill_policy,
        group_name=EXPORTS_GROUP,
        deps=[FILTERED_CLIPS],
        kinds={"mp4"},
        tags={ON_DEMAND_TAG: "true"},
        code_version="clips-h264-aac-1",
    )
    def clip_files(context: AssetExecutionContext, talkvid: TalkvidResource) -> MaterializeResult:
        """``clips/<clip_id>.mp4`` under the home (H.264 + AAC): on demand only, never part of
        a curation run (materialize it from the UI, or run `talkvid cut`)."""
        store = talkvid.store()
        cuts = cut_passing_clips(store, store.home / CLIPS_DIR, video_ids=context.partition_keys)
        modes = Counter(cut.mode for _, cut in cuts.made)
        for clip_id, reason in cuts.skipped:
            context.log.warning(f"{clip_id} not cut: {reason}")
        return MaterializeResult(
            metadata={
                "clips": len(cuts.made),
                "skipped": len(cuts.skipped),
                "stream_copied": modes["copy"],
                "re_encoded": modes["encode"],
                "folder": str(store.home / CLIPS_DIR),
            }
        )

    @asset(
        partitions_def=video_partitions,
        backfill_policy=backfill_policy,
        group_name=EXPORTS_GROUP,
        deps=[TALKVID_EXPORT],
        kinds={"json"},
        tags={ON_DEMAND_TAG: "true"},
        code_version="fixed-frames-1",
    )
    def fixed_frame_records(
        context: AssetExecutionContext, config: FixedFramesConfig, talkvid: TalkvidResource
    ) -> MaterializeResult:
        """``exports/fixed_frames/<video_id>.json``: the release's second pass, each passing
        clip in windows of ``window_frames`` frames with release-style ids and durations
        (``core/fixed_frames.py``). On demand only, like the reference's own pass."""
        store = talkvid.store()
        records = export_records(store, context.partition_keys, speakers=False)
        digests, metadata = {}, {}
        for key in context.partition_keys:
            windows = [
                window
                for record in records
                if record["id"].startswith(f"{key}-")
                for window in window_records(record, config.window_frames)
            ]
            path = store.home / FIXED_FRAMES_DIR / f"{key}.json"
            write_records(path, windows)
            digests[key] = fingerprint([config.window_frames, windows])
            metadata[key] = {
                "records": len(windows),
                "window_frames": config.window_frames,
                "path": str(path),
            }
        return MaterializeResult(
            data_version=record_partitions(context, store, FIXED_FRAME_RECORDS, digests, metadata)
        )

    return [talkvid_export, talkvid_dataset, clip_files, fixed_frame_records]


class FixedFramesConfig(Config):
    """The fixed-frames pass's one setting (the reference publishes no value for it)."""

    window_frames: int = DEFAULT_WINDOW_FRAMES  # at least 1
