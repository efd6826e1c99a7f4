"""Dagster's own stale status of asset partitions: what the UI's badges and GraphQL's
``staleStatusByPartition`` show, asked by `talkvid curate` so the CLI and the UI agree.

Dagster 1.13 offers no public Python API for it (the GraphQL field needs a running webserver,
and the resolver behind it lives in ``dagster._core``). This module is the one place product code
imports Dagster internals; an upgrade that moves them breaks here, and
test_staleness compares its answers with GraphQL's.
"""

from __future__ import annotations

from collections.abc import Iterable

from dagster import AssetKey, DagsterInstance
from dagster._core.definitions.assets.graph.base_asset_graph import BaseAssetGraph
from dagster._core.definitions.data_version import CachingStaleStatusResolver, StaleStatus
from dagster._core.loader import LoadingContextForTest


def outdated(
    instance: DagsterInstance,
    asset_graph: BaseAssetGraph,
    asset_partitions: Iterable[tuple[str, str | None]],
) -> set[tuple[str, str | None]]:
    """The (asset, partition) pairs Dagster calls missing or stale now."""
    resolver = CachingStaleStatusResolver(instance, asset_graph, LoadingContextForTest(instance))
    return {
        (asset, partition)
        for asset, partition in asset_partitions
        if resolver.get_status(AssetKey(asset), partition) != StaleStatus.FRESH
    }
