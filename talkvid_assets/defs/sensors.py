"""The inbox: files are external events, so a sensor brings them in.

A video file dropped into one of curation.yaml's inbox folders is ingested once it has settled,
and its video becomes a new partition; Dagster's automation (defs.automation) then curates the
new partition like any other. Settled means: its size and mtime are the same at two consecutive
looks, nothing was written to it for ``TALKVID_INBOX_QUIET_S`` (30 s), and, for an MP4 or AVI,
its container is complete (core.completeness) unless it stayed incomplete for
``INCOMPLETE_GIVE_UP_S`` (then it is taken, and curation rejects or flags it with the reason).
A copy written under another name (``x.mp4.part``, a hidden file) and renamed when done is
taken at once after the rename: the atomic-rename convention needs no waiting on content.

A tick costs what changed, not the inbox's size (core.source_files): one walk with a stat per file,
no read of a file already handled, and a cursor that names only files not handled yet (at most
``PENDING_CAP``). Hashing in a tick stops at ``TALKVID_INBOX_HASH_BUDGET_S`` (files left over
wait for the next tick), far below Dagster's 60 s per tick; a file too large to hash within one
budget is handed to a run of ``inbox_ingest`` keyed by its path, size and mtime.

A labelled manifest (CSV or JSON Lines, core.manifest) dropped into an inbox folder is read by
``manifest_sensor`` once settled: its videos are registered with their labels, as `talkvid
ingest --manifest` does, and a video annotated before its labels changed is annotated again.
"""

import json
import os
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

from dagster import (
    AssetKey,
    Config,
    DagsterRunStatus,
    DefaultSensorStatus,
    Failure,
    OpExecutionContext,
    RunConfig,
    RunRequest,
    RunsFilter,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    job,
    op,
    sensor,
)
from pydantic import Field

from talkvid_assets.core.completeness import container_incomplete
from talkvid_assets.core.labelling import record_labels
from talkvid_assets.core.manifest import (
    LABELLED_SUFFIXES,
    ManifestError,
    ManifestRow,
    read_manifest,
)
from talkvid_assets.core.source_files import (
    HandledFiles,
    HashDeadline,
    InboxFile,
    scan_inbox,
    triage,
    video_key,
)
from talkvid_assets.core.sources import register_source
from talkvid_assets.core.store import Store
from talkvid_assets.defs.names import (
    ANNOTATIONS,
    CURATE_JOB,
    INBOX_FILE_TAG,
    INBOX_INGEST_JOB,
    MAX_RUNTIME_TAG,
    VIDEOS,
)
from talkvid_assets.defs.partitions import video_partitions
from talkvid_assets.defs.resources import TalkvidResource

INBOX_INTERVAL_S = 5
QUIET_ENV = "TALKVID_INBOX_QUIET_S"
DEFAULT_QUIET_S = 30.0  # a copy that stalls longer than this is caught by its container
INCOMPLETE_GIVE_UP_S = 600.0  # an MP4/AVI still incomplete after this long quiet is truncated
BUDGET_ENV = "TALKVID_INBOX_HASH_BUDGET_S"
DEFAULT_HASH_BUDGET_S = 20.0  # of Dagster's 60 s per tick: room for the walk and the writes
# What a tick expects hashing to take per byte. SHA-256 runs at about 1.1 GiB/s; a slower disk
# is the usual limit, so a file larger than budget x this goes to a run without a try.
HASH_BYTES_PER_S = 256 * 2**20
# The slowest read an ingest run allows for (a network share), and its fixed allowance: a run
# hashing a 100 GiB file stops after 60 + 3,200 s at the latest.
SLOWEST_BYTES_PER_S = 32 * 2**20
RUN_HASH_FLOOR_S = 60.0
PENDING_CAP = 1000  # files followed between ticks: a cursor of ~100 bytes a file at most
RECENT_KEPT = 16  # the last files handled, in the cursor for people (and tests) to see
LOAD_WAIT_S = 10.0  # how long a tick waits for the registered sources of a new process
FEW_KEYS = 64  # above this many new keys, one query for every partition beats one query each


def hash_budget_s() -> float:
    """Seconds of hashing one tick allows: ``$TALKVID_INBOX_HASH_BUDGET_S`` or 20."""
    return float(os.environ.get(BUDGET_ENV) or DEFAULT_HASH_BUDGET_S)


def quiet_s() -> float:
    """Seconds a file must go unwritten before it settles: ``$TALKVID_INBOX_QUIET_S`` or 30."""
    return float(os.environ.get(QUIET_ENV) or DEFAULT_QUIET_S)


def run_hash_limit_s(size: int) -> float:
    """How long an ``inbox_ingest`` run may hash a file of ``size`` bytes: every hash has a
    limit, and a read slower than this means a stuck share, not a large file."""
    return RUN_HASH_FLOOR_S + size / SLOWEST_BYTES_PER_S


class InboxFileConfig(Config):
    """The file an ``inbox_ingest`` run registers, as the inbox sensor saw it settled."""

    path: str = Field(description="the file's absolute path below an inbox folder")
    size_bytes: int = Field(description="its size when it settled")
    mtime_ns: int = Field(description="its modification time when it settled")


@op(
    description="Registers one inbox file too large to hash within a sensor tick and adds its "
    "video as a partition (automation curates it)"
)
def ingest_inbox_file(
    context: OpExecutionContext, config: InboxFileConfig, talkvid: TalkvidResource
) -> None:
    """Hash the settled file (within :func:`run_hash_limit_s`), register it, add its partition.

    A file that changed since it settled is refused: the sensor sees the new state, waits for it
    to settle and requests another run.
    """
    path = Path(config.path)
    stat = path.stat()
    if (stat.st_size, stat.st_mtime_ns) != (config.size_bytes, config.mtime_ns):
        raise Failure(
            f"{path} changed since it settled: the inbox sensor takes it again once it settles"
        )
    try:
        video_key(path, deadline=time.monotonic() + run_hash_limit_s(stat.st_size))
    except HashDeadline as exc:
        raise Failure(str(exc)) from None
    store = talkvid.store()
    store.publish()
    key, new = register_source(store, path)  # the key just computed is remembered
    if not context.instance.has_dynamic_partition(VIDEOS, key):
        context.instance.add_dynamic_partitions(VIDEOS, [key])
    context.log.info(f"inbox: {path} -> {key}" + ("" if new else " (content already ingested)"))


@job(
    name=INBOX_INGEST_JOB,
    description="Ingests one inbox file too large for a sensor tick (requested by inbox_sensor)",
)
def inbox_ingest() -> None:
    ingest_inbox_file()


def _parse_cursor(cursor: str | None) -> tuple[dict[str, list[int]], list[str]]:
    """(pending, recent) from a cursor; one of the old format (every file) starts afresh."""
    data = json.loads(cursor) if cursor else {}
    return dict(data.get("pending", {})), list(data.get("recent", []))


class _Tick:
    """One evaluation of the inbox sensor: its settled files, handled within the budget."""

    def __init__(self, context: SensorEvaluationContext, talkvid: TalkvidResource) -> None:
        self.context, self.store = context, talkvid.store()
        self.handled = HandledFiles.of(self.store)
        self.budget_s = hash_budget_s()
        self.keys: list[str] = []  # content keys of the files registered in this tick
        self.run_requests: list[RunRequest] = []
        self.done: list[str] = []  # stamps of the files handled in this tick
        self.left = 0  # settled files left for the next tick (budget spent)
        self.running = 0  # settled files whose inbox_ingest run is requested or under way
        self.incomplete = 0  # settled files whose container says more is still to come

    def handle(self, settled: Iterable[InboxFile], pending: dict[str, list[int]]) -> None:
        """Register what the budget allows, oldest first; hand what cannot fit in one budget to
        a run. A handled file leaves ``pending``; one left over stays (settled) for next tick."""
        deadline = time.monotonic() + self.budget_s
        tried = False
        for file in settled:
            if self._incomplete(file):
                continue
            estimate = file.size / HASH_BYTES_PER_S
            if estimate > self.budget_s:
                outcome = self._by_run(file)
            elif tried and time.monotonic() + estimate > deadline:
                self.left += 1
                continue
            else:
                outcome = self._in_tick(file, deadline, first=not tried)
                tried = True
            if outcome is not None:
                pending.pop(file.path, None)

    def _incomplete(self, file: InboxFile) -> bool:
        """Whether ``file``'s container says it is not all there yet (it stays followed), unless
        it has been quiet so long that it is a truncated file rather than a stalled copy."""
        written_ns = max(file.mtime_ns, file.ctime_ns)
        if time.time_ns() - written_ns > INCOMPLETE_GIVE_UP_S * 1e9:
            return False
        try:
            reason = container_incomplete(file.path)
        except OSError:
            return False  # reading it fails again below, with the reason recorded
        if reason:
            self.context.log.info(f"inbox: {file.path} waits for the rest of the copy: {reason}")
            self.incomplete += 1
        return reason is not None

    def _in_tick(self, file: InboxFile, deadline: float, first: bool) -> bool | None:
        """Hash and register ``file`` by ``deadline``: True when handled, None when left for the
        next tick; a file that was first in line and still did not finish goes to a run."""
        try:
            video_key(file.path, deadline=deadline)
            key, _ = register_source(self.store, file.path)  # the key just computed is remembered
        except HashDeadline:
            if first:
                return self._by_run(file)
            self.left += 1
            return None
        except OSError as exc:
            return self._failed(file, f"cannot read it: {exc.strerror or exc}")
        self.context.log.info(f"inbox: {file.path} -> {key}")
        self._handled(file)
        self.keys.append(key)
        return True

    def new_keys(self) -> list[str]:
        """The keys registered in this tick that are no partition yet (a second name for
        content already ingested adds none), each once."""
        keys = list(dict.fromkeys(self.keys))
        instance = self.context.instance
        if len(keys) <= FEW_KEYS:  # one indexed query each (about 2 ms)
            return [key for key in keys if not instance.has_dynamic_partition(VIDEOS, key)]
        known = set(instance.get_dynamic_partitions(VIDEOS))  # 0.3 s at 100,000
        return [key for key in keys if key not in known]

    def _by_run(self, file: InboxFile) -> bool | None:
        """The state of ``file``'s ``inbox_ingest`` run, requesting it when there is none: True
        once it succeeded, False when it failed (not tried again until the file changes), None
        while it is queued or running."""
        runs = self.context.instance.get_runs(
            RunsFilter(tags={INBOX_FILE_TAG: file.stamp}), limit=1
        )
        if not runs:
            limit = run_hash_limit_s(file.size)
            self.run_requests.append(
                RunRequest(
                    run_key=file.stamp,
                    run_config=RunConfig(
                        ops={
                            ingest_inbox_file.name: InboxFileConfig(
                                path=file.path, size_bytes=file.size, mtime_ns=file.mtime_ns
                            )
                        }
                    ),
                    tags={INBOX_FILE_TAG: file.stamp, MAX_RUNTIME_TAG: str(int(limit) + 120)},
                )
            )
            self.context.log.info(f"inbox: {file.path} ({file.size:,} bytes) goes to a run")
            self.running += 1
            return None
        status = runs[0].status
        if status == DagsterRunStatus.SUCCESS:
            self._handled(file)
            return True
        if status in (DagsterRunStatus.FAILURE, DagsterRunStatus.CANCELED):
            return self._failed(file, f"its run {runs[0].run_id} ended {status.value}")
        self.running += 1
        return None

    def _handled(self, file: InboxFile) -> None:
        self.handled.add(file)
        self.done.append(file.stamp)

    def _failed(self, file: InboxFile, why: str) -> bool:
        self.context.log.warning(
            f"inbox: {file.path} is not ingested: {why}; it is tried again once it changes"
        )
        self.handled.fail(file)
        return False


@sensor(
    job=inbox_ingest,
    minimum_interval_seconds=INBOX_INTERVAL_S,
    default_status=DefaultSensorStatus.RUNNING,
    description="Ingests files dropped into curation.yaml's inbox folders once their size has "
    "stopped changing, and adds their videos as partitions (automation curates them)",
)
def inbox_sensor(context: SensorEvaluationContext, talkvid: TalkvidResource) -> SensorResult:
    config = talkvid.config()
    pending, recent = _parse_cursor(context.cursor)
    tick = _Tick(context, talkvid)
    if not tick.handled.ready(LOAD_WAIT_S):
        return SensorResult(
            skip_reason=SkipReason("reading the registered sources (a new process)"),
            cursor=context.cursor,
        )
    look = triage(
        scan_inbox(config.inbox_folders(tick.store.home)),
        pending,
        lambda file: file in tick.handled,
        quiet_s(),
    )
    if look.settled:
        tick.store.publish()
        tick.handle(look.settled, look.pending)
    waiting = look.admit(PENDING_CAP)
    recent = [*recent, *tick.done][-RECENT_KEPT:]
    cursor = json.dumps({"pending": look.pending, "recent": recent}, separators=(",", ":"))
    new_keys = tick.new_keys()
    if not (new_keys or tick.run_requests):
        return SensorResult(
            skip_reason=SkipReason(
                f"no new video: {look.files:,} files, {len(tick.done)} handled now, "
                f"{len(look.pending):,} settling, {tick.left:,} left for the next tick, "
                f"{tick.running:,} in inbox_ingest runs, {tick.incomplete:,} incomplete, "
                f"{waiting:,} waiting for a place"
            ),
            cursor=cursor,
        )
    return SensorResult(
        run_requests=tick.run_requests,
        dynamic_partitions_requests=(
            [video_partitions.build_add_request(new_keys)] if new_keys else []
        ),
        cursor=cursor,
    )


def _register_labelled(
    context: SensorEvaluationContext,
    store: Store,
    manifest: Path,
    rows: Sequence[ManifestRow],
    deadline: float,
) -> dict[str, bool] | None:
    """Register each row's video and record its labels: key -> whether its labels changed;
    None when hashing reached ``deadline`` before the last row."""
    registered = {}
    for row in rows:
        try:
            video_key(row.path, deadline=deadline)  # then registered from the key remembered
            key, _ = register_source(store, row.path)
        except HashDeadline:
            return None
        except OSError as exc:
            context.log.warning(f"inbox: {manifest}:{row.row}: cannot read {row.path}: {exc}")
            continue
        registered[key] = record_labels(store, key, manifest, row)
    return registered


@sensor(
    job_name=CURATE_JOB,
    minimum_interval_seconds=INBOX_INTERVAL_S,
    default_status=DefaultSensorStatus.RUNNING,
    description="Reads each settled labelled manifest (.csv, .jsonl) of the inbox folders: "
    "registers its videos with their labels, adds their partitions, and annotates again a "
    "video whose labels changed",
)
def manifest_sensor(context: SensorEvaluationContext, talkvid: TalkvidResource) -> SensorResult:
    """The inbox's settle rule for labelled manifests. A manifest that is not valid is logged
    once with its reason and left until it changes; one whose videos take longer to hash than
    a tick allows is read on, from where it stopped (keys of files hashed are remembered), at
    the next ticks.

    Labels are written outside any asset, so Dagster cannot see them change: a video whose
    annotations exist gets a run of ``annotations`` (keyed by the manifest's state and the
    video), and automation carries its new data version on to the exports and the bench.
    """
    home, config = talkvid.home_path, talkvid.config()
    cursor = json.loads(context.cursor) if context.cursor else {}
    done: dict[str, list[int]] = cursor.get("done", {})
    manifests = list(scan_inbox(config.inbox_folders(home), suffixes=LABELLED_SUFFIXES))
    look = triage(
        manifests, cursor.get("pending", {}), lambda file: done.get(file.path) == file.state
    )
    store = talkvid.store()
    deadline = time.monotonic() + hash_budget_s()
    keys: list[str] = []
    relabelled: dict[str, str] = {}  # video -> stamp of the manifest that relabelled it
    for file in look.settled:
        path = Path(file.path)
        try:
            rows = read_manifest(path, config.source_folders(home))
        except ManifestError as exc:
            context.log.warning(f"inbox: {exc}; it is read again once it changes")
            done[file.path] = file.state
            look.pending.pop(file.path, None)
            continue
        store.publish()
        registered = _register_labelled(context, store, path, rows, deadline)
        if registered is None:
            context.log.info(f"inbox: {path} is read on at the next tick (hash budget spent)")
            break
        keys += registered
        relabelled |= {key: file.stamp for key, changed in registered.items() if changed}
        done[file.path] = file.state
        look.pending.pop(file.path, None)
        context.log.info(f"inbox: {path}: {len(rows)} labelled video(s)")
    look.admit(PENDING_CAP)
    next_cursor = json.dumps({"pending": look.pending, "done": done}, separators=(",", ":"))
    instance = context.instance
    new = [key for key in dict.fromkeys(keys) if not instance.has_dynamic_partition(VIDEOS, key)]
    annotated = instance.get_materialized_partitions(AssetKey(ANNOTATIONS)) if relabelled else set()
    requests = [
        RunRequest(
            run_key=f"{stamp}:{key}",
            asset_selection=[AssetKey(ANNOTATIONS)],
            partition_key=key,
        )
        for key, stamp in relabelled.items()
        if key in annotated
    ]
    if not (new or requests):
        return SensorResult(
            skip_reason=SkipReason(f"no new labels ({len(manifests)} manifests in the inbox)"),
            cursor=next_cursor,
        )
    return SensorResult(
        run_requests=requests,
        dynamic_partitions_requests=[video_partitions.build_add_request(new)] if new else [],
        cursor=next_cursor,
    )
