"""The executor follows ``$TALKVID_EXECUTOR``; the curate job's steps on a real Celery worker, with
a real Redis as broker and result backend, write exactly the rows that an in-process curation of
the same videos writes: the scale-out executor changes where a step runs, never what it records.
The worker is started as deploy/docker-compose.yaml starts it."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import yaml
from dagster import (
    AssetKey,
    DagsterEventType,
    DagsterInstance,
    JobDefinition,
    build_reconstructable_job,
    execute_job,
    in_process_executor,
)

from talkvid_assets.core.sources import register_source
from talkvid_assets.core.store import Store
from talkvid_assets.defs.build import build_definitions
from talkvid_assets.defs.names import CURATE_JOB
from talkvid_assets.defs.scale import (
    BACKEND_ENV,
    BROKER_ENV,
    EXECUTOR_ENV,
    ScaleConfigError,
    celery_config,
    executor_from_env,
)
from talkvid_assets.launch import plan, register_partitions
from talkvid_assets_tests.conftest import configure, project_instance
from talkvid_assets_tests.devserver import free_port, wait_for_process
from talkvid_assets_tests.media import SAMPLES

ROOT = Path(__file__).resolve().parents[1]
DAGSTER_CELERY = str(Path(sys.executable).parent / "dagster-celery")
# A face that passes, a video cut into four scenes, and a busy street scene.
VIDEOS = ["talk_demo.mp4", "Megamind.avi", "bikes.mp4"]
RUN_TIMEOUT_S = 300
QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


def curate_job(home: str) -> JobDefinition:
    """The home's curate job on the executor that the environment names, rebuilt by the
    orchestrating process and by the worker for every step (a step crosses processes, so its
    job must be reconstructable from a module function and JSON arguments). The executor is
    applied here as well as in the Definitions so this test does not depend on how build.py
    picks it."""
    job = build_definitions(Path(home)).resolve_job_def(CURATE_JOB)
    return job.with_executor_def(executor_from_env())


def _stop(process: subprocess.Popen) -> None:
    """SIGTERM to the process group (a worker and its pool children), SIGKILL if ignored."""
    if process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)


def redis_binary() -> str:
    """The redis-server program; skips the test (saying why) when it is not installed."""
    binary = shutil.which("redis-server")
    if binary is None:
        reason = "redis-server is not installed (apt-get install redis-server)"
        print(f"\nskipped: {reason}")
        pytest.skip(reason)
    return binary


@contextmanager
def redis_server(binary: str, log: Path) -> Iterator[tuple[subprocess.Popen, str]]:
    """A private redis-server on a free 127.0.0.1 port, without persistence, and its URL."""
    port = free_port()
    listen = ["--port", str(port), "--bind", "127.0.0.1"]
    with log.open("w") as out:
        server = subprocess.Popen(
            [binary, *listen, "--save", "", "--appendonly", "no"],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        wait_for_process(lambda: _answers(port), 30, "redis-server", server, log)
        yield server, f"redis://127.0.0.1:{port}/0"
    finally:
        _stop(server)


def _answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as connection:
            connection.sendall(b"PING\r\n")
            return connection.recv(16).startswith(b"+PONG")
    except OSError:
        return False


@contextmanager
def celery_worker(
    instance_dir: Path, name: str, config: Path, log: Path
) -> Iterator[subprocess.Popen]:
    """`dagster-celery worker start` as a deployment runs it, one pool process (it runs step
    after step with torch and OpenCV imported once); yields once it listens."""
    # dagster-celery starts `celery` from PATH: the venv's, whether or not it is activated.
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    env = {**os.environ, "DAGSTER_HOME": str(instance_dir), "PATH": path}
    command = [DAGSTER_CELERY, "worker", "start", "--app", "dagster_celery.app", "--config-yaml"]
    with log.open("w") as out:
        worker = subprocess.Popen(
            [*command, str(config), "--name", name, "--", "--concurrency=1", "--without-mingle"],
            env=env,
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        wait_for_process(lambda: " ready." in log.read_text(), 120, "celery worker", worker, log)
        yield worker
    finally:
        _stop(worker)


@contextmanager
def broker_dropped_on_trouble(
    worker: subprocess.Popen, broker: subprocess.Popen, timeout: float
) -> Iterator[None]:
    """Stop the broker if the worker dies or the runs outlast ``timeout``: the Celery executor
    waits forever for the result of a step whose worker is gone, but fails the run as soon as
    its result backend is unreachable, so the test ends with an error instead of hanging."""
    done = threading.Event()

    def watch() -> None:
        deadline = time.monotonic() + timeout
        while not done.wait(1):
            if worker.poll() is not None or time.monotonic() > deadline:
                _stop(broker)
                return

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        yield
    finally:
        done.set()
        watcher.join()


def _ancestors(pid: int) -> set[int]:
    """The process ids above ``pid`` (Linux /proc), to tie a step's pid to the worker."""
    found = set()
    while pid > 1:
        stat = Path(f"/proc/{pid}/stat").read_text()
        pid = int(stat.rsplit(")", 1)[1].split()[1])
        found.add(pid)
    return found


def _steps_by_worker(instance: DagsterInstance, run_id: str) -> tuple[dict[str, int], set[str]]:
    """Each step's process id (from STEP_START) and the Celery worker names that ran them."""
    pids, workers = {}, set()
    for record in instance.all_logs(run_id):
        event = record.dagster_event
        if event is None:
            continue
        if event.event_type == DagsterEventType.STEP_START:
            pids[event.step_key] = event.pid
        elif event.event_type == DagsterEventType.ENGINE_EVENT:
            name = event.engine_event_data.metadata.get("Celery worker")
            workers |= {name.value} if name is not None else set()
    return pids, workers


def _curate_on_celery(
    instance: DagsterInstance, home: Path, keys: list[str], worker: subprocess.Popen, name: str
) -> dict[str, int]:
    """Every planned run of ``keys`` through the Celery executor; each step's pid, checked to
    be a process of ``worker``, the Celery node ``name``."""
    job = build_reconstructable_job(
        __name__,
        curate_job.__name__,
        reconstructable_kwargs={"home": str(home)},
        reconstructor_working_directory=str(ROOT),
    )
    pids: dict[str, int] = {}
    for run in plan(instance, build_definitions(home), keys):
        result = execute_job(
            job,
            instance,
            run_config=QUIET,
            tags=run.tags(),
            asset_selection=[AssetKey(asset) for asset in run.assets],
        )
        failures = [event.message for event in result.all_events if event.is_failure]
        assert result.success, f"celery run over {run.partitions} failed: {failures}"
        steps, workers = _steps_by_worker(instance, result.run_id)
        assert workers == {f"{name}@{socket.gethostname()}"}
        for step, pid in steps.items():
            assert pid != os.getpid() and worker.pid in _ancestors(pid), f"{step} ran in {pid}"
        pids |= steps
    return pids


def test_the_executor_follows_the_environment():
    assert executor_from_env({}) is in_process_executor
    assert executor_from_env({EXECUTOR_ENV: "k8s"}).name == "k8s"
    broker = {EXECUTOR_ENV: "celery", BROKER_ENV: "redis://redis:6379/0"}
    assert executor_from_env(broker).name == "celery"
    assert celery_config(broker)["backend"] == {"env": BROKER_ENV}
    assert celery_config({**broker, BACKEND_ENV: "redis://redis:6379/1"})["backend"] == {
        "env": BACKEND_ENV
    }
    with pytest.raises(ScaleConfigError, match=BROKER_ENV):
        executor_from_env({EXECUTOR_ENV: "celery"})
    with pytest.raises(ScaleConfigError, match="'dask' is not an executor"):
        executor_from_env({EXECUTOR_ENV: "dask"})


@pytest.mark.slow
def test_celery_workers_write_what_the_in_process_executor_writes(
    tmp_path, monkeypatch, curated_talk_megamind_bikes
):
    redis = redis_binary()
    paths = [SAMPLES / name for name in VIDEOS]
    local = curated_talk_megamind_bikes.home  # the in-process curation of the same videos
    assert list(curated_talk_megamind_bikes.keys) == paths

    home = tmp_path / "celery"
    store = Store(home)
    keys = [register_source(store, path)[0] for path in paths]
    configure(home, "demo")
    config = tmp_path / "celery.yaml"
    with redis_server(redis, tmp_path / "redis.log") as (broker, url):
        monkeypatch.setenv(EXECUTOR_ENV, "celery")
        monkeypatch.setenv(BROKER_ENV, url)
        monkeypatch.delenv(BACKEND_ENV, raising=False)
        config.write_text(yaml.safe_dump({"execution": {"config": celery_config()}}))
        with project_instance(home / "dagster") as instance:
            register_partitions(instance, keys)
            name = f"talkvid-test-{os.getpid()}"
            log = tmp_path / "worker.log"
            with celery_worker(home / "dagster", name, config, log) as worker:
                started = time.perf_counter()
                with broker_dropped_on_trouble(worker, broker, RUN_TIMEOUT_S):
                    pids = _curate_on_celery(instance, home, keys, worker, name)
                celery_s = time.perf_counter() - started
    tasks = log.read_text().count("] succeeded in ")
    print(
        f"\n{len(keys)} videos on one Celery worker {celery_s:.1f} s, "
        f"{len(pids)} steps in {len(set(pids.values()))} worker process(es), {tasks} tasks"
    )
    assert tasks == len(pids)

    for sql in ("SELECT * FROM clips ORDER BY clip_id", "SELECT * FROM videos ORDER BY video_id"):
        assert store.query(sql) == Store(local).query(sql), sql
    assert len(store.query("SELECT * FROM videos")) == len(VIDEOS)
    assert any(row["passed"] for row in store.query("SELECT passed FROM clips"))
