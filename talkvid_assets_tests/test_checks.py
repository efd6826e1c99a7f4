"""Every asset check passes on a clean curation and fails on a partition broken on purpose."""

import json
from collections.abc import Callable

import pytest
from dagster import AssetCheckKey, AssetCheckSeverity, AssetKey

from talkvid_assets.core.failures import Failure, FailureKind
from talkvid_assets.core.store import Store
from talkvid_assets.defs.build import build_definitions

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def curated(tmp_path_factory, curated_talk):
    """A copy of the curated talk_demo home: the tests break its data on purpose."""
    home = curated_talk.copy(tmp_path_factory.mktemp("checks") / "home")
    with home.instance() as instance:
        yield home.store, instance, next(iter(home.keys.values()))


def run_check(store: Store, instance, asset: str, name: str, key: str | None):
    """Execute one check alone, through Dagster, on the current store contents."""
    defs = build_definitions(store.home)
    job = defs.resolve_job_def("curate") if key else defs.resolve_implicit_global_asset_job_def()
    check = AssetCheckKey.from_user_string(f"{asset}:{name}")
    subset = job.get_subset(asset_selection=set(), asset_check_selection={check})
    result = subset.execute_in_process(instance=instance, partition_key=key, raise_on_error=False)
    (evaluation,) = result.get_asset_check_evaluations()
    return evaluation


def rewrite(store: Store, table: str, key: str, change: Callable[[list[dict]], list[dict]]):
    store.write(table, key, change(store.rows(table, key)))


def first(change: Callable[[dict], None]) -> Callable[[list[dict]], list[dict]]:
    def apply(rows: list[dict]) -> list[dict]:
        change(rows[0])
        return rows

    return apply


TRUNCATED = Failure("decode", FailureKind.TRUNCATED, value=3.0, threshold=6.0).row()
MADE_UP = Failure("made_up", value=1.0, rule=">=", threshold=2.0).row()
BREAKAGES = {
    ("raw_videos", "accepted_sources_are_plausible"): lambda store, key: rewrite(
        store, "raw_videos", key, first(lambda row: row.update(fps=0.0))
    ),
    ("segments", "clip_bounds_are_consistent"): lambda store, key: rewrite(
        store, "segments", key, first(lambda row: row.update(start_time=9.98, end_time=9.9))
    ),
    ("segments", "decode_covered_the_source"): lambda store, key: rewrite(
        store, "decode_reports", key, first(lambda row: row.update(failures=[TRUNCATED]))
    ),
    ("quality_scores", "every_segment_scored_in_range"): lambda store, key: rewrite(
        store, "quality_scores", key, first(lambda row: row.update(quality_score=99.0))
    ),
    ("motion_scores", "every_segment_scored_in_range"): lambda store, key: rewrite(
        store, "motion_scores", key, lambda rows: []
    ),
    ("head_detail_scores", "every_segment_scored_in_range"): lambda store, key: rewrite(
        store, "head_detail_scores", key, lambda rows: rows + rows
    ),
    ("filtered_clips", "every_clip_judged_with_reasons"): lambda store, key: rewrite(
        store, "filtered_clips", key, first(lambda row: row.update(reject_reasons=[MADE_UP]))
    ),
    ("talkvid_export", "holds_exactly_the_passing_clips"): lambda store, key: (
        store.home / "exports" / "talkvid" / f"{key}.json"
    ).write_text("[]"),
    ("talkvid_dataset", "holds_exactly_the_passing_clips"): lambda store, key: (
        store.home / "exports" / "talkvid.json"
    ).write_text(json.dumps([{"id": "not-a-clip"}])),
}


@pytest.mark.parametrize(("asset", "name"), list(BREAKAGES), ids=lambda part: part)
def test_check_passes_then_fails_on_a_broken_partition(curated, asset, name):
    store, instance, key = curated
    partition = None if asset == "talkvid_dataset" else key
    assert run_check(store, instance, asset, name, partition).passed
    saved = {path: path.read_bytes() for path in store.home.rglob("*") if path.is_file()}
    try:
        BREAKAGES[asset, name](store, key)
        evaluation = run_check(store, instance, asset, name, partition)
        assert not evaluation.passed
        assert evaluation.metadata["problems"].value >= 1
    finally:
        for path, data in saved.items():
            path.write_bytes(data)


CHECK = "holds_exactly_the_passing_clips"


def materialize(store: Store, instance, asset: str, key: str | None) -> None:
    defs = build_definitions(store.home)
    job = defs.resolve_job_def("curate") if key else defs.resolve_implicit_global_asset_job_def()
    subset = job.get_subset(asset_selection={AssetKey(asset)}, asset_check_selection=set())
    assert subset.execute_in_process(instance=instance, partition_key=key).success


def test_a_dataset_outdated_by_a_later_verdict_warns_instead_of_failing_the_run(curated):
    """Two curations at once: the other one judges clips after this one's export read them.
    The export is then out of date, not wrong; the check says so without blocking the run."""
    store, instance, key = curated
    saved = {path: path.read_bytes() for path in store.home.rglob("*") if path.is_file()}
    try:
        materialize(store, instance, "filtered_clips", key)  # a verdict after the export
        rewrite(store, "filtered_clips", key, first(lambda row: row.update(passed=False)))
        evaluation = run_check(store, instance, "talkvid_dataset", CHECK, None)
        assert not evaluation.passed
        assert evaluation.severity == AssetCheckSeverity.WARN
        assert "out of date" in evaluation.metadata["first_problems"].value
        materialize(store, instance, "talkvid_dataset", None)  # rebuilt: exact again
        assert run_check(store, instance, "talkvid_dataset", CHECK, None).passed
    finally:
        for path, data in saved.items():
            path.write_bytes(data)
        materialize(store, instance, "talkvid_dataset", None)
    (store.home / "exports" / "talkvid.json").write_text("[]")
    evaluation = run_check(store, instance, "talkvid_dataset", CHECK, None)
    assert evaluation.severity == AssetCheckSeverity.ERROR and not evaluation.passed
    dataset = store.home / "exports" / "talkvid.json"
    dataset.write_bytes(saved[dataset])
