"""Labelled manifests: validated whole at ingest, labels recorded with each source, every
mistake one line with the file and row."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from talkvid_assets.core.manifest import ManifestError, read_manifest
from talkvid_assets.core.store import Store
from talkvid_assets_tests.commands import talkvid_in_process
from talkvid_assets_tests.media import SAMPLES

HEADER = (
    "Path,Video Link,Licence,Person ID,Ethnicity,Age Group,Gender,Language,Category,Description"
)


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    videos = tmp_path / "videos"
    videos.mkdir()
    for name in ("talk_demo.mp4", "carphone_pristine.mp4"):
        shutil.copyfile(SAMPLES / name, videos / name)
    return videos


def write(path: Path, *lines: str) -> Path:
    path.write_text("\n".join(lines) + "\n")
    return path


def test_csv_and_jsonl_manifests_read_the_same_labels(folder):
    csv_rows = read_manifest(
        write(
            folder / "manifest.csv",
            HEADER,
            "talk_demo.mp4,https://example.org/v/1,CC-BY,p1,African,19-30,Female,English,talk,"
            '"a talk, indoors"',
            "carphone_pristine.mp4,,,,,,,,,",
        )
    )
    jsonl_rows = read_manifest(
        write(
            folder / "manifest.jsonl",
            json.dumps({"path": "talk_demo.mp4", "video link": "https://example.org/v/1",
                        "licence": "CC-BY", "person_id": "p1", "ethnicity": "African",
                        "age-group": "19-30", "gender": "Female", "language": "English",
                        "category": "talk", "description": "a talk, indoors"}),
            "",
            json.dumps({"path": "carphone_pristine.mp4"}),
        )
    )  # fmt: skip
    assert [(row.path, dict(row.labels)) for row in csv_rows] == [
        (row.path, dict(row.labels)) for row in jsonl_rows
    ]
    first, second = csv_rows
    assert first.path == folder / "talk_demo.mp4"
    assert first.labels["ethnicity"] == "Black"  # the statistics' "African", as the bench spells it
    assert first.labels["description"] == "a talk, indoors"
    assert set(second.labels.values()) == {None}


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        ((HEADER, "talk_demo.mp4,,,,,,Woman,,,"), r"manifest.csv:2: unknown gender 'Woman'"),
        ((HEADER, "talk_demo.mp4,,,,,,,,,", "x.mp4,,,,,25-30,,,,"), r":3: unknown age_group"),
        ((HEADER, "../../etc/passwd,,,,,,,,,"), r":2: '../../etc/passwd' is outside"),
        ((HEADER, "/etc/passwd,,,,,,,,,"), r":2: '/etc/passwd' is outside"),
        (("path,colour", "talk_demo.mp4,red"), r"header: unknown column 'colour'"),
        ((HEADER, "talk_demo.mp4,,"), r":2: 3 fields, the header has 10"),
        (("video_link", "x"), r"no 'path' column"),
    ],
)
def test_a_bad_row_is_named_with_its_number(folder, lines, message):
    with pytest.raises(ManifestError, match=message):
        read_manifest(write(folder / "manifest.csv", *lines))


def test_source_roots_admit_a_folder_outside_the_manifests(folder, tmp_path):
    lists = tmp_path / "lists"
    lists.mkdir()
    manifest = write(lists / "m.csv", "path", str(folder / "talk_demo.mp4"))
    with pytest.raises(ManifestError, match="outside"):
        read_manifest(manifest)
    assert read_manifest(manifest, [folder])[0].path == folder / "talk_demo.mp4"


def test_ingest_records_labels_and_refuses_a_bad_manifest_in_one_line(folder, tmp_path):
    home = tmp_path / "home"
    bad = write(folder / "bad.jsonl", '{"path": "talk_demo.mp4", "gender": "Male"}', "{oops")
    refused = talkvid_in_process(home, "ingest", "--manifest", str(bad), check=False)
    assert refused.returncode == 1
    assert refused.stderr.strip().endswith(
        "bad.jsonl:2: not valid JSON: Expecting property name enclosed in double quotes"
    )
    assert refused.stderr.count("\n") == 1 and "Traceback" not in refused.stderr
    assert not [
        path
        for path in (home / "tables" / "sources").glob("*.parquet")
        if not path.name.startswith("_")  # _schema.parquet
    ], "nothing registered from a manifest that failed validation"

    good = write(
        folder / "good.jsonl",
        json.dumps({"path": "talk_demo.mp4", "gender": "Male", "language": "Thai"}),
    )
    talkvid_in_process(home, "ingest", "--manifest", str(good))
    (labels,) = Store(home).query("SELECT * FROM labels")
    assert (labels["gender"], labels["language"], labels["manifest_row"]) == ("Male", "Thai", 1)
    assert labels["manifest"] == str(good)


def test_a_folder_row_does_not_follow_a_link_out_of_its_folder(folder, tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("not for the pipeline")
    (folder / "sub").mkdir()
    (folder / "sub" / "passwd.mp4").symlink_to(secret)
    (folder / "inside.mp4").symlink_to(folder / "talk_demo.mp4")  # a link that stays inside
    manifest = write(folder / "m.csv", "path", ".")
    with pytest.raises(ManifestError, match=r"m.csv:2: .*passwd.mp4.* is outside"):
        read_manifest(manifest)
    (folder / "sub" / "passwd.mp4").unlink()
    rows = read_manifest(manifest)
    assert {row.path for row in rows} == {
        folder / "talk_demo.mp4",
        folder / "carphone_pristine.mp4",
        folder / "m.csv",
    }
    home = tmp_path / "home"
    (folder / "sub" / "passwd.mp4").symlink_to(secret)
    refused = talkvid_in_process(home, "ingest", "--manifest", str(manifest), check=False)
    assert refused.returncode == 1 and "is outside" in refused.stderr, refused.stderr
    assert "Traceback" not in refused.stderr
    assert not (home / "tables" / "sources").exists() or not list(
        (home / "tables" / "sources").glob("[0-9a-f]*.parquet")
    )


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("m.jsonl", '{"path": "talk_demo.mp4\\u0000.txt"}\n', "m.jsonl:1: the path contains a NUL"),
        ("m.jsonl", "[" * 100_000 + "]" * 100_000 + "\n", "m.jsonl:1: JSON nested too deep"),
        ("m.txt", "talk_demo.mp4\0evil\n", "m.txt:1: the path contains a NUL byte"),
        (
            "m.csv",
            "path,person_id\ntalk_demo.mp4,alice\ncarphone_pristine.mp4,\ntalk_demo.mp4,bob\n",
            "m.csv:4: " + "{folder}/talk_demo.mp4 is also row 2, with another person_id "
            "('bob' here, 'alice' there)",
        ),
    ],
)
def test_a_hostile_manifest_is_one_line(folder, tmp_path, name, content, message):
    manifest = folder / name
    manifest.write_text(content)
    refused = talkvid_in_process(
        tmp_path / "home", "ingest", "--manifest", str(manifest), check=False
    )
    assert refused.returncode == 1
    assert message.format(folder=folder) in refused.stderr, refused.stderr
    assert refused.stderr.count("\n") == 1 and "Traceback" not in refused.stderr


def test_a_bom_nan_and_repeated_rows_read_as_meant(folder):
    csv_file = folder / "m.csv"
    csv_file.write_text("\ufeffpath,gender\ntalk_demo.mp4,Male\ntalk_demo.mp4,Male\n")
    (row,) = read_manifest(csv_file)
    assert row.labels["gender"] == "Male"
    lines = folder / "m.jsonl"
    lines.write_text('{"path": "talk_demo.mp4", "person_id": NaN, "licence": "CC-BY"}\n')
    (row,) = read_manifest(lines)
    assert row.labels["person_id"] is None and row.labels["licence"] == "CC-BY"


def test_a_manifest_dropped_into_the_inbox_labels_its_videos_and_reannotates_them(tmp_path):
    """The inbox records a manifest's labels as `talkvid ingest --manifest` does; once a video
    is annotated, new labels for it request a run of its annotations."""
    from dagster import AssetKey, AssetMaterialization, build_sensor_context

    from talkvid_assets.defs.names import ANNOTATIONS, VIDEOS
    from talkvid_assets.defs.resources import TalkvidResource
    from talkvid_assets.defs.sensors import manifest_sensor
    from talkvid_assets_tests.conftest import configure, project_instance

    home = tmp_path / "home"
    configure(home)
    inbox = home / "inbox"
    inbox.mkdir()
    shutil.copyfile(SAMPLES / "talk_demo.mp4", inbox / "talk_demo.mp4")
    row = "talk_demo.mp4,https://example.org/v/1,CC-BY,p1,African,19-30,{},English,talk,indoors"
    manifest = write(inbox / "labels.csv", HEADER, row.format("Female"))
    resources = {"talkvid": TalkvidResource(home=str(home))}
    with project_instance(tmp_path / "dagster") as instance:
        cursor = None

        def settled() -> Any:
            nonlocal cursor
            for _ in range(2):  # the settle rule: unchanged between two looks
                result = manifest_sensor(
                    build_sensor_context(instance=instance, cursor=cursor, resources=resources)
                )
                cursor = result.cursor
            return result

        (added,) = settled().dynamic_partitions_requests
        (key,) = added.partition_keys
        (labels,) = Store(home).rows("labels", key)
        assert (labels["gender"], labels["manifest"]) == ("Female", str(manifest))
        instance.add_dynamic_partitions(VIDEOS, [key])
        instance.report_runless_asset_event(AssetMaterialization(ANNOTATIONS, partition=key))
        write(manifest, HEADER, row.format("Male"))
        relabelled = settled()
        (request,) = relabelled.run_requests
        assert request.partition_key == key
        assert request.asset_selection == [AssetKey(ANNOTATIONS)]
        assert Store(home).rows("labels", key)[0]["gender"] == "Male"
        assert not settled().run_requests  # that state of the manifest is handled
