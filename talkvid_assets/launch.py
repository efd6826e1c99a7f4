"""Launching curation runs on a home's instance: what the CLI (and tests) use instead of
re-implementing the graph. Runs are in-process and cover a range of partitions each: a process
per step would cost seconds, a run per video about 0.7 s of Dagster bookkeeping.

What runs is what Dagster itself calls missing or stale (defs.dagster_stale, the UI's answer),
after observing curation.yaml (defs.config_assets) as `talkvid dev` does; an asset partition
whose latest blocking check failed is run again with its check, so nothing downstream of bad
data is built on any route.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dagster import (
    AssetCheckKey,
    AssetKey,
    DagsterEvent,
    DagsterExecutionInterruptedError,
    DagsterExecutionStepExecutionError,
    DagsterInstance,
    DagsterRunStatus,
    Definitions,
    RunsFilter,
)
from sqlalchemy.exc import IntegrityError

from talkvid_assets.core.config import load_config
from talkvid_assets.core.scoring import require_ready
from talkvid_assets.core.sources import missing_sources
from talkvid_assets.core.stages import STAGES
from talkvid_assets.core.store import Store
from talkvid_assets.defs.build import build_definitions
from talkvid_assets.defs.config_assets import observe_config
from talkvid_assets.defs.dagster_stale import outdated
from talkvid_assets.defs.evaluation import EvaluationSettings
from talkvid_assets.defs.filtered_clips import CLIPS, PASSED
from talkvid_assets.defs.names import (
    ANNOTATIONS,
    CORPUS_WIDE,
    CURATE_JOB,
    DECODE_POOL,
    EVALUATED_MODELS,
    EVALUATION_JOB,
    FILTERED_CLIPS,
    GPU_POOL,
    HOST_TAG,
    LAUNCHER_TAG,
    ON_DEMAND_TAG,
    PID_TAG,
    RAW_VIDEOS,
    SEGMENTS,
    URL_SOURCES,
    VIDEOS,
)
from talkvid_assets.defs.partitions import video_partitions

INSTANCE_CONFIG = Path(__file__).resolve().parents[1] / "dagster.yaml"
DAGSTER_HOME_ENV = "DAGSTER_HOME"
# The assets the decode pass writes: runs selecting one need a slot of its pool.
DECODING = frozenset({SEGMENTS, *(stage.table for stage in STAGES)})
# A decoding run holds at most this much source (about 40 s of 1080p at 16 Mbit/s, the
# benchmark's batch: three such videos per run as before) and at most this many videos.
RUN_BYTES = 3 * 80 * 2**20
MAX_RUN_VIDEOS = 64
# A change travels one level of the graph per wave of runs (Dagster calls a child stale only once
# its parent's data version changed); the graph is six levels deep.
MAX_WAVES = 8
# How long `curate` waits for a decode slot held by other runs before saying which ones.
SLOT_WAIT_S = float(os.environ.get("TALKVID_SLOT_WAIT_S", "300"))
# What a step fails with when the process is interrupted (Dagster catches SIGINT in a run). A
# step's error comes serialized, with the name of its class only.
INTERRUPT_ERRORS = frozenset(
    error.__name__ for error in (DagsterExecutionInterruptedError, KeyboardInterrupt)
)


def instance_dir(home: Path) -> Path:
    """DAGSTER_HOME for a talkvid home, seeded with the project's dagster.yaml, or with the
    file ``$TALKVID_INSTANCE_CONFIG`` names (e.g. deploy/dagster-postgres.yaml: then every
    `talkvid` command runs on that shared instance)."""
    source = Path(os.environ.get("TALKVID_INSTANCE_CONFIG") or INSTANCE_CONFIG)
    directory = home / "dagster"
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / "dagster.yaml"
    if source.exists() and (not target.exists() or target.read_text() != source.read_text()):
        shutil.copyfile(source, target)
    return directory


def home_instance(home: Path) -> DagsterInstance:
    """The Dagster instance of ``home`` (its folder from :func:`instance_dir`).

    Dagster's public way to open a persistent instance reads ``$DAGSTER_HOME``; it is set for
    that call only, so a command (or a test) leaves the environment as it found it.
    """
    previous = os.environ.get(DAGSTER_HOME_ENV)
    os.environ[DAGSTER_HOME_ENV] = str(instance_dir(home))
    try:
        return DagsterInstance.get()
    finally:
        if previous is None:
            del os.environ[DAGSTER_HOME_ENV]
        else:
            os.environ[DAGSTER_HOME_ENV] = previous


def set_pool_limits(instance: DagsterInstance, home: Path) -> None:
    """The "gpu" pool's limit from the home's curation.yaml (`gpu_slots`): Dagster keeps
    per-pool limits in the instance, not in dagster.yaml, so every entry point sets it."""
    slots = load_config(home).gpu_slots
    storage = instance.event_log_storage
    if storage.get_concurrency_info(GPU_POOL).slot_count == slots:
        return
    try:
        storage.set_concurrency_slots(GPU_POOL, slots)
    except IntegrityError:
        # Dagster reads then inserts the pool's row; a curate started at the same moment
        # inserted it in between. The row exists now, so setting it again is an update.
        storage.set_concurrency_slots(GPU_POOL, slots)


def register_partitions(instance: DagsterInstance, keys: Iterable[str]) -> list[str]:
    """Add the keys that the instance does not know yet; returns those."""
    known = set(instance.get_dynamic_partitions(VIDEOS))
    new = sorted(set(keys) - known)
    if new:
        instance.add_dynamic_partitions(VIDEOS, new)
    return new


def launcher_tags() -> dict[str, str]:
    """The tags of a run this process executes: its host and process id, so that once the
    process is gone the run can be recognised as abandoned (:func:`reap_abandoned_runs`)."""
    return {LAUNCHER_TAG: "cli", HOST_TAG: socket.gethostname(), PID_TAG: str(os.getpid())}


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def reap_abandoned_runs(instance: DagsterInstance) -> list[str]:
    """Fail CLI runs whose process is gone, and give back their pool slots.

    An in-process run killed mid-step (kill -9, a crash, a closed terminal) stays STARTED and
    keeps its "decode_pass" pool slot; with no daemon watching, two such runs would block every
    later run. A process killed between creating a run and starting it leaves it NOT_STARTED
    forever; it is failed too. Each CLI run is tagged with its host and process id, so a dead one
    is recognisable.
    """
    runs = instance.get_runs(
        RunsFilter(
            statuses=[
                DagsterRunStatus.NOT_STARTED,
                DagsterRunStatus.STARTING,
                DagsterRunStatus.STARTED,
            ],
            tags={LAUNCHER_TAG: "cli", HOST_TAG: socket.gethostname()},
        )
    )
    reaped = []
    for run in runs:
        pid = run.tags.get(PID_TAG, "")
        if pid.isdigit() and not _process_alive(int(pid)):
            instance.report_run_failed(run, f"process {pid} ended before the run finished")
            instance.event_log_storage.free_concurrency_slots_for_run(run.run_id)
            reaped.append(run.run_id)
    return reaped


class PoolBusy(RuntimeError):
    """Every decode slot stayed held by other runs: the message names them and the way out."""


def wait_for_a_slot(instance: DagsterInstance, timeout_s: float) -> None:
    """Return once the decode pool has a free slot; raise :class:`PoolBusy` after ``timeout_s``.

    Dagster's in-process executor would wait for a slot forever. Slots held by runs that died on
    another host (a container restart gives the same process a new host name) are never freed
    by this host's reaping, so the user must be told which runs block and how to free them.
    """
    storage = instance.event_log_storage
    deadline = time.monotonic() + timeout_s
    while True:
        info = storage.get_concurrency_info(DECODE_POOL)
        if not info.slot_count or info.active_slot_count < info.slot_count:
            return
        if time.monotonic() >= deadline:
            holders = sorted(info.active_run_ids)
            runs = [instance.get_run_by_id(run_id) for run_id in holders]
            hosts = sorted({run.tags.get(HOST_TAG, "?") for run in runs if run is not None})
            raise PoolBusy(
                f"all {info.slot_count} {DECODE_POOL} slots are held by run(s) "
                f"{', '.join(holders)} (host {', '.join(hosts)}) and none was freed in "
                f"{timeout_s:g} s; if those runs are dead, free them with: talkvid reap "
                f"{' '.join(holders)}"
            )
        time.sleep(1.0)


def reap(instance: DagsterInstance, run_ids: Sequence[str]) -> None:
    """Fail the given runs and give back their pool slots (dead runs of another host)."""
    for run_id in run_ids:
        run = instance.get_run_by_id(run_id)
        if run is None:
            raise PoolBusy(f"no run {run_id} on this instance")
        if not run.is_finished:
            instance.report_run_failed(run, "reaped by `talkvid reap`")
        instance.event_log_storage.free_concurrency_slots_for_run(run_id)


class Interrupted(KeyboardInterrupt):
    """Curation stopped on a signal; ``outcome`` is the run it interrupted."""

    def __init__(self, outcome: RunOutcome, left: int) -> None:
        rest = (
            f"{left} more video(s) not curated"
            if left
            else "the merged export and TalkVid-Bench were not updated (run `talkvid curate`)"
        )
        super().__init__(
            f"interrupted: run {outcome.run_id[:8]} over {len(outcome.videos)} video(s) "
            f"{'succeeded' if outcome.success else 'failed'}; {rest}"
        )
        self.outcome = outcome


@dataclass(frozen=True)
class PlannedRun:
    """One run: a contiguous range of partitions (none for the corpus-wide assets) and the
    assets to materialize for them."""

    assets: tuple[str, ...]
    partitions: tuple[str, ...]

    def tags(self) -> dict[str, str]:
        """Dagster's partition tags for this run (a single key, or a range)."""
        if not self.partitions:
            return {}
        if len(self.partitions) == 1:
            return {"dagster/partition": self.partitions[0]}
        return {
            "dagster/asset_partition_range_start": self.partitions[0],
            "dagster/asset_partition_range_end": self.partitions[-1],
        }


@dataclass(frozen=True)
class RunOutcome:
    """One in-process run over a range of partitions."""

    partitions: tuple[str, ...]
    assets: tuple[str, ...]
    success: bool
    run_id: str
    seconds: float
    error: str | None = None
    interrupted: bool = False  # failed by SIGINT / SIGTERM rather than by its own error
    # Clips judged and passed per video by this run (empty when it judged none).
    verdicts: Mapping[str, Mapping[str, int]] = field(default_factory=dict)

    @property
    def videos(self) -> tuple[str, ...]:
        """The videos this run curated: none for the corpus-wide run."""
        return self.partitions


def video_assets(defs: Definitions) -> list[str]:
    """The per-video assets a curation materializes, in dependency order."""
    graph = defs.resolve_asset_graph()
    return [
        key.to_user_string()
        for key in graph.toposorted_asset_keys
        if graph.get(key).partitions_def == video_partitions
        and graph.get(key).is_materializable
        and ON_DEMAND_TAG not in graph.get(key).tags
    ]


def failed_blocking_checks(
    instance: DagsterInstance, defs: Definitions, partitions: Sequence[str]
) -> set[tuple[str, str | None]]:
    """(asset, partition) whose latest blocking check evaluation failed: their data must be
    rebuilt (and checked again) before anything downstream may use it."""
    graph = defs.resolve_asset_graph()
    keys: list[AssetCheckKey] = [
        check for check in graph.asset_check_keys if graph.get(check).blocking
    ]
    wanted = set(partitions)
    failed = set()
    for info in instance.event_log_storage.get_asset_check_partition_info(keys):
        if info.latest_execution_status.value == "FAILED" and (
            info.partition_key is None or info.partition_key in wanted
        ):
            failed.add((info.check_key.asset_key.to_user_string(), info.partition_key))
    return failed


def plan(
    instance: DagsterInstance, defs: Definitions, partitions: Sequence[str]
) -> list[PlannedRun]:
    """The runs that bring ``partitions`` up to date now: the asset partitions Dagster calls
    missing or stale, or whose blocking check failed, grouped in contiguous ranges."""
    order = instance.get_dynamic_partitions(VIDEOS)
    chosen = set(partitions)
    wanted = [key for key in order if key in chosen]
    assets = video_assets(defs)
    pairs = [(asset, key) for key in wanted for asset in assets]
    todo = outdated(instance, defs.resolve_asset_graph(), pairs)
    todo |= failed_blocking_checks(instance, defs, wanted)
    store = home_store(defs)
    todo |= {(asset, key) for key in uncurated(store, wanted) for asset in assets}
    stale = {key: tuple(asset for asset in assets if (asset, key) in todo) for key in wanted}
    runs = []
    sizes = source_sizes(store, wanted)
    for run in plan_runs(wanted, stale):
        if DECODING & set(run.assets):
            runs += split_by_bytes(run, sizes)
        else:  # judging and exporting is milliseconds per video: one run
            runs.append(run)
    return runs


def split_by_bytes(run: PlannedRun, sizes: Mapping[str, int]) -> list[PlannedRun]:
    """Decoding runs of at most :data:`RUN_BYTES` of source (and :data:`MAX_RUN_VIDEOS`
    videos): a run's fixed cost (about a second of Dagster's bookkeeping) is shared by many
    short videos, while long ones still report progress and isolate a failure every few
    minutes of decoding."""
    runs: list[PlannedRun] = []
    current: list[str] = []
    total = 0
    for key in run.partitions:
        size = sizes.get(key, RUN_BYTES)
        if current and (total + size > RUN_BYTES or len(current) == MAX_RUN_VIDEOS):
            runs.append(PlannedRun(run.assets, tuple(current)))
            current, total = [], 0
        current.append(key)
        total += size
    if current:
        runs.append(PlannedRun(run.assets, tuple(current)))
    return runs


def uncurated(store: Store, keys: Sequence[str]) -> set[str]:
    """The partitions among ``keys`` with no ``raw_videos`` rows: never curated, or removed
    (`talkvid remove`) and ingested again. Dagster keeps a deleted partition's materializations
    (its SQLite event log cannot wipe one partition), so only the store knows they are gone."""
    rows = store.query(
        "SELECT video_id FROM raw_videos WHERE video_id IN (SELECT unnest(:keys))",
        {"keys": list(keys)},
    )
    return set(keys) - {row["video_id"] for row in rows}


def newly_missing(store: Store, keys: Sequence[str]) -> set[str]:
    """The videos among ``keys`` whose source is found gone or overwritten now and was not
    before (``videos.status`` becomes ``missing``): a stat per source."""
    known = store.query(
        "SELECT video_id FROM videos WHERE status = 'missing' AND video_id IN (SELECT unnest(:k))",
        {"k": list(keys)},
    )
    return set(missing_sources(store, keys)) - {row["video_id"] for row in known}


def home_store(defs: Definitions) -> Store:
    """The store of the home these definitions were built for."""
    return defs.resources["talkvid"].store()


def source_sizes(store: Store, keys: Sequence[str]) -> dict[str, int]:
    """Bytes of each video's source file, as registered."""
    rows = store.query(
        "SELECT video_id, size_bytes FROM sources WHERE video_id IN (SELECT unnest(:keys))",
        {"keys": list(keys)},
    )
    return {row["video_id"]: row["size_bytes"] or 0 for row in rows}


def plan_runs(order: Sequence[str], stale: Mapping[str, Sequence[str]]) -> list[PlannedRun]:
    """Group partitions with the same stale assets into contiguous ranges, in registration
    order (Dagster's ranges follow it)."""
    runs: list[PlannedRun] = []
    current: list[str] = []
    assets: tuple[str, ...] = ()
    for partition in order:
        wanted = tuple(stale.get(partition, ()))
        if current and wanted != assets:
            runs.append(PlannedRun(assets, tuple(current)))
            current = []
        if wanted:
            current.append(partition)
            assets = wanted
    if current:
        runs.append(PlannedRun(assets, tuple(current)))
    return runs


def corpus_plan(instance: DagsterInstance, defs: Definitions) -> list[PlannedRun]:
    """One run over the corpus-wide assets when any is missing or stale: those and the ones
    after them (each is cheap, and one run costs less than a wave of runs)."""
    graph = defs.resolve_asset_graph()
    todo = outdated(instance, graph, [(asset, None) for asset in CORPUS_WIDE])
    todo |= {pair for pair in failed_blocking_checks(instance, defs, []) if pair[0] in CORPUS_WIDE}
    if not todo:
        return []
    chosen = {asset for asset, _ in todo}
    frontier = list(chosen)
    while frontier:  # and every corpus-wide asset after them
        children = graph.get(AssetKey(frontier.pop())).child_keys
        for child in (key.to_user_string() for key in children):
            if child in CORPUS_WIDE and child not in chosen:
                chosen.add(child)
                frontier.append(child)
    return [PlannedRun(tuple(asset for asset in CORPUS_WIDE if asset in chosen), ())]


def curate(
    instance: DagsterInstance,
    home: Path,
    partitions: Sequence[str],
    on_done: Callable[[RunOutcome], None] | None = None,
    log_level: str = "CRITICAL",
    stopping: Callable[[], bool] = lambda: False,
    slot_wait_s: float = SLOT_WAIT_S,
) -> list[RunOutcome]:
    """Bring ``partitions`` up to date with in-process runs, then the corpus-wide assets.

    curation.yaml is observed first, as the config sensor does under `talkvid dev`. A change
    travels one level of the graph per wave (a child is stale only once its parent's data
    changed), so an identical result stops it. A failed run over several partitions is retried
    one partition at a time, so one bad video never fails the others. An interrupt fails the
    run in progress (Dagster gives its pool slot back); ``stopping`` then says it was the
    user's, and :class:`Interrupted` ends the loop instead of a retry.
    """
    reap_abandoned_runs(instance)
    set_pool_limits(instance, home)
    config = load_config(home)
    require_ready(config.backends, config.runtime(home))
    defs = build_definitions(home)
    observe_config(instance, home)
    # Videos removed and ingested again come back with the data versions they had, and a source
    # that vanished changes no data version at all: Dagster would call neither a change, so the
    # corpus-wide assets (the dataset file above all) are rebuilt for them regardless.
    store = home_store(defs)
    returning = uncurated(store, partitions) & instance.get_materialized_partitions(
        AssetKey(RAW_VIDEOS)
    )
    returning |= newly_missing(store, partitions)
    outcomes: list[RunOutcome] = []
    failed: set[str] = set()
    for _ in range(MAX_WAVES):
        queue = [
            PlannedRun(run.assets, tuple(key for key in run.partitions if key not in failed))
            for run in plan(instance, defs, partitions)
        ]
        queue = [run for run in queue if run.partitions]
        if not queue:
            break
        while queue:
            run = queue.pop(0)
            if DECODING & set(run.assets):
                wait_for_a_slot(instance, slot_wait_s)
            outcome = _execute(instance, defs, run, log_level)
            if outcome.interrupted or stopping():
                raise Interrupted(outcome, sum(len(left.partitions) for left in queue))
            if not outcome.success and len(run.partitions) > 1:
                queue[:0] = [PlannedRun(run.assets, (key,)) for key in run.partitions]
                continue
            if not outcome.success:
                failed.update(run.partitions)  # not retried in a later wave of this command
            outcomes.append(outcome)
            if on_done is not None:
                on_done(outcome)
    corpus = [PlannedRun(CORPUS_WIDE, ())] if returning - failed else corpus_plan(instance, defs)
    for run in corpus:
        if stopping():
            raise Interrupted(outcomes[-1], 0) if outcomes else KeyboardInterrupt()
        outcomes.append(_execute(instance, defs, run, log_level))
    return outcomes


def relabel(instance: DagsterInstance, home: Path, keys: Sequence[str]) -> list[RunOutcome]:
    """Carry new manifest labels of annotated videos into their annotations, then into what
    that makes stale (the exports, speakers, TalkVid-Bench and training split).

    Labels are written by `talkvid ingest --manifest`, outside any asset, so Dagster cannot see
    them change: the annotations of those videos are re-run (from cached face descriptors, no
    decode), and their new data versions make the rest stale the usual way.
    """
    annotated = instance.get_materialized_partitions(AssetKey(ANNOTATIONS))
    order = instance.get_dynamic_partitions(VIDEOS)
    stale = {key: (ANNOTATIONS,) for key in keys if key in annotated}
    if not stale:
        return []
    defs = build_definitions(home)
    outcomes = [_execute(instance, defs, run, "CRITICAL") for run in plan_runs(order, stale)]
    return outcomes + curate(instance, home, list(stale))


def ingest_url_lists(
    instance: DagsterInstance, home: Path, log_level: str = "CRITICAL"
) -> RunOutcome:
    """Materialize ``url_sources`` in-process: download and register the home's URL lists
    (core.url_sources), adding their videos as partitions, as a run the UI shows."""
    return _execute(instance, build_definitions(home), PlannedRun((URL_SOURCES,), ()), log_level)


@contextmanager
def sigterm_kept() -> Iterator[None]:
    """The process's SIGTERM handler put back after an in-process run.

    Dagster's interrupt handling maps SIGTERM onto whatever SIGINT's handler is when a run
    ends, and leaves it so (there is no public setting). In a process started as a background
    job, whose SIGINT is ignored, SIGTERM then stays ignored: nothing, a multiprocessing pool's
    ``terminate`` included, could stop it or the children it starts afterwards. Signal
    handlers belong to the main thread; elsewhere Dagster changes none.
    """
    handler = signal.getsignal(signal.SIGTERM)
    try:
        yield
    finally:
        if handler is not None and threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, handler)


def _execute(
    instance: DagsterInstance, defs: Definitions, run: PlannedRun, log_level: str
) -> RunOutcome:
    job = (
        defs.resolve_job_def(CURATE_JOB)
        if run.partitions
        else defs.resolve_implicit_global_asset_job_def()
    )
    started = time.perf_counter()
    with sigterm_kept():
        result = job.execute_in_process(
            run_config={"loggers": {"console": {"config": {"log_level": log_level}}}},
            instance=instance,
            asset_selection=[AssetKey(asset) for asset in run.assets],
            raise_on_error=False,
            tags={**launcher_tags(), **run.tags()},
        )
    error, interrupted = None, False
    if not result.success:
        errors = [event.step_failure_data.error for event in result.all_events
                  if event.is_step_failure]  # fmt: skip
        error = failed_checks(result.all_events) or (
            step_error(errors[0]) if errors and errors[0] else "run failed"
        )
        interrupted = any(error.cls_name in INTERRUPT_ERRORS for error in errors if error)
    return RunOutcome(
        run.partitions,
        run.assets,
        result.success,
        result.run_id,
        time.perf_counter() - started,
        error,
        interrupted,
        _judged(result.all_events),
    )


def failed_checks(events: Sequence[DagsterEvent]) -> str | None:
    """What the run's failed blocking checks found, one line (None if none failed)."""
    found = []
    for event in events:
        if event.event_type_value != "ASSET_CHECK_EVALUATION":
            continue
        evaluation = event.asset_check_evaluation_data
        if not evaluation.passed and evaluation.blocking:
            problems = evaluation.metadata.get("first_problems")
            first = str(problems.value).splitlines()[0] if problems else "failed"
            where = f" [{evaluation.partition}]" if evaluation.partition else ""
            found.append(
                f"check {evaluation.asset_key.to_user_string()}/{evaluation.check_name}"
                f"{where}: {first}"
            )
    return "; ".join(found) or None


def step_error(error: Any) -> str:
    """A failed step's own message, first line (Dagster's event says only "step failed")."""
    cause = error
    while cause.cause is not None and cause.cls_name == DagsterExecutionStepExecutionError.__name__:
        cause = cause.cause
    lines = [line for line in cause.message.strip().splitlines() if line.strip()]
    return lines[0] if lines else cause.cls_name


def _judged(events: Sequence[DagsterEvent]) -> dict[str, Mapping[str, int]]:
    """The per-video counts that this run's ``filtered_clips`` materializations recorded."""
    counts: dict[str, Mapping[str, int]] = {}
    for event in events:
        materialization = (
            event.step_materialization_data.materialization
            if event.is_step_materialization
            else None
        )
        if materialization and materialization.asset_key == AssetKey(FILTERED_CLIPS):
            metadata = materialization.metadata
            counts[str(materialization.partition)] = {
                CLIPS: metadata[CLIPS].value,
                PASSED: metadata[PASSED].value,
            }
    return counts


def run_evaluation(
    instance: DagsterInstance, home: Path, model: str, settings: EvaluationSettings
) -> str | None:
    """Materialize ``bench_evaluation`` for ``model`` in this process (adding the model's
    partition); None when it succeeded, else the step's error in one line."""
    instance.add_dynamic_partitions(EVALUATED_MODELS, [model])
    job = build_definitions(home).resolve_job_def(EVALUATION_JOB)
    with sigterm_kept():
        result = job.execute_in_process(
            run_config={"ops": {"bench_evaluation": {"config": settings.model_dump()}}},
            instance=instance,
            partition_key=model,
            raise_on_error=False,
            tags=launcher_tags(),
        )
    if result.success:
        return None
    errors = [event.step_failure_data.error for event in result.all_events
              if event.is_step_failure]  # fmt: skip
    return step_error(errors[0]) if errors and errors[0] else "run failed"
