"""Writes reach the disk before their rename, and the rename after: what a power loss can
leave is the old file or the new one, whole. Watched through the real os.fsync calls."""

import os
from pathlib import Path

import pytest

from talkvid_assets.core.durable import write_atomic
from talkvid_assets.core.store import Store


@pytest.fixture
def flushed(monkeypatch) -> list[str]:
    """The paths flushed by os.fsync, in order (each call still flushes)."""
    paths: list[str] = []
    fsync = os.fsync

    def recorded(descriptor: int) -> None:
        paths.append(os.readlink(f"/proc/self/fd/{descriptor}"))
        fsync(descriptor)

    monkeypatch.setattr(os, "fsync", recorded)
    return paths


def test_a_partition_file_and_its_rename_are_flushed(store, flushed):
    store.write("raw_videos", "a", [{"video_id": "a", "status": "ok"}])
    folder = str(store.tables_dir / "raw_videos")
    temporary = [path for path in flushed if Path(path).name.startswith(".a.")]
    assert temporary and Path(temporary[-1]).parent == Path(folder)
    assert folder in flushed[flushed.index(temporary[-1]) :]  # the folder after the file


def test_an_export_and_its_rename_are_flushed(tmp_path, flushed):
    path = tmp_path / "exports" / "talkvid.json"
    write_atomic(path, b"[]")
    assert Path(flushed[0]).name.startswith(".talkvid.json.") and flushed[1] == str(path.parent)


def test_compaction_flushes_its_generation_before_switching(store: Store, flushed):
    for key in ("a", "b"):
        store.write("raw_videos", key, [{"video_id": key, "status": "ok"}])
    flushed.clear()
    store.compact(min_files=1)
    folder = store.tables_dir / "raw_videos"
    generation = os.readlink(folder / "_compacted")
    parts = [path for path in flushed if Path(path).parent.name == generation]
    assert parts and flushed.index(str(folder / generation)) > flushed.index(parts[-1])
    assert str(folder) in flushed[flushed.index(str(folder / generation)) :]
