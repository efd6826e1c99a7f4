"""CPU cost of every scoring backend, per sampled frame, on a 1080p talk video.

Run with `make bench-backends`. Each backend runs alone in the core decode pass (scene and
voice detection included) on benchmarks/media/talk_1080p_20s.mp4, and its cost is the CPU time
the pass's StageClock charged to its stage (on the decode thread and on its own worker threads,
with OpenCV and torch on one thread), divided by the frames it samples. Scene detectors are
timed the same way (the ``scenes`` part).
A backend whose weights or package are missing prints the one line that says what to fetch; it
is not measured, and nothing is faked.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import cv2
import torch

from talkvid_assets.core.decode_pass import DecodeOptions, decode_pass
from talkvid_assets.core.runtime import Runtime
from talkvid_assets.core.scoring import ScorerBackend, load_backend
from talkvid_assets.core.stages import SCENES, STAGES, BackendUnavailable
from talkvid_assets.core.video import VideoProbe, probe

MEDIA = Path(__file__).resolve().parent / "media"
# Frames each backend samples per second of video (from their sampling rules): one frame per
# second for frame statistics and faces; 2 fps inside the reference's windows for motion (a
# 20 s clip has three 6 s windows: 36 frames, 1.8 per second); DOVER's 3 x 32 technical and 32
# aesthetic frames per clip.
SAMPLED_PER_SECOND = {"quality": 1.0, "motion": 1.8, "head_detail": 1.0}
DOVER_FRAMES_PER_CLIP = 128


def stage_cpu_s(
    path: Path,
    video: VideoProbe,
    backends: Mapping[str, ScorerBackend],
    part: str,
    options: DecodeOptions | None = None,
    speech: bool = True,
) -> float:
    """CPU seconds the decode pass charged to ``part`` (a stage, or ``scenes``)."""
    return decode_pass(path, video, backends, speech=speech, options=options).cpu_s[part]


def main() -> None:
    from throughput import talk_video  # the benchmark video, made once

    path = talk_video(20)
    video = probe(path)
    runtime = Runtime(Path(os.environ.get("TALKVID_HOME") or "data") / "models", "cpu")
    # OpenCV and torch single-threaded: all of a backend's work then runs on the timed threads
    # (their own thread pools' time would otherwise be charged to decoding).
    cv2.setNumThreads(1)
    torch.set_num_threads(1)
    print(f"\nbackend CPU cost on {path.name} ({video.duration_s:.0f} s, 1920x1080), 2 cores:")
    for stage in STAGES:
        for name in stage.backends:
            try:
                backend = load_backend(stage.name, name, runtime)
                stage_cpu_s(path, video, {stage.name: backend}, stage.name)  # loads the model
                spent = stage_cpu_s(path, video, {stage.name: backend}, stage.name)
            except BackendUnavailable as exc:
                print(f"  {stage.name:12s} {name:22s} not measured: {exc}")
                continue
            sampled = SAMPLED_PER_SECOND[stage.name] * video.duration_s
            if name == "dover":
                sampled = DOVER_FRAMES_PER_CLIP
            print(
                f"  {stage.name:12s} {name:22s} {1000 * spent / sampled:7.1f} ms per sampled "
                f"frame ({spent:.2f} CPU s)"
            )
    for detector in ("histogram", "content", "transnetv2"):
        options = DecodeOptions(scene_detector=detector, runtime=runtime)
        spent = stage_cpu_s(path, video, {}, SCENES, options, speech=False)
        per_frame = 1000 * spent / video.frame_count
        print(f"  {'scenes':12s} {detector:22s} {per_frame:7.2f} ms per frame")


if __name__ == "__main__":
    main()
