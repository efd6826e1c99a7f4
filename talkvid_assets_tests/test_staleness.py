"""Stale-aware re-curation through the CLI's route: what runs is what Dagster itself calls missing
or stale, an edit of curation.yaml re-runs exactly what it changes (no reload), an identical
re-run changes nothing downstream, and a failed blocking check blocks until the data is fixed."""

import time

import pyarrow.parquet as pq
import pytest
from dagster import AssetCheckKey, AssetKey

from talkvid_assets.core.store import Store
from talkvid_assets.defs.build import build_definitions
from talkvid_assets.defs.config_assets import observe_config
from talkvid_assets.defs.dagster_stale import outdated
from talkvid_assets.launch import curate, video_assets
from talkvid_assets_tests.conftest import configure, ingest_and_curate, project_instance
from talkvid_assets_tests.media import SAMPLES

pytestmark = pytest.mark.slow
PARTITIONED = [
    "raw_videos", "segments", "quality_scores", "motion_scores", "head_detail_scores",
    "filtered_clips", "annotations", "talkvid_export",
]  # fmt: skip
# What runs after any video changed: the merged export and the corpus-wide assets.
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


def dagster_says_outdated(instance, home, keys) -> set[tuple[str, str]]:
    """What Dagster's stale status (the UI's badges) calls missing or stale once it has seen
    the current curation.yaml."""
    defs = build_definitions(home)
    observe_config(instance, home)
    pairs = [(asset, key) for key in keys for asset in video_assets(defs)]
    return outdated(instance, defs.resolve_asset_graph(), pairs)


def test_a_threshold_edit_rejudges_without_rescoring_and_back_again(
    tmp_path, curated_talk_megamind
):
    curated = curated_talk_megamind.copy(tmp_path / "home")
    store, keys = curated.store, curated.keys
    with curated.instance() as instance:
        before, scores = materializations(instance), store.query(SCORES)
        assert before == {**dict.fromkeys(PARTITIONED, 2), **dict.fromkeys(CORPUS, 1)}
        digests = store.query("SELECT DISTINCT config_digest FROM filtered_clips")

        configure(store.home, "demo", thresholds="{quality_score: 9.9}")
        # Dagster's own answer, before anything runs: exactly the verdicts are stale.
        stale = dagster_says_outdated(instance, store.home, list(keys.values()))
        assert stale == {("filtered_clips", key) for key in keys.values()}
        started = time.perf_counter()
        outcomes = curate(instance, store.home, list(keys.values()))
        again = time.perf_counter() - started
        print(f"re-judging after the edit {again:.1f} s")
        assert all(outcome.success for outcome in outcomes)
        # The first wave is what Dagster called stale; the rest followed changed data.
        assert set(outcomes[0].assets) == {"filtered_clips"}
        assert {asset for outcome in outcomes for asset in outcome.assets} == REJUDGED
        after = materializations(instance)
        assert {asset for asset in after if after[asset] > before[asset]} == REJUDGED
        assert store.query(SCORES) == scores
        reasons = store.query("SELECT reject_reasons FROM clips")
        assert len(reasons) == 5  # talk_demo's one clip and Megamind's four, all judged again
        assert all(
            "quality_score" in {r["check"] for r in row["reject_reasons"]} for row in reasons
        )
        assert store.query("SELECT count(*) AS n FROM clips WHERE passed") == [{"n": 0}]
        assert curate(instance, store.home, list(keys.values())) == []
        assert dagster_says_outdated(instance, store.home, list(keys.values())) == set()

        # Back to the value used before: judged again (no run key remembers the old request).
        configure(store.home, "demo")
        outcomes = curate(instance, store.home, list(keys.values()))
        assert "filtered_clips" in outcomes[0].assets
        assert store.query("SELECT DISTINCT config_digest FROM filtered_clips") == digests
        assert store.query("SELECT count(*) AS n FROM clips WHERE passed") == [{"n": 1}]


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
        # The same scores have the same data version: nothing downstream is stale.
        assert dagster_says_outdated(instance, store.home, [key]) == set()
        assert curate(instance, store.home, [key]) == []


def test_an_identical_raw_videos_run_starts_nothing_downstream(
    tmp_path, curated_talk_megamind_bikes
):
    """The videos were curated in one ranged run; re-running one of them alone, with the same
    result, keeps its data version (defs.per_partition), so nothing is decoded again."""
    curated = curated_talk_megamind_bikes.copy(tmp_path / "home")
    store, keys = curated.store, curated.keys
    with curated.instance() as instance:
        assert len(curated.outcomes[0].partitions) == 3  # one ranged run
        key = keys[SAMPLES / "talk_demo.mp4"]
        job = build_definitions(store.home).resolve_job_def("curate")
        result = job.execute_in_process(
            instance=instance, partition_key=key, asset_selection=[AssetKey("raw_videos")]
        )
        assert result.success
        assert dagster_says_outdated(instance, store.home, list(keys.values())) == set()
        decoded = store.rows("decode_reports", key)
        assert curate(instance, store.home, list(keys.values())) == []
        assert store.rows("decode_reports", key) == decoded


def test_a_ranged_run_shows_each_video_its_own_metadata_and_checks(curated_talk_megamind_bikes):
    curated = curated_talk_megamind_bikes  # read only: the shared home itself
    store, keys = curated.store, curated.keys
    with curated.instance() as instance:
        assert len(curated.outcomes[0].partitions) == 3
        records = instance.fetch_materializations(AssetKey("segments"), limit=10).records
        assert len(records) == 3
        for record in records:
            event = record.asset_materialization
            key = event.partition
            frames = sum(row["frames_decoded"] for row in store.rows("decode_reports", key))
            assert event.metadata["segments"].value == len(store.rows("segments", key))
            assert event.metadata["frames_decoded"].value == frames
            assert "contact_sheet" in event.metadata
            source = next(path for path, k in keys.items() if k == key)
            assert event.metadata["source"].value == source.name
        check = AssetCheckKey(AssetKey("segments"), "clip_bounds_are_consistent")
        infos = instance.event_log_storage.get_asset_check_partition_info([check])
        # Dagster also records the range's own result, without a partition (per_partition).
        mine = [info for info in infos if info.partition_key is not None]
        assert {info.partition_key for info in mine} == set(keys.values())
        assert {info.latest_execution_status.value for info in mine} == {"SUCCEEDED"}


def test_a_failed_blocking_check_blocks_every_later_cli_run_until_fixed(tmp_path, curated_talk):
    curated = curated_talk.copy(tmp_path / "home")
    store = curated.store
    with curated.instance() as instance:
        (key,) = curated.keys.values()
        # Bad data where a stage reads it: the cached scores now say 99 (outside the range).
        (cached,) = (store.home / "score_cache" / "quality_scores" / key).glob("*.parquet")
        table = pq.read_table(cached).to_pylist()
        good = [dict(row) for row in table]
        pq.write_table(
            pq.read_table(cached).from_pylist([{**row, "quality_score": 99.0} for row in table]),
            cached,
        )
        job = build_definitions(store.home).resolve_job_def("curate")
        result = job.execute_in_process(
            instance=instance,
            partition_key=key,
            asset_selection=[AssetKey("quality_scores"), AssetKey("filtered_clips")],
            raise_on_error=False,
        )
        assert not result.success
        verdicts = len(instance.fetch_materializations(AssetKey("filtered_clips"), limit=9).records)
        for _ in range(2):  # every later curate re-checks, and builds nothing on top
            outcomes = curate(instance, store.home, [key])
            assert outcomes and not outcomes[0].success
            assert "quality_scores/every_segment_scored_in_range" in outcomes[0].error
            assert "99" in outcomes[0].error
            count = len(
                instance.fetch_materializations(AssetKey("filtered_clips"), limit=9).records
            )
            assert count == verdicts
        # The fix: the bad scores are gone; the next curate completes what was held back.
        cached.unlink()
        outcomes = curate(instance, store.home, [key])
        assert all(outcome.success for outcome in outcomes)
        assert "filtered_clips" in {asset for outcome in outcomes for asset in outcome.assets}
        assert {row["quality_score"] for row in store.rows("quality_scores", key)} == {
            row["quality_score"] for row in good
        }


def test_a_run_with_no_config_keeps_the_homes_profile_and_a_contrary_one_is_refused(
    tmp_path, curated_talk
):
    """What a launchpad run does: the job of the loaded definitions, with or without config."""
    curated = curated_talk.copy(tmp_path / "home")
    store = curated.store
    with curated.instance() as instance:
        (key,) = curated.keys.values()
        job = build_definitions(store.home).resolve_job_def("curate")
        assert job.execute_in_process(instance=instance, partition_key=key).success
        assert {row["profile"] for row in store.rows("filtered_clips", key)} == {"demo@v2"}
        contrary = {
            "resources": {"talkvid": {"config": {"home": str(store.home), "profile": "paper"}}}
        }
        refused = job.execute_in_process(
            instance=instance, partition_key=key, run_config=contrary, raise_on_error=False
        )
        assert not refused.success
        (failure,) = [event for event in refused.all_events if event.is_step_failure]
        assert "curated with one configuration" in str(failure.step_failure_data.error)
        assert {row["profile"] for row in store.rows("filtered_clips", key)} == {"demo@v2"}
