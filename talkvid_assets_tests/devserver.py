"""Driving a real `talkvid dev` (webserver + daemon) on 127.0.0.1 from tests and the benchmark:
starting and stopping it, asking its GraphQL API, launching and timing backfills."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from talkvid_assets.core.config import default_text
from talkvid_assets.core.store import Store
from talkvid_assets.defs.automation import AUTOMATION_INTERVAL_ENV
from talkvid_assets.defs.sensors import QUIET_ENV
from talkvid_assets_tests.commands import as_from_a_terminal

TALKVID = str(Path(sys.executable).parent / "talkvid")
DAGSTER = str(Path(sys.executable).parent / "dagster")
WORKSPACE = Path(__file__).resolve().parents[1] / "workspace.yaml"
LOCATION, REPOSITORY = "talkvid_assets", "__repository__"
PARTITIONED = [
    "raw_videos", "segments", "quality_scores", "motion_scores", "head_detail_scores",
    "filtered_clips", "talkvid_export",
]  # fmt: skip
# A test's `talkvid dev` waits for events, not for intervals: automation evaluated at every loop
# of Dagster's asset daemon (it loops every 5 s, as the sensor daemon does, so no interval ticks
# faster), and an inbox file settled by two unchanged looks (the quiet period has its own test
# in test_inbox_scale.py).
QUICK = {AUTOMATION_INTERVAL_ENV: "1", QUIET_ENV: "0"}
# How long a test allows for one sensor tick: the daemon's 5 s loop, slowed down by a machine
# at load 10, and the sensor's own evaluation.
TICK_ALLOWANCE_S = 30
IN_PROGRESS = {"QUEUED", "NOT_STARTED", "STARTING", "STARTED", "CANCELING"}
FAILED = {"FAILURE", "CANCELED"}
OPEN = {"REQUESTED", "CANCELING", "FAILING"}  # a backfill still at work


def _env(home: Path | None = None) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if key != "DAGSTER_HOME"}
    env.pop("TALKVID_HOME", None)
    if home is not None:
        env |= {"TALKVID_HOME": str(home), "DAGSTER_HOME": str(home / "dagster")}
    return env


def demo_home(path: Path) -> Path:
    path.mkdir(parents=True)
    (path / "curation.yaml").write_text(default_text("demo"))
    return path


def ask(port: int, query: str) -> dict[str, Any]:
    data = graphql(port, query)
    assert data is not None, f"GraphQL answered no data for {query}"
    return data


def wait_for(what: str, check: Callable[[], Any], timeout: float, log: Path, pause: float = 1):
    """Poll ``check`` until it returns something truthy; fail with the server log's tail."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            tail = "\n".join(log.read_text(errors="replace").splitlines()[-40:])
            raise AssertionError(f"{what}: not within {timeout:.0f} s; server log tail:\n{tail}")
        time.sleep(pause)


@contextmanager
def dev_server(home: Path, log: Path, settings: Mapping[str, str] = QUICK) -> Iterator[int]:
    """`talkvid dev` on ``home`` with the environment ``settings`` (:data:`QUICK` unless
    given); yields its port once the code location's sensors answer."""
    port = free_port()
    with log.open("w") as out:
        server = subprocess.Popen(
            [TALKVID, "--home", str(home), "dev", "--port", str(port)],
            env=_env() | dict(settings),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=as_from_a_terminal,
        )

    def loaded() -> bool:
        assert server.poll() is None, f"talkvid dev exited:\n{log.read_text()[-4000:]}"
        try:
            return bool(sensors(port))
        except (OSError, KeyError, TypeError):
            return False

    try:
        wait_for("talkvid dev answering with its sensors", loaded, 120, log)
        yield port
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=60)
        except subprocess.TimeoutExpired:
            print(f"talkvid dev ignored SIGTERM for 60 s; killing it (log: {log})")
            os.killpg(server.pid, signal.SIGKILL)
            server.wait(timeout=30)


def sensors(port: int) -> dict[str, dict]:
    data = ask(
        port,
        """{ repositoriesOrError { ... on RepositoryConnection { nodes { name location { name }
             sensors { id name sensorState { id status
               typeSpecificData { ... on SensorData { lastCursor } } } } } } } }""",
    )
    return {
        sensor["name"]: sensor
        for repo in data["repositoriesOrError"]["nodes"]
        for sensor in repo["sensors"]
        if repo["name"] == REPOSITORY and repo["location"]["name"] == LOCATION
    }


def partition_keys(port: int, asset: str = "raw_videos") -> list[str]:
    """The keys of the `videos` dynamic partitions, as the asset ``asset`` shows them."""
    data = ask(port, f'{{ assetNodes(assetKeys: [{{path: ["{asset}"]}}]) {{ partitionKeys }} }}')
    return data["assetNodes"][0]["partitionKeys"]


def materialized(port: int, asset: str) -> list[str]:
    data = ask(
        port,
        f"""{{ assetNodes(assetKeys: [{{path: ["{asset}"]}}]) {{ assetPartitionStatuses {{
              ... on DefaultPartitionStatuses {{ materializedPartitions }} }} }} }}""",
    )
    return data["assetNodes"][0]["assetPartitionStatuses"]["materializedPartitions"]


def runs(port: int, tags: dict[str, str] | None = None) -> list[dict]:
    """Runs (newest first) with their status, times and tags (see :func:`asset_runs`)."""
    return asset_runs(port, tags)


def tag(run: dict, key: str) -> str | None:
    return next((item["value"] for item in run["tags"] if item["key"] == key), None)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def graphql(port: int, query: str) -> dict:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/graphql",
        data=json.dumps({"query": query}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.load(response)["data"]


def stop_sensor_before_start(home: Path, name: str) -> None:
    """Store the sensor as stopped in the home's instance before the daemon runs.

    Stopping it over GraphQL once the webserver answers is too late: the daemon evaluates a
    RUNNING-by-default sensor on its first loop, a couple of seconds before the webserver
    serves, so the stale sensor would already have requested runs for the new partitions.
    """
    result = subprocess.run(
        [DAGSTER, "sensor", "stop", name, "-w", str(WORKSPACE)],
        env=_env(home),
        cwd=home,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, f"dagster sensor stop {name}: {result.stdout}{result.stderr}"


def clip_counts(home: Path) -> dict[str, tuple[int, int]]:
    rows = Store(home).query(
        "SELECT video_id, count(*) AS clips, count(*) FILTER (WHERE passed) AS passed "
        "FROM clips GROUP BY video_id"
    )
    return {row["video_id"]: (row["clips"], row["passed"]) for row in rows}


def launch_backfill(port: int, keys: list[str], assets: list[str]) -> str:
    """Launch a backfill of ``assets`` over ``keys`` through GraphQL, as the UI does."""
    selection = ", ".join(f'{{path: ["{asset}"]}}' for asset in assets)
    launched = ask(
        port,
        f"""mutation {{ launchPartitionBackfill(backfillParams: {{
              partitionNames: {json.dumps(keys)}, assetSelection: [{selection}],
              fromFailure: false }}) {{
            __typename
            ... on LaunchBackfillSuccess {{ backfillId }}
            ... on Error {{ message }}
            ... on PythonError {{ stack }} }} }}""",
    )["launchPartitionBackfill"]
    assert launched["__typename"] == "LaunchBackfillSuccess", launched
    return launched["backfillId"]


def wait_for_backfill(port: int, backfill_id: str, log: Path, timeout: float = 300) -> dict:
    """The backfill's final state, once it left REQUESTED / CANCELING / FAILING."""

    def finished() -> dict | None:
        backfill = ask(
            port,
            f"""{{ partitionBackfillOrError(backfillId: "{backfill_id}") {{
                  ... on PartitionBackfill {{
                    status timestamp endTimestamp error {{ message }} }}
                  ... on Error {{ message }} }} }}""",
        )["partitionBackfillOrError"]
        assert "status" in backfill, backfill
        done = backfill["status"] not in ("REQUESTED", "CANCELING", "FAILING")
        return backfill if done else None

    return wait_for("the backfill to finish", finished, timeout, log, pause=2)


def run_span(runs_: list[dict]) -> float:
    """Seconds from the first run's start to the last run's end."""
    return max(run["endTime"] for run in runs_) - min(run["startTime"] for run in runs_)


def asset_runs(port: int, tags: dict[str, str] | None = None) -> list[dict]:
    """Runs (newest first) with their status, tags and the asset keys each selected."""
    selector = ", ".join(
        f'{{key: "{key}", value: "{value}"}}' for key, value in (tags or {}).items()
    )
    filter_arg = f"(filter: {{tags: [{selector}]}})" if tags else ""
    data = ask(
        port,
        f"""{{ runsOrError{filter_arg} {{
              ... on Runs {{ results {{ runId status startTime endTime creationTime
                tags {{ key value }} assetSelection {{ path }} }} }}
              ... on Error {{ message }} }} }}""",
    )
    result = data["runsOrError"]
    assert "results" in result, f"runsOrError: {result}"
    for run in result["results"]:
        run["assets"] = sorted("/".join(key["path"]) for key in run["assetSelection"] or [])
    return result["results"]


def run_partitions(run: dict, order: list[str]) -> list[str]:
    """The partition keys a run covers: its single key, or its range in the order ``order``
    (the dynamic partitions' registration order); none for an unpartitioned run."""
    single = tag(run, "dagster/partition")
    if single:
        return [single]
    start = tag(run, "dagster/asset_partition_range_start")
    end = tag(run, "dagster/asset_partition_range_end")
    if not start:
        return []
    return order[order.index(start) : order.index(end) + 1]


def sensor_ticks(port: int, name: str) -> list[dict]:
    """The sensor's ticks, newest first: timestamp, status and the runs each requested."""
    data = ask(
        port,
        f"""{{ sensorOrError(sensorSelector: {{repositoryName: "{REPOSITORY}",
              repositoryLocationName: "{LOCATION}", sensorName: "{name}"}}) {{
            ... on Sensor {{ sensorState {{ ticks(limit: 200) {{ timestamp status runIds }} }} }}
            ... on Error {{ message }} }} }}""",
    )["sensorOrError"]
    assert "sensorState" in data, data
    return data["sensorState"]["ticks"]


def ticks_since(port: int, name: str, since: float) -> list[dict]:
    """The ticks of sensor ``name`` that began after ``since`` (seconds since the epoch) and
    have finished: whatever each would request is requested."""
    return _finished_after(sensor_ticks(port, name), since)


def _finished_after(ticks: list[dict], since: float) -> list[dict]:
    return [tick for tick in ticks if tick["timestamp"] > since and tick["status"] != "STARTED"]


def wait_for_ticks(port: int, name: str, count: int, since: float, log: Path) -> list[dict]:
    """Wait for ``count`` finished ticks of sensor ``name`` begun after ``since``; returns them.
    A test that asserts "nothing was requested" waits for this rather than for a time."""

    def enough() -> list[dict] | None:
        ticks = ticks_since(port, name, since)
        return ticks if len(ticks) >= count else None

    return wait_for(f"{count} {name} tick(s)", enough, TICK_ALLOWANCE_S * (count + 1), log)


def no_failed_runs(port: int, log: Path, expected: set[str] = frozenset()) -> list[dict]:
    """Every run; fails on a failed or cancelled one but those ``expected`` to fail."""
    every = asset_runs(port)
    failed = [run for run in every if run["status"] in FAILED and run["runId"] not in expected]
    assert not failed, f"runs failed: {failed}\n{log.read_text()[-4000:]}"
    return every


def quiet(port: int, log: Path, expected: set[str] = frozenset(), tick: bool = True) -> bool:
    """No run or backfill in progress (automation requests several partitions as a backfill,
    and waits while one is open), and (with ``tick``) an automation tick that began after the
    last of them ended (so would have requested whatever was pending) finished with no run."""
    ticks = sensor_ticks(port, "automation")  # before the runs: a run a tick made is listed
    every = no_failed_runs(port, log, expected)
    if any(run["status"] in IN_PROGRESS for run in every):
        return False
    requests = backfills(port)
    if any(backfill["status"] in OPEN for backfill in requests):
        return False
    if not tick:
        return True
    last = max(
        [run["endTime"] or run["creationTime"] for run in every]
        + [backfill["endTimestamp"] or backfill["timestamp"] for backfill in requests]
        + [0]
    )
    return bool(_finished_after(ticks, last))


def asset_nodes(port: int) -> list[dict]:
    """Every asset node: key (a "/"-joined string), whether it is partitioned, and its tags."""
    data = ask(port, "{ assetNodes { assetKey { path } isPartitioned tags { key value } } }")
    return [
        {
            "key": "/".join(node["assetKey"]["path"]),
            "partitioned": node["isPartitioned"],
            "tags": {item["key"]: item["value"] for item in node["tags"]},
        }
        for node in data["assetNodes"]
    ]


def stale_statuses(port: int, assets: list[str], keys: list[str]) -> dict[tuple[str, str], str]:
    """GraphQL's ``staleStatusByPartition`` (what the UI's badges show) per (asset, partition)."""
    selection = ", ".join(f'{{path: ["{asset}"]}}' for asset in assets)
    data = ask(
        port,
        f"""{{ assetNodes(assetKeys: [{selection}]) {{ assetKey {{ path }}
              staleStatusByPartition(partitions: {json.dumps(keys)}) }} }}""",
    )
    return {
        ("/".join(node["assetKey"]["path"]), key): status
        for node in data["assetNodes"]
        for key, status in zip(keys, node["staleStatusByPartition"], strict=True)
    }


def materializations(port: int, asset: str, partition: str | None = None) -> list[dict]:
    """The asset's (or one partition's) materializations, newest first, with their run, time,
    partition and metadata (label to value: int, float, text or JSON text)."""
    partitions = f"(partitions: {json.dumps([partition])})" if partition else ""
    data = ask(
        port,
        f"""{{ assetNodes(assetKeys: [{{path: ["{asset}"]}}]) {{
              assetMaterializations{partitions} {{ runId timestamp partition
                metadataEntries {{ label
                  ... on IntMetadataEntry {{ intValue }}
                  ... on FloatMetadataEntry {{ floatValue }}
                  ... on TextMetadataEntry {{ text }}
                  ... on JsonMetadataEntry {{ jsonString }} }} }} }} }}""",
    )
    events = data["assetNodes"][0]["assetMaterializations"]
    for event in events:
        entries = event.pop("metadataEntries")
        event["metadata"] = {entry["label"]: _value(entry) for entry in entries}
    return events


def _value(entry: dict) -> Any:
    fields = ("intValue", "floatValue", "text", "jsonString")
    return next((entry[field] for field in fields if field in entry), None)


def check_executions(port: int, asset: str, check: str, partition: str) -> list[dict]:
    """The check's executions for one partition, newest first: run, status, partition."""
    data = ask(
        port,
        f"""{{ assetCheckExecutions(assetKey: {{path: ["{asset}"]}}, checkName: "{check}",
              partition: "{partition}", limit: 20) {{ runId status partition timestamp }} }}""",
    )
    return data["assetCheckExecutions"]


def check_partition_statuses(port: int, asset: str, check: str) -> dict[str, list[str]]:
    """The check's per-partition statuses as the UI shows them (succeededPartitions, ...)."""
    data = ask(
        port,
        f"""{{ assetNodes(assetKeys: [{{path: ["{asset}"]}}]) {{ assetChecksOrError {{
              ... on AssetChecks {{ checks {{ name partitionStatuses {{
                ... on AssetCheckDefaultPartitionStatuses {{ succeededPartitions
                  failedPartitions inProgressPartitions skippedPartitions
                  executionFailedPartitions }} }} }} }} }} }} }}""",
    )
    checks = data["assetNodes"][0]["assetChecksOrError"]["checks"]
    return next(item["partitionStatuses"] for item in checks if item["name"] == check)


def launch_run(
    port: int, job: str, assets: list[str], partition: str, checks: list[tuple[str, str]]
) -> str:
    """Launch one run of ``assets`` and the ``checks`` ((asset, check name) pairs) of ``job``
    for one partition through GraphQL, as the UI's "Materialize" of a single partition does."""
    selection = ", ".join(f'{{path: ["{asset}"]}}' for asset in assets)
    check_selection = ", ".join(
        f'{{assetKey: {{path: ["{asset}"]}}, name: "{name}"}}' for asset, name in checks
    )
    launched = ask(
        port,
        f"""mutation {{ launchRun(executionParams: {{
              selector: {{ repositoryLocationName: "{LOCATION}", repositoryName: "{REPOSITORY}",
                jobName: "{job}", assetSelection: [{selection}],
                assetCheckSelection: [{check_selection}] }},
              executionMetadata: {{ tags: [{{key: "dagster/partition", value: "{partition}"}}] }}
            }}) {{
            __typename
            ... on LaunchRunSuccess {{ run {{ runId }} }}
            ... on Error {{ message }}
            ... on PythonError {{ stack }}
            ... on RunConfigValidationInvalid {{ errors {{ message }} }} }} }}""",
    )["launchRun"]
    assert launched["__typename"] == "LaunchRunSuccess", launched
    return launched["run"]["runId"]


def wait_for_run(port: int, run_id: str, log: Path, timeout: float = 120) -> dict:
    """The run once it finished (succeeded, failed or was cancelled)."""

    def finished() -> dict | None:
        (run,) = [run for run in runs(port) if run["runId"] == run_id]
        return run if run["status"] in ("SUCCESS", "FAILURE", "CANCELED") else None

    return wait_for(f"run {run_id[:8]} to finish", finished, timeout, log)


def backfills(port: int) -> list[dict]:
    """Every backfill (the UI's, and automation's requests over several partitions), newest
    first: id, status, timestamp and endTimestamp."""
    data = ask(
        port,
        """{ partitionBackfillsOrError { ... on PartitionBackfills { results {
              id status timestamp endTimestamp } }
            ... on Error { message } } }""",
    )["partitionBackfillsOrError"]
    assert "results" in data, data
    return data["results"]


def wait_for_process(
    check: Callable[[], bool], timeout: float, what: str, process: subprocess.Popen, log: Path
) -> None:
    """Poll ``check``; fail with the log's tail if ``process`` exits or ``timeout`` passes."""
    deadline = time.monotonic() + timeout
    while not check():
        assert process.poll() is None, f"{what}: it exited\n{log.read_text()[-4000:]}"
        assert time.monotonic() < deadline, f"{what}: not in {timeout} s\n{log.read_text()[-4000:]}"
        time.sleep(0.3)


def copy_of(curated: tuple[Path, list[str]], tmp_path: Path) -> tuple[Path, list[str]]:
    """A copy of a curated home (its Dagster instance included), for one test to change."""
    home, keys = curated
    shutil.copytree(home, tmp_path / "home", symlinks=True)
    return tmp_path / "home", keys
