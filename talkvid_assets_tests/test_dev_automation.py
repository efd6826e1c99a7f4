"""Declarative automation under a real `talkvid dev` (webserver + daemon) on a home curated by
the CLI: an idle home stays idle, an edit of curation.yaml is carried out with no reload and
recomputes only what it decides, and a failed blocking check holds everything below it until
the data is fixed. (test_dev_graph.py: what the UI shows; the two files run on separate
workers.)"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from talkvid_assets.core.config import load_config
from talkvid_assets.core.store import Store
from talkvid_assets_tests.conftest import configure
from talkvid_assets_tests.devserver import (
    IN_PROGRESS,
    asset_runs,
    check_executions,
    copy_of,
    dev_server,
    launch_run,
    materializations,
    no_failed_runs,
    quiet,
    sensors,
    tag,
    wait_for,
    wait_for_run,
    wait_for_ticks,
)

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


@pytest.fixture(scope="module")
def one_video(curated_talk) -> tuple[Path, list[str]]:
    """talk_demo (its clip passes the demo profile), curated once per test run (conftest).

    One video, so that automation carries a change out in one run per level: for several
    partitions Dagster's automation asks for a backfill, which the daemon takes up, and later
    closes, on a fixed loop of 30 s (a minute per change); test_automation.py's UI backfill runs
    that machinery.
    """
    return curated_talk.home, list(curated_talk.keys.values())


@pytest.fixture(scope="module")
def served(one_video, tmp_path_factory) -> Iterator[tuple[Path, str, int, Path]]:
    """One `talkvid dev` for the module, on a copy of the one-video home: the home, its key,
    the server's port and its log. The tests run in order on it: the idle home and the edits
    of curation.yaml first (they end with the first configuration's verdicts back), then the
    failed blocking check."""
    root = tmp_path_factory.mktemp("served")
    home, (key,) = copy_of(one_video, root)
    log = root / "dev.log"
    with dev_server(home, log) as port:
        yield home, key, port, log


def digests(home: Path) -> list[str]:
    rows = Store(home).query("SELECT DISTINCT config_digest FROM filtered_clips")
    return sorted(row["config_digest"] for row in rows)


def passing(home: Path) -> int:
    return Store(home).query("SELECT count(*) FILTER (WHERE passed) AS n FROM filtered_clips")[0][
        "n"
    ]


def counts(port: int, assets: list[str]) -> dict[str, int]:
    return {asset: len(materializations(port, asset)) for asset in assets}


def test_edits_of_curation_yaml_are_carried_out_with_no_reload(served):
    home, _, port, log = served
    first = load_config(home).digest
    assert digests(home) == [first]
    passed_first = passing(home)
    assert passed_first >= 1  # talk_demo's clip passes the demo profile
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
    # The corpus-wide follow-up may come from the tick after the verdicts settled (seen
    # queued at load 10): only finished runs here; the end asserts every run succeeded.
    finished = [run for run in edits if run["status"] not in IN_PROGRESS]
    assert all(run["status"] == "SUCCESS" for run in finished), edits
    assert any("filtered_clips" in run["assets"] for run in finished), edits
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


def test_a_failed_blocking_check_holds_automation_until_the_data_is_fixed(served):
    home, key, port, log = served
    store = Store(home)
    good = sorted(row["quality_score"] for row in store.rows("quality_scores", key))
    # Bad data where the stage reads it: the cached scores now say 99 (outside the range).
    (cached,) = (home / "score_cache" / "quality_scores" / key).glob("*.parquet")
    table = pq.read_table(cached)
    pq.write_table(table.from_pylist([{**row, "quality_score": 99.0} for row in table.to_pylist()]),
                   cached)  # fmt: skip
    below = ["filtered_clips", "annotations", "talkvid_export", "talkvid_dataset"]
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
