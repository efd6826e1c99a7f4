"""A source stays the content it was keyed by: an overwritten file is refused, a re-ingested
copy of a deleted original takes its place everywhere."""

import shutil

import pytest

from talkvid_assets.core.export import export_records
from talkvid_assets.core.failures import FailureKind
from talkvid_assets.core.sources import register_source
from talkvid_assets.core.store import Store
from talkvid_assets.launch import curate, register_partitions
from talkvid_assets_tests.conftest import configure, project_instance
from talkvid_assets_tests.media import SAMPLES

pytestmark = pytest.mark.slow


def test_a_file_overwritten_after_ingest_is_refused_not_curated_under_its_old_key(tmp_path):
    store = Store(tmp_path / "home")
    source = tmp_path / "clip.mp4"
    shutil.copyfile(SAMPLES / "carphone_pristine.mp4", source)
    key, _ = register_source(store, source)
    shutil.copyfile(SAMPLES / "talk_demo.mp4", source)  # other content, same name
    configure(store.home)
    with project_instance(tmp_path / "dagster") as instance:
        register_partitions(instance, [key])
        assert all(outcome.success for outcome in curate(instance, store.home, [key]))
    (video,) = store.query("SELECT status, reject_reasons FROM videos")
    assert video["status"] == "missing"  # the keyed content is no longer there
    (changed,) = video["reject_reasons"]
    assert (changed["check"], changed["kind"]) == ("source", FailureKind.SOURCE_CHANGED)
    assert f"{source} now has content key" in changed["detail"]
    assert store.query("SELECT count(*) AS n FROM clips") == [{"n": 0}]


def test_a_touched_but_unchanged_file_is_curated(tmp_path):
    store = Store(tmp_path / "home")
    source = tmp_path / "clip.mp4"
    shutil.copyfile(SAMPLES / "carphone_pristine.mp4", source)
    key, _ = register_source(store, source)
    source.touch()
    configure(store.home)
    with project_instance(tmp_path / "dagster") as instance:
        register_partitions(instance, [key])
        assert all(outcome.success for outcome in curate(instance, store.home, [key]))
    assert store.query("SELECT status FROM videos") == [{"status": "ok"}]


def test_the_path_follows_a_copy_reingested_after_the_original_was_deleted(tmp_path):
    store = Store(tmp_path / "home")
    original, copy = tmp_path / "first.mp4", tmp_path / "moved" / "second.mp4"
    shutil.copyfile(SAMPLES / "talk_demo.mp4", original)
    configure(store.home)
    with project_instance(tmp_path / "dagster") as instance:
        key, _ = register_source(store, original)
        register_partitions(instance, [key])
        assert all(outcome.success for outcome in curate(instance, store.home, [key]))
        original.unlink()
        copy.parent.mkdir()
        shutil.copyfile(SAMPLES / "talk_demo.mp4", copy)
        assert register_source(store, copy) == (key, False)
    assert store.query("SELECT source_path FROM videos") == [{"source_path": str(copy)}]
    (record,) = export_records(store)
    assert record["info"]["Video Link"] == str(copy)
