"""Faults that must not change results: the disk filling up mid-run (then freed), and a huge
frame size with bounded memory."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from talkvid_assets.core.config import default_text
from talkvid_assets.core.store import Store
from talkvid_assets_tests.commands import cli_env, talkvid, talkvid_in_process
from talkvid_assets_tests.media import write_video

pytestmark = pytest.mark.slow
CLIPS = "SELECT clip_id, duration_s, quality_score, motion_ratio, passed FROM clips ORDER BY 1"


def demo_home(home: Path) -> Path:
    home.mkdir(parents=True, exist_ok=True)
    (home / "curation.yaml").write_text(default_text("demo"))
    return home


def test_a_disk_filling_up_mid_run_then_freed_gives_the_clean_tables(
    tmp_path, curated_talk_megamind
):
    clean = curated_talk_megamind.store.query(CLIPS)
    assert clean
    videos = list(curated_talk_megamind.keys)
    mount = tmp_path / "small"
    mount.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=48m", "tmpfs", str(mount)], capture_output=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {mounted.stderr.decode().strip()}")
    try:
        home = demo_home(mount / "home")
        talkvid_in_process(home, "ingest", *map(str, videos))
        filler = mount / "filler"
        free = shutil.disk_usage(mount).free
        filler.write_bytes(b"\0" * max(free - 256 * 1024, 0))  # a quarter MiB left
        # The runs in a process of their own: the full disk must not reach the test process.
        full = talkvid(home, "curate", check=False)
        assert full.returncode == 1, full.stdout
        assert "Traceback" not in full.stderr
        filler.unlink()
        talkvid(home, "curate")
        assert Store(home).query(CLIPS) == clean
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=True)


PEAK_RSS = (
    "import re, sys, pathlib; from talkvid_assets.cli import main; code = main(sys.argv[1:]); "
    "status = pathlib.Path('/proc/self/status').read_text(); "
    "print('peak_kib', re.search(r'VmHWM:\\s+(\\d+)', status).group(1)); sys.exit(code)"
)


def test_an_8192_square_video_is_curated_with_bounded_memory(tmp_path):
    ramp = np.add.outer(np.arange(8192), np.arange(8192)).astype(np.uint8)  # grey
    frames = (np.roll(ramp, 64 * index, axis=1) for index in range(20))  # 1.3 s at 15 fps
    video = write_video(tmp_path / "huge.mp4", frames, 15.0, preset="ultrafast")
    del ramp
    home = demo_home(tmp_path / "home")
    talkvid_in_process(home, "ingest", str(video))
    run = subprocess.run(  # its own process: the peak memory of the command alone
        [sys.executable, "-c", PEAK_RSS, "--home", str(home), "curate"],
        env=cli_env(),
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, run.stderr
    peak_mib = int(run.stdout.split("peak_kib")[-1]) / 1024
    print(f"\n8192x8192, 20 frames: peak RSS of `talkvid curate` {peak_mib:.0f} MiB")
    (row,) = Store(home).query("SELECT status, width, height FROM videos")
    assert row == {"status": "ok", "width": 8192, "height": 8192}
    (clip,) = Store(home).query(CLIPS)
    assert clip["quality_score"] is not None
    assert peak_mib < 2048  # 1.2 GB measured; it must not grow with the frame size any further
