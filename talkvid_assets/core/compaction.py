"""The files behind one table of the store, and their compaction into a few large ones.

A partition's rows are written to a file of its own (``<key>.parquet``, a *fresh* file), so a
re-run replaces exactly its rows with one atomic rename and writers never wait for each other.
That costs readers: a view over 100,000 fresh files opens 100,000 footers per query. So
compaction merges a table's fresh files into a few large files sorted by the partition key, with
row groups small enough that a ``video_id`` predicate reads one of them. A table's folder::

    _schema.parquet                     empty: fixes the columns before any partition ran
    <key>.parquet                       fresh files, one per partition written since compaction
    _compacted -> _compacted.000042     the current generation (a relative symlink)
    _compacted.000042/                  _schema.parquet, part-<generation>-<n>.parquet

The rule for which copy is current: **a fresh file wins**. A partition with a fresh file has
exactly that file's rows (none, when it is empty: the partition's rows were removed), whatever
any compacted file holds; a partition without one has its rows of the current generation. The
views say the same in SQL (:func:`table_view_sql`), and :func:`compacted_rows` for one partition.
Compacted files of one generation never share a key, so nothing else needs ordering.

Compaction writes a new generation beside the current one (unchanged files hard-linked, so only
files that gain or lose rows are rewritten) and commits it under an exclusive lock: one
``rename`` of the symlink, then the fresh files it merged are deleted, each only if it is still
the file that was read (a writer that replaced it since keeps its newer rows, which win). Writers
hold the lock shared around their rename, and readers around each query (:class:`TablesLock`),
so a reader never sees a file vanish under it and a writer never loses rows. A crash leaves
either generation whole.
"""

from __future__ import annotations

import errno
import fcntl
import io
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext, suppress
from pathlib import Path
from typing import IO, Any

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from talkvid_assets.core.durable import fsync_path

SCHEMA_FILE = "_schema.parquet"
COMPACTED = "_compacted"  # the link to the current generation
PART_PREFIX = "part-"
# A compacted file holds at most this many rows, so compaction's memory is bounded by about
# one full file plus the fresh files it merges; a file under half of it is merged again.
FILE_ROWS = 500_000
# Rows per row group of a compacted file: a `video_id = ?` query reads one group per file.
ROW_GROUP_ROWS = 8_192
LOCK_POLL_S = 0.005
# The longest a commit keeps new readers and writers waiting for the ones already in, and the
# pause it leaves them before it tries again.
GATE_S = 1.0
GATE_PAUSE_S = 0.1
# Fresh files merged per round of a table's compaction: bounds its memory on a home that was
# never compacted (100,000 videos: a round per 25,000, about 0.5 GB at most).
MERGE_FILES = 25_000

FileIdentity = tuple[int, int, int, int]


@contextmanager
def file_lock(
    path: Path, *, shared: bool = False, timeout_s: float | None = None
) -> Iterator[None]:
    """Hold an advisory ``flock`` on ``path``: shared or exclusive, waiting forever or up to
    ``timeout_s`` (then TimeoutError). Locks are per open file, so two threads of one process
    exclude each other exactly as two processes do; the kernel drops them when a process dies."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        if not _flock(handle, fcntl.LOCK_SH if shared else fcntl.LOCK_EX, timeout_s):
            raise TimeoutError(f"{path} is held by another process")
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _flock(handle: IO[str], mode: int, timeout_s: float | None) -> bool:
    """Take ``mode`` on ``handle``, waiting forever or up to ``timeout_s``; whether it did."""
    if timeout_s is None:
        fcntl.flock(handle, mode)
        return True
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            fcntl.flock(handle, mode | fcntl.LOCK_NB)
            return True
        except OSError as exc:
            if exc.errno not in (errno.EAGAIN, errno.EACCES):
                raise
        if time.monotonic() >= deadline:
            return False
        time.sleep(LOCK_POLL_S)


class TablesLock:
    """The lock of a store's tables: held shared by readers (for a whole query) and by writers
    (for their rename), exclusive while a compaction commits or files are upgraded.

    Two files: ``.lock`` itself, and a gate taken on the way in. A commit closes the gate
    before it waits for ``.lock``, so readers arriving meanwhile wait behind it instead of
    keeping ``.lock`` shared forever (queries back to back would starve compaction); it keeps
    the gate closed for at most :data:`GATE_S` at a time, so a long reader (an open engine
    connection) holds up the others that long at most, and the commit tries again later.
    Shared holds are counted per thread and home (whatever Store object took them), so a
    thread that reads may read or write again inside without going through the gate.
    """

    def __init__(self, folder: Path) -> None:
        self.path = folder / ".lock"
        self.gate = folder / ".gate"

    def held_here(self) -> bool:
        """Whether this thread holds the lock shared (then it must not wait for a commit)."""
        return _held().get(self.path, 0) > 0

    @contextmanager
    def shared(self) -> Iterator[None]:
        """Hold the lock shared in this thread (re-entrant)."""
        held = _held()
        if held.get(self.path):
            held[self.path] += 1
            try:
                yield
            finally:
                held[self.path] -= 1
            return
        handle = self.hold()
        held[self.path] = 1
        try:
            yield
        finally:
            del held[self.path]
            handle.close()

    def hold(self) -> IO[str]:
        """Take the lock shared through the gate; closing the returned file lets it go. Not
        counted per thread: for holds that outlive a call (an open engine connection)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.gate, "a") as gate:
            fcntl.flock(gate, fcntl.LOCK_SH)
            handle = open(self.path, "a")  # noqa: SIM115 (closed by the caller)
            try:
                fcntl.flock(handle, fcntl.LOCK_SH)
            except BaseException:
                handle.close()
                raise
        return handle

    @contextmanager
    def exclusive(self, timeout_s: float | None = None) -> Iterator[None]:
        """Hold the lock alone, waiting for current holders (TimeoutError past ``timeout_s``)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        with open(self.path, "a") as handle:
            while True:
                left = None if deadline is None else max(0.0, deadline - time.monotonic())
                wait = GATE_S if left is None else min(GATE_S, left)
                with open(self.gate, "a") as gate:
                    if _flock(gate, fcntl.LOCK_EX, wait) and _flock(handle, fcntl.LOCK_EX, wait):
                        break  # the gate opens again as it closes: newcomers queue on .lock
                if left is not None and left <= wait:
                    raise TimeoutError(f"{self.path} is held by readers")
                time.sleep(GATE_PAUSE_S)  # let the ones held up at the gate through
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)


_HELD = threading.local()


def _held() -> dict[Path, int]:
    """The store locks this thread holds shared, and how many times over."""
    if not hasattr(_HELD, "locks"):
        _HELD.locks = {}
    return _HELD.locks


def atomic_parquet(
    data: pa.Table, path: Path, guard: Callable[[], AbstractContextManager[Any]] | None = None
) -> None:
    """Write ``data`` to ``path`` through a uniquely named temporary file and a rename; with
    ``guard`` (a store's ``TablesLock.shared``), the rename happens inside it."""
    descriptor, temporary = tempfile.mkstemp(
        dir=path.parent, prefix=f".{path.stem}.", suffix=".tmp"
    )
    os.close(descriptor)
    try:
        pq.write_table(data, temporary)
        fsync_path(temporary)
        with guard() if guard else nullcontext():
            os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    fsync_path(path.parent)


def read_file(path: Path) -> pa.Table:
    """The rows of one Parquet file, read through one open handle: a writer renaming a new
    file over ``path`` meanwhile cannot mix two files' bytes (a reader that opens the path
    again per part, as ``pq.read_table(path)`` and DuckDB do, can fail with "Invalid data")."""
    with open(path, "rb") as handle:
        return pq.ParquetFile(handle).read()


def conform(data: pa.Table, schema: pa.Schema) -> pa.Table:
    """``data`` with exactly ``schema``'s columns, in order and type: a column it lacks (a file
    written before the column existed) is all nulls, a column the schema dropped is left out,
    and so is a column whose type changed beyond any cast (reasons once text, now structured
    failures): nulls, until the asset that writes it runs again (its code version changed)."""
    return pa.Table.from_arrays([_column(data, field) for field in schema], schema=schema)


def _column(data: pa.Table, field: pa.Field) -> pa.ChunkedArray | pa.Array:
    if field.name not in data.column_names:
        return pa.nulls(data.num_rows, field.type)
    try:
        return data[field.name].cast(field.type)
    except pa.ArrowNotImplementedError:  # no cast between the two types
        return pa.nulls(data.num_rows, field.type)


def stored_schema(schema: pa.Schema) -> pa.Schema:
    """The schema Parquet gives back for ``schema`` (list items come back named ``element``):
    what a file written with ``schema`` reads as, to spot files written with another one."""
    buffer = io.BytesIO()
    pq.write_table(schema.empty_table(), buffer)
    return pq.read_schema(pa.BufferReader(buffer.getvalue())).remove_metadata()


def fresh_files(folder: Path) -> list[Path]:
    """The fresh partition files of a table, in key order."""
    return sorted(path for path in folder.glob("*.parquet") if path.name != SCHEMA_FILE)


def generation(folder: Path) -> Path | None:
    """The current generation's folder, or None before the layout exists."""
    try:
        return folder / os.readlink(folder / COMPACTED)
    except FileNotFoundError:
        return None


def compacted_files(folder: Path) -> list[Path]:
    current = generation(folder)
    return sorted(current.glob(f"{PART_PREFIX}*.parquet")) if current else []


def ensure_layout(folder: Path, schema: pa.Schema) -> None:
    """Give ``folder`` its schema file and a first, empty generation, unless it has them; in a
    home copied without symlinks (``cp -r``), make the folder the link became a generation.

    The link is created with ``symlink``, which fails when it exists, so a late call never
    points it back at an older generation. The caller holds the compaction lock.
    """
    folder.mkdir(parents=True, exist_ok=True)
    if not (folder / SCHEMA_FILE).exists():
        atomic_parquet(schema.empty_table(), folder / SCHEMA_FILE)
    link = folder / COMPACTED
    if os.path.islink(link):
        return
    numbers = [int(path.suffix[1:]) for path in folder.glob(f"{COMPACTED}.*[0-9]")]
    target = folder / f"{COMPACTED}.{max(numbers, default=-1) + 1:06d}"
    if os.path.lexists(link):
        os.rename(link, target)
    else:
        target.mkdir()
        atomic_parquet(schema.empty_table(), target / SCHEMA_FILE)
    with suppress(FileExistsError):  # made meanwhile by another process
        os.symlink(target.name, link)


def normalize(folder: Path, schema: pa.Schema, lock: TablesLock, timeout_s: float) -> int:
    """Rewrite every file of ``folder`` whose columns are not ``schema``'s (written before a
    column was added), so views can read the files without ``union_by_name``, which opens every
    footer when a query binds. Reads each footer once; meant for when the schema changed.
    Returns how many files were rewritten; TimeoutError when readers held the lock past
    ``timeout_s`` (nothing was rewritten then)."""
    expected = stored_schema(schema)
    current = generation(folder)
    paths = [folder / SCHEMA_FILE, *fresh_files(folder)]
    paths += sorted(current.glob("*.parquet")) if current else []
    stale = [path for path in paths if not _schema_matches(path, expected)]
    if stale:
        with lock.exclusive(timeout_s):  # no rename or read while files change
            for path in stale:
                if path.exists() and not _schema_matches(path, expected):
                    atomic_parquet(conform(read_file(path), schema), path)
    return len(stale)


def _schema_matches(path: Path, expected: pa.Schema) -> bool:
    try:
        return pq.read_schema(path).remove_metadata().equals(expected)
    except FileNotFoundError:
        return True


def table_view_sql(folder_glob: str, key: str | None, corpus: str) -> str:
    """The SELECT of a table's view; ``folder_glob`` is the folder as a DuckDB glob literal,
    SQL-quoted. Fresh files are read as they are (all have the table's columns, so no footer is
    read at bind time); compacted rows only for keys without a fresh file. The schema file is
    named first, so binding reads its footer, never that of a file a writer is replacing (it
    is read again by the glob: no rows). A fresh file's rows count only when their key names
    the file (``corpus`` for a table without key): a stray file with the table's columns and
    more, or rows of NULLs, adds nothing."""
    owned = f"'{corpus}'" if key is None else f'"{key}"'
    fresh = (
        f"SELECT * FROM read_parquet(['{folder_glob}/{SCHEMA_FILE}', '{folder_glob}/*.parquet']) "
        f"WHERE parse_filename(filename, true) = {owned}"
    )
    if key is None:
        return fresh
    return (
        f"{fresh} UNION ALL "
        f"SELECT * FROM read_parquet('{folder_glob}/{COMPACTED}/*.parquet') "
        f'WHERE "{key}" NOT IN '
        f"(SELECT parse_filename(file, true) FROM glob('{folder_glob}/*.parquet'))"
    )


def compacted_rows(folder: Path, key: str, value: str) -> pa.Table | None:
    """The rows of partition ``value`` in the current generation (in the order written), or
    None when it has none there. Reads only the row groups whose key statistics admit
    ``value``; the caller holds the lock shared, so the generation cannot change meanwhile."""
    pieces = []
    for path in compacted_files(folder):
        file = pq.ParquetFile(path)
        metadata = file.metadata
        leaf = next(i for i in range(metadata.num_columns) if metadata.schema.column(i).path == key)
        groups = [
            index
            for index in range(metadata.num_row_groups)
            if _may_hold(metadata.row_group(index).column(leaf).statistics, value)
        ]
        if groups:
            data = file.read_row_groups(groups)
            data = data.filter(pc.equal(data[key], value))
            if data.num_rows:
                pieces.append(data)
    return pa.concat_tables(pieces) if pieces else None


def _may_hold(statistics: pq.Statistics | None, value: str) -> bool:
    if statistics is None or not statistics.has_min_max:
        return True
    return statistics.min <= value <= statistics.max


def _identity(stat: os.stat_result) -> FileIdentity:
    """What tells the file that was read from one renamed over it since."""
    return (stat.st_ino, stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns)


def compact_table(
    folder: Path,
    schema: pa.Schema,
    key: str,
    lock: TablesLock,
    *,
    min_files: int,
    timeout_s: float,
) -> int:
    """Merge ``folder``'s fresh files into a new generation and commit it, in rounds of
    :data:`MERGE_FILES`; returns how many fresh files it merged (0: fewer than ``min_files``).
    TimeoutError when readers held the lock past ``timeout_s`` in a round (that round changed
    nothing; earlier ones are committed). The caller serializes compactions.

    Files of the current generation that hold a merged key lose those rows (rewritten), and
    files under half of :data:`FILE_ROWS` are merged again, so a generation holds about
    ``rows / FILE_ROWS`` files however often it is compacted; the others are hard-linked.
    """
    merged, rounds = 0, 0
    fresh = fresh_files(folder)
    limit = -(-len(fresh) // MERGE_FILES) + 1  # writers keep adding files: stop after these
    while fresh and len(fresh) >= min_files and rounds < limit:
        merged += _merge(folder, schema, key, lock, fresh[:MERGE_FILES], timeout_s)
        fresh, rounds = fresh_files(folder), rounds + 1
    return merged


def _merge(
    folder: Path,
    schema: pa.Schema,
    key: str,
    lock: TablesLock,
    fresh: list[Path],
    timeout_s: float,
) -> int:
    """One round of :func:`compact_table`: ``fresh`` merged into a new generation."""
    # Identity before content: a file renamed over between the two is kept (the newer wins).
    identities = {path: _identity(path.stat()) for path in fresh}
    newest = max(identity[2] for identity in identities.values())
    merged = [_read_fresh(fresh, schema, key)]
    keys = pa.array([path.stem for path in fresh], pa.string())
    current = generation(folder)
    assert current is not None, "ensure_layout first"
    kept = []
    for path in compacted_files(folder):
        held = pq.read_table(path, columns=[key])[key]
        overridden = pc.is_in(held, value_set=keys)
        small = len(held) < FILE_ROWS // 2
        if small or pc.any(overridden).as_py():
            data = conform(pq.read_table(path), schema)
            merged.append(data.filter(pc.invert(overridden)))
            newest = max(newest, path.stat().st_mtime_ns)
        else:
            kept.append(path)
    rows = pa.concat_tables(merged).sort_by(key)  # stable: a partition keeps its row order
    number = int(current.name.rsplit(".", 1)[1]) + 1
    target = folder / f"{COMPACTED}.{number:06d}"
    shutil.rmtree(target, ignore_errors=True)  # left by a compaction that died
    target.mkdir()
    try:
        for path in [current / SCHEMA_FILE, *kept]:
            _link(path, target / path.name)
        parts = -(-rows.num_rows // FILE_ROWS)
        for index in range(parts):
            start, stop = rows.num_rows * index // parts, rows.num_rows * (index + 1) // parts
            path = target / f"{PART_PREFIX}{number:06d}-{index:04d}.parquet"
            pq.write_table(rows.slice(start, stop - start), path, row_group_size=ROW_GROUP_ROWS)
            # The newest row it holds was written then (defs.exports reads verdict times).
            os.utime(path, ns=(newest, newest))
            fsync_path(path)
        fsync_path(target)
        _commit(folder, target, identities, lock, timeout_s)
    except BaseException:
        if generation(folder) != target:
            shutil.rmtree(target, ignore_errors=True)
        raise
    return len(fresh)


def _link(source: Path, target: Path) -> None:
    """``target`` as a hard link to the immutable ``source``; a copy where links fail."""
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


def _read_fresh(paths: list[Path], schema: pa.Schema, key: str) -> pa.Table:
    """Every row of ``paths`` (fresh files), in key order, each file's rows in their order:
    one multi-threaded DuckDB scan, much faster than a file at a time. When that fails (a
    writer renamed a file over one it read, or a file has other columns), a file at a time
    through one handle each. Either way a file renamed over since its identity was taken is
    kept at commit, so whatever was read of it stays hidden behind it. As in the views, only
    rows whose key names their file are kept (a stray file adds no rows of NULLs)."""
    connection = duckdb.connect()
    sql = (
        "SELECT * EXCLUDE (file_row_number) FROM read_parquet($files, file_row_number = true) "
        f'WHERE "{key}" = parse_filename(filename, true) ORDER BY "{key}", file_row_number'
    )
    try:
        data = connection.sql(sql, params={"files": [str(path) for path in paths]})
        return conform(data.to_arrow_table(), schema)
    except duckdb.Error:
        pieces = [conform(read_file(path), schema) for path in paths]
        return pa.concat_tables(
            piece.filter(pc.equal(piece[key], path.stem))
            for piece, path in zip(pieces, paths, strict=True)
        )
    finally:
        connection.close()


def _commit(
    folder: Path,
    target: Path,
    identities: dict[Path, FileIdentity],
    lock: TablesLock,
    timeout_s: float,
) -> None:
    link = folder / f".{COMPACTED}.{os.getpid()}.link"
    link.unlink(missing_ok=True)
    os.symlink(target.name, link)
    try:
        with lock.exclusive(timeout_s):
            os.replace(link, folder / COMPACTED)
            for path, identity in identities.items():
                try:
                    if _identity(path.stat()) == identity:
                        path.unlink()
                except FileNotFoundError:
                    pass
    finally:
        link.unlink(missing_ok=True)
    fsync_path(folder)  # the new link, and the merged partition files gone, on the disk
    # Every reader that could see an older generation held the lock, and has let it go.
    for stale in folder.glob(f"{COMPACTED}.*"):
        if stale.is_dir() and stale.name != target.name:
            shutil.rmtree(stale, ignore_errors=True)
