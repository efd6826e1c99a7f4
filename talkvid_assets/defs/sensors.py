"""The inbox: files are external events, so a sensor brings them in.

A file dropped into one of curation.yaml's inbox folders is ingested once its size has stopped
changing, and its video becomes a new partition; Dagster's automation (defs.automation) then
curates the new partition like any other: the sensor requests no run itself.
"""

from __future__ import annotations

import json

from dagster import (
    DefaultSensorStatus,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    sensor,
)

from talkvid_assets.core.ingest import discover_settled
from talkvid_assets.core.pipeline import register_source
from talkvid_assets.defs.partitions import video_partitions
from talkvid_assets.defs.resources import TalkvidResource

INBOX_INTERVAL_S = 5


@sensor(
    minimum_interval_seconds=INBOX_INTERVAL_S,
    default_status=DefaultSensorStatus.RUNNING,
    description="Ingests files dropped into curation.yaml's inbox folders once their size has "
    "stopped changing, and adds their videos as partitions (automation curates them)",
)
def inbox_sensor(context: SensorEvaluationContext, talkvid: TalkvidResource) -> SensorResult:
    config, store = talkvid.config(), talkvid.store()
    seen = json.loads(context.cursor) if context.cursor else {}
    settled, sizes = discover_settled(config.inbox_folders(store.home), seen.get("sizes", {}))
    done = set(seen.get("done", []))
    known = set(context.instance.get_dynamic_partitions(video_partitions.name))
    new_keys = []
    for path, stamp in settled:
        if stamp in done:
            continue
        store.publish()
        key, _ = register_source(store, path)
        done.add(stamp)
        context.log.info(f"inbox: {path} -> {key}")
        if key not in known and key not in new_keys:
            new_keys.append(key)
    cursor = json.dumps({"sizes": sizes, "done": sorted(done)})
    if not new_keys:
        return SensorResult(skip_reason=SkipReason("no new settled file"), cursor=cursor)
    return SensorResult(
        dynamic_partitions_requests=[video_partitions.build_add_request(new_keys)], cursor=cursor
    )
