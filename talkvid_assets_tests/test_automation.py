"""Automation under `talkvid dev` (webserver + daemon): a file dropped into the inbox is curated
with no command in at most two runs, and a UI backfill over every partition does what `talkvid
curate` does."""

from __future__ import annotations

import json
import shutil
import time

import pytest

from talkvid_assets.core.partition_keys import partition_key
from talkvid_assets.core.source_files import video_key
from talkvid_assets.core.store import Store
from talkvid_assets.defs.automation import AUTOMATION_INTERVAL_S
from talkvid_assets_tests.devserver import (
    INBOX_TICK_S,
    PARTITIONED,
    VIDEOS,
    clip_counts,
    demo_home,
    dev_server,
    launch_backfill,
    materialized,
    partition_keys,
    run_span,
    runs,
    sensors,
    stop_sensor_before_start,
    tag,
    talkvid,
    wait_for,
    wait_for_backfill,
)
from talkvid_assets_tests.media import SAMPLES

pytestmark = pytest.mark.slow


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
        assert {"inbox_sensor", "config_sensor", "automation"} <= set(sensors(port))
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

        # The same bytes under another name: the sensor registers them, and requests nothing.
        copy = inbox / "the same talk again.mp4"
        shutil.copy(SAMPLES / "talk_demo.mp4", copy)

        def copy_seen() -> bool:
            cursor = sensors(port)["inbox_sensor"]["sensorState"]["typeSpecificData"]
            done = json.loads(cursor.get("lastCursor") or "{}").get("recent", [])
            return any(stamp.startswith(f"{copy}:") for stamp in done)

        wait_for("the inbox sensor settling the copy", copy_seen, 60, log)
        time.sleep(2 * INBOX_TICK_S)  # two more ticks: whatever it would request is requested
        assert partition_keys(port) == [key]
        assert [item["runId"] for item in curation_runs(port)] == [run["runId"]]
        assert materialized(port, "talkvid_export") == [key]

        # Declarative automation: the merged dataset follows the new per-video export.
        dataset = home / "exports" / "talkvid.json"

        def dataset_written() -> bool:
            return dataset.exists() and f'"{key}-0000"' in dataset.read_text()

        wait_for("talkvid_dataset following the export", dataset_written, 120, log, pause=2)
        time.sleep(3 * INBOX_TICK_S)
        every = runs(port)
        assert len(every) <= 2, f"one video, {len(every)} runs: {every}"

        # The same raw_videos again, from the UI: its data version is unchanged, so automation
        # starts nothing below it and nothing is decoded again.
        decoded = Store(home).rows("decode_reports", key)
        backfill = wait_for_backfill(port, launch_backfill(port, [key], ["raw_videos"]), log)
        assert backfill["status"] in ("COMPLETED", "COMPLETED_SUCCESS"), backfill
        time.sleep(3 * AUTOMATION_INTERVAL_S + 5)  # three automation ticks
        assert len(runs(port)) == len(every) + 1, runs(port)
        assert Store(home).rows("decode_reports", key) == decoded


def test_a_ui_backfill_of_all_partitions_gives_what_the_cli_gives(tmp_path):
    paths = [str(SAMPLES / name) for name in VIDEOS]

    # The baseline: the same videos through `talkvid curate` in a fresh home, before any server.
    cli_home = demo_home(tmp_path / "cli")
    talkvid(cli_home, "ingest", *paths)
    started = time.perf_counter()
    talkvid(cli_home, "curate")
    cli_seconds = time.perf_counter() - started
    cli_clips = clip_counts(cli_home)

    home = demo_home(tmp_path / "home")
    keys = sorted(
        {line.split("\t")[0] for line in talkvid(home, "ingest", *paths).stdout.splitlines()}
    )
    assert len(keys) == len(VIDEOS)
    stop_sensor_before_start(home, "automation")
    log = tmp_path / "dev.log"
    with dev_server(home, log) as port:
        state = sensors(port)["automation"]["sensorState"]
        assert state["status"] == "STOPPED"
        assert sorted(partition_keys(port)) == keys
        assert runs(port) == [], "something curated the partitions before the backfill"

        backfill_id = launch_backfill(port, keys, PARTITIONED)
        backfill = wait_for_backfill(port, backfill_id, log)
        assert backfill["status"] in ("COMPLETED", "COMPLETED_SUCCESS"), backfill
        assert sorted(materialized(port, "talkvid_export")) == keys
        backfill_runs = runs(port, {"dagster/backfill": backfill_id})
        all_runs = curation_runs(port)

    assert backfill_runs
    assert {run["runId"] for run in all_runs} == {run["runId"] for run in backfill_runs}
    assert all(run["status"] == "SUCCESS" for run in backfill_runs), backfill_runs
    span = run_span(backfill_runs)
    print(
        f"\nbackfill: {len(backfill_runs)} runs over {len(keys)} partitions in {span:.1f} s "
        f"(first start to last end); talkvid curate: {cli_seconds:.1f} s "
        f"(ratio {span / cli_seconds:.2f}); launched to {backfill['status']}: "
        f"{backfill['endTimestamp'] - backfill['timestamp']:.1f} s"
    )
    clips = clip_counts(home)
    assert set(clips) == set(keys), f"videos without clips: {set(keys) - set(clips)}"
    assert clips == cli_clips  # the same results by either route; `make bench` compares times
