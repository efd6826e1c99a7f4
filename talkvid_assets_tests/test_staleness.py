"""Stale-aware re-curation: an edit to curation.yaml re-runs exactly what it changes."""

import time

import pytest
from dagster import AssetKey

from talkvid_assets.core.store import Store
from talkvid_assets.defs.build import build_definitions
from talkvid_assets.launch import curate
from talkvid_assets_tests.conftest import configure, ingest_and_curate, project_instance
from talkvid_assets_tests.media import SAMPLES

pytestmark = pytest.mark.slow
PARTITIONED = [
    "raw_videos", "segments", "quality_scores", "motion_scores", "head_detail_scores",
    "filtered_clips", "annotations", "talkvid_export",
]  # fmt: skip
# What the CLI rewrites after any video's run: the merged export and the corpus-wide assets.
CORPUS = {"talkvid_dataset", "speakers", "bench_strata", "training_split"}
# A re-judge: the verdicts, the annotations of the passing clips (their face descriptors kept:
# no decode), the export and the corpus.
REJUDGED = {"filtered_clips", "annotations", "talkvid_export", *CORPUS}
SCORES = "SELECT clip_id, quality_score, motion_ratio, min_rotation FROM clips ORDER BY clip_id"


def materializations(instance) -> dict[str, int]:
    return {
        asset: len(instance.fetch_materializations(AssetKey(asset), limit=1000).records)
        for asset in [*PARTITIONED, *sorted(CORPUS)]
    }


def test_a_threshold_edit_rejudges_without_rescoring(tmp_path):
    store = Store(tmp_path / "home")
    videos = [SAMPLES / "talk_demo.mp4", SAMPLES / "Megamind.avi"]
    with project_instance(tmp_path / "dagster") as instance:
        started = time.perf_counter()
        keys, outcomes = ingest_and_curate(instance, store, videos)
        first = time.perf_counter() - started
        assert all(outcome.success for outcome in outcomes)
        before, scores = materializations(instance), store.query(SCORES)
        assert before == {
            **dict.fromkeys(PARTITIONED, 2),
            **dict.fromkeys(CORPUS, 1),
            "bench_strata": 4,
        }

        configure(store.home, "demo", thresholds="{quality_score: 9.9}")
        started = time.perf_counter()
        outcomes = curate(instance, store.home, list(keys.values()))
        again = time.perf_counter() - started
        print(f"first curation {first:.1f} s, re-judging after the edit {again:.1f} s")
        assert all(outcome.success for outcome in outcomes)
        assert {asset for outcome in outcomes for asset in outcome.assets} == REJUDGED
        after = materializations(instance)
        ran = {asset for asset in after if after[asset] > before[asset]}
        assert ran == REJUDGED
        assert store.query(SCORES) == scores
        reasons = store.query("SELECT reject_reasons FROM clips")
        assert all(
            any(r.startswith("quality_score=") for r in row["reject_reasons"]) for row in reasons
        )
        assert store.query("SELECT count(*) AS n FROM clips WHERE passed") == [{"n": 0}]
        assert curate(instance, store.home, list(keys.values())) == []


def test_rescoring_one_stage_decodes_once_and_reuses_cached_scores(tmp_path):
    store = Store(tmp_path / "home")
    with project_instance(tmp_path / "dagster") as instance:
        keys, _ = ingest_and_curate(instance, store, [SAMPLES / "Megamind.avi"])
        (key,) = keys.values()
        segments, scores = store.rows("segments", key), store.query(SCORES)
        job = build_definitions(store.home).resolve_job_def("curate")
        for _ in range(2):  # the second time, the score cache answers without a decode
            result = job.execute_in_process(
                instance=instance, partition_key=key, asset_selection=[AssetKey("quality_scores")]
            )
            assert result.success
            materialized = {
                event.asset_key.to_user_string()
                for event in result.get_asset_materialization_events()
            }
            assert materialized == {"quality_scores"}
        assert store.rows("segments", key) == segments
        assert store.query(SCORES) == scores
        assert list((store.home / "score_cache" / "quality_scores" / key).glob("*.parquet"))
        # The verdicts now precede the new quality scores: filtered_clips and the export are stale.
        (run,) = [o for o in curate(instance, store.home, [key]) if o.videos]
        assert set(run.assets) == {"filtered_clips", "annotations", "talkvid_export"}


def test_a_run_with_no_config_keeps_the_homes_profile_and_a_contrary_one_is_refused(tmp_path):
    """What a launchpad run does: the job of the loaded definitions, with or without config."""
    store = Store(tmp_path / "home")
    with project_instance(tmp_path / "dagster") as instance:
        keys, _ = ingest_and_curate(instance, store, [SAMPLES / "talk_demo.mp4"], profile="demo")
        (key,) = keys.values()
        job = build_definitions(store.home).resolve_job_def("curate")
        assert job.execute_in_process(instance=instance, partition_key=key).success
        assert {row["profile"] for row in store.rows("filtered_clips", key)} == {"demo@v1"}
        contrary = {
            "resources": {"talkvid": {"config": {"home": str(store.home), "profile": "paper"}}}
        }
        refused = job.execute_in_process(
            instance=instance, partition_key=key, run_config=contrary, raise_on_error=False
        )
        assert not refused.success
        (failure,) = [event for event in refused.all_events if event.is_step_failure]
        assert "curated with one configuration" in str(failure.step_failure_data.error)
        assert {row["profile"] for row in store.rows("filtered_clips", key)} == {"demo@v1"}


def test_the_stale_sensor_leaves_a_just_ingested_video_to_the_inbox_run(tmp_path):
    """The inbox sensor adds a partition, then its run appears; in between the stale sensor
    must not request the same video (it would be curated twice)."""
    from dagster import build_sensor_context

    from talkvid_assets.core.pipeline import register_source
    from talkvid_assets.defs.resources import TalkvidResource
    from talkvid_assets.defs.sensors import stale_sensor

    store = Store(tmp_path / "home")
    configure(store.home)
    key, _ = register_source(store, SAMPLES / "talk_demo.mp4")
    defs = build_definitions(store.home)
    with project_instance(tmp_path / "dagster") as instance:
        instance.add_dynamic_partitions("videos", [key])

        def evaluate():
            context = build_sensor_context(
                instance=instance, repository_def=defs.get_repository_def()
            )
            return stale_sensor(context, talkvid=TalkvidResource(home=str(store.home)))

        assert not evaluate().run_requests, "left to the inbox sensor's run"
        (row,) = store.rows("sources", key)
        row["ingested_at"] = "2020-01-01T00:00:00+00:00"  # ingested long before the grace
        store.write("sources", key, [row])
        (request,) = evaluate().run_requests
        assert request.partition_key == key
