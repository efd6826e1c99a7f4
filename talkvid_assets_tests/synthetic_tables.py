"""Synthetic rows in every table's schema, for the compaction tests and the scale benchmarks:
every column filled (some nulls, the 128-D face descriptors included), so a whole-table
comparison covers every type the store holds, and fast enough for homes of 100,000 videos."""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from talkvid_assets.core.stages import STAGES
from talkvid_assets.core.store import TABLES, Store

# Rows per video of the per-video tables in a curated home: one source, probe and decode report;
# five clips, each scored by every stage and judged; three of them passing and annotated.
ROWS_PER_VIDEO = {
    "sources": 1,
    "raw_videos": 1,
    "decode_reports": 1,
    "segments": 5,
    **{stage.table: 5 for stage in STAGES},
    "filtered_clips": 5,
    "annotations": 3,
}
DESCRIPTOR = 128


def video_ids(count: int, salt: str = "") -> list[str]:
    """Partition keys shaped like the real ones (16 hex digits of a SHA-256), in no order."""
    return [hashlib.sha256(f"{salt}{index}".encode()).hexdigest()[:16] for index in range(count)]


def synthetic_rows(table: str, videos: list[str], per_video: int | None = None, tag: int = 0):
    """``per_video`` rows for each of ``videos`` in ``table``'s schema, as one Arrow table in
    video order: every column filled from the row's position and ``tag`` (so a rewrite with
    another tag differs in every value column), about one value in eleven null."""
    schema = TABLES[table]
    per = ROWS_PER_VIDEO[table] if per_video is None else per_video
    count = len(videos) * per
    video = np.repeat(np.arange(len(videos)), per)
    row = np.tile(np.arange(per), len(videos))
    seed = video * 7919 + row * 104729 + tag * 15485863
    columns = []
    for index, field in enumerate(schema):
        values = (seed + index * 31) % 1000
        null = (seed + index) % 11 == 0
        kind = field.type
        if field.name == "video_id" or (field.name == "dimension" and table == "bench_strata"):
            column = pa.array(np.repeat(np.array(videos, dtype=object), per), kind)
        elif field.name == "clip_id":
            column = pa.array([f"{videos[v]}-{r:04d}" for v, r in zip(video, row, strict=True)])
        elif pa.types.is_string(kind):
            column = pa.array(
                [None if n else f"{field.name}-{v}" for v, n in zip(values, null, strict=True)],
                kind,
            )
        elif pa.types.is_integer(kind):
            column = pa.array(values, kind, mask=null)
        elif pa.types.is_floating(kind):
            column = pa.array(values / 8, kind, mask=null)
        elif pa.types.is_boolean(kind):
            column = pa.array(values % 2 == 0, kind, mask=null)
        elif pa.types.is_struct(kind):
            structs = [None if n else struct(kind, v) for v, n in zip(values, null, strict=True)]
            column = pa.array(structs, kind)
        elif pa.types.is_list(kind) and pa.types.is_struct(kind.value_type):
            item = kind.value_type
            column = pa.array(
                [[] if v % 3 else [struct(item, v % 5), struct(item, v)] for v in values], kind
            )
        elif kind == pa.list_(pa.float32()):
            floats = (np.arange(count * DESCRIPTOR, dtype=np.float32) % 997) / 997
            floats += np.repeat(values.astype(np.float32), DESCRIPTOR)
            offsets = pa.array(np.arange(0, count * DESCRIPTOR + 1, DESCRIPTOR, dtype=np.int32))
            column = pa.ListArray.from_arrays(offsets, pa.array(floats), mask=pa.array(null))
        else:
            raise AssertionError(f"no synthetic values for {table}.{field.name}: {kind}")
        columns.append(column)
    return pa.Table.from_arrays(columns, schema=schema)


def struct(kind: pa.StructType, value: int) -> dict[str, Any]:
    """A struct of ``kind`` (text and numbers, a stored failure) with every field from ``value``."""
    return {
        field.name: value / 8 if pa.types.is_floating(field.type) else f"{field.name}-{value}"
        for field in kind
    }


def write_videos(store: Store, table: str, videos: list[str], tag: int = 0) -> None:
    """Each video's synthetic rows through ``Store.write`` (the real write path)."""
    data = synthetic_rows(table, videos, tag=tag)
    per = ROWS_PER_VIDEO[table]
    for index, video in enumerate(videos):
        store.write(table, video, data.slice(index * per, per).to_pylist())


def write_partition_files(store: Store, table: str, videos: list[str]) -> None:
    """Each video's synthetic rows as its partition file, written with pyarrow straight into
    the table's folder: what ``Store.write`` leaves, made fast enough for homes of 100,000."""
    data = synthetic_rows(table, videos)
    per = ROWS_PER_VIDEO[table]
    folder = store.tables_dir / table
    folder.mkdir(parents=True, exist_ok=True)
    for index, video in enumerate(videos):
        pq.write_table(data.slice(index * per, per), folder / f"{video}.parquet")
