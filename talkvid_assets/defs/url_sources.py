"""Sources from URLs as Dagster sees them: the ``url_sources`` asset downloads every URL of the
home's URL lists (core.url_sources) and adds each new video as a partition, which automation
then curates like any other; a ``.urls`` file dropped into an inbox folder is kept as one of
those lists by ``url_list_sensor`` and starts a run.

Downloads wait on the network, not on a core: the asset runs in a pool of its own
(``downloads``, one run at a time), never in the ``decode_pass`` pool, so a slow server never
holds a decode slot.
"""

import json
from collections import Counter
from pathlib import Path

from dagster import (
    AssetExecutionContext,
    DataVersion,
    DefaultSensorStatus,
    MaterializeResult,
    RunRequest,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    asset,
    define_asset_job,
    sensor,
)

from talkvid_assets.core.config import fingerprint
from talkvid_assets.core.manifest import ManifestError
from talkvid_assets.core.source_files import scan_inbox, triage
from talkvid_assets.core.store import CIRCUMSTANTIAL_COLUMNS
from talkvid_assets.core.url_sources import (
    INGESTED,
    LIST_SUFFIX,
    home_entries,
    ingest_urls,
    keep_list,
    read_url_list,
)
from talkvid_assets.defs.metadata import table
from talkvid_assets.defs.names import (
    DOWNLOAD_POOL,
    SOURCES_GROUP,
    URL_INGEST_JOB,
    URL_SOURCES,
    VIDEOS,
)
from talkvid_assets.defs.resources import TalkvidResource

STATUS_COLUMNS = ("url", "status", "failure", "reason", "video_id", "extractor", "final_url")


@asset(
    name=URL_SOURCES,
    group_name=SOURCES_GROUP,
    kinds={"yt-dlp", "duckdb"},
    pool=DOWNLOAD_POOL,
    code_version="yt-dlp-1",
    description="Every URL of the home's URL lists downloaded (yt-dlp, resumable) and ingested; "
    "one record per URL with its status, failure reason and provenance",
)
def url_sources(context: AssetExecutionContext, talkvid: TalkvidResource) -> MaterializeResult:
    """Download what is not done yet, register the videos and add their partitions."""
    store, config = talkvid.store(), talkvid.config()
    store.publish()
    rows = ingest_urls(
        store,
        home_entries(store.home),
        config.downloads,
        lambda row: context.log.info(f"{row['url']}: {row['status']} {row.get('reason') or ''}"),
    )
    keys = sorted({row["video_id"] for row in rows if row["status"] == INGESTED})
    known = set(context.instance.get_dynamic_partitions(VIDEOS))
    if new := [key for key in keys if key not in known]:
        context.instance.add_dynamic_partitions(VIDEOS, new)
    counts = Counter(row["status"] for row in rows)
    failures = Counter(row["failure"] for row in rows if row.get("failure"))
    content = [
        {name: value for name, value in row.items() if name not in CIRCUMSTANTIAL_COLUMNS}
        for row in rows
    ]
    return MaterializeResult(
        metadata={
            "urls": len(rows),
            **{f"{status} urls": count for status, count in sorted(counts.items())},
            "failures by kind": dict(failures) or "none",
            "new videos": len(new),
            "per URL": table(rows, STATUS_COLUMNS),
        },
        data_version=DataVersion(fingerprint(content)),
    )


url_ingest_job = define_asset_job(
    URL_INGEST_JOB,
    selection=[url_sources],
    description="Downloads and ingests the home's URL lists (requested by url_list_sensor)",
)


@sensor(
    job=url_ingest_job,
    minimum_interval_seconds=5,
    default_status=DefaultSensorStatus.RUNNING,
    description="Keeps each settled `.urls` file of the inbox folders as a URL list of the home "
    "and runs url_sources for it",
)
def url_list_sensor(context: SensorEvaluationContext, talkvid: TalkvidResource) -> SensorResult:
    """The inbox's settle rule (size and mtime unchanged between two looks) for URL lists; a
    list that is not valid is logged once with its reason and left until it changes."""
    home = talkvid.home_path
    cursor = json.loads(context.cursor) if context.cursor else {}
    done: dict[str, list[int]] = cursor.get("done", {})
    lists = list(scan_inbox(talkvid.config().inbox_folders(home), suffixes=(LIST_SUFFIX,)))
    look = triage(lists, cursor.get("pending", {}), lambda file: done.get(file.path) == file.state)
    requests = []
    for file in look.settled:
        done[file.path] = file.state
        look.pending.pop(file.path, None)
        try:
            read_url_list(Path(file.path))
        except ManifestError as exc:
            context.log.warning(f"inbox: {exc}; it is read again once it changes")
            continue
        keep_list(home, Path(file.path))
        requests.append(RunRequest(run_key=file.stamp))
    look.admit(len(lists))
    next_cursor = json.dumps({"pending": look.pending, "done": done}, separators=(",", ":"))
    if not requests:
        return SensorResult(
            skip_reason=SkipReason(f"no new URL list ({len(lists)} in the inbox)"),
            cursor=next_cursor,
        )
    return SensorResult(run_requests=requests, cursor=next_cursor)
