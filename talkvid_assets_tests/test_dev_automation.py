"""Declarative automation under a real `talkvid dev` (webserver + daemon) on a home curated by
the CLI: an idle home stays idle, an edit of curation.yaml is carried out with no reload and
recomputes only what it decides, a failed blocking check holds everything below it until the
data is fixed, the UI's stale badges are what `talkvid curate --stale` runs; and what the UI
shows (`make dev` runs `talkvid dev`): the same graph, with the partitions, over Dagster's real
webserver and GraphQL API, and a ranged run showing each partition its own metadata and check
results."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from talkvid_assets.core.config import CONFIG_PARTS, load_config
from talkvid_assets.core.store import Store
from talkvid_assets.defs.names import LAUNCHER_TAG, ON_DEMAND_TAG
from talkvid_assets_tests.conftest import configure
from talkvid_assets_tests.devserver import (
    asset_nodes,
    asset_runs,
    check_executions,
    check_partition_statuses,
    demo_home,
    dev_server,
    graphql,
    launch_run,
    materializations,
    no_failed_runs,
    partition_keys,
    quiet,
    run_partitions,
    sensors,
    stale_statuses,
    stop_sensor_before_start,
    tag,
    talkvid,
    ticks_since,
    wait_for,
    wait_for_run,
    wait_for_ticks,
)
from talkvid_assets_tests.media import SAMPLES

pytestmark = pytest.mark.slow

# How long an idle home is watched for runs. The issue asks for 10 minutes; five automation
# ticks (each evaluates every asset's condition; the config sensor ticks in between) show the
# same thing in a test.
IDLE_TICKS = 5
SETTLE_S = 120  # an edit of curation.yaml carried out, or a fixed partition re-curated
TICKS_HELD = 3  # automation ticks over a failed blocking check
SCORES = ["quality_scores", "motion_scores", "head_detail_scores"]
QUALITY_CHECK = "every_segment_scored_in_range"
VERDICT_CHECK = "every_clip_judged_with_reasons"
GRAPH = """{
  assetNodes { assetKey { path } groupName partitionKeys }
  repositoriesOrError { ... on RepositoryConnection { nodes { jobs { name } } } }
}"""


def cli_curated(root: Path, names: list[str]) -> tuple[Path, list[str]]:
    """A demo home with ``names`` ingested and curated by `talkvid curate` (before any server:
    the CLI is the faster route); returns the home and the keys in registration order."""
    home = demo_home(root / "home")
    started = time.perf_counter()
    ingested = talkvid(home, "ingest", *(str(SAMPLES / name) for name in names)).stdout
    keys = [line.split("\t")[0] for line in ingested.splitlines()]
    talkvid(home, "curate")
    print(f"\n{len(names)} video(s) ingested and curated by the CLI in "
          f"{time.perf_counter() - started:.1f} s")  # fmt: skip
    return home, keys


@pytest.fixture(scope="module")
def one_video(tmp_path_factory) -> tuple[Path, list[str]]:
    """talk_demo (its clip passes the demo profile) curated by the CLI, once for the module.

    One video, so that automation carries a change out in one run per level: for several
    partitions Dagster's automation asks for a backfill, which the daemon takes up, and later
    closes, on a fixed loop of 30 s (a minute per change); test_automation.py's UI backfill runs
    that machinery.
    """
    return cli_curated(tmp_path_factory.mktemp("one"), ["talk_demo.mp4"])


@pytest.fixture(scope="module")
def three_videos(tmp_path_factory) -> tuple[Path, list[str]]:
    """Three videos, each with its own number of frames, curated by the CLI in one ranged run,
    once for the module."""
    return cli_curated(
        tmp_path_factory.mktemp("three"), ["talk_demo.mp4", "Megamind.avi", "carphone_pristine.mp4"]
    )


def copy_of(curated: tuple[Path, list[str]], tmp_path: Path) -> tuple[Path, list[str]]:
    """A copy of a module's CLI-curated home (its Dagster instance included), for one test to
    change."""
    home, keys = curated
    shutil.copytree(home, tmp_path / "home", symlinks=True)
    return tmp_path / "home", keys


def digests(home: Path) -> list[str]:
    rows = Store(home).query("SELECT DISTINCT config_digest FROM filtered_clips")
    return sorted(row["config_digest"] for row in rows)


def passing(home: Path) -> int:
    return Store(home).query("SELECT count(*) FILTER (WHERE passed) AS n FROM filtered_clips")[0][
        "n"
    ]


def counts(port: int, assets: list[str]) -> dict[str, int]:
    return {asset: len(materializations(port, asset)) for asset in assets}


def test_edits_of_curation_yaml_are_carried_out_with_no_reload(one_video, tmp_path):
    home, _ = copy_of(one_video, tmp_path)
    first = load_config(home).digest
    assert digests(home) == [first]
    passed_first = passing(home)
    assert passed_first >= 1  # talk_demo's clip passes the demo profile
    log = tmp_path / "dev.log"
    with dev_server(home, log) as port:
        assert {"config_sensor", "automation"} <= set(sensors(port))
        curated = {run["runId"] for run in asset_runs(port)}
        decoded = counts(port, ["segments", *SCORES])

        # (a) An idle home: the sensors tick, and no run is created at all.
        since, started = time.time(), time.monotonic()
        ticks = wait_for_ticks(port, "automation", IDLE_TICKS, since, log)
        new = [run for run in asset_runs(port) if run["runId"] not in curated]
        assert not new, f"an idle home ran {new}"
        print(f"idle: no run in {time.monotonic() - started:.0f} s, {len(ticks)} automation ticks")

        def carry_out(what: str, expected: str, corpus: bool) -> None:
            """Wait for the verdicts of ``expected``, and (with ``corpus``) for the corpus-wide
            assets following them."""
            edited = time.monotonic()

            def done() -> bool:
                return digests(home) == [expected] and quiet(port, log, tick=corpus)

            wait_for(what, done, SETTLE_S, log, pause=2)
            print(f"{what}: settled {time.monotonic() - edited:.1f} s after the edit")

        # (b) A threshold no clip reaches: the verdicts follow with no reload, nothing decodes.
        configure(home, "demo", thresholds="{quality_score: 9.9}")
        strict = load_config(home).digest
        assert strict != first
        carry_out("the stricter threshold carried out", strict, corpus=False)
        assert passing(home) == 0
        every = no_failed_runs(port, log)
        edits = [run for run in every if run["runId"] not in curated]
        assert edits, "no run carried the edit out"
        print(f"threshold edit: {len(edits)} run(s): {[run['assets'] for run in edits]}")
        assert all(run["status"] == "SUCCESS" for run in edits), edits
        assert any("filtered_clips" in run["assets"] for run in edits), edits
        for run in edits:
            assert not {"segments", *SCORES} & set(run["assets"]), run
        assert counts(port, ["segments", *SCORES]) == decoded

        # (c) The edit undone: the verdicts go back to the first configuration's.
        configure(home, "demo")
        assert load_config(home).digest == first
        seen = {run["runId"] for run in every}
        carry_out("the threshold edit undone", first, corpus=True)
        assert passing(home) == passed_first
        undo = [run for run in no_failed_runs(port, log) if run["runId"] not in seen]
        print(f"undo: {len(undo)} run(s): {[run['assets'] for run in undo]}")
        assert any("filtered_clips" in run["assets"] for run in undo), undo
        for run in undo:
            assert not {"segments", *SCORES} & set(run["assets"]), run
        assert counts(port, ["segments", *SCORES]) == decoded

        # Settled, the home holds one configuration's verdicts over a further tick.
        wait_for_ticks(port, "automation", 1, time.time(), log)
        assert digests(home) == [first]
        assert all(run["status"] == "SUCCESS" for run in no_failed_runs(port, log))


def test_a_failed_blocking_check_holds_automation_until_the_data_is_fixed(one_video, tmp_path):
    home, (key,) = copy_of(one_video, tmp_path)
    store = Store(home)
    good = sorted(row["quality_score"] for row in store.rows("quality_scores", key))
    # Bad data where the stage reads it: the cached scores now say 99 (outside the range).
    (cached,) = (home / "score_cache" / "quality_scores" / key).glob("*.parquet")
    table = pq.read_table(cached)
    pq.write_table(table.from_pylist([{**row, "quality_score": 99.0} for row in table.to_pylist()]),
                   cached)  # fmt: skip
    below = ["filtered_clips", "annotations", "talkvid_export", "talkvid_dataset"]
    log = tmp_path / "dev.log"
    with dev_server(home, log) as port:
        before = counts(port, below)

        def rescore() -> dict:
            """The UI's "Materialize" of the video's quality scores, with their check."""
            checks = [("quality_scores", QUALITY_CHECK)]
            run_id = launch_run(port, "curate", ["quality_scores"], key, checks)
            return wait_for_run(port, run_id, log, timeout=SETTLE_S)

        bad = rescore()
        assert bad["status"] == "FAILURE", bad  # the blocking check failed the run
        (latest, *_) = check_executions(port, "quality_scores", QUALITY_CHECK, key)
        assert latest["status"] == "FAILED" and latest["runId"] == bad["runId"], latest
        assert {row["quality_score"] for row in store.rows("quality_scores", key)} == {99.0}
        launched = {run["runId"] for run in asset_runs(port)}

        # Held: ticks pass, and nothing below the bad scores is built.
        started = time.monotonic()
        ticks = wait_for_ticks(port, "automation", TICKS_HELD, time.time(), log)
        assert counts(port, below) == before
        new = [run for run in asset_runs(port) if run["runId"] not in launched]
        assert not new, f"automation ran over a failed blocking check: {new}"
        print(f"held: {len(ticks)} automation ticks over {time.monotonic() - started:.0f} s, "
              "nothing below the failed check built")  # fmt: skip

        # The fix: the bad cache is gone and the stage is run again; automation does the rest.
        cached.unlink()
        fixed_at = time.monotonic()
        fixed = rescore()
        assert fixed["status"] == "SUCCESS", fixed
        (latest, *_) = check_executions(port, "quality_scores", QUALITY_CHECK, key)
        assert latest["status"] == "SUCCEEDED" and latest["runId"] == fixed["runId"], latest
        assert sorted(row["quality_score"] for row in store.rows("quality_scores", key)) == good

        def judged_again() -> bool:
            no_failed_runs(port, log, {bad["runId"]})
            return counts(port, ["filtered_clips"])["filtered_clips"] > before["filtered_clips"]

        wait_for("filtered_clips after the fix", judged_again, SETTLE_S, log, pause=2)
        print(f"fixed: filtered_clips judged again {time.monotonic() - fixed_at:.1f} s after "
              "the fix")  # fmt: skip
        wait_for("automation settling", lambda: quiet(port, log, {bad["runId"]}), SETTLE_S, log)
        print(f"materializations {before} -> {counts(port, below)}")
        (judged, *_) = materializations(port, "filtered_clips", key)
        (automated,) = [run for run in asset_runs(port) if run["runId"] == judged["runId"]]
        assert tag(automated, "dagster/from_automation_condition") == "true", automated
        (verdicts, *_) = check_executions(port, "filtered_clips", VERDICT_CHECK, key)
        assert verdicts["status"] == "SUCCEEDED" and verdicts["runId"] == judged["runId"]


def observed(port: int, since: float, assets: list[str], keys: list[str]) -> bool:
    """A config sensor tick began after ``since`` and finished, and GraphQL calls some
    (asset, partition) stale or missing."""
    ticked = ticks_since(port, "config_sensor", since)
    return bool(ticked) and set(stale_statuses(port, assets, keys).values()) != {"FRESH"}


def test_staleness_in_graphql_agrees_with_the_cli(three_videos, tmp_path):
    home, keys = copy_of(three_videos, tmp_path)
    stop_sensor_before_start(home, "automation")  # only the CLI curates here
    log = tmp_path / "dev.log"
    edits = [  # each kept while the next is added
        ("thresholds", "{quality_score: 9.9}", {"filtered_clips"}),
        ("backends", "{head_detail: dlib-hog}", {"head_detail_scores", "filtered_clips"}),
        ("scene_detector", "content", {"segments", "filtered_clips"}),
    ]
    with dev_server(home, log) as port:
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
                (
                    run
                    for run in asset_runs(port, {LAUNCHER_TAG: "cli"})
                    if run["runId"] not in seen
                ),
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


@pytest.fixture(scope="module")
def served(three_videos, tmp_path_factory) -> Iterator[tuple[Path, list[str], int]]:
    """`talkvid dev` on a copy of the three-video home, shared by the tests that only read:
    the home, its keys and the server's port."""
    root = tmp_path_factory.mktemp("served")
    home, keys = copy_of(three_videos, root)
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
