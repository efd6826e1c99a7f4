"""Which partitions of which assets are stale, and the ranged runs that bring them up to date.

One answer for every route: `talkvid curate` (missing and `--stale`), the stale sensor in
`dagster dev`. An asset partition is stale when it was never materialized, when it was
materialized under another code version (see core.config.code_versions), when a parent was
materialized after it, or when a parent is stale. Only stale assets are selected, so a
threshold edit re-runs `filtered_clips` and the export, never the decode.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass

from dagster import AssetKey, AssetRecordsFilter, DagsterEventType, DagsterInstance, RunsFilter
from dagster._core.definitions.data_version import CODE_VERSION_TAG
from dagster._core.storage.dagster_run import IN_PROGRESS_RUN_STATUSES
from dagster._core.storage.tags import (
    ASSET_PARTITION_RANGE_END_TAG,
    ASSET_PARTITION_RANGE_START_TAG,
    PARTITION_NAME_TAG,
)

from talkvid_assets.defs.partitions import video_partitions

MATERIALIZATION = DagsterEventType.ASSET_MATERIALIZATION


@dataclass(frozen=True)
class PlannedRun:
    """One run: a contiguous range of partitions and the assets to materialize for them."""

    assets: tuple[str, ...]
    partitions: tuple[str, ...]

    def tags(self) -> dict[str, str]:
        """Dagster's partition tags for this run (a single key, or a range)."""
        if len(self.partitions) == 1:
            return {PARTITION_NAME_TAG: self.partitions[0]}
        return {
            ASSET_PARTITION_RANGE_START_TAG: self.partitions[0],
            ASSET_PARTITION_RANGE_END_TAG: self.partitions[-1],
        }


def stale_assets(
    instance: DagsterInstance,
    graph: Sequence[tuple[str, str | None, Sequence[str]]],
    partitions: Sequence[str],
) -> dict[str, list[str]]:
    """Partition -> stale assets, for ``graph`` = (asset, code version, parents) in
    dependency order."""
    storage = instance.event_log_storage
    stale: dict[str, list[str]] = {key: [] for key in partitions}
    latest: dict[str, Mapping[str, int]] = {}
    for asset, version, parents in graph:
        key = AssetKey(asset)
        latest[asset] = storage.get_latest_storage_id_by_partition(key, MATERIALIZATION)
        versions = _recorded_code_versions(instance, key, latest[asset], partitions)
        for partition in partitions:
            recorded = latest[asset].get(partition)
            if (
                recorded is None
                or versions.get(recorded) != version
                or any(parent in stale[partition] for parent in parents)
                or any(latest[parent].get(partition, 0) > recorded for parent in parents)
            ):
                stale[partition].append(asset)
    return {partition: assets for partition, assets in stale.items() if assets}


def _recorded_code_versions(
    instance: DagsterInstance, key: AssetKey, latest: Mapping[str, int], partitions: Sequence[str]
) -> dict[int, str | None]:
    """Storage id -> code version of the latest materialization of each partition."""
    ids = [latest[partition] for partition in partitions if partition in latest]
    versions: dict[int, str | None] = {}
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        records = instance.fetch_materializations(
            AssetRecordsFilter(asset_key=key, storage_ids=chunk), limit=len(chunk)
        ).records
        for record in records:
            tags = record.asset_materialization.tags if record.asset_materialization else None
            versions[record.storage_id] = (tags or {}).get(CODE_VERSION_TAG)
    return versions


def busy_partitions(instance: DagsterInstance) -> set[str]:
    """Partitions that a queued or running run will materialize: not to be requested twice."""
    busy: set[str] = set()
    order = instance.get_dynamic_partitions(video_partitions.name)
    for run in instance.get_runs(RunsFilter(statuses=list(IN_PROGRESS_RUN_STATUSES))):
        tags = run.tags
        if PARTITION_NAME_TAG in tags:
            busy.add(tags[PARTITION_NAME_TAG])
        elif (
            ASSET_PARTITION_RANGE_START_TAG in tags
            and tags[ASSET_PARTITION_RANGE_START_TAG] in order
        ):
            first = order.index(tags[ASSET_PARTITION_RANGE_START_TAG])
            last = order.index(tags.get(ASSET_PARTITION_RANGE_END_TAG, order[-1]))
            busy.update(order[first : last + 1])
    return busy


def plan_runs(
    order: Sequence[str], stale: Mapping[str, Iterable[str]], per_run: int
) -> Iterator[PlannedRun]:
    """Group stale partitions with the same stale assets into contiguous ranges (in
    registration order, as Dagster's ranges are) of at most ``per_run`` partitions."""
    current: list[str] = []
    assets: tuple[str, ...] = ()
    for partition in order:
        wanted = tuple(stale.get(partition, ()))
        if current and (wanted != assets or len(current) == per_run):
            yield PlannedRun(assets, tuple(current))
            current = []
        if wanted:
            current.append(partition)
            assets = wanted
    if current:
        yield PlannedRun(assets, tuple(current))
