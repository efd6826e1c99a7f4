"""`talkvid dev` (what `make dev` runs) serves the same graph, with ingested partitions, over
Dagster's real webserver and GraphQL API."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from talkvid_assets_tests.media import SAMPLES

pytestmark = pytest.mark.slow
BIN = Path(sys.executable).parent
QUERY = """{
  assetNodes { assetKey { path } groupName partitionKeys }
  repositoriesOrError { ... on RepositoryConnection { nodes { jobs { name } } } }
}"""


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


def test_dev_server_shows_the_graph_and_partitions(tmp_path):
    home = tmp_path / "home"
    env = {**os.environ, "TALKVID_HOME": str(home)}
    env.pop("DAGSTER_HOME", None)
    ingest = subprocess.run(
        [str(BIN / "talkvid"), "ingest", str(SAMPLES / "talk_demo.mp4")],
        env=env, capture_output=True, text=True, check=True,
    )  # fmt: skip
    key = ingest.stdout.split("\t")[0]
    port = free_port()
    server = subprocess.Popen(
        [str(BIN / "talkvid"), "dev", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 120
        data = None
        while data is None:
            assert server.poll() is None, "dagster dev exited"
            assert time.monotonic() < deadline, "dagster dev did not answer within 120 s"
            try:
                data = graphql(port, QUERY)
            except (OSError, KeyError):
                time.sleep(1)
            if data is not None and not data["assetNodes"]:
                data = None  # webserver up, code location still loading
                time.sleep(1)
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=60)
    assets = {"/".join(node["assetKey"]["path"]): node for node in data["assetNodes"]}
    assert set(assets) == {
        "raw_videos", "segments", "quality_scores", "motion_scores", "head_detail_scores",
        "filtered_clips", "talkvid_export",
    }  # fmt: skip
    assert assets["segments"]["partitionKeys"] == [key]
    jobs = {job["name"] for repo in data["repositoriesOrError"]["nodes"] for job in repo["jobs"]}
    assert "curate" in jobs
    assert (home / "dagster" / "dagster.yaml").exists()
