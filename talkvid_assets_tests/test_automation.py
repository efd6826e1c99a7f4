"""Automation under `talkvid dev` (webserver + daemon): a file dropped into the inbox is curated
with no command in at most two runs, so is a list of URLs dropped there after it (downloaded
from a real HTTP server on 127.0.0.1), and a UI backfill over every partition does what
`talkvid curate` does."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pytest

from talkvid_assets.core.models import sha256_of
from talkvid_assets.core.partition_keys import partition_key
from talkvid_assets.core.source_files import video_key
from talkvid_assets.core.store import Store
from talkvid_assets.defs.build import CURATE_JOB
from talkvid_assets_tests.commands import talkvid
from talkvid_assets_tests.devserver import (
    PARTITIONED,
    clip_counts,
    demo_home,
    dev_server,
    launch_backfill,
    launch_run,
    materializations,
    materialized,
    partition_keys,
    quiet,
    run_span,
    runs,
    sensors,
    stop_sensor_before_start,
    tag,
    wait_for,
    wait_for_backfill,
    wait_for_run,
    wait_for_ticks,
)
from talkvid_assets_tests.http_server import local_server
from talkvid_assets_tests.media import SAMPLES

pytestmark = pytest.mark.slow
PLAUSIBLE = "accepted_sources_are_plausible"  # raw_videos' check, run with it from the UI
# Two partitions, short videos: one with a clip that passes the demo profile, one without.
BACKFILLED = ["talk_demo.mp4", "carphone_distorted.mp4"]
LISTED = "carphone_distorted.mp4"  # named in a list of URLs dropped into the inbox


def curation_runs(port: int) -> list[dict]:
    """Runs of video partitions (the dataset's automation runs are unpartitioned)."""
    partitioned = ("dagster/partition", "dagster/asset_partition_range_start")
    return [run for run in runs(port) if any(tag(run, key) for key in partitioned)]


def test_inbox_file_is_curated_with_no_command(tmp_path):
    home = demo_home(tmp_path / "home")
    inbox = home / "inbox"
    inbox.mkdir()
    log = tmp_path / "dev.log"
    key = partition_key(SAMPLES / "talk_demo.mp4", video_key(SAMPLES / "talk_demo.mp4"))
    with dev_server(home, log) as port:
        assert {"inbox_sensor", "url_list_sensor", "config_sensor", "automation"} <= set(
            sensors(port)
        )
        shutil.copy(SAMPLES / "talk_demo.mp4", inbox / "talk_demo.mp4")

        def exported() -> bool:
            every = runs(port)
            failed = [run for run in every if run["status"] in ("FAILURE", "CANCELED")]
            assert not failed, f"runs failed: {failed}\n{log.read_text()[-4000:]}"
            finished = every and all(run["status"] == "SUCCESS" for run in every)
            return finished and key in materialized(port, "talkvid_export")

        started = time.monotonic()
        wait_for("the inbox file's talkvid_export partition", exported, 180, log, pause=2)
        print(f"\ninbox file curated {time.monotonic() - started:.1f} s after the copy")
        passed = Store(home).query(
            "SELECT count(*) AS n FROM clips WHERE passed AND video_id = :key", {"key": key}
        )[0]["n"]
        assert passed >= 1
        assert partition_keys(port) == [key]
        (run,) = curation_runs(port)  # Dagster's automation, one run for the new partition
        assert run["status"] == "SUCCESS"
        assert tag(run, "dagster/partition") == key

        # The same bytes under another name, while the merged dataset follows the new per-video
        # export (declarative automation): the sensor registers them, and requests nothing.
        copy = inbox / "the same talk again.mp4"
        shutil.copy(SAMPLES / "talk_demo.mp4", copy)
        dataset = home / "exports" / "talkvid.json"

        def dataset_written() -> bool:
            return dataset.exists() and f'"{key}-0000"' in dataset.read_text()

        def copy_seen() -> bool:
            cursor = sensors(port)["inbox_sensor"]["sensorState"]["typeSpecificData"]
            done = json.loads(cursor.get("lastCursor") or "{}").get("recent", [])
            return any(stamp.startswith(f"{copy}:") for stamp in done)

        wait_for("talkvid_dataset following the export", dataset_written, 120, log, pause=2)
        wait_for("the inbox sensor settling the copy", copy_seen, 60, log)
        # Two automation ticks after it, and nothing left to run: whatever the copy would make
        # automation request is requested by then.
        wait_for_ticks(port, "automation", 2, time.time(), log)
        wait_for("automation settling", lambda: quiet(port, log), 120, log)
        assert partition_keys(port) == [key]
        assert [item["runId"] for item in curation_runs(port)] == [run["runId"]]
        assert materialized(port, "talkvid_export") == [key]
        every = runs(port)
        assert len(every) <= 2, f"one video, {len(every)} runs: {every}"

        # The same raw_videos again, from the UI: its data version is unchanged, so automation
        # starts nothing below it and nothing is decoded again.
        decoded = Store(home).rows("decode_reports", key)
        again = launch_run(port, CURATE_JOB, ["raw_videos"], key, [("raw_videos", PLAUSIBLE)])
        assert wait_for_run(port, again, log)["status"] == "SUCCESS"
        wait_for_ticks(port, "automation", 3, time.time(), log)
        assert len(runs(port)) == len(every) + 1, runs(port)
        assert Store(home).rows("decode_reports", key) == decoded

        # A list of URLs dropped into the same inbox: its video is downloaded (the first
        # transfer is cut half way and resumed) and curated, again with no command.
        listed = partition_key(SAMPLES / LISTED, video_key(SAMPLES / LISTED))
        with local_server(SAMPLES) as server:
            (inbox / "talks.urls").write_text(f"{server.url}/cut/{LISTED}\n")

            def listed_exported() -> bool:
                failed = [run for run in runs(port) if run["status"] in ("FAILURE", "CANCELED")]
                assert not failed, f"runs failed: {failed}\n{log.read_text()[-4000:]}"
                return listed in materialized(port, "talkvid_export")

            wait_for("the listed video's talkvid_export partition", listed_exported, 240, log)
        (shown,) = materializations(port, "url_sources")  # what the UI shows of its run
        assert (shown["metadata"]["ingested urls"], shown["metadata"]["new videos"]) == (1, 1)
    (row,) = Store(home).query("SELECT status, video_id, source_path FROM url_sources")
    assert (row["status"], row["video_id"]) == ("ingested", listed)
    assert sha256_of(Path(row["source_path"])) == sha256_of(SAMPLES / LISTED)


def test_a_ui_backfill_of_all_partitions_gives_what_the_cli_gives(tmp_path):
    paths = [str(SAMPLES / name) for name in BACKFILLED]
    home = demo_home(tmp_path / "home")
    keys = sorted(
        {line.split("\t")[0] for line in talkvid(home, "ingest", *paths).stdout.splitlines()}
    )
    assert len(keys) == len(BACKFILLED)
    stop_sensor_before_start(home, "automation")
    log = tmp_path / "dev.log"
    with dev_server(home, log) as port:
        state = sensors(port)["automation"]["sensorState"]
        assert state["status"] == "STOPPED"
        assert sorted(partition_keys(port)) == keys
        assert runs(port) == [], "something curated the partitions before the backfill"

        backfill_id = launch_backfill(port, keys, PARTITIONED)
        # The baseline, while Dagster's backfill daemon (a loop of 30 s) has yet to take the
        # backfill up: the same videos through `talkvid curate` in a home of their own.
        cli_home = demo_home(tmp_path / "cli")
        talkvid(cli_home, "ingest", *paths)
        started = time.perf_counter()
        talkvid(cli_home, "curate")
        cli_seconds = time.perf_counter() - started
        backfill = wait_for_backfill(port, backfill_id, log)
        assert backfill["status"] in ("COMPLETED", "COMPLETED_SUCCESS"), backfill
        assert sorted(materialized(port, "talkvid_export")) == keys
        backfill_runs = runs(port, {"dagster/backfill": backfill_id})
        all_runs = curation_runs(port)

    assert backfill_runs
    assert {run["runId"] for run in all_runs} == {run["runId"] for run in backfill_runs}
    assert all(run["status"] == "SUCCESS" for run in backfill_runs), backfill_runs
    print(
        f"\nbackfill: {len(backfill_runs)} runs over {len(keys)} partitions in "
        f"{run_span(backfill_runs):.1f} s (first start to last end); launched to "
        f"{backfill['status']}: {backfill['endTimestamp'] - backfill['timestamp']:.1f} s; "
        f"talkvid curate meanwhile: {cli_seconds:.1f} s"
    )
    clips = clip_counts(home)
    assert set(clips) == set(keys), f"videos without clips: {set(keys) - set(clips)}"
    assert clips == clip_counts(cli_home)  # the same by either route; `make bench` times them
