"""The metadata store: one Parquet file per (table, video), published as DuckDB views.

DuckDB allows one writer process per database file, while partitions of a run, and several
runs, write at once. So no step ever writes to the DuckDB file: each partition writes its rows
of a table to ``tables/<table>/<video_id>.parquet`` with an atomic rename, which makes a re-run
replace exactly that partition's rows and never leave a half-written file. ``talkvid.duckdb``
holds only views over those files (created once per home, under a file lock), so SQL users
always see every committed partition, and ``Store.query`` reads the same views in memory. All SQL
goes through SQLAlchemy with duckdb-engine, so any SQLAlchemy tool can use ``Store.engine``.

A view over one file per video costs a footer per video per query, so :meth:`Store.compact`
merges a table's partition files into a few large sorted ones; a partition's own file, when it
has one, still wins over its compacted rows (``core.compaction`` has the layout and the locks).
Every file of a table is written with its schema in ``TABLES``, so views read them without
``union_by_name`` (which opens every footer whenever a query binds).
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
from collections import OrderedDict
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, get_args, get_type_hints

import duckdb
import pyarrow as pa
import sqlalchemy as sa

from talkvid_assets.core.compaction import (
    COMPACTED,
    SCHEMA_FILE,
    TablesLock,
    atomic_parquet,
    compact_table,
    compacted_rows,
    ensure_layout,
    file_lock,
    normalize,
    read_file,
    table_view_sql,
)
from talkvid_assets.core.config import fingerprint
from talkvid_assets.core.durable import write_atomic
from talkvid_assets.core.failures import Failure, FailureKind
from talkvid_assets.core.manifest import LABEL_COLUMNS
from talkvid_assets.core.stages import CPU_PARTS, JUDGED_COLUMNS, STAGES

DATABASE_FILE = "talkvid.duckdb"
# Columns that differ between two identical computations (when it ran, how long it took): left
# out of a partition's content digest, so an identical re-run keeps its data version.
CIRCUMSTANTIAL_COLUMNS = frozenset(
    {"ingested_at", "attempted_at", "downloaded_at", *(f"{part}_cpu_s" for part in CPU_PARTS)}
)
SCORE_CACHE_DIR = "score_cache"
SCHEMA_VERSION = 7  # 7: reasons as structured failures; 6: the `clips` view has every judged score
# How a table's files are laid out and read: 1, one file per partition read with union_by_name;
# 2, plus compacted generations (core.compaction), every file in its table's schema.
LAYOUT = 2
LAYOUT_FILE = ".layout"  # under tables/: the layout and columns the files were last made for
COMPACT_LOCK_FILE = ".compact.lock"  # under tables/: one compaction (or layout upgrade) at a time
# compact()'s default: a table is compacted once it has this many partition files. Each one
# left costs every query over its table a footer read (well under a millisecond).
COMPACT_MIN_FILES = 200
# How long compaction waits for readers (queries, open ``engine()`` connections) to let go
# before it leaves the table as it was, for a later call.
COMPACT_TIMEOUT_S = 60.0  # also how long an upgrade of the files (normalize) waits
# Runs of a query that a concurrent write failed (see Store.query).
QUERY_ATTEMPTS = 5
# Connections to the views kept per thread, one per home (least recently used closed first).
# One is shared by every Store of a home in a thread: a curation builds a Store per step, a
# sensor one per tick, and each new connection created the views again (about 70 ms).
VIEW_CONNECTIONS_KEPT = 8
_view_connections = threading.local()
_log = logging.getLogger(__name__)
_KEYS = [("video_id", pa.string())]
_CLIP_KEYS = [("clip_id", pa.string()), ("video_id", pa.string())]
_VERSION = ("backend_version", pa.string())  # the scorer build that produced the row
_TYPES = {"float64": pa.float64(), "int64": pa.int64()}


def _struct_of(cls: type) -> pa.StructType:
    """The Parquet struct of a dataclass of optional text and numbers (``core.failures.Failure``),
    field for field, so the stored form follows the class."""
    fields = []
    for name, hint in get_type_hints(cls).items():
        kind = next(arg for arg in (*get_args(hint), hint) if arg is not type(None))
        fields.append((name, pa.float64() if kind is float else pa.string()))
    return pa.struct(fields)


FAILURE = _struct_of(Failure)  # why a source or clip was turned down (core.failures)

TABLES: dict[str, pa.Schema] = {
    "sources": pa.schema(
        [
            *_KEYS,
            ("source_path", pa.string()),
            ("size_bytes", pa.int64()),
            ("mtime_ns", pa.int64()),  # with size: a cheap test that the keyed content is there
            ("ingested_at", pa.string()),
            # Why the keyed content is no longer at source_path (gone, or overwritten), as last
            # found (sources.source_problem); `videos` then says status "missing".
            ("missing_reason", FAILURE),
        ]
    ),
    "raw_videos": pa.schema(
        [
            *_KEYS,
            ("source_path", pa.string()),
            ("status", pa.string()),
            ("reject_reasons", pa.list_(FAILURE)),
            ("container", pa.string()),
            ("video_codec", pa.string()),
            ("audio_codec", pa.string()),
            ("width", pa.int32()),
            ("height", pa.int32()),
            ("fps", pa.float64()),
            ("duration_s", pa.float64()),
            ("frame_count", pa.int64()),
            ("has_audio", pa.bool_()),
            ("rotation", pa.int32()),  # display-matrix turn; width x height are as displayed
            ("video_streams", pa.int32()),
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
            ("failures", pa.list_(FAILURE)),  # a decode that failed, or stopped short
            ("note", pa.string()),  # anything else a user should know of the decode
            # CPU seconds of each part of the decode pass (core.decode_pass.StageClock) and of
            # writing its tables: where a curation's time goes, per video, in SQL.
            *((f"{part}_cpu_s", pa.float64()) for part in CPU_PARTS),
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
    **{
        stage.table: pa.schema(
            [
                *_CLIP_KEYS,
                *[(column.name, _TYPES[column.kind]) for column in stage.score_columns],
                (stage.backend_column, pa.string()),
                _VERSION,
            ]
        )
        for stage in STAGES
    },
    "filtered_clips": pa.schema(
        [
            *_CLIP_KEYS,
            ("passed", pa.bool_()),
            ("reject_reasons", pa.list_(FAILURE)),
            ("profile", pa.string()),
            ("config_digest", pa.string()),  # the curation.yaml that judged it (config.digest)
        ]
    ),
    # Labels of a source from a labelled manifest (core.manifest), written at ingest.
    "labels": pa.schema(
        [
            *_KEYS,
            ("manifest", pa.string()),
            ("manifest_row", pa.int64()),
            *[(column, pa.string()) for column in LABEL_COLUMNS],
        ]
    ),
    # Per passing clip: the labels its TalkVid record carries and its face descriptor.
    "annotations": pa.schema(
        [
            *_CLIP_KEYS,
            ("start_time", pa.float64()),  # the clip bounds its face descriptor was taken on
            ("end_time", pa.float64()),
            ("person_id", pa.string()),  # from the manifest; else the speaker clustering's id
            ("ethnicity", pa.string()),
            ("age_group", pa.string()),
            ("gender", pa.string()),
            ("video_link", pa.string()),
            ("language", pa.string()),
            ("language_source", pa.string()),  # "manifest" or "audio"; NULL: language_reason
            ("language_reason", pa.string()),
            ("language_confidence", pa.float64()),  # the backend's probability of its label
            ("language_backend", pa.string()),  # name@version of the language-ID backend
            ("spoken_language", pa.string()),  # what the audio says (ISO 639-1), even if unused
            ("category", pa.string()),
            ("description", pa.string()),
            ("face_descriptor", pa.list_(pa.float32())),  # dlib ResNet, 128-D; NULL: no face
        ]
    ),
    # One record per URL of the home's URL lists (core.url_sources), one file per URL: the
    # download archive, with each failure's kind and reason and each download's provenance.
    "url_sources": pa.schema(
        [
            ("url_key", pa.string()),
            ("url", pa.string()),
            ("list_row", pa.int64()),
            ("status", pa.string()),  # ingested | failed
            ("failure", pa.string()),  # http | unsupported | too_large | too_long | timeout | error
            ("reason", pa.string()),
            ("http_status", pa.int32()),
            ("video_id", pa.string()),
            ("source_path", pa.string()),
            ("final_url", pa.string()),  # after redirects, as the extractor saw it
            ("extractor", pa.string()),
            ("size_bytes", pa.int64()),
            ("resumed_from", pa.int64()),  # bytes of an earlier cut try the download resumed
            ("attempted_at", pa.string()),
            ("downloaded_at", pa.string()),
        ]
    ),
    # Corpus-wide tables, each one file (key "corpus"), written by unpartitioned assets.
    "speakers": pa.schema([*_CLIP_KEYS, ("speaker_id", pa.string()), ("labelled", pa.bool_())]),
    "speaker_index": pa.schema(
        [
            ("speaker_id", pa.string()),
            ("centroid", pa.list_(pa.float32())),
            ("count", pa.int64()),
            ("labelled", pa.bool_()),
        ]
    ),
    "bench_strata": pa.schema(  # one file per dimension
        [
            ("clip_id", pa.string()),
            ("dimension", pa.string()),
            ("stratum", pa.string()),
            ("speaker_id", pa.string()),
        ]
    ),
    "training_split": pa.schema([*_CLIP_KEYS, ("speaker_id", pa.string())]),
    # Clip files cut from a passing clip (core.clip_files), with the bounds they were cut at:
    # an export carries a file only while its clip still has those bounds.
    "clip_files": pa.schema(
        [
            *_CLIP_KEYS,
            ("path", pa.string()),
            ("start_time", pa.float64()),
            ("end_time", pa.float64()),
            ("mode", pa.string()),  # "copy" or "encode"
        ]
    ),
    # People's verdicts on clips near each threshold (core.review), one corpus file.
    "review_labels": pa.schema(
        [
            ("clip_id", pa.string()),
            ("check", pa.string()),
            ("human", pa.string()),
            ("automatic", pa.string()),
        ]
    ),
}
CORPUS = "corpus"  # the file key of the corpus-wide tables
# The column a table's files are keyed by (video_id unless named here; None: one corpus file),
# checked on every write so a row never lands in another partition's file.
FILE_KEYS: dict[str, str | None] = {
    "url_sources": "url_key",
    "bench_strata": "dimension",
    "speakers": None,
    "speaker_index": None,
    "training_split": None,
    "review_labels": None,
}


def _clip_scores_sql() -> str:
    """Every segment with every stage's score columns and the backend behind them."""
    columns, joins = [], []
    for index, stage in enumerate(STAGES):
        alias = f"t{index}"
        columns += [f"{alias}.{column.name}" for column in stage.score_columns]
        columns += [
            f"{alias}.{stage.backend_column}",
            f"{alias}.backend_version AS {stage.name}_backend_version",
        ]
        joins.append(f"LEFT JOIN {stage.table} {alias} USING (clip_id)")
    return f"SELECT s.*, {', '.join(columns)} FROM segments s {' '.join(joins)}"


# Derived views, in dependency order. `clip_scores` is every segment with every score and the
# backends behind them: what the verdict and the export read; `videos` and `clips` are public.
DERIVED_VIEWS = {
    "clip_scores": _clip_scores_sql(),
    # A video whose decode failed after it passed the prefilter is rejected with that failure;
    # one whose source vanished since is missing, with the reason (never exported).
    # The source path follows `sources`: a re-ingested copy replaces a deleted original.
    "videos": f"""
        SELECT v.video_id, coalesce(s.source_path, v.source_path) AS source_path,
               CASE WHEN s.missing_reason IS NOT NULL THEN 'missing'
                    WHEN len(d.failed) > 0 THEN 'rejected' ELSE v.status END AS status,
               CASE WHEN s.missing_reason IS NOT NULL THEN [s.missing_reason]
                    ELSE list_concat(v.reject_reasons, d.failed) END AS reject_reasons,
               v.width, v.height, v.fps, v.duration_s, v.has_audio
        FROM raw_videos v
        LEFT JOIN (
            SELECT video_id,
                   [f FOR f IN failures IF f.kind = '{FailureKind.DECODE_FAILED}'] AS failed
            FROM decode_reports
        ) d USING (video_id)
        LEFT JOIN sources s USING (video_id)""",
    # The judged scores (core.stages), the keys of curation.yaml's thresholds.
    "clips": f"""
        SELECT c.clip_id, c.video_id, c.start_time, c.end_time, c.duration_s, c.speech_ratio,
               {", ".join(f"c.{column}" for column in JUDGED_COLUMNS)},
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
        self._lock = TablesLock(self.tables_dir)
        self._layout_ready = False

    def _table_dir(self, table: str) -> Path:
        if table not in TABLES:
            raise KeyError(f"unknown table {table!r}")
        return self.tables_dir / table

    def write(self, table: str, video_id: str, rows: Sequence[Mapping[str, Any]]) -> int:
        """Replace ``video_id``'s rows of ``table`` with ``rows`` (possibly none), atomically.

        The rows go to the partition's own file, which wins over any compacted copy of its
        rows (an empty one removes them); the rename happens under the store's lock held
        shared, so a compaction never deletes a file it has not read.
        """
        data = self._table_rows(table, video_id, rows)
        path = self._table_dir(table) / f"{video_id}.parquet"
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_parquet(data, path, guard=self._lock.shared)
        return data.num_rows

    def _table_rows(self, table: str, video_id: str, rows: Sequence[Mapping[str, Any]]) -> pa.Table:
        """``rows`` as a table with exactly ``table``'s schema: every file of a table has its
        columns and types, which is what lets the views skip ``union_by_name``."""
        schema = TABLES[table]
        column = FILE_KEYS.get(table, "video_id")
        for row in rows:
            if column and row.get(column) != video_id:
                raise ValueError(f"row for {row.get(column)!r} written under {video_id!r}")
        return pa.Table.from_pylist(
            [{name: row.get(name) for name in schema.names} for row in rows], schema
        )

    def preview_path(self, video_id: str) -> Path:
        """The contact sheet of a video's clips (PNG), written by the decode pass."""
        return self.home / "previews" / f"{video_id}.png"

    def _cache_file(self, table: str, video_id: str, key: str) -> Path:
        self._table_dir(table)  # validates the name
        return self.home / SCORE_CACHE_DIR / table / video_id / f"{key}.parquet"

    def cache_scores(
        self, table: str, video_id: str, key: str, rows: Sequence[Mapping[str, Any]]
    ) -> None:
        """Keep a stage's scores under ``key`` (backend build + clips), outside the views: a
        backend switched back, or a stage re-run, reuses them instead of decoding again."""
        path = self._cache_file(table, video_id, key)
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_parquet(self._table_rows(table, video_id, rows), path)

    def cached_scores(self, table: str, video_id: str, key: str) -> list[dict[str, Any]] | None:
        """Scores kept under ``key`` by :meth:`cache_scores`, or None."""
        path = self._cache_file(table, video_id, key)
        return read_file(path).to_pylist() if path.exists() else None

    def _ensure_schema_files(self) -> None:
        """Give every table its schema file and compacted generation, so views work before
        any partition ran, and rewrite files written with other columns (a home made before
        a column was added, or by layout 1) once, so the views can read them as they are.

        One small file read once per Store; the upgrade runs once per home and change, under
        the compaction lock (it waits for a running compaction).
        """
        if self._layout_ready:
            return
        marker = self.tables_dir / LAYOUT_FILE
        if not self._layout_current(marker):
            self.tables_dir.mkdir(parents=True, exist_ok=True)
            with file_lock(self.tables_dir / COMPACT_LOCK_FILE):
                if not self._layout_current(marker):
                    recorded = _recorded_layout(marker)
                    try:
                        for table, schema in TABLES.items():
                            ensure_layout(self._table_dir(table), schema)
                            if recorded.get(table) != _layout()[table]:
                                normalize(
                                    self._table_dir(table), schema, self._lock, COMPACT_TIMEOUT_S
                                )
                    except TimeoutError:  # a reader held on: the next Store tries again
                        _log.warning("files of %s left to upgrade: readers busy", self.home)
                        return
                    write_atomic(marker, json.dumps(_layout(), sort_keys=True).encode())
        self._layout_ready = True

    def _layout_current(self, marker: Path) -> bool:
        if _recorded_layout(marker) != _layout():
            return False
        return all(
            os.path.islink(folder / COMPACTED) and (folder / SCHEMA_FILE).exists()
            for folder in (self._table_dir(table) for table in TABLES)
        )

    def compact(
        self, min_files: int = COMPACT_MIN_FILES, *, timeout_s: float = COMPACT_TIMEOUT_S
    ) -> dict[str, int]:
        """Merge each table's partition files into its compacted files once it has at least
        ``min_files`` of them; returns the number of files merged per table compacted.

        Queries then read a few large sorted files instead of a footer per video. Safe beside
        writers and readers of any process (see ``core.compaction``); rows, digests and query
        results are the same before and after. When another process is compacting, returns
        ``{}`` at once; when readers hold the store longer than ``timeout_s`` (an open
        ``engine()`` connection), leaves the remaining tables for a later call. Its cost grows
        with the partition files merged plus at most one half-full compacted file per table
        (and the compacted files that lose rewritten partitions).
        """
        if self._lock.held_here():
            raise RuntimeError("compact() called while this thread reads the store")
        self._ensure_schema_files()
        merged: dict[str, int] = {}
        try:
            with file_lock(self.tables_dir / COMPACT_LOCK_FILE, timeout_s=0):
                for table, schema in TABLES.items():
                    key = FILE_KEYS.get(table, "video_id")
                    if key is None:
                        continue  # one corpus file: nothing to merge
                    try:
                        count = compact_table(
                            self._table_dir(table), schema, key, self._lock,
                            min_files=max(1, min_files), timeout_s=timeout_s,
                        )  # fmt: skip
                    except TimeoutError:
                        _log.warning("compaction of %s left for later: readers busy", self.home)
                        break
                    if count:
                        merged[table] = count
        except TimeoutError:
            return merged  # another process is compacting this home
        return merged

    def _view_statements(self) -> list[str]:
        statements = [
            f"CREATE OR REPLACE VIEW {table} AS "
            + table_view_sql(
                _sql_string(_glob_literal(str(self._table_dir(table)))),
                FILE_KEYS.get(table, "video_id"),
                CORPUS,
            )
            for table in TABLES
        ]
        statements += [
            f"CREATE OR REPLACE VIEW {name} AS {sql}" for name, sql in DERIVED_VIEWS.items()
        ]
        return statements

    def publish(self) -> Path:
        """Create the views in ``talkvid.duckdb`` unless this home already has current ones.

        Cheap after the first call (a marker file records the schema version and location), and
        safe when several processes call it at once (an exclusive file lock). When a reader holds
        the file (say a notebook, after the home was moved), the views are left for a later call:
        the pipeline and ``talkvid sql`` never read them from the file.
        """
        marker = self.home / f".{DATABASE_FILE}.views"
        stamp = json.dumps(
            {"schema": SCHEMA_VERSION, "layout": LAYOUT, "tables": str(self.tables_dir)}
        )
        if self._published(marker, stamp):
            return self.database_path
        self.home.mkdir(parents=True, exist_ok=True)
        with file_lock(self.home / f".{DATABASE_FILE}.lock"):
            if self._published(marker, stamp):
                return self.database_path
            self._ensure_schema_files()
            engine = sa.create_engine(f"duckdb:///{self.database_path}")
            try:
                with engine.begin() as connection:
                    for statement in self._view_statements():
                        connection.exec_driver_sql(statement)
            except sa.exc.DBAPIError as exc:
                # DuckDB's IOException: the file could not be locked, held by a reader.
                if not isinstance(exc.orig, duckdb.IOException):
                    raise
                return self.database_path  # publish on a later call
            finally:
                engine.dispose()
            marker.write_text(stamp)
        return self.database_path

    def _published(self, marker: Path, stamp: str) -> bool:
        return self.database_path.exists() and marker.exists() and marker.read_text() == stamp

    def engine(self) -> sa.Engine:
        """A SQLAlchemy engine over the home's views, for users and their tools
        (pandas.read_sql, notebooks); it sees every committed partition.

        Each connection is an in-memory DuckDB with the views made for the home's current path,
        so it works wherever the home was moved and whoever holds ``talkvid.duckdb``. It can
        read the home's tables and nothing else, and it writes nothing anywhere: only SELECT
        statements run (``COPY ... TO``, ``ATTACH``, ``INSTALL``, ``CREATE`` and ``SET`` are
        refused by DuckDB's own parser before they run), file access outside ``tables/``
        (``read_text('/etc/passwd')``) is disabled, DuckDB spills to no temporary directory
        (by default ``.tmp`` in the working directory, which it would make readable), and the
        configuration is locked so a query cannot turn it back on. A connection holds the
        store's lock shared while it is checked out, so close it when done: a compaction waits
        for it (up to ``COMPACT_TIMEOUT_S``, then leaves the files for a later call).
        """
        self._ensure_schema_files()
        engine = sa.create_engine("duckdb:///:memory:")
        views = self._view_statements()
        # The views name their folders as literal globs; the files they expand to are below
        # the plain path. Both forms are allowed, nothing else.
        allowed = ", ".join(
            f"'{_sql_string(path + os.sep)}'"
            for path in {str(self.tables_dir), _glob_literal(str(self.tables_dir))}
        )

        def confine(connection: Any, _record: Any) -> None:
            cursor = connection.cursor()
            with self._lock.shared():  # binding a view reads a footer
                for statement in views:
                    cursor.execute(statement)
            cursor.execute("SET temp_directory = ''")
            cursor.execute(f"SET allowed_directories = [{allowed}]")
            cursor.execute("SET enable_external_access = false")
            cursor.execute("SET lock_configuration = true")
            cursor.close()

        def hold(_connection: Any, record: Any, _proxy: Any) -> None:
            # DuckDB streams results: files are read until the rows are fetched, so the lock
            # is held from checkout to checkin, not around each execute.
            record.info["talkvid_lock"] = self._lock.hold()

        def release(_connection: Any, record: Any) -> None:
            held = record.info.pop("talkvid_lock", None)
            if held is not None:
                held.close()

        sa.event.listen(engine, "connect", confine)
        sa.event.listen(engine, "before_cursor_execute", _only_select)
        sa.event.listen(engine, "checkout", hold)
        sa.event.listen(engine, "checkin", release)
        return engine

    @contextmanager
    def connect(self) -> Iterator[sa.Connection]:
        """A connection to an in-memory DuckDB with the store's views.

        Steps read through this rather than the database file, so no reader ever holds the
        file's lock while another process publishes. The views read the Parquet files at query
        time, so one connection per home (and thread) serves every query and always sees every
        committed partition. The store's lock is held shared inside the block, so a compaction
        waits for it: do not compact (or wait on a process that does) inside it.
        """
        self._ensure_schema_files()
        with self._lock.shared():
            yield self._view_connection()

    def _view_connection(self) -> sa.Connection:
        """This thread's connection to the home's views: made on first use, then reused by
        every Store of the home in the thread (the views are a function of the folder)."""
        kept: OrderedDict[Path, sa.Connection] = getattr(_view_connections, "kept", OrderedDict())
        _view_connections.kept = kept
        connection = kept.get(self.tables_dir)
        if connection is None:
            engine = sa.create_engine("duckdb:///:memory:", poolclass=sa.pool.StaticPool)
            connection = engine.connect()
            for statement in self._view_statements():
                connection.exec_driver_sql(statement)
            connection.commit()
            kept[self.tables_dir] = connection
            while len(kept) > VIEW_CONNECTIONS_KEPT:
                _, oldest = kept.popitem(last=False)
                oldest.close()
                oldest.engine.dispose()
        kept.move_to_end(self.tables_dir)
        return connection

    def query(self, sql: str, params: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
        """Rows of ``sql`` (named ``:parameters``) over the store's views, as dictionaries.

        DuckDB opens a Parquet file more than once in a scan, so a writer renaming a new file
        over one a query reads can fail it ("Invalid data"); the query is then run again, as
        long as some table's folder changed meanwhile (at most ``QUERY_ATTEMPTS`` runs). Each
        query ends its transaction, so a failed one leaves the connection usable.
        """
        for attempt in range(1, QUERY_ATTEMPTS + 1):
            clock = self._clock()
            with self.connect() as connection:
                try:
                    result = connection.execute(sa.text(sql), dict(params or {}))
                    return [dict(row) for row in result.mappings()]
                except sa.exc.DBAPIError:
                    if attempt == QUERY_ATTEMPTS or self._clock() == clock:
                        raise
                finally:
                    connection.rollback()
        raise AssertionError("unreachable")

    def _clock(self) -> list[int]:
        """When each table's folder last gained or lost a file (a write renames one in)."""
        clock = []
        for table in TABLES:
            try:
                clock.append(os.stat(self.tables_dir / table).st_mtime_ns)
            except FileNotFoundError:
                clock.append(0)
        return clock

    def rows(self, table: str, video_id: str) -> list[dict[str, Any]]:
        """``video_id``'s current rows of ``table``, in the order written: its partition file
        when it has one, else its rows in the compacted files (only the row groups whose
        ``video_id`` range holds it are read), never a view over every partition."""
        path = self._table_dir(table) / f"{video_id}.parquet"
        key = FILE_KEYS.get(table, "video_id")
        with self._lock.shared():
            if path.exists():
                return read_file(path).to_pylist()
            data = compacted_rows(path.parent, key, video_id) if key else None
        return data.to_pylist() if data is not None else []

    def digest(self, table: str, video_id: str) -> str:
        """A fingerprint of ``video_id``'s rows of ``table``, circumstantial columns left out:
        what its Dagster data version is made of (equal content, equal version)."""
        rows = [
            {column: value for column, value in row.items() if column not in CIRCUMSTANTIAL_COLUMNS}
            for row in self.rows(table, video_id)
        ]
        return fingerprint(rows)


def _only_select(*event: Any) -> None:
    """Refuse a statement that is not a SELECT before DuckDB runs it (SQLAlchemy's
    ``before_cursor_execute``: connection, cursor, statement, ...). DuckDB's parser says what
    each statement of the text is, so ``SELECT 1; COPY ...`` is refused as a whole. SHOW,
    DESCRIBE and SUMMARIZE parse as SELECT; EXPLAIN is refused (``EXPLAIN ANALYZE`` runs
    its statement)."""
    statement = event[2]
    try:
        kinds = {parsed.type for parsed in duckdb.extract_statements(statement)}
    except duckdb.Error:
        return  # DuckDB reports the syntax error itself when it runs the text
    refused = kinds - {duckdb.StatementType.SELECT}
    if refused:
        names = ", ".join(sorted(kind.name for kind in refused))
        raise duckdb.PermissionException(f"SQL over a home is read-only: {names} refused")


def _glob_literal(path: str) -> str:
    """``path`` with DuckDB's glob characters matched literally (``*`` -> ``[*]``), so a home
    named ``h*`` or ``home[1]`` reads its own tables, never a sibling's."""
    return re.sub(r"[\[*?]", lambda match: f"[{match.group()}]", path)


def _sql_string(text: str) -> str:
    return text.replace("'", "''")


def _layout() -> dict[str, Any]:
    """What the layout marker records: the layout and each table's columns."""
    return {
        "layout": LAYOUT,
        **{table: fingerprint(str(schema)) for table, schema in TABLES.items()},
    }


def _recorded_layout(marker: Path) -> dict[str, Any]:
    try:
        return json.loads(marker.read_text())
    except (FileNotFoundError, ValueError):
        return {}
