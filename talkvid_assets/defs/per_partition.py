"""What the UI shows of one partition describes that partition only, ranged runs included.

A run over a range of videos materializes each asset once for the whole range: Dagster copies
the step's metadata and data version to every partition (Dagster issues #21072, #18123) and
records its check results without a partition. These helpers put each video's own facts on its
own event instead: metadata through ``add_asset_metadata(partition_key=...)``, one check
evaluation per partition, and a data version made from the content each partition holds.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from dagster import (
    AssetCheckEvaluation,
    AssetCheckExecutionContext,
    AssetCheckResult,
    AssetCheckSeverity,
    AssetExecutionContext,
    AssetKey,
    AssetRecordsFilter,
    DagsterEventType,
    DagsterInstance,
    DataVersion,
    EventLogRecord,
)

# Which materialization a check evaluation describes. Dagster 1.13 does not export this class:
# a check result it records itself gets the pointer internally, an evaluation logged per
# partition has to carry it (see check_partitions).
from dagster._core.definitions.asset_checks.asset_check_evaluation import (
    AssetCheckEvaluationTargetMaterializationData,
)

from talkvid_assets.core.config import fingerprint
from talkvid_assets.core.store import Store
from talkvid_assets.defs.metadata import describe_source

# The tag under which Dagster stores an event's data version. Dagster 1.13 exports no constant
# for it (only dagster._core.definitions.data_version.DATA_VERSION_TAG, an internal module).
DATA_VERSION_TAG = "dagster/data_version"
# Each partition's own content fingerprint, in its materialization's metadata.
CONTENT_DIGEST = "content_digest"
FETCH_CHUNK = 500  # storage ids per query


def record_partitions(
    context: AssetExecutionContext,
    store: Store,
    asset: str,
    digests: Mapping[str, str],
    metadata: Mapping[str, Mapping[str, Any]],
) -> DataVersion:
    """Attach each partition's source file, ``metadata`` and content digest to its own
    materialization of ``asset``, and return the data version for the step's output.

    Dagster gives every partition of a ranged run one data version, so a version per partition
    is impossible there. The version returned is therefore the one all these partitions already
    have when none of their contents changed (an identical re-run, over any range, changes no
    version and makes nothing downstream stale); else the content digest of a single partition,
    or a fingerprint of the range's digests.
    """
    for key, digest in digests.items():
        context.add_asset_metadata(
            {**describe_source(store, key), **metadata.get(key, {}), CONTENT_DIGEST: digest},
            asset_key=asset,
            partition_key=key,
        )
    previous = latest_versions(context.instance, asset, list(digests))
    unchanged = all(previous.get(key, ("", ""))[1] == digest for key, digest in digests.items())
    versions = {previous[key][0] for key in digests if key in previous}
    if unchanged and len(versions) == 1:
        return DataVersion(versions.pop())
    if len(digests) == 1:
        return DataVersion(next(iter(digests.values())))
    return DataVersion(fingerprint(sorted(digests.items())))


def latest_versions(
    instance: DagsterInstance, asset: str, partitions: Sequence[str]
) -> dict[str, tuple[str, str]]:
    """Partition -> (data version, content digest) of its latest materialization, for those
    that have one."""
    found: dict[str, tuple[str, str]] = {}
    for partition, record in latest_materializations(instance, asset, partitions).items():
        event = record.asset_materialization
        version = (event.tags or {}).get(DATA_VERSION_TAG) if event else None
        if event and version and CONTENT_DIGEST in event.metadata:
            found[partition] = (version, event.metadata[CONTENT_DIGEST].value)
    return found


def latest_materializations(
    instance: DagsterInstance, asset: str, partitions: Sequence[str]
) -> dict[str, EventLogRecord]:
    """Partition -> its latest materialization record: two queries whatever the number of
    partitions."""
    key = AssetKey(asset)
    ids = instance.event_log_storage.get_latest_storage_id_by_partition(
        key, DagsterEventType.ASSET_MATERIALIZATION, partitions=set(partitions)
    )
    found: dict[str, EventLogRecord] = {}
    chosen = sorted(ids.values())
    for start in range(0, len(chosen), FETCH_CHUNK):
        chunk = chosen[start : start + FETCH_CHUNK]
        records = instance.fetch_materializations(
            AssetRecordsFilter(asset_key=key, storage_ids=chunk), limit=len(chunk)
        ).records
        for record in records:
            if record.asset_materialization is not None:
                found[str(record.asset_materialization.partition)] = record
    return found


def check_partitions(
    context: AssetCheckExecutionContext,
    problems: Mapping[str, Sequence[str]],
    severity: AssetCheckSeverity,
) -> AssetCheckResult:
    """The check's result, with one evaluation per partition unless the run is of a single
    partition key.

    A run of one partition key records its result under that partition by itself. A run over
    a range (a backfill's range of one included) records the step's result without a partition,
    so each partition's own evaluation is logged first, pointing at that partition's latest
    materialization: without that pointer Dagster takes the evaluation for an outdated one (the
    UI lists no status, and automation's ``check_passed`` stays false). The step's result is the
    range's, which blocks the range's downstream steps in this run when any partition failed.
    """
    keys = list(problems)
    if len(keys) > 1 or not context.has_partition_key:
        (spec,) = context.check_specs
        targets = latest_materializations(context.instance, spec.asset_key.to_user_string(), keys)
        for key in keys:
            target = targets.get(key)
            context.op_execution_context.log_event(
                AssetCheckEvaluation(
                    asset_key=spec.asset_key,
                    check_name=spec.name,
                    passed=not problems[key],
                    metadata=problem_metadata(problems[key]),
                    target_materialization_data=(
                        AssetCheckEvaluationTargetMaterializationData(
                            storage_id=target.storage_id,
                            run_id=target.run_id,
                            timestamp=target.timestamp,
                        )
                        if target
                        else None
                    ),
                    severity=severity,
                    blocking=spec.blocking,
                    partition=key,
                )
            )
    every = [problem for key in keys for problem in problems[key]]
    return AssetCheckResult(passed=not every, severity=severity, metadata=problem_metadata(every))


def problem_metadata(problems: Sequence[str]) -> dict[str, Any]:
    return {"problems": len(problems), "first_problems": "\n".join(problems[:20]) or "none"}
