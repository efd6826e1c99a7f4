"""Removing a video from a home: every row, file and cached score the pipeline made of it.

A video is named by its partition key or by its source's path (as ingested, or the file itself,
whose content key is then looked up). Its rows are removed from every per-video table (an empty
partition file hides any compacted copy), its clips from the corpus-wide tables (speakers,
TalkVid-Bench, the training split, review verdicts), and its files: the per-video export,
its records in the dataset file, clip files, the contact sheet, cached scores and the reference
features an evaluation kept of its bench clips (face embeddings among them). The
corpus-wide assets then re-select the bench without it on their next run. Forgetting the
Dagster partition is the Dagster layer's part (``defs.removal``).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterable
from pathlib import Path

from talkvid_assets.core.clip_files import AUDIO_SUFFIX, CLIPS_DIR
from talkvid_assets.core.evaluate.references import ReferenceCache
from talkvid_assets.core.export import (
    DATASET_FILE,
    FIXED_FRAMES_DIR,
    VIDEO_EXPORT_DIR,
    write_records,
)
from talkvid_assets.core.partition_keys import forget_key, known_key
from talkvid_assets.core.source_files import video_key
from talkvid_assets.core.store import CORPUS, FILE_KEYS, SCORE_CACHE_DIR, TABLES, Store


class UnknownVideo(LookupError):
    """Neither a partition key nor the path of an ingested source."""


def resolve_video(store: Store, name: str, partitions: Iterable[str] = ()) -> str:
    """The video key ``name`` designates: a partition key (``partitions``, or a key with a
    source row), the path a source was ingested from, or a file whose content is ingested."""
    if name in set(partitions) or (_file_name(name) and store.rows("sources", name)):
        return name
    path = Path(name).expanduser().resolve()
    rows = store.query(
        "SELECT video_id FROM sources WHERE source_path = :path", {"path": str(path)}
    )
    if rows:
        return rows[0]["video_id"]
    if path.is_file():
        key = known_key(store, video_key(path))
        if key:
            return key
    raise UnknownVideo(f"{name}: neither a partition key nor the path of an ingested source")


def remove_video(store: Store, video_id: str) -> list[Path]:
    """Remove everything the home holds of ``video_id``; returns the files deleted. A key that
    cannot name a file (a partition typed with a slash) has nothing in the store."""
    if not _file_name(video_id):
        return []
    prefix = f"{video_id}-"
    clip_files = [Path(row["path"]) for row in store.rows("clip_files", video_id)]
    clip_files += sorted((store.home / CLIPS_DIR).glob(f"{prefix}*"))
    for table in TABLES:
        if FILE_KEYS.get(table, "video_id") == "video_id" and store.rows(table, video_id):
            store.write(table, video_id, [])
    for table in ("speakers", "training_split", "review_labels"):
        rows = store.rows(table, CORPUS)
        kept = [row for row in rows if not row["clip_id"].startswith(prefix)]
        if len(kept) != len(rows):
            store.write(table, CORPUS, kept)
    dimensions = store.query("SELECT DISTINCT dimension FROM bench_strata")
    for dimension in (row["dimension"] for row in dimensions):
        rows = store.rows("bench_strata", dimension)
        kept = [row for row in rows if not row["clip_id"].startswith(prefix)]
        if len(kept) != len(rows):
            store.write("bench_strata", dimension, kept)
    _drop_dataset_records(store.home / DATASET_FILE, prefix)
    files = [
        store.preview_path(video_id),
        store.home / VIDEO_EXPORT_DIR / f"{video_id}.json",
        store.home / FIXED_FRAMES_DIR / f"{video_id}.json",
        *clip_files,
        *(path.with_suffix(AUDIO_SUFFIX) for path in clip_files),
    ]
    deleted = sorted({path for path in files if path.is_file()})
    for path in deleted:
        path.unlink()
    for cache in (store.home / SCORE_CACHE_DIR).glob(f"*/{video_id}"):
        shutil.rmtree(cache)
    deleted += ReferenceCache(store.home).forget(video_id)
    forget_key(store, video_id)
    return deleted


def _file_name(key: str) -> bool:
    """Whether ``key`` is a plain file name: the store's files are named by keys, so any other
    key would address a file outside its table's folder."""
    return key not in ("", ".", "..") and "/" not in key and "\0" not in key


def _drop_dataset_records(path: Path, prefix: str) -> None:
    """The dataset file without the video's records (the next corpus run rewrites it too)."""
    if not path.is_file():
        return
    records = json.loads(path.read_text())
    kept = [record for record in records if not str(record.get("id")).startswith(prefix)]
    if len(kept) != len(records):
        write_records(path, kept)
