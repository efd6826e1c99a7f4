"""`talkvid dev` (what `make dev` runs) serves the same graph, with ingested partitions, over
Dagster's real webserver and GraphQL API."""

import pytest

from talkvid_assets.core.config import CONFIG_PARTS
from talkvid_assets_tests.devserver import demo_home, dev_server, graphql, talkvid
from talkvid_assets_tests.media import SAMPLES

pytestmark = pytest.mark.slow
QUERY = """{
  assetNodes { assetKey { path } groupName partitionKeys }
  repositoriesOrError { ... on RepositoryConnection { nodes { jobs { name } } } }
}"""


def test_dev_server_shows_the_graph_and_partitions(tmp_path):
    home = demo_home(tmp_path / "home")
    key = talkvid(home, "ingest", str(SAMPLES / "talk_demo.mp4")).stdout.split("\t")[0]
    with dev_server(home, tmp_path / "dev.log") as port:
        data = graphql(port, QUERY)
    assets = {"/".join(node["assetKey"]["path"]): node for node in data["assetNodes"]}
    assert set(assets) == {
        "raw_videos", "segments", "quality_scores", "motion_scores", "head_detail_scores",
        "sync_scores", "filtered_clips", "talkvid_export", "talkvid_dataset", "annotations",
        "speakers", "bench_strata", "training_split", "clip_files", "fixed_frame_records",
        "review_calibration", "url_sources", "bench_evaluation",
        *(f"config_{part}" for part in CONFIG_PARTS),
    }  # fmt: skip
    assert assets["url_sources"]["groupName"] == "sources"
    assert {assets[f"config_{part}"]["groupName"] for part in CONFIG_PARTS} == {"config"}
    assert assets["segments"]["partitionKeys"] == [key]
    jobs = {job["name"] for repo in data["repositoriesOrError"]["nodes"] for job in repo["jobs"]}
    assert {"curate", "url_ingest", "bench_evaluation_job"} <= jobs
    assert (home / "dagster" / "dagster.yaml").exists()
