"""Registered sources: which file each partition key stands for, and whether it still does.

A source is registered under its partition key (``core.partition_keys``) with its size and
modification time; every later stage asks here whether the file at the registered path is still
the content keyed, so scores are never filed under another video's key.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from talkvid_assets.core.compaction import file_lock
from talkvid_assets.core.failures import Failure, FailureKind
from talkvid_assets.core.partition_keys import (
    ALIAS_DIR,
    content_key,
    known_key,
    partition_key,
    remember_key,
)
from talkvid_assets.core.source_files import video_key
from talkvid_assets.core.store import Store


def register_source(store: Store, path: str | Path, name: str | None = None) -> tuple[str, bool]:
    """Record ``path`` under its partition key (its name, or ``name`` where the file's own is
    not one a person gave it, and its content key); returns (key, newly registered).

    Re-ingesting the same content, under any name, is a no-op, unless the first registered path
    has since disappeared, in which case the source moves to the new path (same key).
    """
    path = Path(path).resolve()
    content = video_key(path)
    # One registration of a content at a time (threads of a URL ingest, the inbox sensor and a
    # CLI ingest alike): the first name given to the content is the one every later name finds.
    with file_lock(store.home / ALIAS_DIR / f".{content}.lock"):
        key = known_key(store, content) or partition_key(name or path, content)
        known = store.rows("sources", key)
        if known and Path(known[0]["source_path"]).exists():
            return key, False
        _record_source(store, key, path)
        remember_key(store, content, key)
    return key, not known


def _record_source(store: Store, key: str, path: Path) -> None:
    stat = path.stat()
    row = {
        "video_id": key,
        "source_path": str(path),
        "size_bytes": stat.st_size,
        "mtime_ns": stat.st_mtime_ns,
        "ingested_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }
    store.write("sources", key, [row])


def source_problem(store: Store, video_id: str) -> Failure | None:
    """Why the registered source is no longer the content keyed ``video_id``, or None.

    Size and modification time are compared first (cheap); only when they changed is the file
    hashed again. A file touched without a change is re-recorded; a file overwritten with other
    content is refused, so scores are never filed under another video's key. The finding is
    kept in the source's row (``missing_reason``: the ``videos`` view then says ``missing``)
    until a later look finds the content back, or a copy is ingested.
    """
    sources = store.rows("sources", video_id)
    if not sources:
        return NOT_INGESTED
    return _check_source(store, sources[0])


NOT_INGESTED = Failure(
    "source",
    FailureKind.NOT_INGESTED,
    detail="no source registered for this partition: partitions come from `talkvid ingest` or "
    "the inbox (remove this one with `talkvid remove KEY` or the remove_videos job)",
)


def _check_source(store: Store, source: Mapping[str, Any]) -> Failure | None:
    video_id, path = source["video_id"], Path(source["source_path"])
    try:
        stat = path.stat()
    except OSError:
        problem = Failure("source", FailureKind.SOURCE_GONE, detail=str(path))
    else:
        if (stat.st_size, stat.st_mtime_ns) != (source["size_bytes"], source.get("mtime_ns")):
            current = video_key(path)
            if current == content_key(video_id):
                _record_source(store, video_id, path)
                return None
            problem = Failure(
                "source",
                FailureKind.SOURCE_CHANGED,
                detail=f"{path} now has content key {current}; ingest it again",
            )
        else:
            problem = None
    stored = problem.row() if problem else None
    if stored != source.get("missing_reason"):
        store.write("sources", video_id, [{**source, "missing_reason": stored}])
    return problem


def missing_sources(store: Store, video_ids: Iterable[str]) -> dict[str, Failure]:
    """The videos among ``video_ids`` whose source is gone or no longer the content keyed,
    with the reason: one query, then a stat per source (a hash only where it changed)."""
    rows = store.query(
        "SELECT * FROM sources WHERE video_id IN (SELECT unnest(:video_ids))",
        {"video_ids": sorted(set(video_ids))},
    )
    problems = {row["video_id"]: _check_source(store, row) for row in rows}
    return {video_id: problem for video_id, problem in problems.items() if problem}
