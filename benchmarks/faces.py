"""Face backends side by side: faces found, on small and turned faces, and CPU time per frame.

Run with `python benchmarks/faces.py`. Each backend sees what the head-detail stage hands it:
frames resized to the backend's own working size, its detections mapped back. It prints:

- samples: every bundled sample video at one frame per second (the reference's sampling),
  as frames with exactly one face / frames with any face / sampled frames;
- small faces: talk_demo's 1 fps frames scaled so the face is about 40, 60 or 80 px wide, both
  as the whole (small) frame and pasted at the centre of a grey 1920x1080 canvas (an HD source
  with a small face);
- turned faces: the same frames rotated in plane by -30 and +30 degrees, and squeezed to 60 %
  width (a crude yaw);
- CPU milliseconds per frame at the working size for a 1920x1080 and a 176x144 source (mean
  of the best three of ten; threads as each runtime chooses on this machine).

``retinaface-torch*`` is the torch backend running the ONNX file's weights (batch norms folded,
loaded by talkvid_assets_tests/folded_retinaface.py, which test_retinaface.py checks against
onnxruntime), so it needs no download.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import av
import cv2
import numpy as np
import torch

from talkvid_assets.core.faces import FaceDetector, scale_face
from talkvid_assets.core.faces.dlib_hog import DlibFaceDetector
from talkvid_assets.core.faces.retinaface import OnnxRetinaFace
from talkvid_assets.core.faces.retinaface_torch import RetinaFace, TorchRetinaFace, load_folded
from talkvid_assets.core.head_detail import Face
from talkvid_assets.core.runtime import Runtime, cpu_runtime
from talkvid_assets_tests.folded_retinaface import onnx_folded_weights
from talkvid_assets_tests.media import SAMPLES

VIDEOS = (
    "talk_demo.mp4",
    "Megamind.avi",
    "bikes.mp4",
    "carphone_pristine.mp4",
    "carphone_distorted.mp4",
)
FACE_SIZES = (40, 60, 80)
CANVAS = (1920, 1080)


def one_per_second(name: str) -> list[np.ndarray]:
    """Frames ``sec * int(fps)`` of a sample, as the reference samples head detail."""
    with av.open(str(SAMPLES / name)) as container:
        step = int(container.streams.video[0].average_rate)
        return [
            frame.to_ndarray(format="rgb24")
            for index, frame in enumerate(container.decode(video=0))
            if index % step == 0
        ]


def find(detector: FaceDetector, rgb: np.ndarray) -> list[Face]:
    """What the head-detail stage does: resize to the working size, detect, map back."""
    height, width = rgb.shape[:2]
    size = detector.working_size(width, height)
    image = rgb if size == (width, height) else cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
    return [scale_face(face, width / size[0], height / size[1]) for face in detector.detect(image)]


def counts(detector: FaceDetector, frames: list[np.ndarray]) -> str:
    found = [len(find(detector, frame)) for frame in frames]
    return f"{sum(n == 1 for n in found)} / {sum(n > 0 for n in found)} / {len(found)}"


def native_face_width(detector: FaceDetector, frames: list[np.ndarray]) -> float:
    """talk_demo's median face-box width in its own pixels (RetinaFace's boxes)."""
    widths = [face["bbox"][2] - face["bbox"][0] for f in frames for face in find(detector, f)]
    return float(np.median(widths))


def scaled(frame: np.ndarray, factor: float) -> np.ndarray:
    height, width = frame.shape[:2]
    size = (round(width * factor), round(height * factor))
    interpolation = cv2.INTER_AREA if factor < 1 else cv2.INTER_CUBIC
    return cv2.resize(frame, size, interpolation=interpolation)


def on_canvas(frame: np.ndarray) -> np.ndarray:
    canvas = np.full((CANVAS[1], CANVAS[0], 3), 96, np.uint8)
    height, width = frame.shape[:2]
    top, left = (CANVAS[1] - height) // 2, (CANVAS[0] - width) // 2
    canvas[top : top + height, left : left + width] = frame
    return canvas


def rotated(frame: np.ndarray, degrees: float) -> np.ndarray:
    height, width = frame.shape[:2]
    matrix = cv2.getRotationMatrix2D((width / 2, height / 2), degrees, 1.0)
    return cv2.warpAffine(frame, matrix, (width, height), borderMode=cv2.BORDER_REPLICATE)


def squeezed(frame: np.ndarray, factor: float = 0.6) -> np.ndarray:
    height, width = frame.shape[:2]
    return cv2.resize(frame, (round(width * factor), height), interpolation=cv2.INTER_AREA)


def cpu_ms(detector: FaceDetector, source: np.ndarray, repeats: int = 10) -> tuple[float, str]:
    """Mean of the best three detect() times on a frame already at the working size."""
    height, width = source.shape[:2]
    size = detector.working_size(width, height)
    image = cv2.resize(source, size, interpolation=cv2.INTER_AREA)
    detector.detect(image)  # warm up: lazy loading, allocator
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        detector.detect(image)
        times.append(time.perf_counter() - started)
    return 1000 * float(np.mean(sorted(times)[:3])), f"{size[0]}x{size[1]}"


def folded_torch_backend(models: Path) -> TorchRetinaFace:
    """The torch backend on a checkpoint made from the ONNX file's folded weights."""
    model = RetinaFace("mobilenet0.25")
    load_folded(model, onnx_folded_weights(model))
    folder = models / "retinaface-torch"
    folder.mkdir(parents=True)
    torch.save(model.state_dict(), folder / "mobilenet0.25_Final.pth")
    return TorchRetinaFace(Runtime(models, "cpu"), "mobilenet0.25")


def table(title: str, rows: list[tuple[str, list[str]]], names: list[str]) -> None:
    print(f"\n{title}")
    print("| case | " + " | ".join(names) + " |")
    print("|---|" + "---|" * len(names))
    for case, cells in rows:
        print(f"| {case} | " + " | ".join(cells) + " |")


def run(detectors: dict[str, FaceDetector]) -> None:
    names = list(detectors)
    each: Callable[[Callable[[FaceDetector], str]], list[str]] = lambda cell: [  # noqa: E731
        cell(detector) for detector in detectors.values()
    ]
    samples = {name: one_per_second(name) for name in VIDEOS}
    rows = [(name, each(lambda d, f=frames: counts(d, f))) for name, frames in samples.items()]
    table("samples at 1 fps: frames with one face / with any face / sampled", rows, names)

    talk = samples["talk_demo.mp4"]
    face = native_face_width(detectors["retinaface"], talk)
    rows = []
    for size in FACE_SIZES:
        small = [scaled(frame, size / face) for frame in talk]
        shape = f"{small[0].shape[1]}x{small[0].shape[0]}"
        rows.append((f"face {size} px, frame {shape}", each(lambda d, s=small: counts(d, s))))
        hd = [on_canvas(frame) for frame in small]
        rows.append((f"face {size} px on 1920x1080", each(lambda d, s=hd: counts(d, s))))
    table(f"small faces (talk_demo's own face is {face:.0f} px wide at 176x144)", rows, names)

    rows = [
        (
            f"rotated {angle:+d} deg",
            each(lambda d, a=angle: counts(d, [rotated(f, a) for f in talk])),
        )
        for angle in (-30, 30)
    ]
    rows.append(("squeezed to 60 % width", each(lambda d: counts(d, [squeezed(f) for f in talk]))))
    table("turned faces (talk_demo at 1 fps)", rows, names)

    hd_source = on_canvas(scaled(talk[0], 1080 / talk[0].shape[0]))
    rows = []
    for label, source in (("1920x1080 source", hd_source), ("176x144 source", talk[0])):
        timed = [cpu_ms(detector, source) for detector in detectors.values()]
        rows.append((label, [f"{ms:.1f} ms at {size}" for ms, size in timed]))
    threads = f"{os.cpu_count()} CPUs, torch {torch.get_num_threads()} threads"
    table(f"CPU time per frame at the working size ({threads})", rows, names)


def main() -> None:
    with tempfile.TemporaryDirectory() as models:
        detectors: dict[str, FaceDetector] = {
            "dlib-hog": DlibFaceDetector(),
            "retinaface": OnnxRetinaFace(cpu_runtime()),
            "retinaface-torch (ONNX weights)": folded_torch_backend(Path(models)),
        }
        run(detectors)


if __name__ == "__main__":
    main()
