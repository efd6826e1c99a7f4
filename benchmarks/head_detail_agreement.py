"""Head-detail agreement: how far each face backend's scores sit from a known truth, and apart.

Run with ``python benchmarks/head_detail_agreement.py`` (prints the table; ``--readme`` also
writes it into README.md between its ``head-detail-agreement`` markers). The reference's scores
come from insightface (SCRFD boxes, 1k3d68 pose), whose weights cannot be fetched here, so
what is measured is how our two CPU backends, ``retinaface`` (RetinaFace MobileNet-0.25 + a
5-point SQPnP pose) and ``dlib-hog`` (HOG + 68 landmarks + the same PnP fit), behave where the
truth is fixed by construction. Face images are made from talk_demo.mp4's frames (seconds 1, 5,
9 and 13, enlarged 4x to 704x576, so the face is about 180 px wide), each turned into:

- a translation sequence: the frame at 0.75x pasted on a grey 1280x720 canvas at offsets
  (0, 0), (40, 0), (40, 30), (-20, 30), (-20, -40) px: every key point moves by exactly the
  offset, so the movement scores' truth is known (100 - 100 x mean |dx|, |dy| / 720);
- a rotation sequence: the frame rotated in plane by 0, 10, -10, 20, -20, 30, -30 degrees: the
  pose changes by the angle step alone (10, 20, ... 60), so avg/min rotation's truth is
  65 / 40; each rotated frame's orientation truth is the backend's own pose of the upright frame
  with roll moved by the angle (pitch and yaw unchanged): only the roll response is checked,
  not the absolute pitch/yaw of the upright face, which needs a 3-D truth we do not have;
- a scale series: the frame at 0.4, 0.6, 0.8, 1.0, 1.2x centred on the canvas: the box area
  grows with the square of the scale, so each resolution's truth is the backend's own at 1.0x
  times the scale squared (a box convention cannot be checked against truth, only between
  backends);
- four crops cutting off, halfway between the parts, the image-right eye and mouth corner,
  the image-left ones, the mouth, or the eyes: completeness's truth is the share of the five
  consensus key points (the two backends' mean on the uncropped frame) inside the crop.

That is 21 images per frame, 84 in all. A backend that does not find exactly one face counts
as a miss (its score is not compared).
"""

from __future__ import annotations

import argparse
import itertools
import re
import statistics
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import av
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from faces import find, rotated, scaled

from talkvid_assets.core.faces import FaceDetector
from talkvid_assets.core.faces.dlib_hog import DlibFaceDetector
from talkvid_assets.core.faces.retinaface import OnnxRetinaFace
from talkvid_assets.core.head_detail import (
    Face,
    completeness,
    movement,
    orientation,
    resolution,
    rotation,
)
from talkvid_assets.core.runtime import cpu_runtime
from talkvid_assets_tests.media import SAMPLES

ROOT = Path(__file__).resolve().parents[1]
TALK = SAMPLES / "talk_demo.mp4"
README = ROOT / "README.md"
MARKERS = ("<!-- head-detail-agreement:start -->", "<!-- head-detail-agreement:end -->")
SECONDS = (1, 5, 9, 13)
ENLARGE = 4
CANVAS = (1280, 720)
OFFSETS = ((0, 0), (40, 0), (40, 30), (-20, 30), (-20, -40))
ANGLES = (0, 10, -10, 20, -20, 30, -30)
SCALES = (0.4, 0.6, 0.8, 1.0, 1.2)
Errors = dict[str, list[float]]


def base_frames() -> list[np.ndarray]:
    """talk_demo's frames at :data:`SECONDS`, enlarged with cubic interpolation."""
    with av.open(str(TALK)) as container:
        fps = int(container.streams.video[0].average_rate)
        wanted = {second * fps for second in SECONDS}
        frames = [
            frame.to_ndarray(format="rgb24")
            for index, frame in enumerate(container.decode(video=0))
            if index in wanted
        ]
    return [scaled(frame, ENLARGE) for frame in frames]


def pasted(frame: np.ndarray, factor: float, offset: tuple[int, int] = (0, 0)) -> np.ndarray:
    """``frame`` scaled by ``factor`` on a grey canvas, centred and then moved by ``offset``."""
    canvas = np.full((CANVAS[1], CANVAS[0], 3), 96, np.uint8)
    small = scaled(frame, factor)
    height, width = small.shape[:2]
    top = (CANVAS[1] - height) // 2 + offset[1]
    left = (CANVAS[0] - width) // 2 + offset[0]
    canvas[top : top + height, left : left + width] = small
    return canvas


def one_face(detector: FaceDetector, rgb: np.ndarray) -> Face | None:
    faces = find(detector, rgb)
    return faces[0] if len(faces) == 1 else None


class Tally:
    """Errors against the truth per backend, and differences between backends, per score."""

    def __init__(self, names: Sequence[str]) -> None:
        self.names = list(names)
        self.errors: dict[str, Errors] = {name: {} for name in names}
        self.apart: Errors = {}
        self.misses: dict[str, int] = dict.fromkeys(names, 0)
        self.images = 0

    def add(self, score: str, truth: dict[str, float | None], measured: dict[str, float | None]):
        for name in self.names:
            if measured[name] is not None and truth[name] is not None:
                self.errors[name].setdefault(score, []).append(measured[name] - truth[name])
        values = [measured[name] for name in self.names]
        if all(value is not None for value in values):
            self.apart.setdefault(score, []).append(values[0] - values[1])


def translations(tally: Tally, detectors: dict[str, FaceDetector], frame: np.ndarray) -> None:
    images = [pasted(frame, 0.75, offset) for offset in OFFSETS]
    shifts = [
        (abs(b[0] - a[0]) + abs(b[1] - a[1])) / 2 / min(CANVAS)
        for a, b in itertools.pairwise(OFFSETS)
    ]
    truth = (100 - 100 * statistics.fmean(shifts), 100 - 100 * max(shifts))
    measured = {}
    for name, detector in detectors.items():
        faces = [one_face(detector, image) for image in images]
        tally.misses[name] += sum(face is None for face in faces)
        measured[name] = None if None in faces else movement(faces, *CANVAS)
    tally.images += len(images)
    for index, score in enumerate(("avg_movement", "min_movement")):
        picked = {name: value and value[index] for name, value in measured.items()}
        tally.add(score, dict.fromkeys(detectors, truth[index]), picked)


def rotations(tally: Tally, detectors: dict[str, FaceDetector], frame: np.ndarray) -> None:
    images = [rotated(frame, angle) for angle in ANGLES]
    turns = [abs(b - a) for a, b in itertools.pairwise(ANGLES)]
    truth = (100 - statistics.fmean(turns), 100 - max(turns))
    measured, orientations, expected = {}, {}, {}
    for name, detector in detectors.items():
        faces = [one_face(detector, image) for image in images]
        tally.misses[name] += sum(face is None for face in faces)
        measured[name] = None if None in faces else rotation(faces)
        upright = faces[0]
        orientations[name] = [None if face is None else orientation(face) for face in faces]
        # cv2 turns the image counter-clockwise for a positive angle; with y pointing down,
        # that is a roll of minus the angle in the pose's camera axes.
        expected[name] = [
            None
            if upright is None
            else orientation({"pose": [*upright["pose"][:2], upright["pose"][2] - angle]})
            for angle in ANGLES
        ]
    tally.images += len(images)
    for index, score in enumerate(("avg_rotation", "min_rotation")):
        picked = {name: value and value[index] for name, value in measured.items()}
        tally.add(score, dict.fromkeys(detectors, truth[index]), picked)
    for position in range(1, len(ANGLES)):
        tally.add(
            "orientation (per frame)",
            {name: _score(expected[name][position]) for name in detectors},
            {name: _score(orientations[name][position]) for name in detectors},
        )


def _score(value: float | None) -> float | None:
    """A frame's orientation distance as the score it enters (100 minus it)."""
    return None if value is None else 100.0 - value


def scales(tally: Tally, detectors: dict[str, FaceDetector], frame: np.ndarray) -> None:
    images = [pasted(frame, factor) for factor in SCALES]
    measured: dict[str, list[float | None]] = {}
    for name, detector in detectors.items():
        faces = [one_face(detector, image) for image in images]
        tally.misses[name] += sum(face is None for face in faces)
        measured[name] = [None if face is None else resolution(face, *CANVAS) for face in faces]
    tally.images += len(images)
    unit = SCALES.index(1.0)
    for position, factor in enumerate(SCALES):
        if position == unit:
            continue
        truth = {
            name: None if values[unit] is None else values[unit] * factor**2
            for name, values in measured.items()
        }
        tally.add("resolution (per frame)", truth, {n: v[position] for n, v in measured.items()})
    tally.add(
        "resolution at 1.0x, backend vs backend",
        dict.fromkeys(detectors),
        {name: values[unit] for name, values in measured.items()},
    )


def crops(tally: Tally, detectors: dict[str, FaceDetector], frame: np.ndarray) -> None:
    found = [one_face(detector, frame) for detector in detectors.values()]
    if None in found:
        return
    kps = np.mean([face["kps"] for face in found if face], axis=0)
    height, width = frame.shape[:2]
    right = round((kps[2][0] + max(kps[1][0], kps[4][0])) / 2)  # image-right eye, mouth corner
    left = round((kps[2][0] + min(kps[0][0], kps[3][0])) / 2)
    below = round((kps[2][1] + min(kps[3][1], kps[4][1])) / 2)
    above = round((kps[2][1] + max(kps[0][1], kps[1][1])) / 2)
    boxes = ((0, 0, right, height), (left, 0, width, height), (0, 0, width, below))
    boxes += ((0, above, width, height),)
    for x1, y1, x2, y2 in boxes:
        image = np.ascontiguousarray(frame[y1:y2, x1:x2])
        moved = {"kps": [[x - x1, y - y1] for x, y in kps]}
        truth = completeness(moved, x2 - x1, y2 - y1)
        measured = {}
        for name, detector in detectors.items():
            face = one_face(detector, image)
            tally.misses[name] += face is None
            measured[name] = None if face is None else completeness(face, x2 - x1, y2 - y1)
        tally.images += 1
        tally.add("completeness (per frame)", dict.fromkeys(detectors, truth), measured)


CASES: tuple[Callable[[Tally, dict[str, FaceDetector], np.ndarray], None], ...] = (
    translations,
    rotations,
    scales,
    crops,
)


def _cell(values: list[float] | None) -> str:
    if not values:
        return "no score"
    magnitudes = [abs(value) for value in values]
    return f"{statistics.median(magnitudes):.2f} / {max(magnitudes):.2f} (n={len(values)})"


def render(tally: Tally) -> str:
    first, second = tally.names
    scores = list(dict.fromkeys([*tally.apart, *(s for e in tally.errors.values() for s in e)]))
    lines = [
        f"| score | `{first}` vs truth | `{second}` vs truth | `{first}` vs `{second}` |",
        "|---|---|---|---|",
    ]
    for score in scores:
        cells = [_cell(tally.errors[name].get(score)) for name in tally.names]
        lines.append(f"| {score} | {cells[0]} | {cells[1]} | {_cell(tally.apart.get(score))} |")
    misses = ", ".join(f"`{name}` {tally.misses[name]}" for name in tally.names)
    lines += [
        "",
        f"Median / max absolute error in score points over {tally.images} generated images "
        f"(images without exactly one face: {misses}).",
    ]
    return "\n".join(lines)


def resolution_ratio(detectors: dict[str, FaceDetector], frames: list[np.ndarray]) -> float:
    """Median ratio of the second backend's face-box area to the first's, same images."""
    ratios = []
    for frame in frames:
        for factor in SCALES:
            faces = [one_face(detector, pasted(frame, factor)) for detector in detectors.values()]
            if None not in faces:
                areas = [resolution(face, *CANVAS) for face in faces if face]
                ratios.append(areas[1] / areas[0])
    return statistics.median(ratios)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--readme", action="store_true", help="write the table into README.md")
    args = parser.parse_args()
    detectors: dict[str, FaceDetector] = {
        "retinaface": OnnxRetinaFace(cpu_runtime()),
        "dlib-hog": DlibFaceDetector(),
    }
    frames = base_frames()
    tally = Tally(list(detectors))
    for frame in frames:
        for case in CASES:
            case(tally, detectors, frame)
    ratio = resolution_ratio(detectors, frames)
    table = render(tally) + (
        f" `dlib-hog`'s face box covers {ratio:.2f}x the area of `retinaface`'s on the same "
        "images (median over the scale series)."
    )
    print(table)
    if args.readme:
        text = README.read_text()
        block = f"{MARKERS[0]}\n{table}\n{MARKERS[1]}"
        pattern = re.compile(re.escape(MARKERS[0]) + ".*?" + re.escape(MARKERS[1]), re.DOTALL)
        README.write_text(pattern.sub(lambda _: block, text))


if __name__ == "__main__":
    main()
