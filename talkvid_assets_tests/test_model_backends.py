"""The paper's model backends (insightface, DOVER, CoTracker3) without their weights.

Each ONNX model is replaced by a graph built here with the real model's input and output
signature, whose outputs are planted (constants, or simple functions of the input), and run
through the backend's own pre- and post-processing on real frames of the bundled samples: the
decoded boxes, key points, poses and scores must be the planted ones. CoTracker's protocol is
tested as pure functions and with a stand-in for the network.
"""

from __future__ import annotations

import hashlib
import importlib.util
import itertools
import math
import pickle
from pathlib import Path

import av
import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from talkvid_assets.core.faces import insightface
from talkvid_assets.core.faces.insightface_meanshape import mean_shape
from talkvid_assets.core.motion import cotracker3
from talkvid_assets.core.quality import dover
from talkvid_assets.core.runtime import Runtime
from talkvid_assets.core.stages import BackendUnavailable
from talkvid_assets.core.video import Frame, decode, probe
from talkvid_assets_tests.media import SAMPLES

OPSET = 17


# --- building stand-in models ----------------------------------------------------------------


def save_graph(path: Path, inputs, outputs, nodes) -> Path:
    """Write an ONNX model of ``nodes`` with the given input and output value infos."""
    graph = helper.make_graph(nodes, path.stem, inputs, outputs)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = 8
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path


def constant_model(path: Path, input_name: str, input_shape, outputs: dict[str, np.ndarray]):
    """A model whose outputs are the given arrays whatever its input."""
    nodes = [
        helper.make_node(
            "Constant", [], [name], value=numpy_helper.from_array(value.astype(np.float32))
        )
        for name, value in outputs.items()
    ]
    return save_graph(
        path,
        [helper.make_tensor_value_info(input_name, TensorProto.FLOAT, input_shape)],
        [
            helper.make_tensor_value_info(name, TensorProto.FLOAT, list(value.shape))
            for name, value in outputs.items()
        ],
        nodes,
    )


def first_frame(name: str) -> np.ndarray:
    return next(decode(SAMPLES / name, probe(SAMPLES / name).fps)).image("rgb24")


def make_frame(rgb: np.ndarray, index: int, fps: float = 30.0) -> Frame:
    """A decoder frame holding exactly ``rgb``."""
    return Frame(av.VideoFrame.from_ndarray(rgb, format="rgb24"), index, index / fps, index)


# --- insightface -----------------------------------------------------------------------------

# Planted SCRFD anchors: (stride, cell x, cell y, anchor, score, distances l/t/r/b in strides).
FACE_A = (16, 20, 12, 1, 0.92, (4.0, 5.0, 4.0, 6.0))
FACE_A_DUPLICATE = (8, 40, 24, 0, 0.7, (8.0, 10.0, 8.0, 12.0))  # the same box: suppressed
FACE_B = (32, 4, 4, 0, 0.6, (1.0, 1.0, 1.0, 1.0))
BELOW_THRESHOLD = (8, 3, 3, 1, 0.49, (1.0, 1.0, 1.0, 1.0))
KPS_OFFSETS = np.array([[-1.5, -1.5], [1.5, -1.5], [0.0, 0.5], [-1.0, 2.5], [1.0, 2.5]])
PLANTED_POSE = (12.0, -25.0, 7.0)  # pitch, yaw, roll in degrees


def scrfd_outputs(faces, batched: bool = False) -> dict[str, np.ndarray]:
    """det_10g's nine outputs (scores x 3, box distances x 3, key-point offsets x 3) with
    ``faces`` planted at their anchors and every other anchor scoring 0.01."""
    levels = {}
    for stride in insightface.STRIDES:
        anchors = (640 // stride) ** 2 * 2
        levels[stride] = [
            np.full((anchors, 1), 0.01),
            np.zeros((anchors, 4)),
            np.zeros((anchors, 10)),
        ]
    for stride, x, y, anchor, score, distances in faces:
        index = (y * (640 // stride) + x) * 2 + anchor
        levels[stride][0][index] = score
        levels[stride][1][index] = distances
        levels[stride][2][index] = KPS_OFFSETS.reshape(-1) * 16 / stride
    outputs = {}
    for kind, part in (("score", 0), ("bbox", 1), ("kps", 2)):
        for stride in insightface.STRIDES:
            value = levels[stride][part]
            outputs[f"{kind}_{stride}"] = value[None] if batched else value
    return outputs


def planted_canvas_face(face) -> tuple[np.ndarray, np.ndarray]:
    """The box and key points a planted anchor decodes to on the 640 px canvas."""
    stride, x, y, _, _, (left, top, right, bottom) = face
    centre = np.array([x * stride, y * stride], dtype=np.float64)
    box = np.array([centre[0] - left * stride, centre[1] - top * stride])
    box = np.concatenate([box, [centre[0] + right * stride, centre[1] + bottom * stride]])
    return box, centre + KPS_OFFSETS * 16


def rotation(pitch: float, yaw: float, roll: float) -> np.ndarray:
    """Rz(roll) Ry(yaw) Rx(pitch), whose x-y-z Euler angles are (pitch, yaw, roll)."""
    p, y, r = (math.radians(angle) for angle in (pitch, yaw, roll))
    rx = np.array([[1, 0, 0], [0, math.cos(p), -math.sin(p)], [0, math.sin(p), math.cos(p)]])
    ry = np.array([[math.cos(y), 0, math.sin(y)], [0, 1, 0], [-math.sin(y), 0, math.cos(y)]])
    rz = np.array([[math.cos(r), -math.sin(r), 0], [math.sin(r), math.cos(r), 0], [0, 0, 1]])
    return rz @ ry @ rx


def planted_landmarks(box: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(1k3d68's 3309 outputs, the frame landmarks they mean) for a face in ``box``: the mean
    shape turned by :data:`PLANTED_POSE`, scaled to the box, written in crop coordinates, after
    1035 distractor triples the decoder must skip."""
    centre = np.array([(box[0] + box[2]) / 2, (box[1] + box[3]) / 2, 0.0])
    size = max(box[2] - box[0], box[3] - box[1])
    in_frame = (0.8 * size) * mean_shape().astype(np.float64) @ rotation(*PLANTED_POSE).T + centre
    matrix = insightface.crop_matrix(box)
    crop_xy = np.hstack([in_frame[:, :2], np.ones((68, 1))]) @ matrix.T
    crop_z = in_frame[:, 2] * matrix[0, 0]
    normalised = np.hstack([crop_xy / 96 - 1, crop_z[:, None] / 96])
    distractors = np.full((1103 - 68, 3), 7.0)
    return np.concatenate([distractors, normalised]).reshape(1, -1), in_frame


@pytest.fixture(scope="module")
def talk_frame() -> np.ndarray:
    return first_frame("talk_demo.mp4")


def buffalo_models(folder: Path, faces, landmark_output: np.ndarray, batched: bool = False):
    """det_10g.onnx and 1k3d68.onnx stand-ins under ``folder/insightface-buffalo_l``."""
    model = folder / insightface.MODEL_NAME
    constant_model(
        model / insightface.DETECTOR_FILE,
        "input.1",
        [1, 3, "?", "?"],
        scrfd_outputs(faces, batched),
    )
    constant_model(
        model / insightface.LANDMARK_FILE, "data", ["None", 3, 192, 192], {"fc1": landmark_output}
    )
    return Runtime(folder, "cpu")


@pytest.mark.parametrize("batched", [False, True], ids=["plain", "batched-outputs"])
@pytest.mark.parametrize("portrait", [False, True], ids=["landscape", "portrait"])
def test_insightface_decodes_planted_faces_boxes_key_points_and_pose(
    tmp_path, talk_frame, batched, portrait
):
    rgb = np.ascontiguousarray(np.rot90(talk_frame)) if portrait else talk_frame
    height, width = rgb.shape[:2]
    scale = (640 / height) if portrait else int(640 * height / width) / height
    box_a, kps_a = planted_canvas_face(FACE_A)
    box_b, kps_b = planted_canvas_face(FACE_B)
    # 1k3d68 is constant: both faces get landmarks planted for face A's box (in frame pixels).
    output, in_frame = planted_landmarks(box_a / scale)
    runtime = buffalo_models(
        tmp_path, [FACE_A, FACE_A_DUPLICATE, FACE_B, BELOW_THRESHOLD], output, batched
    )
    detector = insightface.head_detail_backend(runtime).detector
    faces = detector.detect(rgb)

    assert len(faces) == 2  # the duplicate is suppressed, the weak anchor dropped
    assert detector.detect_batch([rgb, rgb]) == [faces, faces]
    for face, box, kps in ((faces[0], box_a, kps_a), (faces[1], box_b, kps_b)):
        np.testing.assert_allclose(face["bbox"], box / scale, rtol=1e-6)
        np.testing.assert_allclose(face["kps"], kps / scale, rtol=1e-6)
    np.testing.assert_allclose(faces[0]["pose"], PLANTED_POSE, atol=2e-3)
    matrix = insightface.crop_matrix(np.float32(box_a / scale))
    decoded = insightface.landmarks_from_output(output[0], matrix)
    np.testing.assert_allclose(decoded, in_frame, rtol=1e-5, atol=1e-3)


def test_insightface_input_is_a_letterboxed_normalised_rgb_square(talk_frame):
    rgb = talk_frame.copy()
    rgb[:, :88] = (255, 0, 0)
    rgb[:, 88:] = (0, 0, 255)
    canvas, scale = insightface.letterbox(rgb)
    blob = insightface.detection_input(canvas)
    new_height = int(640 * 144 / 176)
    assert blob.shape == (1, 3, 640, 640) and blob.dtype == np.float32
    assert scale == new_height / 144
    np.testing.assert_allclose(blob[0, :, new_height:], -127.5 / 128)  # black padding below
    assert blob[0, 0, 100, 50] == (255 - 127.5) / 128 and blob[0, 2, 100, 50] == -127.5 / 128
    assert blob[0, 2, 100, 600] == (255 - 127.5) / 128 and blob[0, 0, 100, 600] == -127.5 / 128
    crop = insightface.landmark_input(rgb, insightface.crop_matrix([40, 30, 80, 90]))
    assert crop.shape == (1, 3, 192, 192) and crop.max() == 255.0  # raw 0-255, RGB


def test_insightface_head_detail_scores_a_real_clip_from_planted_detections(tmp_path):
    path = SAMPLES / "carphone_pristine.mp4"
    video = probe(path)
    scale = int(640 * 144 / 176) / 144
    box, _ = planted_canvas_face(FACE_A)
    output, _ = planted_landmarks(box / scale)
    runtime = buffalo_models(tmp_path, [FACE_A], output)
    clip = insightface.head_detail_backend(runtime).new_clip(video)
    for frame in decode(path, video.fps):
        clip.offer(frame, frame.index, frame.time)
    scores = clip.finish(video.duration_s, video.frame_count)

    x1, y1, x2, y2 = box / scale
    orientation = math.sqrt(sum((abs(a) / 180 * 100) ** 2 for a in PLANTED_POSE))
    assert scores["sampled_frames"] == scores["single_face_frames"] == 4  # 120 frames / 29
    assert scores["min_movement"] == scores["avg_rotation"] == 100.0
    assert scores["min_completeness"] == scores["face_consistency"] == 100.0
    assert scores["min_resolution"] == pytest.approx(30 * (x2 - x1) * (y2 - y1) / (176 * 144) * 100)
    assert scores["avg_orientation"] == pytest.approx(100 - orientation, abs=1e-3)


def test_insightface_mean_shape_is_insightfaces_float32_array():
    shape = mean_shape()
    assert shape.shape == (68, 3) and shape.dtype == np.float32
    assert shape[8, 1] > 0.5 > shape[36, 1]  # chin below the eyes: image axes
    # The bytes of the array in insightface's meanshape_68.pkl (0.7.3, TalkVid's pin, and 2.1).
    digest = hashlib.sha256(shape.tobytes()).hexdigest()
    assert digest == "f53c32128fac78473487d1ae320d76fe2739d19060c1841727b594aa528cb16d"


def test_scrfd_nms_counts_end_pixels_like_insightface():
    # Boxes 0-9 and 5-14 (10 px wide): IoU 5 x 10 / (200 - 50) = 1/3 with +1 areas (kept at
    # 0.4); a box overlapping by 7 of 10 columns goes (IoU 0.54).
    detections = np.array(
        [[0, 0, 9, 9, 0.9], [5, 0, 14, 9, 0.8], [3, 0, 12, 9, 0.7]], dtype=np.float32
    )
    assert insightface.nms(detections) == [0, 1]


# --- DOVER -----------------------------------------------------------------------------------


def dover_model(folder: Path, tech_clips=3) -> Path:
    """DOVER.onnx stand-in: output 0 (aesthetic) is the mean of the aesthetic view's red
    channel, output 1 (technical) the mean of each technical clip's blue channel."""
    nodes = [
        helper.make_node("Constant", [], ["red"], value=numpy_helper.from_array(np.int64(0))),
        helper.make_node("Constant", [], ["blue"], value=numpy_helper.from_array(np.int64(2))),
        helper.make_node("Gather", ["aes_view", "red"], ["aes_red"], axis=1),
        helper.make_node("Gather", ["tech_view", "blue"], ["tech_blue"], axis=1),
        helper.make_node("ReduceMean", ["aes_red"], ["aesthetic"], axes=[1, 2, 3], keepdims=0),
        helper.make_node("ReduceMean", ["tech_blue"], ["technical"], axes=[1, 2, 3], keepdims=0),
    ]
    float_info = helper.make_tensor_value_info
    return save_graph(
        folder / dover.MODEL_NAME / dover.ONNX_FILE,
        [
            float_info("aes_view", TensorProto.FLOAT, [1, 3, 32, 224, 224]),
            float_info("tech_view", TensorProto.FLOAT, [tech_clips, 3, 32, 224, 224]),
        ],
        [
            float_info("aesthetic", TensorProto.FLOAT, [1]),
            float_info("technical", TensorProto.FLOAT, [tech_clips]),
        ],
        nodes,
    )


# Sets of k equal values: a clip value above them scores z = sqrt(k) in each, below -sqrt(k).
SET_SIZES = (3, 8, 15, 24, 35)
SETS_SCORE = round(sum(math.sqrt(k) for k in SET_SIZES) / len(SET_SIZES), 2)  # 3.85


def write_prediction_sets(folder: Path, level: float) -> list[Path]:
    paths = []
    for name, size in zip(dover.PREDICTION_SETS, SET_SIZES, strict=True):
        path = folder / dover.MODEL_NAME / dover.prediction_file(name)
        path.parent.mkdir(parents=True, exist_ok=True)
        sets = {
            "resize": np.full(size, 99.0, np.float32),
            "fragments": np.full(size, level, np.float32),
        }
        path.write_bytes(pickle.dumps(sets))
        paths.append(path)
    return paths


def test_dover_fusion_is_the_mean_z_score_among_each_prediction_set(tmp_path):
    paths = write_prediction_sets(tmp_path, level=-0.1)
    sets = [dover.load_prediction_set(path) for path in paths]
    assert SETS_SCORE == 3.85
    assert dover.standardised_score(np.float32(0.2), sets) == SETS_SCORE
    assert dover.standardised_score(np.float32(-0.3), sets) == -SETS_SCORE
    mixed = [np.array([0.0, 0.1, 0.2, 0.3], np.float32)] * 5
    values = np.array([0.25, 0.0, 0.1, 0.2, 0.3])  # the clip itself counts in mean and sd
    expected = round((0.25 - values.mean()) / values.std(), 2)
    assert dover.standardised_score(np.float32(0.25), mixed) == expected


def test_dover_prediction_sets_load_only_arrays(tmp_path):
    path = tmp_path / "val-livevqc.pkl"
    path.write_bytes(pickle.dumps({"fragments": print}))
    with pytest.raises(BackendUnavailable, match="not a DOVER prediction set"):
        dover.load_prediction_set(path)


def run_dover(runtime: Runtime, frames, video) -> tuple[dover.DoverClip, dict]:
    clip = dover.DoverQuality(runtime).new_clip(video)
    for frame in frames:
        clip.offer(frame, frame.index, frame.time)
    count = frames[-1].index + 1
    return clip, clip.finish(count / video.fps, count)


def test_dover_standardises_the_aesthetic_output_of_normalised_rgb_views(tmp_path):
    dover_model(tmp_path)
    write_prediction_sets(tmp_path, level=0.0)  # between the two planted outputs
    rgb = np.empty((240, 320, 3), np.uint8)
    rgb[:] = (200, 100, 50)  # aesthetic (red) > 0 > technical (blue) once normalised
    video = probe(SAMPLES / "talk_demo.mp4")
    frames = [make_frame(rgb, index) for index in range(150)]
    clip, scores = run_dover(Runtime(tmp_path, "cpu"), frames, video)
    technical, aesthetic = clip.views(150)
    assert technical.shape == (3, 32, 224, 224, 3) and aesthetic.shape == (1, 32, 224, 224, 3)
    assert (technical == (200, 100, 50)).all() and (aesthetic == (200, 100, 50)).all()
    view = dover.normalised_view(aesthetic)
    assert view.shape == (1, 3, 32, 224, 224)
    red = (np.float32(200) - np.float32(123.675)) / np.float32(58.395)  # float32, as torch
    assert view[0, 0, 0, 0, 0] == red
    assert scores == {"quality_score": SETS_SCORE}  # output 0 is standardised, not output 1


def test_dover_views_of_a_real_clip_are_the_reference_positions(tmp_path):
    dover_model(tmp_path)
    write_prediction_sets(tmp_path, level=-10.0)
    path = SAMPLES / "talk_demo.mp4"
    video = probe(path)
    frames = list(decode(path, video.fps))
    clip, scores = run_dover(Runtime(tmp_path, "cpu"), frames, video)
    assert scores == {"quality_score": SETS_SCORE}
    technical, aesthetic = clip.views(480)

    # 480 frames: thirds of 160, blocks of 64 -> starts {0, 64}, {192}, {320, 384}.
    seed = dover.clip_seed(video, 0)
    rng = dover.rng_for(seed, 1)
    blocks = dover.technical_blocks(480, list(range(7)), rng)
    assert blocks[0] in (0, 1) and blocks[1] == 3 and blocks[2] in (5, 6)
    for clip_number, block in enumerate(blocks):
        origins = dover.fragment_origins(144, 176, dover.rng_for(seed, 0, block))
        for k in (0, 31):
            source = dover.fragment_source(frames[block * 64 + 2 * k].image("rgb24"))
            np.testing.assert_array_equal(technical[clip_number, k], dover.mosaic(source, origins))
    # Aesthetic: 64 kept frames at most, so every 8th of 480; each target takes the nearest.
    for position, target in enumerate(dover.aesthetic_indices(480, rng)):
        kept = min(range(0, 480, 8), key=lambda index: (abs(index - target), index))
        expected = dover.aesthetic_frame(frames[kept].image("rgb24"))
        np.testing.assert_array_equal(aesthetic[0, position], expected)
    again, _ = run_dover(Runtime(tmp_path, "cpu"), frames, video)
    np.testing.assert_array_equal(again.views(480)[0], technical)  # seeded: re-runs agree


def test_dover_fragments_sit_in_their_cells_at_native_resolution():
    rng = np.random.default_rng(0)
    origins = dover.fragment_origins(1080, 1920, rng)
    tops, lefts = origins[..., 0], origins[..., 1]
    cells = np.arange(7)
    assert ((tops - 154 * cells[:, None] >= 0) & (tops - 154 * cells[:, None] < 154 - 32)).all()
    assert ((lefts - 274 * cells[None] >= 0) & (lefts - 274 * cells[None] < 274 - 32)).all()
    small = dover.fragment_origins(144, 176, rng)  # cells below 32 px: no offsets
    assert small[..., 0].tolist() == [[min(20 * i, 112)] * 7 for i in range(7)]
    rows, cols = np.mgrid[:1080, :1920]
    coded = np.stack([rows % 256, cols % 256, (rows // 256) * 8 + cols // 256], -1).astype(np.uint8)
    tiles = dover.mosaic(coded, origins)
    for i, j in ((0, 0), (3, 5), (6, 6)):
        top, left = origins[i, j]
        tile = tiles[i * 32 : (i + 1) * 32, j * 32 : (j + 1) * 32]
        np.testing.assert_array_equal(tile, coded[top : top + 32, left : left + 32])
    # Upsampled by 1 / min(144 / 224, 176 / 224); torch floors 144 x 1.5555555555555554 to 223.
    assert dover.fragment_source(np.zeros((144, 176, 3), np.uint8)).shape == (223, 273, 3)


def test_dover_temporal_positions_follow_the_reference():
    rng = np.random.default_rng(1)
    indices = dover.aesthetic_indices(320, rng)  # segments of 10, offsets below 8
    assert ((indices - 10 * np.arange(32) >= 0) & (indices - 10 * np.arange(32) < 8)).all()
    assert dover.aesthetic_indices(40, rng).tolist() == list(range(32))  # segments of 1
    picks = dover.technical_blocks(1000, list(range(15)), rng)
    assert picks[0] <= 4 and 6 <= picks[1] <= 9 and 11 <= picks[2] <= 14
    assert dover.technical_blocks(150, [0, 1], rng) == [0, 1, 1]  # overlapping windows
    short = [np.full((1,), k) for k in range(20)]  # a 40-frame clip: its even frames, cycled
    assert [int(m[0]) for m in dover.wrapped_clip(short, 40, 1)][:3] == [6, 7, 8]  # ~frame 13


class GreyFrame:
    """Just what DoverClip reads of a frame, with nothing to decode: fast enough to stream
    three minutes."""

    PICTURE = np.full((240, 320, 3), 128, np.uint8)

    def __init__(self, index: int) -> None:
        self.index, self.height, self.width = index, 240, 320

    def image(self, fmt: str = "rgb24", width: int | None = None, height: int | None = None):
        return self.PICTURE


def test_dover_keeps_bounded_memory_on_long_clips():
    video = probe(SAMPLES / "talk_demo.mp4")
    clip = dover.DoverClip(dover.DoverModel(None, ()), video)
    for index in range(30 * 60 * 3):  # three minutes at 30 fps
        clip.offer(GreyFrame(index), index, index / 30)
    assert len(clip._blocks) <= dover.MAX_TECHNICAL_BLOCKS
    assert len(clip._aesthetic) <= dover.MAX_AESTHETIC_FRAMES
    technical, aesthetic = clip.views(5400)
    assert technical.shape == (3, 32, 224, 224, 3) and aesthetic.shape == (1, 32, 224, 224, 3)


def test_dover_refuses_an_export_fixed_at_four_technical_clips(tmp_path):
    dover_model(tmp_path, tech_clips=4)
    write_prediction_sets(tmp_path, level=0.0)
    with pytest.raises(BackendUnavailable, match="re-export") as error:
        dover.DoverQuality(Runtime(tmp_path, "cpu")).model()
    assert "\n" not in str(error.value)


# --- missing weights -------------------------------------------------------------------------


def test_missing_weights_name_the_fetch_command(tmp_path, talk_frame, monkeypatch):
    runtime = Runtime(tmp_path, "cpu")
    video = probe(SAMPLES / "talk_demo.mp4")
    failing = {
        "insightface-buffalo_l": lambda: insightface.InsightFaceDetector(runtime).detect(
            talk_frame
        ),
        "dover": lambda: dover.quality_backend(runtime).new_clip(video),
        "cotracker3": lambda: cotracker3.motion_backend(runtime).new_clip(video),
    }
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(  # as if the cotracker package were installed
        importlib.util,
        "find_spec",
        lambda name, *args: object() if name == "cotracker" else real_find_spec(name, *args),
    )
    for model, call in failing.items():
        with pytest.raises(BackendUnavailable, match=f"talkvid models fetch {model}") as error:
            call()
        assert "\n" not in str(error.value)


# --- CoTracker3 ------------------------------------------------------------------------------


def test_cotracker_reads_at_most_30_fps_and_trims_the_edges():
    assert cotracker3.subsample_indices(5, 25.0) == [0, 1, 2, 3, 4]
    assert cotracker3.subsample_indices(10, 60.0) == [0, 2, 4, 6, 8]
    assert cotracker3.subsample_indices(10, 50.0) == [0, 1, 3, 5, 6, 8]
    assert [cotracker3.frame_step(fps) for fps in (30, 29.97, 25, 60)] == [15, 14, 12, 15]
    assert cotracker3.edge_trim(100, 30.0) == 6 and cotracker3.edge_trim(100, 29.97) == 5
    assert cotracker3.edge_trim(30, 30.0) == 0  # one second or less: nothing dropped


def test_cotracker_windows_are_the_reference_frame_indices():
    windows = cotracker3.window_indices(588, 30.0, 20.0)  # 20 s at 30 fps, 6 frames trimmed
    assert windows == [range(0, 180, 15), range(210, 390, 15), range(420, 588, 15)]
    windows = cotracker3.window_indices(290, 29.97, 10.0)
    assert windows == [range(0, 180, 14), range(119, 290, 14)]
    assert cotracker3.window_indices(100, 25.0, 4.0) == [range(0, 100, 12)]


def test_cotracker_grid_visibility_and_ratio():
    queries = cotracker3.grid_queries(100, 384, 512)
    assert queries.shape == (10_000, 3) and queries.dtype == np.float32
    assert queries[0].tolist() == [0.0, 8.0, 8.0] and queries[-1].tolist() == [0.0, 504.0, 376.0]
    assert queries[1, 1] > queries[0, 1] and queries[1, 2] == queries[0, 2]  # row by row
    probabilities = np.array([[0.0, 0.2], [0.9, 0.95], [0.91, 0.5]])
    visible = cotracker3.visible_points(probabilities)
    assert visible.tolist() == [[True, True], [False, True], [True, False]]
    assert cotracker3.visibility_ratio(visible) == pytest.approx(4 / 6)
    assert cotracker3.clip_ratio([0.9, 0.7, 0.8]) == 0.7 and cotracker3.clip_ratio([]) is None


@pytest.mark.parametrize("fps, seconds", [(30.0, 20.0), (29.97, 9.4), (60.0, 14.3), (25.0, 0.8)])
def test_cotracker_streamed_frames_match_the_reference_windows(fps, seconds):
    frames = cotracker3.ReferenceFrames(fps)
    frame_count = round(seconds * fps)
    for index in range(frame_count):
        number = frames.read_number(index)
        if number is not None and frames.keeps(number):
            frames.add(number, np.full((1,), number))
    read = len(cotracker3.subsample_indices(frame_count, fps))
    trim = cotracker3.edge_trim(read, fps)
    expected = cotracker3.window_indices(read - 2 * trim, fps, round(seconds, 1))
    step = cotracker3.frame_step(fps)
    got = frames.windows(seconds, frame_count)
    assert [int(image[0]) - trim for image in got[0]] == list(expected[0])  # first: exact
    for window, reference in zip(got, expected, strict=True):
        offsets = [int(image[0]) - trim for image in window]
        assert len(offsets) == len(reference)
        assert abs(offsets[0] - reference.start) <= step  # moved onto the lattice
        assert all(b - a == step for a, b in itertools.pairwise(offsets))
    # The first second, the first window's 2 fps lattice, and half the clip (plus the middle
    # window's slack) at 2 fps: not every frame.
    assert len(frames.kept) <= fps + 1 + 2 * 7 + 2 * (seconds / 2 + 5)


class StandInTracker:
    """CoTracker's interface: points visible with probability 0.95 in the left half of the
    grid and 0.5 in the right half; records what it was given."""

    model_resolution = (384, 512)

    def __init__(self) -> None:
        self.calls: list[tuple[tuple[int, ...], tuple[int, ...]]] = []

    def __call__(self, video, queries, iters):
        self.calls.append((tuple(video.shape), tuple(queries.shape)))
        frames = video.shape[1]
        left = (queries[0, :, 1] < 256).float()
        probabilities = 0.5 + 0.45 * left
        return None, probabilities.expand(1, frames, -1).clone(), None, None


def test_cotracker_clip_tracks_each_window_of_a_real_clip():
    path = SAMPLES / "talk_demo.mp4"
    video = probe(path)
    tracker = StandInTracker()
    clip = cotracker3.CoTrackerClip(tracker, "cpu", video)
    for frame in decode(path, video.fps):
        clip.offer(frame, frame.index, frame.time)
    scores = clip.finish(16.0, 480)
    # 16 s: windows [0, 6), [5, 11), [10, 16) -> 12 frames each at 30 fps, step 15.
    assert tracker.calls == [((1, 12, 3, 384, 512), (1, 10_000, 3))] * 3
    assert scores["motion_ratio"] == pytest.approx(0.5 + 0.5 / 12)  # left half + query frame


def test_cotracker_without_its_package_says_how_to_install_it(tmp_path):
    if importlib.util.find_spec("cotracker") is not None:
        pytest.skip("the cotracker package is installed here")
    with pytest.raises(BackendUnavailable) as error:
        cotracker3.motion_backend(Runtime(tmp_path, "cpu")).new_clip(
            probe(SAMPLES / "talk_demo.mp4")
        )
    message = str(error.value)
    assert "pip install git+https://github.com/facebookresearch/co-tracker" in message
    assert "CC-BY-NC" in message and "\n" not in message
