"""Removing videos, from the UI as from the CLI: the `remove_videos` job.

Launch it from the UI (Jobs, then `remove_videos`, then the Launchpad) with the partition keys
or source paths to remove, e.g. ``ops: {remove: {config: {videos: [my_new_video]}}}``;
`talkvid remove` does the same. The store's part is ``core.removal``; this module deletes the
Dagster partition.
"""

from collections.abc import Sequence

from dagster import Config, DagsterInstance, Failure, OpExecutionContext, job, op
from pydantic import Field

from talkvid_assets.core.removal import UnknownVideo, remove_video, resolve_video
from talkvid_assets.core.store import Store
from talkvid_assets.defs.names import REMOVE_JOB
from talkvid_assets.defs.partitions import video_partitions
from talkvid_assets.defs.resources import TalkvidResource


def forget_partition(instance: DagsterInstance, key: str) -> None:
    """Delete the video's partition.

    Its materialization history stays in the event log: Dagster cannot wipe one partition's
    events on SQLite storage ("Partitioned asset wipe is not supported yet"), so `talkvid
    curate` curates a partition whose rows are gone (``launch.uncurated``: a copy ingested after
    removal) although Dagster calls it materialized.
    """
    instance.delete_dynamic_partition(video_partitions.name, key)


def remove_videos_from(
    instance: DagsterInstance, store: Store, names: Sequence[str]
) -> dict[str, int]:
    """Remove each named video (partition key or source path) from the store and the
    instance; returns the number of files deleted per key. Every name is resolved before
    anything is removed, so a typo removes nothing."""
    partitions = instance.get_dynamic_partitions(video_partitions.name)
    keys = list(dict.fromkeys(resolve_video(store, name, partitions) for name in names))
    removed = {}
    for key in keys:
        removed[key] = len(remove_video(store, key))
        forget_partition(instance, key)
    return removed


class RemoveVideos(Config):
    videos: list[str] = Field(description="partition keys or source paths of the videos")


@op(name="remove")
def remove_videos_op(
    context: OpExecutionContext, config: RemoveVideos, talkvid: TalkvidResource
) -> None:
    """Remove the videos' rows, files and partitions (see the module's docstring)."""
    try:
        removed = remove_videos_from(context.instance, talkvid.store(), config.videos)
    except UnknownVideo as exc:
        raise Failure(str(exc)) from None
    for key, files in removed.items():
        context.log.info(f"removed {key}: its rows, partition and {files} file(s)")


@job(
    name=REMOVE_JOB,
    description="Remove videos (partition keys or source paths): rows, files and partitions",
)
def remove_videos() -> None:
    remove_videos_op()
