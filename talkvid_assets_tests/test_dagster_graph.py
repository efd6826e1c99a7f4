"""The whole graph on the bundled samples, through a real Dagster instance and real DuckDB."""

import json
import socket
import subprocess
from pathlib import Path

import av
import duckdb
import pytest
from dagster import AssetKey, DagsterRunStatus

from talkvid_assets.core.export import export_records
from talkvid_assets.core.failures import Failure, FailureKind
from talkvid_assets.core.stages import CPU_PARTS
from talkvid_assets.core.store import Store
from talkvid_assets.core.thresholds import NO_AUDIO
from talkvid_assets.defs.build import build_definitions
from talkvid_assets.launch import curate, plan
from talkvid_assets_tests.conftest import ingest_and_curate, project_instance
from talkvid_assets_tests.media import SAMPLES

pytestmark = pytest.mark.slow
ASSETS = [
    "raw_videos",
    "segments",
    "quality_scores",
    "motion_scores",
    "head_detail_scores",
    "filtered_clips",
    "talkvid_export",
]
RECORD_FIELDS = {
    "id", "height", "width", "fps", "start-time", "start-frame", "end-time", "end-frame",
    "durations", "info", "description", "dover_scores", "cotracker_ratio", "head_detail",
}  # fmt: skip


@pytest.fixture(scope="module")
def curated(tmp_path_factory):
    """Every sample ingested and curated once with the demo profile."""
    root = tmp_path_factory.mktemp("curated")
    store = Store(root / "home")
    with project_instance(root / "dagster") as instance:
        keys, outcomes = ingest_and_curate(instance, store, sorted(SAMPLES.iterdir()))
        yield store, instance, {path.name: key for path, key in keys.items()}, outcomes


def clips_of(store: Store, key: str) -> list[dict]:
    return store.query(
        "SELECT * FROM clips WHERE video_id = :key ORDER BY start_time", {"key": key}
    )


def test_every_run_succeeds_and_every_asset_is_materialized(curated):
    store, instance, keys, outcomes = curated
    assert all(outcome.success for outcome in outcomes)
    for asset in ASSETS:
        assert instance.get_materialized_partitions(AssetKey(asset)) == set(keys.values())
    assert plan(instance, build_definitions(store.home), list(keys.values())) == []
    assert curate(instance, store.home, list(keys.values())) == []  # nothing stale


def test_each_sample_has_a_videos_row_and_the_image_is_rejected(curated):
    store, _, keys, _ = curated
    videos = {row["video_id"]: row for row in store.query("SELECT * FROM videos")}
    assert set(videos) == set(keys.values())
    messi = videos[keys["messi5.jpg"]]
    assert messi["status"] == "rejected"
    assert [Failure.of(reason) for reason in messi["reject_reasons"]] == [
        Failure("probe", FailureKind.NOT_A_VIDEO, detail="still image (image2)")
    ]
    assert all(videos[keys[name]]["status"] == "ok" for name in keys if name != "messi5.jpg")


def test_megamind_segments_follow_its_scene_cuts(curated):
    store, _, keys, _ = curated
    clips = clips_of(store, keys["Megamind.avi"])
    starts = [clip["start_time"] - 0.3 for clip in clips[1:]]
    assert starts == pytest.approx([4.1, 6.4, 8.3], abs=0.1)
    for clip in clips:  # too short for the paper, yet scored and told why
        assert clip["quality_score"] is not None and clip["motion_ratio"] is not None
        assert "duration_s" in {reason["check"] for reason in clip["reject_reasons"]}


def test_quality_pristine_above_distorted(curated):
    store, _, keys, _ = curated
    (pristine,) = clips_of(store, keys["carphone_pristine.mp4"])
    (distorted,) = clips_of(store, keys["carphone_distorted.mp4"])
    assert pristine["quality_score"] > distorted["quality_score"] + 3


def test_bikes_has_no_passing_clip_and_talk_demo_passes(curated):
    store, _, keys, _ = curated
    assert not any(clip["passed"] for clip in clips_of(store, keys["bikes.mp4"]))
    (talk,) = clips_of(store, keys["talk_demo.mp4"])
    assert talk["passed"], talk["reject_reasons"]
    assert talk["reject_reasons"] == []
    assert talk["speech_ratio"] > 0.5 and talk["face_consistency"] >= 80


def test_sources_without_audio_are_scored_and_fail_the_voice_check(curated):
    store, _, keys, _ = curated
    (clip,) = clips_of(store, keys["carphone_pristine.mp4"])
    assert clip["speech_ratio"] is None and clip["avg_resolution"] is not None
    assert Failure("speech_ratio", FailureKind.MISSING, detail=NO_AUDIO) in [
        Failure.of(reason) for reason in clip["reject_reasons"]
    ]


def test_export_is_talkvid_records_of_passing_clips(curated):
    store, _, keys, _ = curated
    path = store.home / "exports" / "talkvid" / f"{keys['talk_demo.mp4']}.json"
    (record,) = json.loads(path.read_text())
    assert set(record) >= RECORD_FIELDS
    assert record["durations"] == "15.6s"
    assert record["start-time"] == pytest.approx(0.3) and record["start-frame"] == 0
    assert set(record["head_detail"]["scores"]) == {
        "avg_movement", "min_movement", "avg_rotation", "min_rotation", "avg_completeness",
        "min_completeness", "avg_resolution", "min_resolution", "avg_orientation",
        "min_orientation",
    }  # fmt: skip
    assert set(record["info"]) >= {"Person ID", "Ethnicity", "Age Group", "Gender", "Language"}
    assert record["talkvid_assets"]["quality_backend"] == "frame-stats"
    # Embedded backends: the release's model-named fields stay null, the stand-ins' scores
    # travel under their own names.
    (clip,) = [c for c in clips_of(store, keys["talk_demo.mp4"]) if c["passed"]]
    assert record["dover_scores"] is None and record["cotracker_ratio"] is None
    assert record["talkvid_assets"]["frame_stats_quality_score"] == clip["quality_score"]
    assert record["talkvid_assets"]["lk_motion_ratio"] == clip["motion_ratio"]
    assert export_records(store, [keys["talk_demo.mp4"]], speakers=False) == [record]
    (merged,) = export_records(store, [keys["talk_demo.mp4"]])
    assert merged["info"]["Person ID"].startswith("spk-"), "the merged dataset names speakers"


def test_database_file_serves_sql_users(curated):
    store, _, keys, _ = curated
    with duckdb.connect(str(store.database_path), read_only=True) as connection:
        rows = connection.sql("SELECT video_id, count(*) FROM clips GROUP BY ALL").fetchall()
    assert dict(rows)[keys["Megamind.avi"]] == 4


def test_rerunning_a_partition_replaces_exactly_its_rows(curated):
    store, instance, keys, _ = curated
    before = store.query("SELECT * FROM clips ORDER BY clip_id")
    job = build_definitions(store.home).resolve_job_def("curate")
    assert job.execute_in_process(instance=instance, partition_key=keys["Megamind.avi"]).success
    assert store.query("SELECT * FROM clips ORDER BY clip_id") == before


def test_paper_profile_rejects_the_small_samples_with_reasons(tmp_path, dagster_instance):
    store = Store(tmp_path / "home")
    talk = SAMPLES / "talk_demo.mp4"
    keys, outcomes = ingest_and_curate(dagster_instance, store, [talk], profile="paper")
    assert all(outcome.success for outcome in outcomes)
    (video,) = store.query("SELECT status, reject_reasons FROM videos")
    assert video["status"] == "rejected"
    assert [Failure.of(reason) for reason in video["reject_reasons"]] == [
        Failure("short_side", value=144, rule=">=", threshold=1080)
    ]
    assert store.query("SELECT count(*) AS n FROM clips") == [{"n": 0}]
    assert json.loads(Path(store.home / "exports/talkvid" / f"{keys[talk]}.json").read_text()) == []


@pytest.mark.parametrize("status", [DagsterRunStatus.STARTED, DagsterRunStatus.NOT_STARTED])
def test_runs_of_dead_processes_give_their_pool_slots_back(dagster_instance, tmp_path, status):
    """STARTED: killed mid-step; NOT_STARTED: killed between creating the run and starting it."""
    from talkvid_assets.defs.names import HOST_TAG, LAUNCHER_TAG, PID_TAG
    from talkvid_assets.launch import reap_abandoned_runs

    ended = subprocess.Popen(["true"])
    ended.wait()
    tags = {LAUNCHER_TAG: "cli", HOST_TAG: socket.gethostname(), PID_TAG: str(ended.pid)}
    run = dagster_instance.create_run_for_job(
        build_definitions(tmp_path / "home").resolve_job_def("curate"),
        status=status,
        tags=tags,
    )
    storage = dagster_instance.event_log_storage
    storage.set_concurrency_slots("decode_pass", 2)
    storage.claim_concurrency_slot("decode_pass", run.run_id, "decode_pass")
    assert storage.get_concurrency_info("decode_pass").active_slot_count == 1
    assert reap_abandoned_runs(dagster_instance) == [run.run_id]
    assert storage.get_concurrency_info("decode_pass").active_slot_count == 0
    assert dagster_instance.get_run_by_id(run.run_id).status == DagsterRunStatus.FAILURE


def test_progress_lines_report_the_runs_own_counts_while_another_curate_rewrites(
    tmp_path, dagster_instance
):
    """Two curates of one home: when the other one clears a video's segments to re-decode it
    just before this one prints, the line still gives this run's final counts, not the
    half-written table."""
    from talkvid_assets.cli.curation import progress_lines
    from talkvid_assets.core.sources import register_source
    from talkvid_assets_tests.conftest import configure

    store = Store(tmp_path / "home")
    key, _ = register_source(store, SAMPLES / "talk_demo.mp4")
    dagster_instance.add_dynamic_partitions("videos", [key])
    configure(store.home)
    lines = []

    def print_after_a_concurrent_rewrite(outcome):
        final = store.query("SELECT count(*) AS n FROM clips")[0]["n"]
        store.write("segments", key, [])  # the other curate's decode pass starts over
        lines.append((final, progress_lines(store, outcome)[key]))

    curate(dagster_instance, store.home, [key], on_done=print_after_a_concurrent_rewrite)
    (final, line), *_ = lines
    assert final > 0
    assert f"clips={final} " in line, line


@pytest.mark.parametrize("format", ["talkvid-json", "parquet", "webdataset", "hf"])
def test_each_export_format_reads_back_as_the_records_duckdb_holds(curated, tmp_path, format):
    from talkvid_assets.cli import main
    from talkvid_assets.core.export_formats import read_export

    store = curated[0]
    out = tmp_path / ("export.json" if format == "talkvid-json" else "export")
    assert main(["--home", str(store.home), "export", "--format", format, "--out", str(out)]) == 0
    assert export_records(store)
    assert read_export(format, out, "all") == export_records(store)


def test_talkvid_cut_writes_a_passing_clip_and_the_clip_files_asset_is_on_demand(curated, tmp_path):
    from talkvid_assets.cli import main

    store, instance, keys, _ = curated
    (passing,) = export_records(store)
    assert main(["--home", str(store.home), "cut", "--out", str(tmp_path), passing["id"]]) == 0
    with av.open(str(tmp_path / f"{passing['id']}.mp4")) as clip:
        assert len(clip.streams.video) == 1 and len(clip.streams.audio) == 1
    defs = build_definitions(store.home)
    assert "clip_files" not in {
        key.to_user_string()
        for key in defs.resolve_job_def("curate").asset_layer.selected_asset_keys
    }
    assert curate(instance, store.home, list(keys.values())) == []  # clip files are never stale


def test_review_round_trip_gives_each_checks_precision_and_recall(curated, tmp_path):
    import csv

    from talkvid_assets.core.config import load_config
    from talkvid_assets.core.review import ReviewError, calibration, export_review, import_review

    store, instance, _, _ = curated
    path = export_review(store, load_config(store.home), tmp_path, per_side=2)
    rows = list(csv.DictReader(path.open()))
    assert {row["automatic"] for row in rows} == {"pass", "fail"}
    assert all((tmp_path / row["sheet"]).read_bytes()[:4] == b"\x89PNG" for row in rows)
    speech = [row for row in rows if row["check"] == "speech_ratio"]
    for row in rows:  # people agree with every check, except on one passing speech clip
        row["human"] = row["automatic"]
    flipped = next(row for row in speech if row["automatic"] == "pass")
    flipped["human"] = "fail"
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    assert import_review(store, load_config(store.home), path) == len(rows)
    report = {row["check"]: row for row in calibration(store)}
    passes = sum(row["automatic"] == "pass" for row in speech)
    assert report["speech_ratio"]["precision"] == pytest.approx((passes - 1) / passes)
    assert report["speech_ratio"]["recall"] == 1.0
    assert report["quality_score"]["precision"] == report["quality_score"]["recall"] == 1.0
    job = build_definitions(store.home).resolve_implicit_global_asset_job_def()
    result = job.execute_in_process(
        instance=instance, asset_selection=[AssetKey("review_calibration")]
    )
    (event,) = result.asset_materializations_for_node("review_calibration")
    assert event.metadata["labels"].value == len(rows)
    path.write_text("clip_id,check,human\nx,quality_score,maybe\n")
    with pytest.raises(ReviewError, match=r"review.csv:2: human must be pass or fail"):
        import_review(store, load_config(store.home), path)


def _exported_review(store: Store, folder: Path) -> tuple[Path, list[dict]]:
    import csv

    from talkvid_assets.core.config import load_config
    from talkvid_assets.core.review import export_review

    path = export_review(store, load_config(store.home), folder, per_side=1)
    return path, list(csv.DictReader(path.open()))


def _write_review(path: Path, rows: list[dict], columns: list[str] | None = None) -> None:
    import csv

    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns or list(rows[0]), extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)


def test_review_import_recomputes_the_automatic_verdict(curated, tmp_path):
    from talkvid_assets.core.config import load_config
    from talkvid_assets.core.review import calibration, import_review

    store = curated[0]
    path, rows = _exported_review(store, tmp_path)
    for row in rows:  # people agree with every check; the file's automatic column was edited
        row["human"] = row["automatic"]
        row["automatic"] = "fail" if row["automatic"] == "pass" else "pass"
    _write_review(path, rows)
    assert import_review(store, load_config(store.home), path) == len(rows)
    for report in calibration(store):
        assert report["precision"] in (1.0, None) and report["recall"] in (1.0, None), report


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda rows: rows[0].update(clip_id="ffffffffffffffff-0042"), "no clip 'ffff"),
        (lambda rows: rows[0].update(check="passed"), "is not judged on 'passed'"),
        (lambda rows: rows.append({**rows[0], "human": "fail"}), "'fail' here and 'pass' on row 2"),
        ("no human column", "no 'human' column"),
        ("unterminated quote", "not valid CSV"),
    ],
)
def test_review_import_refuses_what_it_cannot_file_in_one_line(
    curated, tmp_path, capsys, edit, message
):
    from talkvid_assets.cli import main

    store = curated[0]
    path, rows = _exported_review(store, tmp_path)
    for row in rows:
        row["human"] = "pass"
    before = store.rows("review_labels", "corpus")
    if edit == "no human column":
        _write_review(path, rows, ["clip_id", "check", "automatic"])
    elif edit == "unterminated quote":
        _write_review(path, rows)
        path.write_text(path.read_text() + '"x-0000,quality_score,1,1,pass,s.png,pass\n')
    else:
        edit(rows)
        _write_review(path, rows)
    assert main(["--home", str(store.home), "review", "import", str(path)]) == 1
    error = capsys.readouterr().err
    assert message in error and len(error.strip().splitlines()) == 1, error
    assert store.rows("review_labels", "corpus") == before


def test_segments_materializations_show_where_the_cpu_went(curated):
    """Each run's segments materialization sums its videos' decode_reports CPU columns."""
    store, instance, _, _ = curated
    event = instance.get_latest_materialization_event(AssetKey("segments"))
    shown = event.asset_materialization.metadata["cpu_seconds"].value
    assert set(shown) == set(CPU_PARTS)
    assert shown["decode"] > 0 and shown["head_detail"] > 0
    partition = event.asset_materialization.partition
    (report,) = store.rows("decode_reports", partition)
    # a ranged run shows the sum over its videos: at least this video's share
    assert shown["motion"] >= (report["motion_cpu_s"] or 0.0) - 0.01


def test_fixed_frames_run_gives_release_shaped_records(curated):
    """The on-demand fixed-frames asset over talk_demo's one passing clip (15.6 s at 30 fps,
    468 frames) in 121-frame windows: three windows from the start and one ending at the
    clip's end, ids and durations as the release writes them."""
    store, instance, keys, _ = curated
    key = keys["talk_demo.mp4"]
    (parent,) = export_records(store, [key], speakers=False)
    job = build_definitions(store.home).resolve_implicit_global_asset_job_def()
    ops = {"fixed_frame_records": {"config": {"window_frames": 121}}}
    result = job.execute_in_process(
        run_config={"ops": ops},
        instance=instance,
        partition_key=key,
        asset_selection=[AssetKey("fixed_frame_records")],
    )
    assert result.success
    windows = json.loads((store.home / "exports" / "fixed_frames" / f"{key}.json").read_text())
    assert [w["id"] for w in windows] == [f"video{parent['id']}-scene{n}" for n in (1, 2, 3, 4)]
    assert {w["durations"] for w in windows} == {"4.033s"}  # round(121 / 30, 3)
    assert windows[0]["start-time"] == pytest.approx(parent["start-time"])
    assert windows[-1]["end-time"] == pytest.approx(parent["end-time"], abs=1 / 30)
    assert windows[1]["start-frame"] == windows[0]["end-frame"]
    assert all(w["dover_scores"] is None for w in windows)
    assert {w["talkvid_assets"]["parent_id"] for w in windows} == {parent["id"]}
