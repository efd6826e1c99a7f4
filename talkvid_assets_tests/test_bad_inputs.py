"""Hostile inputs beside a good video: each ends as a row with a reason or is curated correctly,
none stops the others, no row is lost."""

import pytest

from talkvid_assets.core.export_formats import SAFE_KEY
from talkvid_assets.core.failures import Failure, FailureKind
from talkvid_assets.core.partition_keys import content_key
from talkvid_assets.core.source_files import video_key
from talkvid_assets.core.store import Store
from talkvid_assets.core.thresholds import NO_AUDIO
from talkvid_assets_tests.conftest import ingest_and_curate
from talkvid_assets_tests.media import SAMPLES, hostile_inputs

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def outcome(tmp_path_factory):
    from talkvid_assets_tests.conftest import project_instance

    root = tmp_path_factory.mktemp("hostile")
    files = hostile_inputs(root / "inbox")
    files["good"] = SAMPLES / "talk_demo.mp4"
    store = Store(root / "home")
    with project_instance(root / "dagster") as instance:
        keys, outcomes = ingest_and_curate(instance, store, list(files.values()))
    videos = {row["video_id"]: row for row in store.query("SELECT * FROM videos")}
    by_kind = {kind: videos[keys[path]] for kind, path in files.items()}
    return store, keys, files, outcomes, by_kind


def test_every_run_succeeds_and_every_file_has_a_row(outcome):
    store, keys, files, outcomes, _ = outcome
    assert all(run.success for run in outcomes), [run.error for run in outcomes]
    curated = {key for run in outcomes for key in run.videos}
    assert len(curated) == len(files) == len(set(keys.values()))
    assert store.query("SELECT count(*) AS n FROM videos") == [{"n": len(files)}]


@pytest.mark.parametrize(
    ("kind", "reason"),
    [
        ("zero_byte", "empty file (0 bytes)"),
        ("truncated", "not a readable media container: Invalid data found"),
        ("text", "not a readable media container: Invalid data found"),
        ("random", "not a readable media container: Invalid data found"),
    ],
)
def test_unreadable_files_are_rejected_with_a_reason(outcome, kind, reason):
    video = outcome[4][kind]
    assert video["status"] == "rejected"
    (failure,) = [Failure.of(row) for row in video["reject_reasons"]]
    assert (failure.check, failure.kind) == ("probe", FailureKind.NOT_A_VIDEO)
    assert reason in failure.detail


def clips_of(store, video_id):
    return store.query("SELECT * FROM clips WHERE video_id = :id", {"id": video_id})


def test_readable_problem_files_are_curated_and_told_why_they_fail(outcome):
    store, _, _, _, by_kind = outcome
    (silent,) = clips_of(store, by_kind["no_audio"]["video_id"])
    assert Failure("speech_ratio", FailureKind.MISSING, detail=NO_AUDIO) in [
        Failure.of(row) for row in silent["reject_reasons"]
    ]
    (short,) = clips_of(store, by_kind["two_seconds"]["video_id"])
    assert Failure.of(short["reject_reasons"][0]) == Failure(
        "duration_s", value=1.6, rule=">", threshold=5.0
    )
    assert short["quality_score"] is not None


def test_a_truncated_but_indexed_file_is_curated_on_what_decodes(outcome):
    store, _, _, _, by_kind = outcome
    video_id = by_kind["truncated_indexed"]["video_id"]
    assert by_kind["truncated_indexed"]["status"] == "ok"
    (report,) = store.rows("decode_reports", video_id)
    assert [row["kind"] for row in report["failures"]] == [FailureKind.TRUNCATED]
    assert clips_of(store, video_id), "the decodable part still yields segments"


def test_hostile_file_name_is_curated_and_the_good_video_still_passes(outcome):
    store, keys, files, _, by_kind = outcome
    hostile = by_kind["hostile_name"]
    assert hostile["status"] == "ok"
    assert hostile["source_path"] == str(files["hostile_name"].resolve())
    key = keys[files["hostile_name"]]  # the name made safe, then the content key
    assert SAFE_KEY.fullmatch(key) and content_key(key) == video_key(files["hostile_name"])
    (clip,) = clips_of(store, hostile["video_id"])
    assert clip["passed"], clip["reject_reasons"]
    assert [clip["passed"] for clip in clips_of(store, by_kind["good"]["video_id"])] == [True]
    assert not (files["hostile_name"].parent / "pwned").exists()


def test_a_second_video_stream_is_named_in_the_decode_report(outcome):
    store, _, _, _, by_kind = outcome
    video = by_kind["two_video_streams"]
    assert video["status"] == "ok" and (video["width"], video["height"]) == (176, 144)
    (report,) = store.rows("decode_reports", video["video_id"])
    assert "2 video streams: the first (h264 176x144) was curated" in report["note"]
