"""Automation never asks twice for a video whose run has not started yet (issue 17, hostile 6).

Dagster's ``IN_PROGRESS_RUN_STATUSES`` leaves QUEUED out; the planner that used it requested a
second run for partitions whose first one was still waiting in the queue. The automation
condition's ``in_progress()`` reads a partitioned asset's planned materializations and counts
every run not finished (dagster/_core/storage/partition_status_cache.py: anything outside
SUCCESS, FAILURE, CANCELED), so a video whose run waits is left alone, and requested once that
run is gone. The waiting run here is NOT_STARTED: an instance without a code location cannot
create a QUEUED run (it needs the location's origin), and Dagster treats both alike.
"""

from dagster import AssetKey, AssetSelection, DagsterRunStatus, evaluate_automation_conditions

from talkvid_assets.core.sources import register_source
from talkvid_assets.defs.build import build_definitions
from talkvid_assets.defs.config_assets import observe_config
from talkvid_assets.defs.names import CURATE_JOB
from talkvid_assets.launch import register_partitions
from talkvid_assets_tests.conftest import configure, project_instance
from talkvid_assets_tests.media import SAMPLES

RAW = AssetKey("raw_videos")
# Only raw_videos' condition is evaluated: what is asked of the video is asked of it, and the
# whole graph's conditions take seconds per tick.
ONLY_RAW = AssetSelection.assets(RAW)


def test_a_video_whose_run_waits_is_not_requested_again(tmp_path, store):
    configure(store.home)
    waiting_key, _ = register_source(store, SAMPLES / "talk_demo.mp4")
    free_key, _ = register_source(store, SAMPLES / "bikes.mp4")
    defs = build_definitions(store.home)
    with project_instance(tmp_path / "dagster") as instance:
        observe_config(instance, store.home)  # what config_sensor records first
        # The daemon's first tick comes before the videos (a new partition is what it requests).
        start = evaluate_automation_conditions(defs, instance, ONLY_RAW)
        register_partitions(instance, [waiting_key, free_key])
        job = defs.resolve_job_def(CURATE_JOB)
        run = instance.create_run_for_job(job_def=job, tags={"dagster/partition": waiting_key})
        assert instance.get_run_by_id(run.run_id).status == DagsterRunStatus.NOT_STARTED

        first = evaluate_automation_conditions(defs, instance, ONLY_RAW, cursor=start.cursor)
        assert first.get_requested_partitions(RAW) == {free_key}

        # The waiting run is cancelled before it starts: the video is requested then, once.
        instance.report_run_canceled(run)
        second = evaluate_automation_conditions(defs, instance, ONLY_RAW, cursor=first.cursor)
        assert second.get_requested_partitions(RAW) == {waiting_key}
