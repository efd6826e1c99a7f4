"""Compaction of the store's partition files: contents, precedence, races, and scale.

Real files, real DuckDB, real processes. The synthetic rows here are made from each table's
schema (every column filled, some nulls, the 128-D face descriptors included), so a comparison of
a whole table before and after compaction covers every type the store holds (``synthetic_tables``,
which ``benchmarks/store_scale.py`` builds its homes with too).
"""

from __future__ import annotations

import multiprocessing
import shutil
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa

from talkvid_assets.core.compaction import COMPACTED, ROW_GROUP_ROWS, fresh_files
from talkvid_assets.core.stages import STAGES
from talkvid_assets.core.store import CORPUS, DERIVED_VIEWS, LAYOUT_FILE, TABLES, Store
from talkvid_assets_tests.synthetic_tables import (
    ROWS_PER_VIDEO,
    synthetic_rows,
    video_ids,
    write_partition_files,
    write_videos,
)

CLIP_TABLES = ["segments", *(stage.table for stage in STAGES), "filtered_clips"]


def snapshot(store: Store) -> dict[str, list[tuple]]:
    """Every table and derived view, whole and in one order."""
    names = [*TABLES, *DERIVED_VIEWS]
    with store.connect() as connection:
        return {
            name: [
                tuple(row)
                for row in connection.exec_driver_sql(f"SELECT * FROM {name} ORDER BY ALL")
            ]
            for name in names
        }


def per_partition(store: Store, videos: list[str]) -> dict[tuple[str, str], tuple]:
    """``rows`` and ``digest`` of every per-video table and video, and of the files of the
    tables keyed otherwise."""
    keys = [(table, video) for table in ROWS_PER_VIDEO for video in videos]
    keys += [("bench_strata", "gender"), ("bench_strata", "age_group"), ("speakers", CORPUS)]
    return {(table, key): (store.rows(table, key), store.digest(table, key)) for table, key in keys}


def fill(store: Store, videos: list[str]) -> None:
    for table in ROWS_PER_VIDEO:
        write_videos(store, table, videos)
    store.write("speakers", CORPUS, synthetic_rows("speakers", [CORPUS], 4).to_pylist())
    for dimension in ["gender", "age_group"]:
        store.write(
            "bench_strata", dimension, synthetic_rows("bench_strata", [dimension], 3).to_pylist()
        )


def compacted_parts(store: Store, table: str) -> list[Path]:
    return sorted((store.tables_dir / table / COMPACTED).glob("part-*.parquet"))


def test_compaction_preserves_every_table_exactly(store):
    videos = video_ids(12)
    fill(store, videos)
    before, partitions = snapshot(store), per_partition(store, videos)
    assert all(before[table] for table in ROWS_PER_VIDEO)

    merged = store.compact(min_files=1)
    assert merged == {**{table: len(videos) for table in ROWS_PER_VIDEO}, "bench_strata": 2}
    for table in ROWS_PER_VIDEO:
        assert fresh_files(store.tables_dir / table) == [], table
        assert len(compacted_parts(store, table)) == 1
    assert snapshot(store) == before
    assert per_partition(store, videos) == partitions  # digests too: data versions stay put

    # A second round: new videos and rewrites of compacted ones, merged into the generation.
    more = video_ids(5, salt="more")
    for table in ROWS_PER_VIDEO:
        write_videos(store, table, more)
        write_videos(store, table, videos[:3], tag=1)
    expected = snapshot(store)
    assert expected != before
    assert store.compact(min_files=1) == {table: 8 for table in ROWS_PER_VIDEO}
    assert snapshot(store) == expected
    assert len(compacted_parts(store, "segments")) == 1


def test_a_rewrite_after_compaction_wins(store):
    videos = video_ids(4)
    write_videos(store, "segments", videos)
    store.compact(min_files=1)
    old = store.rows("segments", videos[1])
    write_videos(store, "segments", videos[1:2], tag=7)
    new = synthetic_rows("segments", videos[1:2], tag=7).to_pylist()
    assert new != old
    query = "SELECT * FROM segments WHERE video_id = :v ORDER BY clip_id"
    for _ in range(2):  # before and after the rewrite is compacted in turn
        assert store.rows("segments", videos[1]) == new
        assert store.query(query, {"v": videos[1]}) == new
        assert store.query("SELECT count(*) AS n FROM segments") == [{"n": 20}]
        store.compact(min_files=1)
    assert fresh_files(store.tables_dir / "segments") == []


def test_an_empty_rewrite_hides_compacted_rows(store):
    videos = video_ids(3)
    for table in CLIP_TABLES:
        write_videos(store, table, videos)
    store.compact(min_files=1)
    digest = store.digest("segments", videos[0])
    for table in CLIP_TABLES:
        store.write(table, videos[0], [])
    for _ in range(2):  # before and after the removal is compacted
        assert store.rows("segments", videos[0]) == []
        assert store.digest("segments", videos[0]) != digest
        assert store.query(
            "SELECT count(*) AS n FROM clips WHERE video_id = :v", {"v": videos[0]}
        ) == [{"n": 0}]
        assert store.query("SELECT count(*) AS n FROM clips") == [{"n": 10}]
        store.compact(min_files=1)
    assert fresh_files(store.tables_dir / "segments") == []


def _rewrite(home: str, worker: int, compactions, last_rounds) -> None:
    """Rewrite this worker's videos round after round (each round's rows tagged with it, some
    rounds empty) until compactions have run beside it; record the last round."""
    store = Store(home)
    videos = video_ids(6, salt=f"w{worker}")
    round_ = 0
    while round_ < 10 or compactions.value < 8:
        round_ += 1
        for index, video in enumerate(videos):
            rows = synthetic_rows("segments", [video], tag=round_).to_pylist()
            store.write("segments", video, rows if (index + round_) % 4 else [])
    last_rounds[worker] = round_


def _compact_until(home: str, stop, compactions) -> None:
    store = Store(home)
    while not stop.is_set():
        if store.compact(min_files=1):
            compactions.value += 1


def _read_until(home: str, stop, reads) -> None:
    """Query the views and read partitions while files come and go: never an error."""
    store = Store(home)
    videos = video_ids(6, salt="w0")
    while not stop.is_set():
        store.query("SELECT count(*) AS n, count(DISTINCT clip_id) AS c FROM clips")
        store.rows("segments", videos[reads.value % 6])
        reads.value += 1


def test_a_writer_racing_compaction_loses_nothing(store):
    workers = 3
    for worker in range(workers):  # something compacted to begin with
        write_videos(store, "segments", video_ids(6, salt=f"w{worker}"))
    store.compact(min_files=1)
    context = multiprocessing.get_context("spawn")
    stop, compactions, reads = context.Event(), context.Value("i", 0), context.Value("i", 0)
    last_rounds = context.Array("i", workers)
    home = str(store.home)
    background = [
        context.Process(target=_compact_until, args=(home, stop, compactions)),
        context.Process(target=_read_until, args=(home, stop, reads)),
    ]
    writers = [
        context.Process(target=_rewrite, args=(home, worker, compactions, last_rounds))
        for worker in range(workers)
    ]
    for process in [*background, *writers]:
        process.start()
    for process in writers:
        process.join(120)
        assert process.exitcode == 0, "a writer failed (see stderr)"
    stop.set()
    for process in background:
        process.join(60)
        assert process.exitcode == 0, "a compaction or a reader failed (see stderr)"
    print(f"{compactions.value} compactions, {reads.value} reads, rounds {list(last_rounds)}")
    assert reads.value >= 3

    expected = {}
    for worker in range(workers):
        for index, video in enumerate(video_ids(6, salt=f"w{worker}")):
            last = last_rounds[worker]
            rows = synthetic_rows("segments", [video], tag=last).to_pylist()
            expected[video] = rows if (index + last) % 4 else []
    for check in range(2):  # as the race left it, then compacted
        for video, rows in expected.items():
            assert store.rows("segments", video) == rows, (check, video)
            query = "SELECT * FROM segments WHERE video_id = :v ORDER BY clip_id"
            assert store.query(query, {"v": video}) == rows
        total = sum(len(rows) for rows in expected.values())
        assert store.query("SELECT count(*) AS n FROM segments") == [{"n": total}]
        store.compact(min_files=1)


def test_compaction_waits_for_an_open_connection_then_leaves_the_files(store):
    videos = video_ids(3)
    write_videos(store, "segments", videos)
    with store.engine().connect() as connection:
        assert store.compact(min_files=1, timeout_s=0.2) == {}
        assert connection.execute(sa.text("SELECT count(*) FROM segments")).scalar() == 15
    assert len(fresh_files(store.tables_dir / "segments")) == 3
    assert store.compact(min_files=1) == {"segments": 3}
    with store.connect(), pytest.raises(RuntimeError, match="reads the store"):
        store.compact(min_files=1)


def test_a_file_written_before_a_column_was_added_reads_as_null(store):
    videos = video_ids(2)
    write_videos(store, "segments", videos)
    store.query("SELECT 1")
    # A home of an older layout: a file without today's last column, and no layout marker.
    old = synthetic_rows("segments", [videos[1]]).drop_columns(["subtitle_speech"])
    pq.write_table(old, store.tables_dir / "segments" / f"{videos[1]}.parquet")
    (store.tables_dir / LAYOUT_FILE).unlink()
    reopened = Store(store.home)
    rows = reopened.query("SELECT video_id, subtitle_speech FROM segments ORDER BY ALL")
    assert [row["subtitle_speech"] for row in rows if row["video_id"] == videos[1]] == [None] * 5
    assert len(rows) == 10
    assert pq.read_schema(store.tables_dir / "segments" / f"{videos[1]}.parquet").names == list(
        TABLES["segments"].names
    )


def test_reasons_once_text_read_as_null_until_judged_again(store):
    """A home whose verdicts were written when reasons were text: the files are rewritten
    with today's struct column, empty until filtered_clips runs again (its code version
    changed with the column), never an error for every query."""
    videos = video_ids(2)
    write_videos(store, "filtered_clips", videos)
    store.query("SELECT 1")
    old = synthetic_rows("filtered_clips", [videos[1]]).set_column(
        3, "reject_reasons", pa.array([["quality_score=4.50 (needs >= 5.0 for dover)"]] * 5)
    )
    pq.write_table(old, store.tables_dir / "filtered_clips" / f"{videos[1]}.parquet")
    (store.tables_dir / LAYOUT_FILE).unlink()
    reopened = Store(store.home)
    nulls = "SELECT count(*) AS n FROM filtered_clips WHERE reject_reasons IS NULL"
    assert reopened.query(nulls) == [{"n": 5}]
    rewritten = reopened.rows("filtered_clips", videos[1])
    assert [row["reject_reasons"] for row in rewritten] == [None] * 5


def test_a_compacted_home_moved_or_copied_reads_the_same(store, tmp_path):
    videos = video_ids(4)
    for table in CLIP_TABLES:
        write_videos(store, table, videos)
    store.compact(min_files=1)
    before = snapshot(store)
    moved = Store(store.home.rename(tmp_path / "moved"))  # the generation link is relative
    assert snapshot(moved) == before
    shutil.copytree(moved.home, tmp_path / "copy")  # symlinks copied as folders
    copy = Store(tmp_path / "copy")
    assert snapshot(copy) == before
    write_videos(copy, "segments", videos[:1], tag=3)
    assert copy.compact(min_files=1) == {"segments": 1}
    assert snapshot(Store(copy.home)) != before
    assert snapshot(Store(moved.home)) == before


def _write_files(home: str, table: str, videos: list[str]) -> None:
    write_partition_files(Store(home), table, videos)


def test_count_over_4000_compacted_videos_reads_every_row_group(store):
    """The clips and their verdicts (the two tables ``count(*) FROM clips`` cannot skip) of
    4,000 videos, written as partition files by two processes, then compacted: 20,000 rows a
    table, so the compacted files hold several row groups (``make bench-scale`` times 100,000)."""
    count, chunk_size = 4_000, 1_000
    videos, tables = video_ids(count), ["segments", "filtered_clips"]
    store.query("SELECT 1")  # a home made by today's store (its layout marker written)
    started = time.perf_counter()
    with multiprocessing.get_context("spawn").Pool(2) as pool:
        chunks = [videos[start : start + chunk_size] for start in range(0, count, chunk_size)]
        pool.starmap(_write_files, [(str(store.home), t, c) for t in tables for c in chunks])
    written = time.perf_counter() - started
    assert store.compact() == dict.fromkeys(tables, count)
    compacted = time.perf_counter() - started - written
    fresh = Store(store.home)
    started = time.perf_counter()
    assert fresh.query("SELECT count(*) AS n FROM clips") == [{"n": count * 5}]
    counted = time.perf_counter() - started
    started = time.perf_counter()
    clips = fresh.query("SELECT clip_id, passed FROM clips WHERE video_id = :v", {"v": videos[7]})
    one = time.perf_counter() - started
    print(
        f"\n{count:,} videos: written {written:.1f} s, compacted {compacted:.1f} s, "
        f"count(*) FROM clips {counted:.3f} s, one video's clips {one:.3f} s"
    )
    assert len(clips) == 5
    for table in tables:
        assert fresh_files(store.tables_dir / table) == []
        assert len(compacted_parts(store, table)) == 1
    for index in [0, 7, chunk_size - 1, count - 1]:  # rows() reads the right row groups
        chunk, at = divmod(index, chunk_size)
        expected = synthetic_rows("segments", chunks[chunk]).slice(at * 5, 5).to_pylist()
        assert fresh.rows("segments", videos[index]) == expected
    ordered = sorted(videos)  # and all of a video whose rows straddle two row groups
    edges = range(ROW_GROUP_ROWS, count * 5, ROW_GROUP_ROWS)
    assert len(edges) >= 2
    for edge in edges:
        assert len(fresh.rows("segments", ordered[edge // 5])) == 5
