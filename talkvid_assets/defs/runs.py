"""Launching curation runs on an instance: what the CLI (and tests) use instead of re-implementing
the graph. One in-process run of the `curate` job per partition: on a small machine the in-process
executor costs well under a second per run, where a process per step would cost seconds."""

from __future__ import annotations

import os
import shutil
import socket
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from dagster import AssetKey, DagsterInstance, DagsterRunStatus, RunsFilter

from talkvid_assets.defs.definitions import curate_job, defs
from talkvid_assets.defs.partitions import video_partitions
from talkvid_assets.defs.resources import TalkvidResource

INSTANCE_CONFIG = Path(__file__).resolve().parents[2] / "dagster.yaml"
LAUNCHER_TAG = "talkvid/launched_by"
HOST_TAG, PID_TAG = "talkvid/host", "talkvid/pid"


def instance_dir(home: Path) -> Path:
    """DAGSTER_HOME for a talkvid home, seeded with the project's dagster.yaml."""
    directory = home / "dagster"
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / "dagster.yaml"
    if INSTANCE_CONFIG.exists() and (
        not target.exists() or target.read_text() != INSTANCE_CONFIG.read_text()
    ):
        shutil.copyfile(INSTANCE_CONFIG, target)
    return directory


def register_partitions(instance: DagsterInstance, keys: Iterable[str]) -> list[str]:
    """Add the keys that the instance does not know yet; returns those."""
    known = set(instance.get_dynamic_partitions(video_partitions.name))
    new = sorted(set(keys) - known)
    if new:
        instance.add_dynamic_partitions(video_partitions.name, new)
    return new


def pending_partitions(instance: DagsterInstance) -> list[str]:
    """Registered partitions without a successful export yet, in registration order."""
    done = instance.get_materialized_partitions(AssetKey("talkvid_export"))
    return [
        key for key in instance.get_dynamic_partitions(video_partitions.name) if key not in done
    ]


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
    keeps its "decode" pool slot; with no daemon watching, two such runs would block every later
    run. Each CLI run is tagged with its host and process id, so a dead one is recognisable.
    """
    runs = instance.get_runs(
        RunsFilter(
            statuses=[DagsterRunStatus.STARTING, DagsterRunStatus.STARTED],
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


@dataclass(frozen=True)
class RunOutcome:
    partition: str
    success: bool
    run_id: str
    seconds: float
    error: str | None = None


def curate(
    instance: DagsterInstance,
    partitions: Iterable[str],
    resource: TalkvidResource,
    on_done: Callable[[RunOutcome], None] | None = None,
    log_level: str = "WARNING",
) -> list[RunOutcome]:
    """Run the `curate` job once per partition; a failed run never stops the others."""
    reap_abandoned_runs(instance)
    job = defs.resolve_job_def(curate_job.name)
    run_config = {
        "resources": {"talkvid": {"config": resource.model_dump()}},
        "loggers": {"console": {"config": {"log_level": log_level}}},
    }
    outcomes = []
    for key in partitions:
        started = time.perf_counter()
        result = job.execute_in_process(
            run_config=run_config,
            instance=instance,
            partition_key=key,
            raise_on_error=False,
            tags={LAUNCHER_TAG: "cli", HOST_TAG: socket.gethostname(), PID_TAG: str(os.getpid())},
        )
        error = None
        if not result.success:
            failures = [event for event in result.all_events if event.is_step_failure]
            error = failures[0].message if failures else "run failed"
        outcome = RunOutcome(
            key, result.success, result.run_id, time.perf_counter() - started, error
        )
        outcomes.append(outcome)
        if on_done is not None:
            on_done(outcome)
    return outcomes
