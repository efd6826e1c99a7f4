"""Dagster's own stale status of asset partitions: what the UI's badges and GraphQL's
``staleStatusByPartition`` show, asked by `talkvid curate` so the CLI and the UI agree.

Dagster 1.13 offers no public Python API for it (the GraphQL field needs a running webserver,
and the resolver behind it lives in ``dagster._core``). This module and one class in
defs.per_partition are where product code imports Dagster internals; an upgrade that moves them
breaks there, and test_staleness / test_dev_automation compare the answers with the UI's.

The resolver answers one asset partition at a time (about 6 ms each here), so asking it about
every partition of a 100,000-video corpus would take minutes. :func:`outdated` first narrows the
question to the partitions that can be stale, from a few indexed queries per asset, and asks the
resolver about those only: the answer is the resolver's, at a cost that follows what changed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from dagster import AssetKey, AssetRecordsFilter, DagsterEventType, DagsterInstance
from dagster._core.definitions.assets.graph.base_asset_graph import BaseAssetGraph
from dagster._core.definitions.data_version import CachingStaleStatusResolver, StaleStatus
from dagster._core.loader import LoadingContextForTest

CODE_VERSION_TAG = "dagster/code_version"  # Dagster's tag; no public constant in 1.13


def outdated(
    instance: DagsterInstance,
    asset_graph: BaseAssetGraph,
    asset_partitions: Iterable[tuple[str, str | None]],
) -> set[tuple[str, str | None]]:
    """The (asset, partition) pairs Dagster calls missing or stale now."""
    wanted = list(asset_partitions)
    suspects = _suspects(instance, asset_graph, wanted)
    resolver = CachingStaleStatusResolver(instance, asset_graph, LoadingContextForTest(instance))
    return {
        (asset, partition)
        for asset, partition in wanted
        if (asset, partition) in suspects
        and resolver.get_status(AssetKey(asset), partition) != StaleStatus.FRESH
    }


def _suspects(
    instance: DagsterInstance,
    asset_graph: BaseAssetGraph,
    wanted: list[tuple[str, str | None]],
) -> set[tuple[str, str | None]]:
    """The pairs that can be missing or stale: never materialized; materialized before a
    parent's latest event (a parent's new data version can only come with a new event); or of
    an asset whose oldest current materialization has another code version (code versions move
    forward in time, so that one is the first to show a change)."""
    latest: dict[str, Mapping[str | None, int]] = {}

    def events(asset: str) -> Mapping[str | None, int]:
        if asset not in latest:
            latest[asset] = _latest_event_ids(instance, asset_graph, AssetKey(asset))
        return latest[asset]

    suspects = set()
    by_asset: dict[str, list[str | None]] = {}
    for asset, partition in wanted:
        by_asset.setdefault(asset, []).append(partition)
    for asset, partitions in by_asset.items():
        node = asset_graph.get(AssetKey(asset))
        mine = events(asset)
        if _code_version_moved(instance, node.code_version, AssetKey(asset), mine):
            suspects.update((asset, partition) for partition in partitions)
            continue
        for partition in partitions:
            own = mine.get(partition)
            if own is None:
                suspects.add((asset, partition))
                continue
            for parent in node.parent_keys:
                parent_events = events(parent.to_user_string())
                # A partitioned parent of the same partitions: that partition; otherwise its
                # latest event over all partitions.
                newest = (
                    parent_events.get(partition)
                    if asset_graph.get(parent).partitions_def == node.partitions_def
                    else max(parent_events.values(), default=None)
                )
                if newest is not None and newest > own:
                    suspects.add((asset, partition))
                    break
    return suspects


def _latest_event_ids(
    instance: DagsterInstance, asset_graph: BaseAssetGraph, key: AssetKey
) -> Mapping[str | None, int]:
    """Partition (None when unpartitioned) -> storage id of its latest materialization, or of
    its latest observation for an observable source asset."""
    node = asset_graph.get(key)
    event_type = (
        DagsterEventType.ASSET_OBSERVATION
        if node.is_observable
        else DagsterEventType.ASSET_MATERIALIZATION
    )
    if node.partitions_def is not None:
        return instance.event_log_storage.get_latest_storage_id_by_partition(key, event_type)
    fetch = instance.fetch_observations if node.is_observable else instance.fetch_materializations
    records = fetch(AssetRecordsFilter(asset_key=key), limit=1).records
    return {None: records[0].storage_id} if records else {}


def _code_version_moved(
    instance: DagsterInstance,
    code_version: str | None,
    key: AssetKey,
    latest: Mapping[str | None, int],
) -> bool:
    if not latest or code_version is None:
        return False
    oldest = min(latest.values())
    (record,) = instance.fetch_materializations(
        AssetRecordsFilter(asset_key=key, storage_ids=[oldest]), limit=1
    ).records
    event = record.asset_materialization
    return event is not None and (event.tags or {}).get(CODE_VERSION_TAG) != code_version
