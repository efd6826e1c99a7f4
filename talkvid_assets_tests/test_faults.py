"""Faults that must not change results: the disk filling up mid-run (then freed), and a huge
frame size with bounded memory."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from talkvid_assets.core.config import default_text
from talkvid_assets.core.store import Store
from talkvid_assets_tests.media import SAMPLES, write_video

pytestmark = pytest.mark.slow
TALKVID = str(Path(sys.executable).parent / "talkvid")
CLIPS = "SELECT clip_id, duration_s, quality_score, motion_ratio, passed FROM clips ORDER BY 1"
VIDEOS = [SAMPLES / "talk_demo.mp4", SAMPLES / "Megamind.avi"]


def talkvid(home: Path, *args: str) -> subprocess.CompletedProcess:
    env = {key: value for key, value in os.environ.items() if key != "DAGSTER_HOME"}
    env["TALKVID_HOME"] = str(home)
    return subprocess.run([TALKVID, *args], env=env, capture_output=True, text=True, timeout=600)


def demo_home(home: Path) -> Path:
    home.mkdir(parents=True, exist_ok=True)
    (home / "curation.yaml").write_text(default_text("demo"))
    return home


def curated(home: Path, videos: list[Path]) -> list[dict]:
    for args in (["ingest", *map(str, videos)], ["curate"]):
        result = talkvid(home, *args)
        assert result.returncode == 0, result.stderr
    return Store(home).query(CLIPS)


def test_a_disk_filling_up_mid_run_then_freed_gives_the_clean_tables(tmp_path):
    clean = curated(demo_home(tmp_path / "clean"), VIDEOS)
    mount = tmp_path / "small"
    mount.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=48m", "tmpfs", str(mount)], capture_output=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {mounted.stderr.decode().strip()}")
    try:
        home = demo_home(mount / "home")
        assert talkvid(home, "ingest", *map(str, VIDEOS)).returncode == 0
        filler = mount / "filler"
        free = shutil.disk_usage(mount).free
        filler.write_bytes(b"\0" * max(free - 256 * 1024, 0))  # a quarter MiB left
        full = talkvid(home, "curate")
        assert full.returncode == 1, full.stdout
        assert "Traceback" not in full.stderr
        filler.unlink()
        again = talkvid(home, "curate")
        assert again.returncode == 0, again.stderr
        assert Store(home).query(CLIPS) == clean
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=True)


PEAK_RSS = (
    "import re, sys, pathlib; from talkvid_assets.cli import main; code = main(sys.argv[1:]); "
    "status = pathlib.Path('/proc/self/status').read_text(); "
    "print('peak_kib', re.search(r'VmHWM:\\s+(\\d+)', status).group(1)); sys.exit(code)"
)


def test_an_8192_square_video_is_curated_with_bounded_memory(tmp_path):
    ramp = np.add.outer(np.arange(8192), np.arange(8192)).astype(np.uint8)
    picture = np.repeat(ramp[:, :, None], 3, axis=2)
    frames = (np.roll(picture, 64 * index, axis=1) for index in range(20))  # 1.3 s at 15 fps
    video = write_video(tmp_path / "huge.mp4", frames, 15.0, preset="ultrafast")
    del picture
    home = demo_home(tmp_path / "home")
    assert talkvid(home, "ingest", str(video)).returncode == 0
    env = {key: value for key, value in os.environ.items() if key != "DAGSTER_HOME"}
    env["TALKVID_HOME"] = str(home)
    run = subprocess.run(
        [sys.executable, "-c", PEAK_RSS, "curate"], env=env, capture_output=True, text=True
    )
    assert run.returncode == 0, run.stderr
    peak_mib = int(run.stdout.split("peak_kib")[-1]) / 1024
    print(f"\n8192x8192, 20 frames: peak RSS of `talkvid curate` {peak_mib:.0f} MiB")
    (row,) = Store(home).query("SELECT status, width, height FROM videos")
    assert row == {"status": "ok", "width": 8192, "height": 8192}
    (clip,) = Store(home).query(CLIPS)
    assert clip["quality_score"] is not None
    assert peak_mib < 2048  # 1.2 GB measured; it must not grow with the frame size any further
