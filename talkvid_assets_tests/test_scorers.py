import numpy as np
import pytest

from talkvid_assets.core.faces.dlib_hog import DlibFaceDetector
from talkvid_assets.core.motion.lk import visibility_ratio
from talkvid_assets.core.motion.windows import WindowSampler, reference_windows
from talkvid_assets.core.quality.frame_stats import frame_quality
from talkvid_assets.core.video import decode
from talkvid_assets_tests.media import SAMPLES


def quality(analyses, name):
    return analyses[name].clips[0].scores["quality"]["quality_score"]


def test_quality_ranks_pristine_carphone_clearly_above_its_distorted_copy(analyses):
    pristine, distorted = (
        quality(analyses, "carphone_pristine.mp4"),
        quality(analyses, "carphone_distorted.mp4"),
    )
    assert 0 <= distorted < pristine <= 10
    assert pristine - distorted > 3.0


def test_quality_of_flat_frames_is_zero_and_noise_is_not_blocky():
    assert frame_quality(np.full((144, 176), 128, np.uint8)) == 0.0
    noise = np.random.default_rng(1).integers(0, 255, (480, 640)).astype(np.uint8)
    assert frame_quality(noise) > 5.0


def test_reference_motion_windows():
    assert reference_windows(5.0) == [(0.0, 5.0)]
    assert reference_windows(10.0) == [(0.0, 6.0), (4.0, 10.0)]
    assert reference_windows(20.0) == [(0.0, 6.0), (7.0, 13.0), (14.0, 20.0)]


def test_window_sampler_keeps_2fps_frames_bounded_by_half_the_clip():
    sampler = WindowSampler()
    fps, seconds = 30.0, 600
    for index in range(int(fps * seconds)):
        time = index / fps
        if sampler.wants(time):
            sampler.add(time, np.full((2, 2), index % 255, np.uint8))
    kept = len(sampler._kept)
    assert kept <= 2 * (6.2 + seconds / 2 + 3.5) + 2  # first window + candidate middle
    windows = sampler.windows(seconds)
    assert [len(window) for window in windows] == [12, 12, 12]  # [start, start + 6) at 2 fps


def test_windows_lie_on_the_recorded_duration_of_the_trimmed_clip():
    sampler = WindowSampler()
    for index in range(190):  # 6.33 s at 30 fps
        if sampler.wants(index / 30):
            sampler.add(index / 30, np.full((2, 2), index, np.uint8))
    first, last = sampler.windows(6.3)  # 6 < 6.3 <= 12: two windows, as the reference lays them
    assert [int(image[0, 0]) for image in first] == [6 + 15 * k for k in range(12)]
    # [0.3, 6.3) in trimmed time, clamped where the trimmed clip ends (5.9): 0.5 .. 5.5
    assert [int(image[0, 0]) for image in last] == [21 + 15 * k for k in range(11)]


def test_lk_visibility_is_full_for_a_still_scene_and_nil_for_noise():
    frame = next(decode(SAMPLES / "carphone_pristine.mp4", 29.97)).image("gray")
    assert visibility_ratio([frame] * 5, grid=20) == pytest.approx(1.0)
    rng = np.random.default_rng(0)
    noise = [rng.integers(0, 255, frame.shape).astype(np.uint8) for _ in range(5)]
    assert visibility_ratio(noise, grid=20) == pytest.approx(1 / 5)  # the query frame only


def test_motion_ratio_separates_a_talking_head_from_street_footage(analyses):
    talk = analyses["talk_demo.mp4"].clips[0].scores["motion"]["motion_ratio"]
    assert talk > 0.5
    assert analyses["bikes.mp4"].clips[2].scores["motion"]["motion_ratio"] < talk


def test_dlib_backend_finds_the_carphone_face_nearly_frontal():
    frame = next(decode(SAMPLES / "carphone_pristine.mp4", 29.97))
    (face,) = DlibFaceDetector().detect(frame.image("rgb24"))
    x1, y1, x2, y2 = face["bbox"]
    assert 0 <= x1 < x2 <= 176 and 0 <= y1 < y2 <= 144
    left_eye, right_eye, nose, mouth_left, mouth_right = face["kps"]
    assert left_eye[0] < nose[0] < right_eye[0] and mouth_left[0] < mouth_right[0]
    assert left_eye[1] < nose[1] < mouth_left[1]
    assert all(abs(angle) < 30 for angle in face["pose"])


def test_no_face_on_bikes_first_scene(analyses):
    assert analyses["bikes.mp4"].clips[0].scores["head_detail"]["face_consistency"] is None
