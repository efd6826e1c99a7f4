"""`talkvid sql` and `Store.engine()` read the home's tables and write nothing anywhere."""

import os
import signal
import subprocess
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa

from talkvid_assets.core.store import TABLES, Store
from talkvid_assets_tests.commands import start_talkvid


def video_row(video_id: str) -> dict:
    return {"video_id": video_id, "source_path": f"/videos/{video_id}.mp4", "status": "ok"}


@pytest.mark.parametrize(
    "query",
    [
        "COPY (SELECT 'x' AS clip_id) TO '{home}/tables/filtered_clips/a.parquet'",
        "COPY (SELECT 1) TO '.tmp/leak.csv'",
        "INSTALL httpfs",
        "CREATE TABLE scratch AS SELECT 1",
        "SELECT 1; COPY (SELECT 1) TO '{home}/tables/sources/b.parquet'",
    ],
)
def test_user_sql_writes_nothing_into_the_home_or_the_working_directory(
    store, tmp_path, monkeypatch, query
):
    monkeypatch.chdir(tmp_path)
    store.write("raw_videos", "a", [video_row("a")])
    store.write("filtered_clips", "a", [{"clip_id": "a-0000", "video_id": "a", "passed": False}])
    with store.engine().connect() as connection:
        assert connection.execute(sa.text("SELECT count(*) FROM clips")).scalar() == 0
        before = sorted(str(p) for p in store.home.rglob("*"))
        with pytest.raises(sa.exc.DBAPIError, match="read-only"):
            connection.execute(sa.text(query.format(home=store.home)))
    assert sorted(str(p) for p in store.home.rglob("*")) == before
    assert not (tmp_path / ".tmp").exists()
    assert store.query("SELECT passed FROM filtered_clips") == [{"passed": False}]


def test_a_foreign_file_under_tables_adds_no_rows(store):
    store.write("sources", "a", [{"video_id": "a", "source_path": "/videos/a.mp4"}])
    folder = store.tables_dir / "sources"
    stray = pa.Table.from_pylist([{"video_id": None}, {"video_id": "b"}], TABLES["sources"])
    pq.write_table(stray.append_column("x", pa.array([1, 2])), folder / "stray.parquet")
    assert store.query("SELECT video_id FROM sources") == [{"video_id": "a"}]
    store.compact(min_files=1)
    assert store.query("SELECT video_id FROM sources") == [{"video_id": "a"}]
    pq.write_table(pa.table({"x": [3]}), folder / "again.parquet")
    store.compact(min_files=1)
    assert store.query("SELECT video_id FROM sources") == [{"video_id": "a"}]


@pytest.mark.slow
def test_sql_piped_into_head_ends_quietly(tmp_path):
    home = tmp_path / "home"
    for index in range(3):
        Store(home).write("raw_videos", f"v{index}", [video_row(f"v{index}")])
    query = "SELECT * FROM range(200000)"
    sql = start_talkvid(home, "sql", query, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    head = subprocess.run(["head", "-1"], stdin=sql.stdout, capture_output=True, timeout=60)
    sql.stdout.close()
    assert sql.wait(timeout=60) == 0, sql.stderr.read()
    assert sql.stderr.read() == ""
    assert head.stdout.decode().strip() == "range"


@pytest.mark.slow
def test_ctrl_c_during_a_slow_query_is_one_line(tmp_path):
    home = tmp_path / "home"
    Store(home).write("raw_videos", "v", [video_row("v")])
    query = "SELECT max(a.range * b.range) FROM range(1000000) a, range(1000000) b"
    sql = start_talkvid(home, "sql", query, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        # Ctrl-C once the query runs: past start-up (about 3 CPU s), whatever the machine's load.
        deadline = time.monotonic() + 120
        while _cpu_seconds(sql.pid) < 6 and sql.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        sql.send_signal(signal.SIGINT)
        _, stderr = sql.communicate(timeout=60)
    finally:
        if sql.poll() is None:  # never leave a query spinning on the machine
            sql.kill()
            sql.wait()
    assert sql.returncode not in (0, None)
    assert "Traceback" not in stderr and len(stderr.strip().splitlines()) == 1, stderr


def _cpu_seconds(pid: int) -> float:
    """User and system CPU time of a live process (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_the_working_directorys_tmp_folder_is_not_readable(store, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".tmp").mkdir()
    (tmp_path / ".tmp" / "secret.csv").write_text("a\n1\n")
    query = sa.text("SELECT * FROM read_csv('.tmp/secret.csv')")
    with (
        store.engine().connect() as connection,
        pytest.raises(sa.exc.DBAPIError, match="Permission Error"),
    ):
        connection.execute(query).all()
