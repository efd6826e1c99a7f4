"""A morning of curating as a user lives it: shards that carry the clips, removing a video,
a source that vanished, and what the commands tell a newcomer."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import av
import pytest

from talkvid_assets.cli import main
from talkvid_assets.core.store import Store
from talkvid_assets_tests.media import SAMPLES

pytestmark = pytest.mark.slow
BIN = Path(sys.executable).parent
VIDEOS = ["talk_demo.mp4", "carphone_pristine.mp4"]


def talkvid(home: Path, *args: str) -> subprocess.CompletedProcess:
    """The command as a user runs it, in its own process."""
    env = {**os.environ, "TALKVID_HOME": str(home)}
    env.pop("DAGSTER_HOME", None)
    return subprocess.run(
        [str(BIN / "talkvid"), *args], env=env, capture_output=True, text=True, timeout=600
    )


@pytest.fixture(scope="module")
def curated_home(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    """Two videos (talk_demo passes, carphone does not) ingested and curated once by the CLI,
    from copies of the samples that a test may delete."""
    root = tmp_path_factory.mktemp("daily")
    sources = root / "sources"
    sources.mkdir()
    for name in VIDEOS:
        shutil.copyfile(SAMPLES / name, sources / name)
    home = root / "home"
    ingested = talkvid(home, "ingest", str(sources))
    assert ingested.returncode == 0, ingested.stderr
    keys = {Path(path).name: key for key, path, *_ in map(str.split, ingested.stdout.splitlines())}
    curated = talkvid(home, "curate", "--profile", "demo")
    assert curated.returncode == 0, curated.stdout + curated.stderr
    return root, keys


@pytest.fixture
def home(curated_home, tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """A private copy of the curated home and its sources (same relative layout)."""
    root, keys = curated_home
    copy = tmp_path / "copy"
    shutil.copytree(root, copy, symlinks=True)
    store = Store(copy / "home")
    for name, key in keys.items():  # the copy's sources are its own files
        (row,) = store.rows("sources", key)
        store.write("sources", key, [{**row, "source_path": str(copy / "sources" / name)}])
    return copy / "home", keys


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
