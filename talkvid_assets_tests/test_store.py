import json
import multiprocessing
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import duckdb
import pytest
import sqlalchemy as sa

from talkvid_assets.core.export import write_records
from talkvid_assets.core.failures import Failure, FailureKind, describe
from talkvid_assets.core.store import VIEW_CONNECTIONS_KEPT, Store

VIDEOS_COLUMNS = (
    "video_id", "source_path", "status", "reject_reasons", "width", "height", "fps",
    "duration_s", "has_audio",
)  # fmt: skip
CLIPS_COLUMNS = (
    "clip_id", "video_id", "start_time", "end_time", "duration_s", "speech_ratio",
    "quality_score", "motion_ratio", "avg_movement", "min_movement", "avg_rotation",
    "min_rotation", "avg_completeness", "min_completeness", "avg_resolution", "min_resolution",
    "avg_orientation", "min_orientation", "face_consistency", "sync_offset", "sync_confidence",
    "passed", "reject_reasons",
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
    store.write("raw_videos", "a", [{**video_row("a"), "reject_reasons": []}])
    truncated = Failure("decode", FailureKind.TRUNCATED, value=3.0, threshold=6.0)
    store.write("decode_reports", "a", [{"video_id": "a", "failures": [truncated.row()]}])
    assert store.query("SELECT status, reject_reasons FROM videos") == [
        {"status": "ok", "reject_reasons": []}  # clips cover a part: told, not rejected
    ]
    failed = Failure("decode", FailureKind.DECODE_FAILED, detail="boom")
    store.write("decode_reports", "a", [{"video_id": "a", "failures": [failed.row()]}])
    (video,) = store.query("SELECT status, reject_reasons FROM videos")
    assert video == {"status": "rejected", "reject_reasons": [failed.row()]}
    assert describe(video["reject_reasons"]) == "decode failed: boom"


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


@pytest.mark.parametrize(
    "query",
    [
        "SELECT * FROM read_text('/etc/passwd')",
        "COPY (SELECT 1) TO '{outside}'",
        "ATTACH '{outside}.db' AS other",
        "SET enable_external_access = true",
    ],
)
def test_user_sql_reaches_no_file_outside_the_tables(store, tmp_path, query):
    outside = tmp_path / "leak.csv"
    with store.engine().connect() as connection:
        assert connection.execute(sa.text("SELECT count(*) FROM clips")).scalar() == 0
        with pytest.raises(sa.exc.DBAPIError):
            connection.execute(sa.text(query.format(outside=outside)))
    assert not outside.exists() and not Path(f"{outside}.db").exists()


def test_concurrent_writers_of_one_export_never_collide(tmp_path):
    path = tmp_path / "exports" / "talkvid.json"

    def write(index: int) -> None:
        write_records(path, [{"id": str(index)}])

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(write, range(120)))
    assert len(json.loads(path.read_text())) == 1
    assert [p.name for p in path.parent.iterdir()] == ["talkvid.json"]


@pytest.mark.parametrize("name", ["h*", "h?", "home[1]", "home]1[", "it's"])
def test_a_home_named_with_glob_characters_reads_only_its_own_tables(tmp_path, name):
    siblings = ["h1", "hx", "home1", "home]1[x", "its"]
    for sibling in siblings:
        Store(tmp_path / sibling).write("raw_videos", sibling, [video_row(sibling)])
    home = Store(tmp_path / name)
    home.write("raw_videos", "mine", [video_row("mine")])
    assert home.query("SELECT video_id FROM videos") == [{"video_id": "mine"}]
    home.publish()
    with home.engine().connect() as connection:
        assert connection.execute(sa.text("SELECT count(*) FROM videos")).scalar() == 1


def test_a_moved_home_answers_sql_while_a_reader_holds_its_database_file(tmp_path):
    store = Store(tmp_path / "before")
    store.write("raw_videos", "a", [video_row("a")])
    store.publish()
    hold = (
        "import duckdb, sys; connection = duckdb.connect(sys.argv[1], read_only=True); "
        "print(connection.execute('SELECT 1').fetchone()[0], flush=True); sys.stdin.read()"
    )
    reader = subprocess.Popen(
        [sys.executable, "-c", hold, str(store.database_path)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        line = reader.stdout.readline().strip()
        assert line == "1", reader.stderr.read()  # the reader holds the file
        moved = Store((tmp_path / "before").rename(tmp_path / "after"))
        moved.publish()  # the file is locked: views wait for a later call, no error
        with moved.engine().connect() as connection:
            assert connection.execute(sa.text("SELECT video_id FROM videos")).scalar() == "a"
        assert moved.query("SELECT count(*) AS n FROM videos") == [{"n": 1}]
    finally:
        reader.communicate("")


def test_stores_of_one_home_share_a_thread_s_connection_and_see_each_others_writes(tmp_path):
    """A step, a sensor tick or a command builds several Stores of a home: they share the
    thread's connection to the views (made once), another thread has its own, and the oldest
    of more homes than are kept is closed."""
    first, second = Store(tmp_path / "home"), Store(tmp_path / "home")
    with first.connect() as one, second.connect() as other:
        assert one is other
    second.write("raw_videos", "a", [video_row("a")])
    assert first.query("SELECT video_id FROM raw_videos") == [{"video_id": "a"}]

    def in_a_thread() -> sa.Connection:
        with first.connect() as connection:
            return connection

    with ThreadPoolExecutor(1) as pool:
        assert pool.submit(in_a_thread).result() is not one
    others = [Store(tmp_path / f"other{index}") for index in range(VIEW_CONNECTIONS_KEPT)]
    for store in others:
        assert store.query("SELECT count(*) AS n FROM raw_videos") == [{"n": 0}]
    assert one.closed
    assert first.query("SELECT video_id FROM raw_videos") == [{"video_id": "a"}]
