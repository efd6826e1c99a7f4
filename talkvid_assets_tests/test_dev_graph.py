"""What the UI shows under a real `talkvid dev` (webserver + daemon) over a home of three videos
curated by the CLI: the stale badges are what `talkvid curate --stale` runs; the same graph,
with the partitions, over Dagster's real webserver and GraphQL API; and a ranged run showing
each partition its own metadata and check results. (test_dev_automation.py: what automation
does; the two files run on separate workers.)"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from talkvid_assets.core.config import CONFIG_PARTS
from talkvid_assets.core.store import Store
from talkvid_assets.defs.names import LAUNCHER_TAG, ON_DEMAND_TAG
from talkvid_assets_tests.commands import talkvid
from talkvid_assets_tests.conftest import configure
from talkvid_assets_tests.devserver import (
    asset_nodes,
    asset_runs,
    check_executions,
    check_partition_statuses,
    copy_of,
    dev_server,
    graphql,
    materializations,
    partition_keys,
    run_partitions,
    sensors,
    stale_statuses,
    stop_sensor_before_start,
    tag,
    ticks_since,
    wait_for,
)

pytestmark = pytest.mark.slow

GRAPH = """{
  assetNodes { assetKey { path } groupName partitionKeys }
  repositoriesOrError { ... on RepositoryConnection { nodes { jobs { name } } } }
}"""


@pytest.fixture(scope="module")
def three_videos(curated_talk_megamind_bikes) -> tuple[Path, list[str]]:
    """Three videos, each with its own number of frames, curated in one ranged run once per
    test run (conftest); the home and the keys in registration order."""
    curated = curated_talk_megamind_bikes
    return curated.home, list(curated.keys.values())


def observed(port: int, since: float, assets: list[str], keys: list[str]) -> bool:
    """A config sensor tick began after ``since`` and finished, and GraphQL calls some
    (asset, partition) stale or missing."""
    ticked = ticks_since(port, "config_sensor", since)
    return bool(ticked) and set(stale_statuses(port, assets, keys).values()) != {"FRESH"}


@pytest.fixture(scope="module")
def served(three_videos, tmp_path_factory) -> Iterator[tuple[Path, list[str], int]]:
    """One `talkvid dev` for the module, on a copy of the three-video home with automation
    stopped (only the CLI curates here): the home, its keys and the server's port. The tests
    that only read come first; the staleness test, last, edits and curates the home."""
    root = tmp_path_factory.mktemp("served")
    home, keys = copy_of(three_videos, root)
    stop_sensor_before_start(home, "automation")
    with dev_server(home, root / "dev.log") as port:
        yield home, keys, port


def test_dev_server_shows_the_graph_and_partitions(served):
    home, keys, port = served
    data = graphql(port, GRAPH)
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
    assert sorted(assets["segments"]["partitionKeys"]) == sorted(keys)
    jobs = {job["name"] for repo in data["repositoriesOrError"]["nodes"] for job in repo["jobs"]}
    assert {"curate", "url_ingest", "bench_evaluation_job"} <= jobs
    assert (home / "dagster" / "dagster.yaml").exists()


def test_a_ranged_run_shows_each_partitions_own_metadata_and_passed_checks(served):
    home, keys, port = served
    store = Store(home)
    order = partition_keys(port)
    ranged = [run for run in asset_runs(port) if "segments" in run["assets"]]
    assert len(ranged) == 1 and sorted(run_partitions(ranged[0], order)) == sorted(keys)
    frames = {}
    for key in keys:
        (latest, *_) = materializations(port, "segments", key)
        assert latest["partition"] == key and latest["runId"] == ranged[0]["runId"]
        reports = store.rows("decode_reports", key)
        frames[key] = sum(report["frames_decoded"] or 0 for report in reports)
        shown = latest["metadata"]
        assert shown["segments"] == len(store.rows("segments", key)), (key, shown)
        assert shown["frames_decoded"] == frames[key], (key, shown)
        (check, *_) = check_executions(port, "segments", "clip_bounds_are_consistent", key)
        assert check["partition"] == key and check["status"] == "SUCCEEDED", check
    assert len(set(frames.values())) == len(keys), frames  # one range's numbers would repeat
    statuses = check_partition_statuses(port, "segments", "clip_bounds_are_consistent")
    print(f"\nclip_bounds_are_consistent by partition in the UI: {statuses}")
    assert sorted(statuses["succeededPartitions"]) == sorted(keys), statuses


def test_staleness_in_graphql_agrees_with_the_cli(served):
    home, keys, port = served
    log = home.parent / "dev.log"
    edits = [  # each kept while the next is added
        ("thresholds", "{quality_score: 9.9}", {"filtered_clips"}),
        ("backends", "{head_detail: dlib-hog}", {"head_detail_scores", "filtered_clips"}),
        ("scene_detector", "content", {"segments", "filtered_clips"}),
    ]
    assert sensors(port)["automation"]["sensorState"]["status"] == "STOPPED"
    order = partition_keys(port)
    assert sorted(order) == sorted(keys)
    curated = [  # the per-video assets a curation builds (clip files are on demand)
        node["key"]
        for node in asset_nodes(port)
        if node["partitioned"] and node["tags"].get(ON_DEMAND_TAG) != "true"
    ]
    assert set(stale_statuses(port, curated, order).values()) == {"FRESH"}
    settings: dict[str, str] = {}
    for setting, value, expected in edits:
        settings[setting] = value
        edited_at = time.time()
        configure(home, "demo", **settings)
        wait_for(
            f"the config sensor observing {setting}",
            lambda since=edited_at: observed(port, since, curated, order),
            60,
            log,
        )
        statuses = stale_statuses(port, curated, order)
        outdated = {pair for pair, status in statuses.items() if status != "FRESH"}
        print(f"{setting}: {value} -> GraphQL stale/missing: "
              f"{sorted({asset for asset, _ in outdated})}")  # fmt: skip
        assert {status for pair, status in statuses.items() if pair in outdated} <= {
            "STALE",
            "MISSING",
        }
        assert outdated == {(asset, key) for asset in expected for key in order}

        seen = {run["runId"] for run in asset_runs(port)}
        started = time.perf_counter()
        talkvid(home, "curate", "--stale")
        cli_runs = sorted(
            (run for run in asset_runs(port, {LAUNCHER_TAG: "cli"}) if run["runId"] not in seen),
            key=lambda run: run["creationTime"],
        )
        # The first wave: runs until every outdated video has been covered once.
        first_wave, pairs, covered = [], set(), set()
        for run in cli_runs:
            if {key for _, key in outdated} <= covered:
                break
            partitions = run_partitions(run, order)
            assert not covered & set(partitions), f"a video twice in the first wave: {run}"
            covered |= set(partitions)
            pairs |= {(asset, key) for asset in run["assets"] for key in partitions}
            first_wave.append(run)
        shown = [(run["assets"], run_partitions(run, order)) for run in first_wave]
        print(f"  curate --stale: {len(cli_runs)} run(s) in "
              f"{time.perf_counter() - started:.1f} s; first wave: {shown}")  # fmt: skip
        assert pairs == outdated
        assert all(run["status"] == "SUCCESS" for run in cli_runs), cli_runs
        # Afterwards both routes call every video's assets fresh.
        assert set(stale_statuses(port, curated, order).values()) == {"FRESH"}
    others = [run for run in asset_runs(port) if tag(run, LAUNCHER_TAG) != "cli"]
    assert not others, f"something other than the CLI ran: {others}"
