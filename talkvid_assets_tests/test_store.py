import multiprocessing

import duckdb
import sqlalchemy as sa

from talkvid_assets.core.store import Store

VIDEOS_COLUMNS = (
    "video_id", "source_path", "status", "reject_reason", "width", "height", "fps",
    "duration_s", "has_audio",
)  # fmt: skip
CLIPS_COLUMNS = (
    "clip_id", "video_id", "start_time", "end_time", "duration_s", "speech_ratio",
    "quality_score", "motion_ratio", "avg_movement", "min_movement", "avg_rotation",
    "min_rotation", "avg_completeness", "min_completeness", "avg_resolution", "min_resolution",
    "avg_orientation", "min_orientation", "face_consistency", "passed", "reject_reasons",
)  # fmt: skip


def video_row(video_id: str, status: str = "ok") -> dict:
    return {"video_id": video_id, "source_path": f"/videos/{video_id}.mp4", "status": status}


def test_rewriting_a_partition_replaces_exactly_its_rows(store):
    store.write("raw_videos", "a", [video_row("a")])
    store.write("raw_videos", "b", [video_row("b")])
    store.write("raw_videos", "a", [video_row("a", "rejected")])
    rows = store.query("SELECT video_id, status FROM raw_videos ORDER BY video_id")
    assert rows == [{"video_id": "a", "status": "rejected"}, {"video_id": "b", "status": "ok"}]
    store.write("segments", "b", [{"clip_id": "b-0000", "video_id": "b", "duration_s": 6.0}])
    store.write("segments", "b", [])
    assert store.query("SELECT count(*) AS n FROM segments") == [{"n": 0}]


def test_public_views_have_the_documented_columns(store):
    path = store.publish()
    with duckdb.connect(str(path), read_only=True) as connection:
        videos = [row[0] for row in connection.sql("DESCRIBE videos").fetchall()]
        clips = [row[0] for row in connection.sql("DESCRIBE clips").fetchall()]
    assert videos == list(VIDEOS_COLUMNS)
    assert clips == list(CLIPS_COLUMNS)


def test_sqlalchemy_users_read_the_database_file(store):
    store.write("raw_videos", "a", [video_row("a")])
    with store.engine().connect() as connection:
        rows = connection.execute(sa.text("SELECT video_id, status FROM videos")).all()
    assert [tuple(row) for row in rows] == [("a", "ok")]


def test_a_decode_error_rejects_the_video_in_the_public_view(store):
    store.write("raw_videos", "a", [video_row("a")])
    store.write("decode_reports", "a", [{"video_id": "a", "error": "decode failed: boom"}])
    assert store.query("SELECT status, reject_reason FROM videos") == [
        {"status": "rejected", "reject_reason": "decode failed: boom"}
    ]


def _write_many(home: str, worker: int) -> None:
    store = Store(home)
    store.publish()
    for round_ in range(20):
        for video in range(5):
            video_id = f"w{worker}v{video}"
            store.write("raw_videos", video_id, [video_row(video_id, f"round{round_}")])


def test_parallel_partition_writers_lose_nothing(store):
    with multiprocessing.get_context("spawn").Pool(4) as pool:
        pool.starmap(_write_many, [(str(store.home), worker) for worker in range(4)])
    rows = store.query("SELECT count(*) AS n, count(DISTINCT status) AS s FROM raw_videos")
    assert rows == [{"n": 20, "s": 1}]
    with duckdb.connect(str(store.database_path), read_only=True) as connection:
        assert connection.sql("SELECT count(*) FROM videos").fetchall() == [(20,)]
