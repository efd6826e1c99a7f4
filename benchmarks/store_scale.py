"""How the metadata store scales with the number of videos: synthetic homes of 1,000 to 100,000.

Run with ``.venv/bin/python benchmarks/store_scale.py [--videos 1000 10000 100000]``. The homes
are SYNTHETIC: no video is decoded. Each video gets the rows a curated video has in the nine
per-video tables (one source, probe and decode report; five clips, each scored by the three
stages and judged; three annotated, with 128-D face descriptors), every column filled from the
tables' schemas (``talkvid_assets_tests.synthetic_tables.synthetic_rows``), written as the
partition files ``Store.write`` leaves (pyarrow, several processes, for speed).

Printed per size, before and after ``Store.compact()``: files under ``tables/``, bytes per
video, and, each in a new process with its peak RSS: ``Store()`` + a first ``publish()``
(views created in talkvid.duckdb), ``SELECT count(*) FROM clips``, ``SELECT * FROM clips WHERE
video_id = ?``, and ``Store.rows('segments', video)``; then the compaction itself (the first
of a home never compacted: every partition file merged). Up to ``--before-max`` videos
(default 10,000; the cost is linear in the files) the views are timed before compaction too, and
up to ``--legacy-max`` (default 10,000; the issue saw it killed at 14.3 GB at 100,000) the
count through the views of layout 1 (``union_by_name`` over every partition file).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from talkvid_assets.core.store import DERIVED_VIEWS, TABLES, Store
from talkvid_assets_tests.synthetic_tables import ROWS_PER_VIDEO, video_ids, write_partition_files

CHUNK = 2_000  # videos per writing task
VIEWS_MARKER = ".talkvid.duckdb.views"  # Store.publish's marker: removed to time a first publish


def _write_chunk(home: str, table: str, videos: list[str]) -> None:
    write_partition_files(Store(home), table, videos)


def build(home: Path, count: int) -> float:
    """A synthetic home of ``count`` videos, its partition files written in parallel."""
    Store(home).publish()  # a home of today's store: layout marker, views
    videos = video_ids(count)
    started = time.perf_counter()
    with ProcessPoolExecutor(os.cpu_count()) as pool:
        tasks = [
            pool.submit(_write_chunk, str(home), table, videos[start : start + CHUNK])
            for table in ROWS_PER_VIDEO
            for start in range(0, count, CHUNK)
        ]
        for task in tasks:
            task.result()
    return time.perf_counter() - started


def footprint(home: Path) -> tuple[int, int]:
    """Files and bytes under ``tables/``."""
    files = size = 0
    for folder, _, names in os.walk(home / "tables"):
        for name in names:
            if name.endswith(".parquet"):
                files += 1
                size += os.stat(os.path.join(folder, name)).st_size
    return files, size


def _peak_rss_mb() -> float:
    status = Path("/proc/self/status").read_text()
    return int(re.search(r"VmHWM:\s+(\d+)", status).group(1)) / 1024


def measure(home: str, videos: list[str]) -> dict:
    """In a new process: the first publish, the queries, and this process's peak RSS.

    ``count(*)`` is timed once (what ``talkvid sql`` pays); the per-video query and ``rows()``
    as the best of the ``videos`` after one warm-up (what a step pays, query after query).
    """
    result = {}
    Path(home, VIEWS_MARKER).unlink(missing_ok=True)
    started = time.perf_counter()
    store = Store(home)
    store.publish()
    result["publish_s"] = time.perf_counter() - started
    store.query("SELECT 1")  # the in-memory views of Store.query
    started = time.perf_counter()
    result["clips"] = store.query("SELECT count(*) AS n FROM clips")[0]["n"]
    result["count_s"] = time.perf_counter() - started
    clips = ROWS_PER_VIDEO["segments"]
    timings: dict[str, list[float]] = {"video_s": [], "rows_s": []}
    for video in [videos[-1], *videos]:
        started = time.perf_counter()
        found = store.query("SELECT * FROM clips WHERE video_id = :v", {"v": video})
        timings["video_s"].append(time.perf_counter() - started)
        started = time.perf_counter()
        rows = store.rows("segments", video)
        timings["rows_s"].append(time.perf_counter() - started)
        assert len(found) == len(rows) == clips, (video, found, rows)
    result.update({name: min(values[1:]) for name, values in timings.items()})
    result["peak_rss_mb"] = _peak_rss_mb()
    return result


def measure_legacy(home: str) -> dict:
    """``count(*) FROM clips`` through layout 1's views (union_by_name over every partition
    file), and the time to create them: what every Store paid before compaction existed."""
    import duckdb

    tables = Path(home) / "tables"
    connection = duckdb.connect()
    started = time.perf_counter()
    for table in TABLES:
        connection.execute(
            f"CREATE VIEW {table} AS SELECT * FROM read_parquet("
            f"'{tables / table}/*.parquet', union_by_name = true)"
        )
    for name, sql in DERIVED_VIEWS.items():
        connection.execute(f"CREATE VIEW {name} AS {sql}")
    views = time.perf_counter() - started
    started = time.perf_counter()
    connection.execute("SELECT count(*) FROM clips").fetchall()
    return {
        "publish_s": views,
        "count_s": time.perf_counter() - started,
        "peak_rss_mb": _peak_rss_mb(),
    }


def compact(home: str) -> dict:
    """In a new process: ``Store.compact()`` and its peak RSS."""
    started = time.perf_counter()
    merged = Store(home).compact()
    return {
        "compact_s": time.perf_counter() - started,
        "merged": sum(merged.values()),
        "peak_rss_mb": _peak_rss_mb(),
    }


def _child(*arguments: str) -> dict:
    output = subprocess.run(
        [sys.executable, __file__, "--child", *arguments],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return json.loads(output.strip().splitlines()[-1])


def run(count: int, root: Path, legacy_max: int, before_max: int) -> list[dict]:
    home = root / f"home_{count}"
    shutil.rmtree(home, ignore_errors=True)
    print(f"building {count:,} synthetic videos...", flush=True)
    written = build(home, count)
    sample = ",".join(video_ids(count)[:: max(1, count // 5)][:5])
    rows = []
    files, size = footprint(home)
    if count <= legacy_max:
        legacy = _child("legacy", str(home))
        rows.append({"state": "layout 1 (union_by_name)", "files": files, "bytes": size, **legacy})
    if count <= before_max:
        before = _child("measure", str(home), sample)
        rows.append({"state": "partition files", "files": files, "bytes": size, **before})
    compaction = _child("compact", str(home))
    compaction["compaction_rss_mb"] = compaction.pop("peak_rss_mb")
    files, size = footprint(home)
    after = _child("measure", str(home), sample)
    rows.append({"state": "compacted", "files": files, "bytes": size, **after, **compaction})
    for row in rows:
        row["videos"], row["written_s"] = count, written
    shutil.rmtree(home, ignore_errors=True)
    return rows


def render(rows: list[dict]) -> str:
    header = (
        "| videos | state | files | bytes/video | Store()+publish() | count(*) clips | "
        "clips WHERE video_id | rows() | peak RSS | compaction (its peak RSS) |"
    )
    lines = [header, "|" + "---|" * (header.count("|") - 1)]

    def seconds(row: dict, name: str, scale: float = 1.0, unit: str = "s") -> str:
        return f"{row[name] * scale:.3f} {unit}" if name in row else ""

    for row in rows:
        compaction = (
            f"{row['compact_s']:.1f} s ({row['compaction_rss_mb']:.0f} MiB)"
            if "compact_s" in row
            else ""
        )
        lines.append(
            f"| {row['videos']:,} | {row['state']} | {row['files']:,} | "
            f"{row['bytes'] / row['videos']:,.0f} | {row['publish_s']:.2f} s | "
            f"{row['count_s']:.3f} s | {seconds(row, 'video_s')} | "
            f"{seconds(row, 'rows_s', 1000, 'ms')} | {row['peak_rss_mb']:.0f} MiB | {compaction} |"
        )
    return "\n".join(lines)


def main() -> None:
    if sys.argv[1:2] == ["--child"]:
        kind, home, *rest = sys.argv[2:]
        if kind == "compact":
            print(json.dumps(compact(home)))
        elif kind == "legacy":
            print(json.dumps(measure_legacy(home)))
        else:
            print(json.dumps(measure(home, rest[0].split(","))))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", type=int, nargs="+", default=[1_000, 10_000, 100_000])
    parser.add_argument("--root", type=Path, default=None, help="where the homes are built")
    parser.add_argument(
        "--legacy-max", type=int, default=10_000, help="time layout 1's views up to this size"
    )
    parser.add_argument(
        "--before-max",
        type=int,
        default=10_000,
        help="time today's views before compaction up to this size (linear in the files)",
    )
    arguments = parser.parse_args()
    root = arguments.root or Path(tempfile.mkdtemp(prefix="store_scale_"))
    rows = []
    try:
        for count in arguments.videos:
            started = time.perf_counter()
            found = run(count, root, arguments.legacy_max, arguments.before_max)
            rows += found
            print(render(found), flush=True)
            print(
                f"({count:,} videos: files written in {found[0]['written_s']:.0f} s, "
                f"all in {time.perf_counter() - started:.0f} s)"
            )
    finally:
        if arguments.root is None:
            shutil.rmtree(root, ignore_errors=True)
    print("\nSynthetic homes (see the module docstring); one process per measurement.")
    print(render(rows))


if __name__ == "__main__":
    main()
