"""A partial copy curated before its file was completed is retired, never exported beside the
whole video (issue 17, hostile item 2): the completed file is other content under the same
path, so the partial partition's source is reported overwritten (`videos.status = missing`) and
every export leaves it out, while the complete file is curated as a video of its own."""

import json
import subprocess

import pytest

from talkvid_assets.core.export import DATASET_FILE
from talkvid_assets.core.partition_keys import content_key
from talkvid_assets.core.source_files import video_key
from talkvid_assets_tests.conftest import ingest_and_curate
from talkvid_assets_tests.media import SAMPLES

pytestmark = pytest.mark.slow


def test_a_superseded_partial_copy_is_retired_not_exported(tmp_path, dagster_instance, store):
    # The moov box first (as many cameras and encoders write it): a cut copy still decodes.
    streamable = tmp_path / "streamable.mp4"
    subprocess.run(
        ["ffmpeg", "-loglevel", "error", "-i", str(SAMPLES / "talk_demo.mp4"), "-c", "copy",
         "-movflags", "+faststart", str(streamable)],
        check=True, timeout=60,
    )  # fmt: skip
    whole = streamable.read_bytes()
    dropped = tmp_path / "drop" / "talk.mp4"
    dropped.parent.mkdir()
    dropped.write_bytes(whole[: len(whole) * 3 // 4])  # a copy that stalled, taken as it was
    keys, _ = ingest_and_curate(dagster_instance, store, [dropped])
    partial = keys[dropped]
    assert store.query("SELECT * FROM clips WHERE video_id = :v", {"v": partial})  # curated
    dropped.write_bytes(whole)  # the copy completes later under the same name
    keys, outcomes = ingest_and_curate(dagster_instance, store, [dropped])
    complete = keys[dropped]
    assert all(outcome.success for outcome in outcomes)
    assert content_key(complete) == video_key(streamable) != content_key(partial)

    status = {row["video_id"]: row["status"] for row in store.query("SELECT * FROM videos")}
    assert status[partial] == "missing" and status[complete] == "ok"
    exported = [record["id"] for record in json.loads((store.home / DATASET_FILE).read_text())]
    assert exported and all(clip.startswith(f"{complete}-") for clip in exported)
