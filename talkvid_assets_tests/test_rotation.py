"""A phone video stored sideways with a display matrix is probed, decoded and scored upright."""

import numpy as np
import pytest

from talkvid_assets.core.decode_pass import decode_pass
from talkvid_assets.core.video import decode, probe
from talkvid_assets_tests.media import read_sample, write_video

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def twins(tmp_path_factory):
    """talk_demo's first 8 s upright, and the same stored sideways with a 90 degree matrix."""
    root = tmp_path_factory.mktemp("rotation")
    frames, audio, fps = read_sample("talk_demo.mp4")
    frames = frames[: round(8 * fps)]
    upright = write_video(root / "upright.mp4", frames, fps, audio)
    # Stored turned a quarter clockwise; displaying it turns it back counter-clockwise.
    stored = [np.ascontiguousarray(np.rot90(frame, -1)) for frame in frames]
    sideways = write_video(root / "sideways.mp4", stored, fps, audio, display_rotation=90)
    return upright, sideways


def test_probe_reports_the_displayed_size_and_the_rotation(twins):
    upright, sideways = twins
    assert (probe(upright).width, probe(upright).height, probe(upright).rotation) == (176, 144, 0)
    turned = probe(sideways)
    assert (turned.width, turned.height, turned.rotation) == (176, 144, 90)


def test_frames_reach_the_scorers_upright(twins):
    upright, sideways = twins
    first = next(decode(upright, probe(upright).fps))
    turned = next(decode(sideways, probe(sideways).fps))
    assert (turned.width, turned.height) == (176, 144)
    assert turned.image("rgb24").shape == first.image("rgb24").shape == (144, 176, 3)
    assert turned.luma().shape == (144, 176)
    difference = np.abs(turned.image("gray").astype(int) - first.image("gray").astype(int))
    assert difference.mean() < 8  # the same picture (two encodes), not a turned one


def test_the_sideways_twin_is_scored_like_the_upright_one(twins, backends):
    upright, sideways = twins
    (straight,) = decode_pass(upright, probe(upright), backends).clips
    (turned,) = decode_pass(sideways, probe(sideways), backends).clips
    faces = turned.scores["head_detail"]
    assert faces["face_consistency"] == straight.scores["head_detail"]["face_consistency"] == 100
    assert faces["min_rotation"] == pytest.approx(
        straight.scores["head_detail"]["min_rotation"], abs=5
    )
