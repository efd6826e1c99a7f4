"""With ``TALKVID_EXECUTOR=ray`` each video's decode pass runs as a Ray task on a real cluster (a
head and a worker node started as a deployment starts them, on 127.0.0.1), and the curation
writes exactly the rows an in-process curation of the same videos writes: Ray changes where a
video is decoded, never what is recorded. A model stage's actor keeps its backend across runs
and scores as a model step scores in process."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from types import SimpleNamespace

import pytest
from dagster import in_process_executor

from talkvid_assets.core.config import load_config
from talkvid_assets.core.decode_pass import DecodeOptions
from talkvid_assets.core.ray_passes import BuildMismatch
from talkvid_assets.core.scoring import load_backend
from talkvid_assets.core.store import TABLES, Store
from talkvid_assets.defs.scale import (
    EXECUTOR_ENV,
    RAY_ADDRESS_ENV,
    RAY_MODEL_GPUS_ENV,
    ScaleConfigError,
    decode_passes,
    executor_from_env,
    model_passes,
)
from talkvid_assets_tests.conftest import ingest_and_curate, project_instance
from talkvid_assets_tests.devserver import free_port, wait_for_process
from talkvid_assets_tests.media import SAMPLES

ROOT = Path(__file__).resolve().parents[1]
RAY = str(Path(sys.executable).parent / "ray")
# A face that passes, a video cut into four scenes, and a busy street scene.
VIDEOS = ["talk_demo.mp4", "Megamind.avi", "bikes.mp4"]
# A head not started by then skips the test, so the allowance is for a machine at a load of 10
# rather than a quiet one.
NODE_START_S = 240
STARTED = "Ray runtime started"  # what `ray start` prints once the node runs
# A backend the demo profile does not use, so the actor's pass decodes rather than reading the
# score cache.
MODEL_STAGE, MODEL_BACKEND = "head_detail", "dlib-hog"


def _stop(process: subprocess.Popen) -> None:
    """SIGTERM to the node's process group (raylet, GCS, dashboard, workers), SIGKILL if
    ignored: only the processes this test started, never `ray stop`'s every Ray process."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        with suppress(subprocess.TimeoutExpired):
            process.wait(timeout=20)
    with suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)  # what the node left behind
    process.wait(timeout=20)


@contextmanager
def ray_node(command: list[str], log: Path, head: bool = False) -> Iterator[subprocess.Popen]:
    """`ray start ... --block` in a session of its own (every process of the node in its group);
    yields once the node runs. Its workers import this checkout, as the image's install would.
    A head that exits before it runs means Ray cannot start here: the test is skipped."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "RAY_USAGE_STATS_ENABLED": "0"}
    with log.open("w") as out:
        node = subprocess.Popen(
            [*command, "--block", "--disable-usage-stats"],
            env=env,
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        started = lambda: STARTED in log.read_text()  # noqa: E731
        deadline = time.monotonic() + NODE_START_S
        while head and not started() and node.poll() is None and time.monotonic() < deadline:
            time.sleep(0.5)
        if head and not started():
            reason = f"Ray cannot start here: {log.read_text()[-600:]}"
            print(f"\nskipped: {reason}")
            pytest.skip(reason)
        wait_for_process(started, NODE_START_S, "ray start", node, log)
        yield node
    finally:
        _stop(node)


@contextmanager
def ray_cluster(logs: Path) -> Iterator[str]:
    """A head and one worker node on 127.0.0.1, one CPU each, every port free-chosen; yields
    the head's address once both nodes are alive."""
    if shutil.which(RAY) is None:
        reason = "ray is not installed (pip install -e '.[scale]')"
        print(f"\nskipped: {reason}")
        pytest.skip(reason)
    import ray

    from talkvid_assets.core.ray_passes import connect

    port = free_port()
    address = f"127.0.0.1:{port}"
    # Ray's socket paths live under the temp dir and must fit in 107 bytes: a short one.
    temp_dir = tempfile.mkdtemp(prefix="tvray-", dir="/tmp")
    common = ["--node-ip-address=127.0.0.1", "--num-cpus=1", "--num-gpus=0"]
    head = [
        RAY, "start", "--head", f"--port={port}", f"--temp-dir={temp_dir}",
        "--dashboard-host=127.0.0.1", f"--dashboard-port={free_port()}",
        f"--ray-client-server-port={free_port()}",
        f"--dashboard-agent-listen-port={free_port()}", *common,
    ]  # fmt: skip
    worker = [
        RAY, "start", f"--address={address}",
        f"--dashboard-agent-listen-port={free_port()}", *common,
    ]  # fmt: skip
    try:
        with (
            ray_node(head, logs / "ray-head.log", head=True),
            ray_node(worker, logs / "ray-worker.log") as worker_node,
        ):
            handler = signal.getsignal(signal.SIGTERM)
            connect(address)
            assert signal.getsignal(signal.SIGTERM) is handler, "Ray took the SIGTERM handler"
            try:
                alive = lambda: sum(node["Alive"] for node in ray.nodes()) == 2  # noqa: E731
                wait_for_process(
                    alive, NODE_START_S, "2 Ray nodes", worker_node, logs / "ray-worker.log"
                )
                yield address
            finally:
                ray.shutdown()
    finally:
        shutil.rmtree(temp_dir, ignore_errors=True)


def test_ray_needs_an_address():
    with pytest.raises(ScaleConfigError, match=RAY_ADDRESS_ENV):
        executor_from_env({EXECUTOR_ENV: "ray"})
    # The steps stay in the run's process; their videos go to the cluster.
    ray = {EXECUTOR_ENV: "ray", RAY_ADDRESS_ENV: "ray://ray-head:10001"}
    assert executor_from_env(ray) is in_process_executor


@pytest.mark.slow
def test_ray_tasks_write_what_an_in_process_curation_writes(
    tmp_path, monkeypatch, curated_talk_megamind_bikes
):
    paths = [SAMPLES / name for name in VIDEOS]
    monkeypatch.delenv(EXECUTOR_ENV, raising=False)
    # The in-process curation of the same videos (a copy: the model stage below writes to it).
    curated = curated_talk_megamind_bikes.copy(tmp_path / "local")
    local, keys = curated.store, curated.keys
    assert list(keys) == paths

    store = Store(tmp_path / "ray")
    with ray_cluster(tmp_path) as address:
        import ray
        from ray.util.state import list_actors, list_tasks, list_workers

        monkeypatch.setenv(EXECUTOR_ENV, "ray")
        monkeypatch.setenv(RAY_ADDRESS_ENV, address)
        started = time.perf_counter()
        with project_instance(store.home / "dagster") as instance:
            ray_keys, outcomes = ingest_and_curate(instance, store, paths)
        ray_s = time.perf_counter() - started
        assert ray_keys == keys
        assert all(outcome.success for outcome in outcomes), [o.error for o in outcomes]
        tasks = [task for task in list_tasks() if task.name.startswith("decode_pass ")]

        # A model stage's actor, twice (two runs): one actor, built once, scores both.
        backend = load_backend(MODEL_STAGE, MODEL_BACKEND)
        options = DecodeOptions(
            scene_detector=load_config(store.home).scene_detector,
            runtime=load_config(store.home).runtime(store.home),
        )
        monkeypatch.setenv(RAY_MODEL_GPUS_ENV, "0")
        on_ray = [
            model_passes(store, [key], {MODEL_STAGE: backend}, options) for key in keys.values()
        ]
        actors = [actor for actor in list_actors() if actor.name.startswith(f"{MODEL_STAGE}:")]
        # A cluster that builds another version of a backend refuses, with the video's own
        # error rather than Ray's wrapper, and its other tasks are cancelled.
        other_build = SimpleNamespace(name="lk", version="another-build")
        with pytest.raises(BuildMismatch, match="another-build") as refused:
            decode_passes(store, list(keys.values()), {"motion": other_build})
        assert type(refused.value) is BuildMismatch
        node_ids = {node["NodeID"] for node in ray.nodes()}
        workers = {worker.worker_id: worker for worker in list_workers(limit=10_000)}
    monkeypatch.delenv(EXECUTOR_ENV)
    in_process = [
        model_passes(local, [key], {MODEL_STAGE: backend}, options) for key in keys.values()
    ]
    print(
        f"\n{len(keys)} videos, on this one 2-core machine: "
        f"through a 2-node Ray cluster (1 CPU each) {ray_s:.1f} s, {len(tasks)} decode tasks "
        f"on {len({task.node_id for task in tasks})} node(s)"
    )

    # Each video decoded once, in a Ray worker of one of the two nodes, not in this process.
    assert sorted(task.name for task in tasks) == sorted(f"decode_pass {k}" for k in keys.values())
    assert all(task.state == "FINISHED" for task in tasks)
    assert os.getpid() not in {task.worker_pid for task in tasks}
    assert {task.node_id for task in tasks} == node_ids, "both nodes decode"
    for task in tasks:  # in a worker process that Ray started on that node
        worker = workers[task.worker_id]
        assert (worker.worker_type, worker.pid, worker.node_id) == (
            "WORKER", task.worker_pid, task.node_id
        )  # fmt: skip
    assert [actor.state for actor in actors] == ["ALIVE"], "one actor for both runs"
    assert actors[0].node_id in node_ids and actors[0].pid != os.getpid()
    assert on_ray == in_process

    for table in TABLES:
        for key in keys.values():
            assert store.digest(table, key) == local.digest(table, key), (table, key)
    for key in keys.values():
        assert store.preview_path(key).read_bytes() == local.preview_path(key).read_bytes()
    for sql in ("SELECT * FROM clips ORDER BY clip_id", "SELECT * FROM videos ORDER BY video_id"):
        assert store.query(sql) == local.query(sql), sql
    assert len(store.query("SELECT * FROM videos")) == len(VIDEOS)
    assert any(row["passed"] for row in store.query("SELECT passed FROM clips"))
