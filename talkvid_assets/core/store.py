"""The metadata store: one Parquet file per (table, video), published as DuckDB views.

DuckDB allows one writer process per database file, while partitions of a run, and several
runs, write at once. So no step ever writes to the DuckDB file: each partition writes its rows
of a table to ``tables/<table>/<video_id>.parquet`` with an atomic rename, which makes a re-run
replace exactly that partition's rows and never leave a half-written file. ``talkvid.duckdb``
holds only views over those files (created once per home, under a file lock), so SQL users
always see every committed partition, and ``Store.query`` reads the same views in memory. All SQL
goes through SQLAlchemy with duckdb-engine, so any SQLAlchemy tool can use ``Store.engine``.
"""

from __future__ import annotations

import fcntl
import json
import os
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import sqlalchemy as sa

from talkvid_assets.core.head_detail import HEAD_DETAIL_KEYS

DATABASE_FILE = "talkvid.duckdb"
SCHEMA_VERSION = 2
_KEYS = [("video_id", pa.string())]
_CLIP_KEYS = [("clip_id", pa.string()), ("video_id", pa.string())]
_VERSION = ("backend_version", pa.string())  # the scorer build that produced the row

TABLES: dict[str, pa.Schema] = {
    "sources": pa.schema(
        [
            *_KEYS,
            ("source_path", pa.string()),
            ("size_bytes", pa.int64()),
            ("ingested_at", pa.string()),
        ]
    ),
    "raw_videos": pa.schema(
        [
            *_KEYS,
            ("source_path", pa.string()),
            ("status", pa.string()),
            ("reject_reason", pa.string()),
            ("container", pa.string()),
            ("video_codec", pa.string()),
            ("audio_codec", pa.string()),
            ("width", pa.int32()),
            ("height", pa.int32()),
            ("fps", pa.float64()),
            ("duration_s", pa.float64()),
            ("frame_count", pa.int64()),
            ("has_audio", pa.bool_()),
            ("profile", pa.string()),
        ]
    ),
    "decode_reports": pa.schema(
        [
            *_KEYS,
            ("frames_decoded", pa.int64()),
            ("video_packet_errors", pa.int64()),
            ("audio_packet_errors", pa.int64()),
            ("stopped_early", pa.bool_()),
            ("audio_s", pa.float64()),
            ("scene_detector", pa.string()),
            ("error", pa.string()),
            ("note", pa.string()),
        ]
    ),
    "segments": pa.schema(
        [
            *_CLIP_KEYS,
            ("scene_index", pa.int32()),
            ("start_frame", pa.int64()),
            ("end_frame", pa.int64()),
            ("scene_start_s", pa.float64()),
            ("scene_end_s", pa.float64()),
            ("start_time", pa.float64()),
            ("end_time", pa.float64()),
            ("duration_s", pa.float64()),
            ("frame_count", pa.int64()),
            ("speech_ratio", pa.float64()),
            ("subtitle_speech", pa.bool_()),  # reference voice rule; NULL without subtitles
        ]
    ),
    "quality_scores": pa.schema(
        [*_CLIP_KEYS, ("quality_score", pa.float64()), ("quality_backend", pa.string()), _VERSION]
    ),
    "motion_scores": pa.schema(
        [*_CLIP_KEYS, ("motion_ratio", pa.float64()), ("motion_backend", pa.string()), _VERSION]
    ),
    "head_detail_scores": pa.schema(
        [
            *_CLIP_KEYS,
            *[(key, pa.float64()) for key in HEAD_DETAIL_KEYS],
            ("sampled_frames", pa.int64()),
            ("single_face_frames", pa.int64()),
            ("face_backend", pa.string()),
            _VERSION,
        ]
    ),
    "filtered_clips": pa.schema(
        [
            *_CLIP_KEYS,
            ("passed", pa.bool_()),
            ("reject_reasons", pa.list_(pa.string())),
            ("profile", pa.string()),
        ]
    ),
}

_HEAD_COLUMNS = ", ".join(f"h.{key}" for key in HEAD_DETAIL_KEYS)
# Derived views, in dependency order. `clip_scores` is every segment with every score and the
# backends behind them: what the verdict and the export read; `videos` and `clips` are public.
DERIVED_VIEWS = {
    "clip_scores": f"""
        SELECT s.*, q.quality_score, q.quality_backend,
               q.backend_version AS quality_backend_version,
               m.motion_ratio, m.motion_backend, m.backend_version AS motion_backend_version,
               {_HEAD_COLUMNS}, h.sampled_frames, h.single_face_frames, h.face_backend,
               h.backend_version AS face_backend_version
        FROM segments s
        LEFT JOIN quality_scores q USING (clip_id)
        LEFT JOIN motion_scores m USING (clip_id)
        LEFT JOIN head_detail_scores h USING (clip_id)""",
    # A video whose decode failed after it passed the prefilter is rejected with that error.
    "videos": """
        SELECT v.video_id, v.source_path,
               CASE WHEN d.error IS NULL THEN v.status ELSE 'rejected' END AS status,
               coalesce(v.reject_reason, d.error) AS reject_reason,
               v.width, v.height, v.fps, v.duration_s, v.has_audio
        FROM raw_videos v
        LEFT JOIN decode_reports d USING (video_id)""",
    "clips": f"""
        SELECT c.clip_id, c.video_id, c.start_time, c.end_time, c.duration_s, c.speech_ratio,
               c.quality_score, c.motion_ratio, {_HEAD_COLUMNS.replace("h.", "c.")},
               f.passed, f.reject_reasons
        FROM clip_scores c
        LEFT JOIN filtered_clips f USING (clip_id)""",
}


class Store:
    """Metadata of one ``$TALKVID_HOME``."""

    def __init__(self, home: str | Path) -> None:
        self.home = Path(home).resolve()
        self.tables_dir = self.home / "tables"
        self.database_path = self.home / DATABASE_FILE

    def _table_dir(self, table: str) -> Path:
        if table not in TABLES:
            raise KeyError(f"unknown table {table!r}")
        return self.tables_dir / table

    def write(self, table: str, video_id: str, rows: Sequence[Mapping[str, Any]]) -> int:
        """Replace ``video_id``'s rows of ``table`` with ``rows`` (possibly none), atomically."""
        schema = TABLES[table]
        for row in rows:
            if row.get("video_id") != video_id:
                raise ValueError(f"row for {row.get('video_id')!r} written under {video_id!r}")
        data = pa.Table.from_pylist(
            [{name: row.get(name) for name in schema.names} for row in rows], schema
        )
        directory = self._table_dir(table)
        directory.mkdir(parents=True, exist_ok=True)
        _atomic_parquet(data, directory / f"{video_id}.parquet")
        return data.num_rows

    def _ensure_schema_files(self) -> None:
        """An empty file per table fixes its columns, so views work before any partition ran."""
        for table, schema in TABLES.items():
            path = self._table_dir(table) / "_schema.parquet"
            if not path.exists():
                path.parent.mkdir(parents=True, exist_ok=True)
                _atomic_parquet(schema.empty_table(), path)

    def _view_statements(self) -> list[str]:
        statements = [
            f"CREATE OR REPLACE VIEW {table} AS SELECT * FROM read_parquet("
            f"'{_sql_string(str(self._table_dir(table)))}/*.parquet', union_by_name = true)"
            for table in TABLES
        ]
        statements += [
            f"CREATE OR REPLACE VIEW {name} AS {sql}" for name, sql in DERIVED_VIEWS.items()
        ]
        return statements

    def publish(self) -> Path:
        """Create the views in ``talkvid.duckdb`` unless this home already has current ones.

        Cheap after the first call (a marker file records the schema version and location), and
        safe when several processes call it at once (an exclusive file lock).
        """
        marker = self.home / f".{DATABASE_FILE}.views"
        stamp = json.dumps({"schema": SCHEMA_VERSION, "tables": str(self.tables_dir)})
        if self._published(marker, stamp):
            return self.database_path
        self.home.mkdir(parents=True, exist_ok=True)
        with _file_lock(self.home / f".{DATABASE_FILE}.lock"):
            if self._published(marker, stamp):
                return self.database_path
            self._ensure_schema_files()
            engine = sa.create_engine(f"duckdb:///{self.database_path}")
            try:
                with engine.begin() as connection:
                    for statement in self._view_statements():
                        connection.exec_driver_sql(statement)
            finally:
                engine.dispose()
            marker.write_text(stamp)
        return self.database_path

    def _published(self, marker: Path, stamp: str) -> bool:
        return self.database_path.exists() and marker.exists() and marker.read_text() == stamp

    def engine(self) -> sa.Engine:
        """A read-only SQLAlchemy engine on ``talkvid.duckdb``, for users and their tools
        (pandas.read_sql, notebooks); it sees every committed partition."""
        self.publish()
        return sa.create_engine(f"duckdb:///{self.database_path}", connect_args={"read_only": True})

    @contextmanager
    def connect(self) -> Iterator[sa.Connection]:
        """A connection to an in-memory DuckDB with the store's views.

        Steps read through this rather than the database file, so no reader ever holds the
        file's lock while another process publishes.
        """
        self._ensure_schema_files()
        engine = sa.create_engine("duckdb:///:memory:", poolclass=sa.pool.StaticPool)
        try:
            with engine.connect() as connection:
                for statement in self._view_statements():
                    connection.exec_driver_sql(statement)
                yield connection
        finally:
            engine.dispose()

    def query(self, sql: str, params: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
        """Rows of ``sql`` (named ``:parameters``) over the store's views, as dictionaries."""
        with self.connect() as connection:
            result = connection.execute(sa.text(sql), dict(params or {}))
            return [dict(row) for row in result.mappings()]

    def rows(self, table: str, video_id: str) -> list[dict[str, Any]]:
        """``video_id``'s rows of ``table``, read straight from its partition file."""
        path = self._table_dir(table) / f"{video_id}.parquet"
        return pq.read_table(path).to_pylist() if path.exists() else []


def _sql_string(text: str) -> str:
    return text.replace("'", "''")


def _atomic_parquet(data: pa.Table, path: Path) -> None:
    descriptor, temporary = tempfile.mkstemp(
        dir=path.parent, prefix=f".{path.stem}.", suffix=".tmp"
    )
    os.close(descriptor)
    try:
        pq.write_table(data, temporary)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


@contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
