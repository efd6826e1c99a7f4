import itertools
import math

import pytest

import talkvid_assets
from talkvid_assets.core.head_detail import HEAD_DETAIL_KEYS, face_consistency, orientation


def test_matches_every_shared_case(head_detail_cases):
    assert head_detail_cases, "the shared fixture file holds no case"
    for case in head_detail_cases:
        got = talkvid_assets.head_detail_scores(case["frames"], case["width"], case["height"])
        expected = case["expected"]
        if expected is None:
            assert got is None, case["name"]
            continue
        assert set(got) == set(HEAD_DETAIL_KEYS), case["name"]
        for key in HEAD_DETAIL_KEYS:
            assert got[key] == pytest.approx(expected[key], abs=1e-6), (case["name"], key)


def face(x: float, y: float, size: float, pose=(0.0, 0.0, 0.0)) -> dict:
    """A face box at (x, y) with key points placed inside it like a frontal face."""
    kps = [(0.3, 0.4), (0.7, 0.4), (0.5, 0.55), (0.35, 0.75), (0.65, 0.75)]
    return {
        "bbox": [x, y, x + size, y + size],
        "kps": [[x + size * u, y + size * v] for u, v in kps],
        "pose": list(pose),
    }


def test_movement_and_rotation_follow_the_formulas():
    frames = [[face(100, 100, 200)], [face(110, 100, 200, (0, 3, 4))], [face(110, 120, 200)]]
    got = talkvid_assets.head_detail_scores(frames, 640, 480)
    shifts = [10 * 5 / 10 / 480, 20 * 5 / 10 / 480]  # mean |dx|,|dy| over 10 coordinates
    assert got["avg_movement"] == pytest.approx(100 - 100 * sum(shifts) / 2)
    assert got["min_movement"] == pytest.approx(100 - 100 * max(shifts))
    assert got["avg_rotation"] == pytest.approx(100 - 5)  # both steps turn by a 3-4-5 angle
    assert got["min_rotation"] == pytest.approx(95)
    assert got["avg_resolution"] == pytest.approx(30 * 200 * 200 / (640 * 480) * 100)


def test_only_single_face_frames_are_scored_and_others_cost_consistency():
    one, two = [face(10, 10, 50)], [face(10, 10, 50), face(300, 10, 50)]
    assert talkvid_assets.head_detail_scores([[], two, []], 640, 480) is None
    got = talkvid_assets.head_detail_scores([one, two, [], one], 640, 480)
    assert got["face_consistency"] == 60.0
    assert got["avg_movement"] == 100.0  # the two single-face frames are identical
    assert face_consistency([1] * 3 + [0] * 7) == 0.0


def test_completeness_counts_key_points_inside_the_frame_only():
    leaving = face(600, 100, 100)  # right eye, nose and right mouth corner beyond x = 640
    got = talkvid_assets.head_detail_scores([[leaving]], 640, 480)
    assert got["min_completeness"] == pytest.approx(0.3 * 50 + 0.4 * 0 + 0.3 * 50)
    edge = {"bbox": [0, 0, 10, 10], "kps": [[640, 0]] * 5, "pose": [0, 0, 0]}  # x == W is out
    assert talkvid_assets.head_detail_scores([[edge]], 640, 480)["avg_completeness"] == 0.0


def test_orientation_is_the_norm_of_angles_in_percent_of_180():
    for pose in itertools.product((0.0, -30.0, 45.0), repeat=3):
        expected = math.sqrt(sum((abs(a) / 180 * 100) ** 2 for a in pose))
        assert orientation({"pose": pose}) == pytest.approx(expected)
