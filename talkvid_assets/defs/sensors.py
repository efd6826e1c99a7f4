"""Automation while the daemon runs: the inbox sensor brings new files in, the stale sensor
re-curates what a new configuration or a partial run left behind.

Both request runs of the `curate` job with stable run keys, so a tick that sees the same thing
again requests nothing, and neither requests a partition a queued or running run already covers.
"""

from __future__ import annotations

import datetime as dt
import json

from dagster import (
    AssetKey,
    AssetSelection,
    AutomationConditionSensorDefinition,
    DefaultSensorStatus,
    RunRequest,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    sensor,
)
from dagster._core.definitions.assets.graph.base_asset_graph import BaseAssetGraph

from talkvid_assets.core.config import fingerprint
from talkvid_assets.core.ingest import discover_settled
from talkvid_assets.core.pipeline import register_source
from talkvid_assets.core.store import Store
from talkvid_assets.defs.bench import CORPUS_ASSETS
from talkvid_assets.defs.exports import ON_DEMAND_TAG
from talkvid_assets.defs.partitions import PARTITIONS_PER_RUN, video_partitions
from talkvid_assets.defs.resources import TalkvidResource
from talkvid_assets.defs.staleness import busy_partitions, plan_runs, stale_assets

CURATE_JOB = "curate"
DATASET = "talkvid_dataset"
INBOX_INTERVAL_S = 5
STALE_INTERVAL_S = 30
# How long a freshly ingested video is left to the inbox sensor's own run.
INBOX_GRACE_S = 60


@sensor(
    job_name=CURATE_JOB,
    minimum_interval_seconds=INBOX_INTERVAL_S,
    default_status=DefaultSensorStatus.RUNNING,
    description="Ingests files dropped into curation.yaml's inbox folders once their size has "
    "stopped changing, and requests their curation",
)
def inbox_sensor(context: SensorEvaluationContext, talkvid: TalkvidResource) -> SensorResult:
    config, store = talkvid.config(), talkvid.store()
    seen = json.loads(context.cursor) if context.cursor else {}
    settled, sizes = discover_settled(config.inbox_folders(store.home), seen.get("sizes", {}))
    done = set(seen.get("done", []))
    known = set(context.instance.get_dynamic_partitions(video_partitions.name))
    new_keys, requests = [], []
    for path, stamp in settled:
        if stamp in done:
            continue
        store.publish()
        key, _ = register_source(store, path)
        done.add(stamp)
        context.log.info(f"inbox: {path} -> {key}")
        if key not in known and key not in new_keys:
            new_keys.append(key)
            requests.append(RunRequest(partition_key=key, run_key=f"inbox-{key}"))
    cursor = json.dumps({"sizes": sizes, "done": sorted(done)})
    if not new_keys:
        return SensorResult(skip_reason=SkipReason("no new settled file"), cursor=cursor)
    return SensorResult(
        run_requests=requests,
        dynamic_partitions_requests=[video_partitions.build_add_request(new_keys)],
        cursor=cursor,
    )


def just_ingested(store: Store, seconds: float) -> set[str]:
    """Videos registered less than ``seconds`` ago."""
    since = (dt.datetime.now(dt.UTC) - dt.timedelta(seconds=seconds)).isoformat(timespec="seconds")
    rows = store.query("SELECT video_id FROM sources WHERE ingested_at > :since", {"since": since})
    return {row["video_id"] for row in rows}


@sensor(
    job_name=CURATE_JOB,
    minimum_interval_seconds=STALE_INTERVAL_S,
    default_status=DefaultSensorStatus.RUNNING,
    description="Requests runs for stale or missing asset partitions (a code version changed "
    "with curation.yaml, or a parent was re-materialized), only the stale assets",
)
def stale_sensor(context: SensorEvaluationContext, talkvid: TalkvidResource) -> SensorResult:
    instance = context.instance
    order = instance.get_dynamic_partitions(video_partitions.name)
    # A partition the inbox sensor has just added gets its run from that sensor; between the
    # partition and its run being created, it would look missing here and be curated twice.
    busy = busy_partitions(instance) | just_ingested(talkvid.store(), INBOX_GRACE_S)
    graph = partitioned_graph(context.repository_def.asset_graph)
    stale = stale_assets(instance, graph, [key for key in order if key not in busy])
    versions = {asset: version for asset, version, _ in graph}
    requests = [
        RunRequest(
            run_key=f"stale-{fingerprint([run.assets, run.partitions, versions])}",
            asset_selection=[AssetKey(asset) for asset in run.assets],
            tags=run.tags(),
            partition_key=run.partitions[0] if len(run.partitions) == 1 else None,
        )
        for run in plan_runs(order, stale, PARTITIONS_PER_RUN)
    ]
    if not requests:
        return SensorResult(skip_reason=SkipReason("every partition is up to date"))
    return SensorResult(run_requests=requests)


# Dagster's default automation sensor starts STOPPED; this one runs as soon as the daemon does,
# so the merged dataset follows the per-video exports with no command.
dataset_automation = AutomationConditionSensorDefinition(
    "dataset_automation",
    target=AssetSelection.assets(DATASET, *CORPUS_ASSETS),
    default_status=DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=STALE_INTERVAL_S,
    description="Evaluates the corpus-wide assets' automation conditions (the merged export, "
    "speakers, TalkVid-Bench, the training split): each follows its parents",
)


def partitioned_graph(asset_graph: BaseAssetGraph) -> list[tuple[str, str | None, list[str]]]:
    """(asset, code version, partitioned parents) of the video-partitioned assets, in
    dependency order: what staleness is computed over."""
    graph = []
    for key in asset_graph.toposorted_asset_keys:
        node = asset_graph.get(key)
        if (
            node.partitions_def != video_partitions
            or not node.is_materializable
            or ON_DEMAND_TAG in node.tags
        ):
            continue
        parents = [
            parent.to_user_string()
            for parent in node.parent_keys
            if asset_graph.get(parent).partitions_def == video_partitions
        ]
        graph.append((key.to_user_string(), node.code_version, sorted(parents)))
    return graph
