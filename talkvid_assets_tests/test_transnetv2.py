"""TransNetV2 streamed from the decode pass, cuts reported late, and the downscale factor."""

from __future__ import annotations

from math import inf
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from scenedetect import HistogramDetector, detect

from talkvid_assets.core.decode_pass import DecodeOptions, DecodePassResult, decode_pass
from talkvid_assets.core.scenes import cut_detector
from talkvid_assets.core.scenes.pyscenedetect import ContentCuts, HistogramCuts, reference_downscale
from talkvid_assets.core.scenes.transnetv2 import SIZE, TransNetV2Cuts, load_network
from talkvid_assets.core.scoring import Scores
from talkvid_assets.core.video import TIME_EPS, Frame, VideoProbe, decode, probe
from talkvid_assets_tests.media import SAMPLES, write_video

MEGAMIND = SAMPLES / "Megamind.avi"
Seen = tuple[int, int, float]  # a frame's decode index, number and time


class _ClipLog:
    def __init__(self, log: list[list[Seen]]) -> None:
        self._seen: list[Seen] = []
        log.append(self._seen)

    def offer(self, frame: Frame, clip_index: int, clip_time: float) -> None:
        self._seen.append((frame.index, frame.number, frame.time))

    def finish(self, duration: float, frame_count: int) -> Scores:
        return {}


class FrameLog:
    """A scorer backend that records which frames each clip was offered, in order."""

    name = "frame-log"
    version = "1"

    def __init__(self) -> None:
        self.clips: list[list[Seen]] = []

    def new_clip(self, video: VideoProbe) -> _ClipLog:
        return _ClipLog(self.clips)


def detected_cuts(path: Path) -> tuple[list[int], list[int]]:
    """TransNetV2's cuts of ``path`` returned while frames stream in, and those of ``flush``."""
    detector = TransNetV2Cuts()
    pushed = [cut for frame in decode(path, probe(path).fps) for cut in detector.push(frame)]
    return pushed, detector.flush()


def logged_pass(
    path: Path, known_cuts: list[int] | None = None
) -> tuple[DecodePassResult, FrameLog]:
    log = FrameLog()
    video = probe(path)
    transnetv2 = DecodeOptions(scene_detector="transnetv2")
    result = decode_pass(path, video, {"log": log}, known_cuts, speech=False, options=transnetv2)
    return result, log


def assert_every_frame_in_its_clip(path: Path, result: DecodePassResult, log: FrameLog) -> None:
    """Clips tile the video at the cuts; each frame reaches the clip of its scene, and the only
    frames no clip sees are those in the 0.3 s a clip starts after its scene."""
    scenes = [clip.scene for clip in result.clips]
    assert [s.end_frame for s in scenes[:-1]] == [s.start_frame for s in scenes[1:]]
    assert scenes[0].start_frame == 0 and scenes[-1].end_frame == result.report.end_number
    # the last scene takes every frame after its start (Megamind's last frame is not the
    # highest-numbered one, and the end is one past the last frame's number)
    bounds = [(s.start_frame, s.end_frame) for s in scenes[:-1]] + [(scenes[-1].start_frame, inf)]
    spans = list(zip(scenes, bounds, strict=True))
    seen = set()
    for (start, end), frames in zip(bounds, log.clips, strict=True):
        assert all(start <= number < end for _, number, _ in frames)
        seen |= {index for index, _, _ in frames}
    assert len(seen) == sum(len(frames) for frames in log.clips)  # no frame in two clips
    unseen = [frame for frame in decode(path, probe(path).fps) if frame.index not in seen]
    for frame in unseen:
        (scene,) = [s for s, (start, end) in spans if start <= frame.number < end]
        assert frame.time < scene.clip_start_s + TIME_EPS
    assert len(seen) + len(unseen) == result.report.frames


@pytest.fixture(scope="module")
def megamind_cuts() -> tuple[list[int], list[int]]:
    return detected_cuts(MEGAMIND)


def test_transnetv2_cuts_megamind_where_pyscenedetect_does(megamind_cuts):
    pushed, flushed = megamind_cuts
    reference = [start.frame_num for start, _ in detect(str(MEGAMIND), HistogramDetector(0.085))]
    cuts = pushed + flushed
    assert len(cuts) == len(reference[1:]) == 3
    assert all(abs(ours - theirs) <= 2 for ours, theirs in zip(cuts, reference[1:], strict=True))


def test_a_late_detector_still_hands_every_frame_to_its_own_clip(megamind_cuts):
    cuts = [cut for found in megamind_cuts for cut in found]
    result, log = logged_pass(MEGAMIND)
    assert [clip.scene.start_frame for clip in result.clips[1:]] == cuts
    assert_every_frame_in_its_clip(MEGAMIND, result, log)
    # the frames each clip sees are those the latency-free replay of the same cuts gives it
    _, replayed = logged_pass(MEGAMIND, known_cuts=cuts)
    assert log.clips == replayed.clips


def textured_then_solid(path: Path, textured: int, solid: int) -> Path:
    """A moving blurred-noise shot cut to a flat blue one: a cut TransNetV2 is sure of."""
    noise = np.random.default_rng(0).integers(0, 256, (144, 176, 3), dtype=np.uint8)
    texture = cv2.GaussianBlur(noise, (0, 0), 3) * 3
    frames = [np.roll(texture, 2 * step, axis=1) for step in range(textured)]
    frames += [np.full_like(texture, (40, 90, 200))] * solid
    return write_video(path, frames, 30.0)


def test_flush_finds_a_cut_in_the_last_window_like_the_batch_run(tmp_path):
    path = textured_then_solid(tmp_path / "late_cut.mp4", 60, 20)
    assert detected_cuts(path) == ([], [60])  # 20 frames before the end: only flush knows it
    result, log = logged_pass(path)
    assert [clip.scene.start_frame for clip in result.clips] == [0, 60]
    assert_every_frame_in_its_clip(path, result, log)
    # the package's own batch run over the same small frames cuts at the same frame
    network = load_network("cpu")
    small = [frame.image("rgb24", *SIZE) for frame in decode(path, 30.0)]
    single, _ = network.predict_frames(torch.from_numpy(np.stack(small)), quiet=True)
    scenes = network.predictions_to_scenes(single.numpy())
    assert [int(start) for start, _ in scenes[1:]] == [60]


def test_each_detector_declares_how_late_it_reports_cuts():
    assert TransNetV2Cuts.latency == 74  # a window's first predicted frame waits for 74 more
    assert HistogramCuts(25.0, 640, 360).latency == 0
    # ContentDetector's MERGE flash filter (PySceneDetect's default) holds a cut for a minimum
    # scene length of 15 frames before reporting it.
    assert ContentCuts(25.0, 640, 360).latency == 15


def test_integer_downscale_analyses_1080p_as_scenedetect_0_6_4_did():
    assert reference_downscale(1920) == 7 and reference_downscale(200) == 1
    full_hd = VideoProbe("mp4", "h264", 1920, 1080, 25.0, 10.0, 250, False, None)
    reference = cut_detector("histogram", full_hd, integer_downscale=True)
    assert reference.analysis_size == (274, 154)
    assert cut_detector("histogram", full_hd).analysis_size == (256, 144)  # scenedetect 0.7
    with pytest.raises(ValueError, match="known: histogram, content, transnetv2"):
        cut_detector("adaptive", full_hd)
