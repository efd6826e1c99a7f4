"""How `talkvid curate` groups partitions into runs, as plain functions (no Dagster, no home):
Dagster's partition ranges follow registration order, so a run covers contiguous partitions
that want the same assets, and decoding runs are cut by bytes of source and by count."""

from __future__ import annotations

from talkvid_assets.launch import MAX_RUN_VIDEOS, RUN_BYTES, PlannedRun, plan_runs, split_by_bytes

DECODE = ("raw_videos", "segments", "quality_scores")
JUDGE = ("filtered_clips",)


def test_partitions_wanting_the_same_assets_share_a_range_in_registration_order():
    order = ["a", "b", "c", "d", "e"]
    stale = {"a": DECODE, "b": DECODE, "c": JUDGE, "d": JUDGE, "e": DECODE}
    assert plan_runs(order, stale) == [
        PlannedRun(DECODE, ("a", "b")),
        PlannedRun(JUDGE, ("c", "d")),
        PlannedRun(DECODE, ("e",)),
    ]


def test_a_partition_with_nothing_to_do_ends_the_range():
    """A range a..c would run b too: b, up to date, splits it."""
    assert plan_runs(["a", "b", "c"], {"a": JUDGE, "c": JUDGE}) == [
        PlannedRun(JUDGE, ("a",)),
        PlannedRun(JUDGE, ("c",)),
    ]
    assert plan_runs(["a", "b"], {}) == []


def test_a_run_tags_one_partition_or_a_range():
    assert PlannedRun(JUDGE, ("a",)).tags() == {"dagster/partition": "a"}
    assert PlannedRun(JUDGE, ("a", "b", "c")).tags() == {
        "dagster/asset_partition_range_start": "a",
        "dagster/asset_partition_range_end": "c",
    }
    assert PlannedRun(("speakers",), ()).tags() == {}


def test_decoding_runs_are_cut_by_bytes_of_source_and_by_count():
    third = RUN_BYTES // 3
    run = PlannedRun(DECODE, ("a", "b", "c", "d", "e"))
    sizes = {"a": third, "b": third, "c": third, "d": RUN_BYTES * 2, "e": 1}
    # a+b+c fill a run; d alone exceeds the budget and runs alone; e starts the next.
    assert [r.partitions for r in split_by_bytes(run, sizes)] == [("a", "b", "c"), ("d",), ("e",)]
    # A source of unknown size counts as a whole run's budget.
    assert [r.partitions for r in split_by_bytes(PlannedRun(DECODE, ("x", "y")), {})] == [
        ("x",),
        ("y",),
    ]
    many = PlannedRun(DECODE, tuple(f"v{index:03d}" for index in range(MAX_RUN_VIDEOS + 1)))
    cut = split_by_bytes(many, dict.fromkeys(many.partitions, 1))
    assert [len(r.partitions) for r in cut] == [MAX_RUN_VIDEOS, 1]
    assert all(r.assets == DECODE for r in cut)
