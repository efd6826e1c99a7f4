"""Sources from URLs, downloaded from a real HTTP server on 127.0.0.1 (tests/http_server.py):
resume byte-exact, the archive skip, each failure's reason, the CLI and the Dagster asset."""

from __future__ import annotations

import dataclasses
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from dagster import AssetKey, DagsterInstance, build_sensor_context

from talkvid_assets.core.config import DownloadLimits, load_config
from talkvid_assets.core.manifest import ManifestError
from talkvid_assets.core.models import sha256_of
from talkvid_assets.core.store import Store
from talkvid_assets.core.url_sources import (
    URL_FOLDER,
    UrlEntry,
    ingest_urls,
    keep_list,
    read_url_list,
)
from talkvid_assets.core.video import probe
from talkvid_assets.defs.resources import TalkvidResource
from talkvid_assets.defs.sensors import inbox_sensor
from talkvid_assets.defs.url_sources import url_list_sensor
from talkvid_assets.launch import ingest_url_lists
from talkvid_assets_tests.commands import talkvid
from talkvid_assets_tests.conftest import configure, project_instance
from talkvid_assets_tests.http_server import local_server
from talkvid_assets_tests.media import SAMPLES

# A socket timeout that a loaded machine (load 10 on 2 cores) cannot miss: the server is a
# thread of the test's own process and can wait seconds for its turn.
FAST = DownloadLimits(timeout_s=10, max_size_mb=2, max_time_s=30)


def entries(*urls: str) -> list[UrlEntry]:
    return [UrlEntry(row, url, {"video_link": url}) for row, url in enumerate(urls, start=1)]


def test_a_cut_transfer_resumes_byte_exact_and_a_second_run_asks_nothing(store):
    with local_server(SAMPLES) as server:
        urls = [
            f"{server.url}/files/bikes.mp4",
            f"{server.url}/cut/talk_demo.mp4",
            f"{server.url}/missing.mp4",
            f"{server.url}/redirect/carphone_pristine.mp4",
            f"{server.url}/files/Megamind.avi",
        ]
        rows = ingest_urls(store, entries(*urls), FAST)
        statuses = [row["status"] for row in rows]
        assert statuses == ["ingested"] * 2 + ["failed"] + ["ingested"] * 2, rows
        cut = rows[1]
        assert sha256_of(Path(cut["source_path"])) == sha256_of(SAMPLES / "talk_demo.mp4")
        ranges = [rng for path, rng in server.requests if path == "/cut/talk_demo.mp4" and rng]
        assert ranges and int(ranges[0].removeprefix("bytes=").rstrip("-")) > 0  # resumed
        assert (rows[2]["failure"], rows[2]["http_status"]) == ("http", 404)
        assert rows[2]["reason"] == "HTTP 404 Not Found"
        moved = rows[3]
        assert moved["final_url"] == f"{server.url}/files/carphone_pristine.mp4"
        assert moved["extractor"] == "generic" and moved["downloaded_at"]
        labels = store.rows("labels", moved["video_id"])
        assert labels[0]["video_link"] == urls[3]  # the export's Video Link is the URL
        seen = len(server.requests)
        again = ingest_urls(store, entries(*urls), FAST)
        assert len(server.requests) == seen  # archive: not one request
        assert [row["video_id"] for row in again] == [row["video_id"] for row in rows]


def test_a_killed_ingest_resumes_its_part_file(store):
    source = SAMPLES / "bikes.mp4"
    with local_server(SAMPLES) as server:
        url = f"{server.url}/files/bikes.mp4"
        (entry,) = entries(url)
        folder = store.home / URL_FOLDER
        folder.mkdir(parents=True)
        half = source.read_bytes()[:200_000]  # what a killed ingest left
        (folder / f"{entry.key}.mp4.part").write_bytes(half)
        (row,) = ingest_urls(store, [entry], FAST)
        assert row["status"] == "ingested" and row["resumed_from"] == len(half)
        assert ("/files/bikes.mp4", f"bytes={len(half)}-") in server.requests
        assert sha256_of(Path(row["source_path"])) == sha256_of(source)


def test_content_already_ingested_adds_no_video(store):
    with local_server(SAMPLES) as server:
        rows = ingest_urls(
            store,
            entries(f"{server.url}/files/bikes.mp4", f"{server.url}/redirect/bikes.mp4"),
            FAST,
        )
    assert rows[0]["video_id"] == rows[1]["video_id"]
    assert len(store.query("SELECT * FROM sources")) == 1


@pytest.mark.parametrize(
    ("path", "failure", "reason"),
    [
        ("/slow/bikes.mp4", "timeout", "timed out"),
        ("/endless.mp4", "too_large", "larger than 2 MiB"),
        ("/page.html", "unsupported", "no extractor supports this URL"),
    ],
)
def test_each_failure_is_recorded_with_its_reason_and_stops_no_other(store, path, failure, reason):
    # The slow path pauses 12 s between bytes, far past a 3 s timeout, which the other URL,
    # served at once, still meets at load 10.
    limits = dataclasses.replace(FAST, timeout_s=3)
    with local_server(SAMPLES) as server:
        rows = ingest_urls(
            store, entries(f"{server.url}{path}", f"{server.url}/files/talk_demo.mp4"), limits
        )
    assert (rows[0]["status"], rows[0]["failure"]) == ("failed", failure), rows
    assert reason in rows[0]["reason"]
    assert rows[1]["status"] == "ingested", rows
    assert not list((store.home / URL_FOLDER).glob("*.part"))  # nothing left growing


def test_a_video_over_the_duration_limit_is_refused_after_its_download(store):
    short = dataclasses.replace(FAST, max_duration_s=10)
    with local_server(SAMPLES) as server:
        talk, car = f"{server.url}/files/talk_demo.mp4", f"{server.url}/files/carphone_pristine.mp4"
        rows = ingest_urls(store, entries(talk, car), short)
    assert (rows[0]["failure"], rows[0]["reason"]) == ("too_long", "16 s long, over 10 s")
    assert rows[1]["status"] == "ingested"
    assert [path.name for path in (store.home / URL_FOLDER).glob(f"{rows[0]['url_key']}*")] == []


def test_a_list_reads_lines_or_a_url_column_and_refuses_other_schemes(tmp_path):
    lines = tmp_path / "list.urls"
    lines.write_text("# talks\nhttp://127.0.0.1:1/a.mp4\n\nhttps://example.org/b\n")
    assert [e.url for e in read_url_list(lines)] == [
        "http://127.0.0.1:1/a.mp4",
        "https://example.org/b",
    ]
    manifest = tmp_path / "list.csv"
    manifest.write_text("URL,Language,Gender\nhttp://127.0.0.1:1/a.mp4,Thai,Female\n")
    (entry,) = read_url_list(manifest)
    assert entry.labels["language"] == "Thai" and entry.labels["video_link"] == entry.url
    bad = tmp_path / "bad.urls"
    bad.write_text("http://127.0.0.1:1/a.mp4\nfile:///etc/passwd\n")
    with pytest.raises(ManifestError, match=r"bad\.urls:2: expected an http"):
        read_url_list(bad)


def test_the_asset_records_each_url_and_adds_partitions_outside_the_decode_pool(
    tmp_path, dagster_instance: DagsterInstance
):
    home = tmp_path / "home"
    load_config(home)
    Store(home).publish()
    with local_server(SAMPLES) as server:
        listed = tmp_path / "talks.urls"
        listed.write_text(f"{server.url}/files/talk_demo.mp4\n{server.url}/missing.mp4\n")
        keep_list(home, listed)
        outcome = ingest_url_lists(dagster_instance, home)
    assert outcome.success, outcome.error
    event = dagster_instance.get_latest_materialization_event(AssetKey("url_sources"))
    metadata = event.asset_materialization.metadata
    assert metadata["ingested urls"].value == 1 and metadata["failed urls"].value == 1
    statuses = {record.data["status"] for record in metadata["per URL"].value.records}
    assert statuses == {"ingested", "failed"}
    (row,) = Store(home).query("SELECT video_id FROM url_sources WHERE status = 'ingested'")
    assert dagster_instance.get_dynamic_partitions("videos") == [row["video_id"]]
    run = dagster_instance.get_run_by_id(outcome.run_id)
    assert run is not None
    pools = {step.pool for step in dagster_instance.get_execution_plan_snapshot(
        run.execution_plan_snapshot_id).steps}  # fmt: skip
    assert pools == {"downloads"}


@pytest.mark.slow
def test_ingest_urls_from_the_command_line(tmp_path):
    home = tmp_path / "home"
    with local_server(SAMPLES) as server:
        listed = tmp_path / "talks.urls"
        listed.write_text(
            "\n".join(
                f"{server.url}/{path}"
                for path in (
                    "files/bikes.mp4",
                    "cut/talk_demo.mp4",
                    "missing.mp4",
                    "redirect/carphone_pristine.mp4",
                    "files/Megamind.avi",
                )
            )
        )
        first = talkvid(home, "ingest", "--urls", str(listed), check=False)
        assert first.returncode == 1
        assert len(first.stdout.splitlines()) == 4
        assert (
            first.stderr.strip()
            == f"talkvid ingest: {server.url}/missing.mp4: http: HTTP 404 Not Found"
        )
        seen = len(server.requests)
        second = talkvid(home, "ingest", "--urls", str(listed), check=False)
        assert len(server.requests) == seen and second.stdout == first.stdout
    talk = next(line for line in first.stdout.splitlines() if "talk_demo" in line)
    (source,) = Store(home).query(
        "SELECT source_path FROM sources WHERE video_id = :v", {"v": talk.split("\t")[0]}
    )
    assert sha256_of(Path(source["source_path"])) == sha256_of(SAMPLES / "talk_demo.mp4")


def test_a_urls_file_in_the_inbox_becomes_a_list_and_a_run_never_a_video(tmp_path):
    home = tmp_path / "home"
    configure(home)
    (home / "inbox").mkdir()
    resource = TalkvidResource(home=str(home))
    dropped = home / "inbox" / "talks.urls"
    dropped.write_text("http://127.0.0.1:1/talk.mp4\n")
    (home / "inbox" / "bad.urls").write_text("ftp://127.0.0.1/talk.mp4\n")
    with project_instance(tmp_path / "dagster") as instance:
        cursors: dict[str, str | None] = {"urls": None, "inbox": None}
        results = {}
        for _ in range(2):  # the settle rule: unchanged between two looks
            for name, sensor in (("urls", url_list_sensor), ("inbox", inbox_sensor)):
                context = build_sensor_context(
                    instance=instance, cursor=cursors[name], resources={"talkvid": resource}
                )
                results[name] = sensor(context)
                cursors[name] = results[name].cursor
        (request,) = results["urls"].run_requests
        assert request.run_key.startswith(str(dropped))
        (kept,) = (home / "sources" / "url_lists").iterdir()
        assert kept.read_text() == dropped.read_text()
        assert not results["inbox"].dynamic_partitions_requests  # a list is not a video
        again = url_list_sensor(
            build_sensor_context(
                instance=instance, cursor=cursors["urls"], resources={"talkvid": resource}
            )
        )
        assert not again.run_requests  # handled once


def test_the_rate_limit_paces_a_download(store):
    size = (SAMPLES / "carphone_pristine.mp4").stat().st_size  # 575 KiB
    with local_server(SAMPLES) as server:
        url = f"{server.url}/files/carphone_pristine.mp4"
        started = time.monotonic()
        (row,) = ingest_urls(store, entries(url), dataclasses.replace(FAST, rate_limit_kbps=256))
        elapsed = time.monotonic() - started
    assert row["status"] == "ingested" and row["size_bytes"] == size
    assert elapsed >= 0.8 * size / (256 * 1024)  # about 2.2 s; unpaced it takes well under 1 s


def hls_renditions(folder: Path, heights: tuple[int, ...]) -> Path:
    """An HLS master playlist offering talk_demo's first second at each of ``heights``."""
    folder.mkdir(parents=True)
    streams = []
    for height in heights:
        subprocess.run(
            ["ffmpeg", "-loglevel", "error", "-i", str(SAMPLES / "talk_demo.mp4"), "-t", "1",
             "-vf", f"scale=-2:{height}", "-c:v", "libx264", "-preset", "ultrafast", "-c:a", "aac",
             "-f", "hls", "-hls_time", "1", "-hls_playlist_type", "vod",
             "-hls_segment_filename", str(folder / f"v{height}_%03d.ts"),
             str(folder / f"v{height}.m3u8")],
            check=True, timeout=60,
        )  # fmt: skip
        width = height * 16 // 9
        streams.append(
            f"#EXT-X-STREAM-INF:BANDWIDTH={height * 2000},RESOLUTION={width}x{height}\n"
            f"v{height}.m3u8\n"
        )
    (folder / "master.m3u8").write_text("#EXTM3U\n" + "".join(streams))
    return folder


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="ffmpeg is not installed")
def test_the_format_preference_takes_the_release_rendition(tmp_path):
    hls = hls_renditions(tmp_path / "hls", (720, 1440))
    heights = {}
    with local_server(hls) as server:
        url = f"{server.url}/files/master.m3u8"
        for name, limits in (("release", FAST), ("best", dataclasses.replace(FAST, format="b"))):
            (row,) = ingest_urls(Store(tmp_path / name), entries(url), limits)
            heights[name] = probe(row["source_path"]).height
    assert heights == {"release": 720, "best": 1440}  # 1080p at most, unless told otherwise
