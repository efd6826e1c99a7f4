"""A morning of curating as a user lives it: shards that carry the clips, removing a video,
a source that vanished, and what the commands tell a newcomer."""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import signal
import socket
import stat
import subprocess
from pathlib import Path

import av
import numpy as np
import pytest
from dagster import DagsterInstance, Definitions

from talkvid_assets.cli import main
from talkvid_assets.cli.parser import build_parser
from talkvid_assets.cli.rendering import demo_banner
from talkvid_assets.core.durable import umask
from talkvid_assets.core.evaluate.references import ReferenceCache
from talkvid_assets.core.export_formats import SAFE_KEY
from talkvid_assets.core.failures import Failure, FailureKind
from talkvid_assets.core.source_files import video_key
from talkvid_assets.core.sources import NOT_INGESTED, register_source
from talkvid_assets.core.store import TABLES, Store
from talkvid_assets.defs.build import build_definitions
from talkvid_assets.launch import instance_dir
from talkvid_assets_tests.commands import start_talkvid, talkvid_in_process
from talkvid_assets_tests.media import SAMPLES

pytestmark = pytest.mark.slow


@pytest.fixture
def home(curated_talk_carphone, tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """A private copy of the curated home (talk_demo passes, carphone does not) beside its own
    copies of the sources, which a test may delete; keys by file name."""
    sources = tmp_path / "copy" / "sources"
    sources.mkdir(parents=True)
    curated = curated_talk_carphone.copy(tmp_path / "copy" / "home")
    store, keys = curated.store, {}
    for path, key in curated.keys.items():  # the copy's sources are its own files
        shutil.copyfile(path, sources / path.name)
        (row,) = store.rows("sources", key)
        store.write("sources", key, [{**row, "source_path": str(sources / path.name)}])
        keys[path.name] = key
    return curated.home, keys


def shard_samples(folder: Path) -> list[dict]:
    """The samples of a WebDataset export as the `webdataset` package yields them."""
    import webdataset as wds

    shards = sorted(str(path) for path in folder.glob("*.tar"))
    return list(wds.WebDataset(shards, shardshuffle=False))


def decoded_frames(data: bytes) -> int:
    with av.open(io.BytesIO(data)) as container:
        return sum(1 for _ in container.decode(video=0))


@pytest.mark.parametrize("route", ["cut first", "--with-media"])
def test_webdataset_shards_carry_decodable_clips_beside_their_records(home, tmp_path, route):
    home, keys = home
    if route == "cut first":
        assert main(["--home", str(home), "cut"]) == 0
        extra = []
    else:
        extra = ["--with-media"]
    out = tmp_path / "wds"
    assert (
        main(["--home", str(home), "export", "--format", "webdataset", "--out", str(out), *extra])
        == 0
    )
    samples = shard_samples(out / "all")
    assert [sample["__key__"] for sample in samples] == [f"{keys['talk_demo.mp4']}-0000"]
    for sample in samples:
        record = json.loads(sample["json"])
        assert record["id"] == sample["__key__"]
        fps, seconds = record["fps"], record["end-time"] - record["start-time"]
        assert decoded_frames(sample["mp4"]) == pytest.approx(seconds * fps, abs=2)


def instance_of(home: Path) -> DagsterInstance:
    return DagsterInstance.from_config(str(instance_dir(home)))


def traces_of(store: Store, key: str) -> dict[str, int]:
    """Rows naming the video in every view of the store (per-video and corpus-wide)."""
    found = {}
    for table in TABLES:
        column = "video_id" if "video_id" in TABLES[table].names else "clip_id"
        if column not in TABLES[table].names:
            continue
        (row,) = store.query(
            f"SELECT count(*) AS n FROM {table} WHERE starts_with({column}, :key)", {"key": key}
        )
        found[table] = row["n"]
    for view in ("videos", "clips"):
        sql = f"SELECT count(*) AS n FROM {view} WHERE video_id = :key"
        found[view] = store.query(sql, {"key": key})[0]["n"]
    return {name: count for name, count in found.items() if count}


def test_remove_leaves_nothing_of_the_video_in_views_exports_or_dagster(home, tmp_path):
    home, keys = home
    talk, carphone = keys["talk_demo.mp4"], keys["carphone_pristine.mp4"]
    store = Store(home)
    assert main(["--home", str(home), "cut"]) == 0
    assert {"videos", "clips", "annotations", "speakers", "clip_files"} <= set(
        traces_of(store, talk)
    )
    assert (home / "previews" / f"{talk}.png").exists()
    # what an evaluation keeps of a bench clip: its face embedding among them
    ReferenceCache(home).put("dlib-resnet", talk, f"{talk}-0000-digest", np.ones(128))

    assert main(["--home", str(home), "remove", talk]) == 0
    assert traces_of(Store(home), talk) == {}
    # exports, clip files, contact sheet, score cache (tables/ keeps empty files that hide
    # compacted rows: traces_of saw none)
    left = [path for path in home.rglob(f"*{talk}*") if path.relative_to(home).parts[0] != "tables"]
    assert left == []
    assert json.loads((home / "exports" / "talkvid.json").read_text()) == []
    with instance_of(home) as instance:
        assert instance.get_dynamic_partitions("videos") == [carphone]
    assert traces_of(Store(home), carphone)  # the other video is untouched

    # ingested again, it is curated again (Dagster still lists the old materializations)
    assert (
        main(["--home", str(home), "ingest", str(home.parent / "sources" / "talk_demo.mp4")]) == 0
    )
    talkvid_in_process(home, "curate")
    assert {"videos", "clips", "annotations", "speakers"} <= set(traces_of(Store(home), talk))
    assert [r["id"] for r in json.loads((home / "exports" / "talkvid.json").read_text())] == [
        f"{talk}-0000"
    ]

    # by the path it was ingested from, and then it is unknown: one line, exit 1
    source = str(home.parent / "sources" / "carphone_pristine.mp4")
    assert main(["--home", str(home), "remove", source]) == 0
    assert traces_of(Store(home), carphone) == {}
    assert main(["--home", str(home), "remove", source]) == 1


def test_a_vanished_source_is_missing_never_exported_and_cut_skips_it(home, tmp_path, capsys):
    home, keys = home
    talk = keys["talk_demo.mp4"]
    source = home.parent / "sources" / "talk_demo.mp4"
    source.unlink()
    assert main(["--home", str(home), "cut"]) == 1
    err = capsys.readouterr().err
    assert f"skipped {talk}-0000: source gone: {source}" in err and "Traceback" not in err
    out = tmp_path / "all.json"
    assert main(["--home", str(home), "export", "--out", str(out)]) == 0
    assert json.loads(out.read_text()) == []
    (video,) = Store(home).query(
        "SELECT status, reject_reasons FROM videos WHERE video_id = :k", {"k": talk}
    )
    gone = Failure("source", FailureKind.SOURCE_GONE, detail=str(source))
    assert video == {"status": "missing", "reject_reasons": [gone.row()]}


def test_curate_takes_a_vanished_source_out_of_the_dataset_file(home):
    home, keys = home
    (home.parent / "sources" / "talk_demo.mp4").unlink()
    talkvid_in_process(home, "curate", "--stale")
    assert json.loads((home / "exports" / "talkvid.json").read_text()) == []
    status = Store(home).query(
        "SELECT status FROM videos WHERE video_id = :k", {"k": keys["talk_demo.mp4"]}
    )
    assert status == [{"status": "missing"}]


def test_a_partition_that_names_no_file_says_why_and_is_removed_from_the_ui(home):
    home, keys = home
    with instance_of(home) as instance:
        instance.add_dynamic_partitions("videos", ["my_new_video"])
    talkvid_in_process(home, "curate", "--partition", "my_new_video")
    (video,) = Store(home).query(
        "SELECT status, reject_reasons FROM videos WHERE video_id = 'my_new_video'"
    )
    assert video == {"status": "rejected", "reject_reasons": [NOT_INGESTED.row()]}
    with instance_of(home) as instance:
        defs = build_definitions(home)
        Definitions.validate_loadable(defs)  # as `dagster dev`'s code server loads it
        job = defs.resolve_job_def("remove_videos")
        config = {"ops": {"remove": {"config": {"videos": ["my_new_video"]}}}}
        assert job.execute_in_process(run_config=config, instance=instance).success
        assert sorted(instance.get_dynamic_partitions("videos")) == sorted(keys.values())
    assert traces_of(Store(home), "my_new_video") == {}


def test_exports_clips_and_previews_follow_the_umask(home, tmp_path):
    home, keys = home
    talk = keys["talk_demo.mp4"]
    fixture_mask = umask()  # the curation in the fixture ran under it
    assert stat.S_IMODE((home / "previews" / f"{talk}.png").stat().st_mode) == 0o666 & ~fixture_mask
    previous = os.umask(0o002)  # a shared group folder
    try:
        assert main(["--home", str(home), "cut"]) == 0
        out = tmp_path / "out"
        for format in ("talkvid-json", "webdataset"):
            target = out / format
            assert (
                main(["--home", str(home), "export", "--format", format, "--out", str(target)]) == 0
            )
    finally:
        os.umask(previous)
    modes = {
        path.relative_to(tmp_path).as_posix(): stat.S_IMODE(path.stat().st_mode)
        for path in [*out.rglob("*"), *(home / "clips").iterdir()]
    }
    modes = {"home/clips" if "clips" in name else name: mode for name, mode in modes.items()}
    assert modes == {
        "out/talkvid-json": 0o664,
        "out/webdataset": 0o775,
        "out/webdataset/all": 0o775,
        "out/webdataset/all/records-000000.tar": 0o664,
        "home/clips": 0o664,
    }


def test_sql_prints_floats_without_their_binary_noise(tmp_path, capsys):
    assert (
        main(
            [
                "--home",
                str(tmp_path / "h"),
                "sql",
                "SELECT 0.1::DOUBLE + 0.2::DOUBLE AS x, 1/3 AS y",
            ]
        )
        == 0
    )
    assert capsys.readouterr().out == "x\ty\n0.3\t0.333333333333333\n"


def test_a_newcomer_is_told_the_profile_labels_and_where_to_look(home, tmp_path, capsys):
    home, _ = home
    ingest_help = build_parser()._subparsers._group_actions[0].choices["ingest"].format_help()
    assert "labelled CSV or JSON Lines" in " ".join(ingest_help.split())

    fresh = tmp_path / "fresh"
    assert main(["--home", str(fresh), "ingest", str(SAMPLES / "carphone_pristine.mp4")]) == 0
    note = capsys.readouterr().err.splitlines()[-1]
    assert note.startswith("profile 'paper' (a new home's default)") and "720p" in note
    assert not (fresh / "curation.yaml").exists()  # `curate --profile demo` is still possible

    out = tmp_path / "bench.json"
    assert main(["--home", str(home), "export", "--split", "bench", "--out", str(out)]) == 1
    assert "no video has labels" in capsys.readouterr().err

    assert demo_banner({}) == (
        "demo profile: paper clip thresholds; sources down to 128 px and without audio admitted"
    )
    assert "except quality_score 6.0 (curation.yaml)" in demo_banner({"quality_score": 6.0})

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    homes = re.findall(r"DAGSTER_HOME=(\S+)", readme)
    assert homes and all(value.startswith(("$PWD/", "/")) for value in homes), homes


def test_dev_prints_the_url_to_open(tmp_path):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    dev = start_talkvid(
        tmp_path / "h", "dev", "--port", str(port),
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    try:
        first = dev.stdout.readline()
    finally:
        os.killpg(dev.pid, signal.SIGTERM)
        try:
            dev.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(dev.pid, signal.SIGKILL)
            dev.wait()
    assert first.strip().endswith(f"open http://127.0.0.1:{port} once it is up"), first


def test_partition_keys_carry_the_file_name_and_the_content_stays_the_identity(tmp_path):
    store = Store(tmp_path / "home")
    content = video_key(SAMPLES / "talk_demo.mp4")
    assert register_source(store, SAMPLES / "talk_demo.mp4") == (f"talk_demo-{content}", True)
    renamed = tmp_path / "my talk.v2 (final).mp4"
    shutil.copyfile(SAMPLES / "talk_demo.mp4", renamed)
    assert register_source(store, renamed) == (f"talk_demo-{content}", False)
    other = tmp_path / "Ünïcode clip.v2 (final).mp4"
    shutil.copyfile(SAMPLES / "carphone_pristine.mp4", other)
    key, _ = register_source(store, other)
    assert key == f"n_code_clip_v2_final-{video_key(other)}"
    assert SAFE_KEY.fullmatch(f"{key}-0000")  # a clip id is a WebDataset sample key

    # a home made when keys were bare content keys keeps them
    old = Store(tmp_path / "old")
    bare = video_key(SAMPLES / "bikes.mp4")
    old.write("sources", bare, [{"video_id": bare, "source_path": str(SAMPLES / "bikes.mp4")}])
    assert register_source(old, SAMPLES / "bikes.mp4")[0] == bare


def test_relabelling_through_a_manifest_updates_labels_bench_and_exports(home, capsys):
    home, keys = home
    clip = f"{keys['talk_demo.mp4']}-0000"
    manifest = home.parent / "sources" / "labels.csv"
    header = "path,person_id,age_group,gender,ethnicity,language\n"

    def label(gender: str, language: str) -> dict:
        manifest.write_text(header + f"talk_demo.mp4,alice,19-30,{gender},Asian,{language}\n")
        assert main(["--home", str(home), "ingest", "--manifest", str(manifest)]) == 0
        assert "relabelled 1 curated video(s)" in capsys.readouterr().err
        (record,) = json.loads((home / "exports" / "talkvid.json").read_text())
        assert record["id"] == clip
        (mine,) = json.loads(
            (home / "exports" / "talkvid" / f"{keys['talk_demo.mp4']}.json").read_text()
        )
        assert mine["info"] == {**record["info"], "Person ID": "alice"}
        strata = Store(home).query(
            "SELECT dimension, stratum FROM bench_strata WHERE clip_id = :c", {"c": clip}
        )
        return {**record["info"], "bench": strata}

    first = label("Female", "English")
    assert (first["Gender"], first["Language"], first["Person ID"]) == (
        "Female",
        "English",
        "alice",
    )
    assert len(first["bench"]) == 1  # TalkVid-Bench drew the newly labelled clip
    (dimension,) = [row["dimension"] for row in first["bench"]]
    second = label("Male", "Thai")
    assert (second["Gender"], second["Language"]) == ("Male", "Thai")
    expected = {"gender": "Male", "language": "Thai", "age": "19-30", "ethnicity": "Asian"}
    assert [row["stratum"] for row in second["bench"]] == [expected[dimension]]
