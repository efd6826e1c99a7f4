"""Speaker identity: one face descriptor per clip, clustered into speaker ids across the corpus.

A clip's descriptor is dlib's 128-D ResNet face descriptor (the model behind face_recognition,
99.38% on LFW) averaged over a few frames spread through the clip. Faces are found by the
project's face detector (RetinaFace by default: it finds the small, turned and degraded faces
dlib's HOG detector misses, and it is the detector the head-detail stage counts faces with);
dlib's own 5-point predictor then places the landmarks its descriptor aligns the face by, since
RetinaFace's key points (eye centres, mouth corners) are not the eye corners dlib expects.

Descriptors are scaled to unit length, so the distance between two of them depends only on their
angle and a speaker's centroid compares the same way as a single clip. :class:`SpeakerIndex`
assigns the clips of one video at a time: they first cluster among themselves, then each cluster
joins the nearest known speaker or starts a new one, so the corpus grows without re-clustering.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import warnings
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import dlib
import numpy as np

from talkvid_assets.core.faces import FaceDetector, face_area, scale_face
from talkvid_assets.core.head_detail import Face
from talkvid_assets.core.runtime import cpu_runtime
from talkvid_assets.core.video import Frame, decode, probe

# Frames whose descriptors are averaged per clip, and frames looked at to find them: a frame
# counts only when it shows one dominant face, so twice as many are sampled as are needed.
MAX_FRAMES = 5
CANDIDATE_FRAMES = 2 * MAX_FRAMES
# A face dominates a frame when its box is this many times the area of every other face there;
# talking-head footage often shows people in the background (Megamind.avi's restaurant).
DOMINANCE = 4.0
# dlib's descriptor aligns a 150 px face chip; larger frames only cost memory while a clip's
# candidate frames wait for its end, so they are kept with their long side at most this.
MAX_LONG_SIDE = 1280
# Unit-descriptor distance up to which two clips (or a clip and a speaker) are one person. dlib's
# 0.6 for raw descriptors (length 1.30-1.47 here) is about 0.43 on unit ones, but clip means are
# tighter and small faces crowd strangers together. On the samples one person's clips lie
# 0.07-0.22 apart (talk_demo's man across a re-encoded copy, a cartoon face across shots), while
# different people start at 0.32 (two cartoon faces) and 0.40 (that man against Messi's small
# face); the corpus's cross-session pairs spread wider, so the cut leans to the far side.
SAME_SPEAKER_DISTANCE = 0.3
DESCRIPTOR_SIZE = 128
SPEAKER_PREFIX = "spk-"

ClipSpan = tuple[str, float, float]


@functools.cache
def _models() -> tuple[dlib.shape_predictor, dlib.face_recognition_model_v1]:
    with warnings.catch_warnings():  # face_recognition_models still imports pkg_resources
        warnings.simplefilter("ignore")
        import face_recognition_models

    predictor = dlib.shape_predictor(
        face_recognition_models.pose_predictor_five_point_model_location()
    )
    return predictor, dlib.face_recognition_model_v1(
        face_recognition_models.face_recognition_model_location()
    )


@functools.cache
def default_detector() -> FaceDetector:
    """RetinaFace on the CPU: the descriptor network runs on the CPU too, and a few frames per
    clip do not pay for a GPU session."""
    from talkvid_assets.core.faces.retinaface import OnnxRetinaFace

    return OnnxRetinaFace(cpu_runtime())


def unit(vector: np.ndarray) -> np.ndarray:
    """``vector`` scaled to length 1."""
    return vector / np.linalg.norm(vector)


def dominant_face(faces: Sequence[Face]) -> Face | None:
    """The frame's largest face when it dwarfs every other one, else None: with two people of
    similar size in view, whose face a clip belongs to is not known."""
    if not faces:
        return None
    ranked = sorted(faces, key=face_area, reverse=True)
    if len(ranked) > 1 and face_area(ranked[0]) < DOMINANCE * face_area(ranked[1]):
        return None
    return ranked[0]


def square_box(bbox: Sequence[float]) -> dlib.rectangle:
    """A square of the box's width on its centre: dlib's predictor was trained on its own square
    detector boxes, while RetinaFace's run from brow to chin (about 1.35 times taller)."""
    x1, y1, x2, y2 = bbox
    half, cx, cy = (x2 - x1) / 2, (x1 + x2) / 2, (y1 + y2) / 2
    return dlib.rectangle(round(cx - half), round(cy - half), round(cx + half), round(cy + half))


def face_descriptor(rgb: np.ndarray, face: Face) -> np.ndarray:
    """The unit 128-D descriptor of ``face`` (found in ``rgb``'s pixels)."""
    predictor, network = _models()
    rgb = np.ascontiguousarray(rgb)  # decoded rows can be padded; dlib takes packed pixels only
    shape = predictor(rgb, square_box(face["bbox"]))
    return unit(np.array(network.compute_face_descriptor(rgb, shape), dtype=np.float64))


def detect_faces(frames: Sequence[np.ndarray], detector: FaceDetector) -> list[list[Face]]:
    """The faces of each RGB frame in its own pixels, detected at the detector's working size."""
    sizes = [detector.working_size(frame.shape[1], frame.shape[0]) for frame in frames]
    small = [
        cv2.resize(frame, size, interpolation=cv2.INTER_AREA)
        for frame, size in zip(frames, sizes, strict=True)
    ]
    if detector.batch_size > 1:
        found = detector.detect_batch(small)
    else:
        found = [detector.detect(frame) for frame in small]
    return [
        [scale_face(face, frame.shape[1] / w, frame.shape[0] / h) for face in faces]
        for frame, (w, h), faces in zip(frames, sizes, found, strict=True)
    ]


def spread(items: Sequence[Any], count: int) -> list[Any]:
    """At most ``count`` of ``items``, evenly spaced from first to last."""
    if len(items) <= count:
        return list(items)
    positions = np.linspace(0, len(items) - 1, count).round().astype(int)
    return [items[i] for i in positions]


def clip_descriptor(
    frames: Sequence[np.ndarray], detector: FaceDetector | None = None
) -> np.ndarray | None:
    """The clip's unit descriptor from RGB frames sampled through it, or None when no frame
    shows one dominant face.

    Up to :data:`MAX_FRAMES` usable frames, spread over the clip, are described and their mean
    is scaled to unit length: one blurred or turned frame then moves the result little.
    """
    if not frames:
        return None
    found = detect_faces(frames, detector or default_detector())
    usable = [
        (frame, face)
        for frame, faces in zip(frames, found, strict=True)
        if (face := dominant_face(faces)) is not None
    ]
    if not usable:
        return None
    chosen = spread(usable, MAX_FRAMES)
    return unit(np.mean([face_descriptor(frame, face) for frame, face in chosen], axis=0))


def kept_size(width: int, height: int) -> tuple[int, int]:
    """The size candidate frames are kept at (see :data:`MAX_LONG_SIDE`)."""
    scale = min(1.0, MAX_LONG_SIDE / max(width, height))
    return max(1, round(width * scale)), max(1, round(height * scale))


class ClipFrameSampler:
    """Keeps :data:`CANDIDATE_FRAMES` frames spread evenly over one clip of a decode pass."""

    def __init__(self, start_s: float, end_s: float, size: tuple[int, int]) -> None:
        step = (end_s - start_s) / CANDIDATE_FRAMES
        self.start_s, self.end_s = start_s, end_s
        self._size = size
        self._times = [start_s + (i + 0.5) * step for i in range(CANDIDATE_FRAMES)]
        self.frames: list[np.ndarray] = []

    def offer(self, frame: Frame) -> None:
        """Keep ``frame`` if it is the first at or after the next sampling time."""
        if not self._times or frame.time < self._times[0] or frame.time >= self.end_s:
            return
        self.frames.append(frame.image("rgb24", *self._size))
        self._times = [t for t in self._times if t > frame.time]


def video_clip_descriptors(
    path: str | Path, clips: Iterable[ClipSpan], detector: FaceDetector | None = None
) -> dict[str, np.ndarray | None]:
    """The descriptor of each ``(clip_id, start_s, end_s)`` clip of one video, decoded once.

    Times are seconds from the video stream's start, as the decode pass reports them. A clip's
    frames are described as soon as the decode passes its end and then dropped, so memory holds
    only the clips in progress; decoding stops after the last clip ends.
    """
    video = probe(path)
    size = kept_size(video.width, video.height)
    upcoming = sorted(
        ((clip_id, ClipFrameSampler(start, end, size)) for clip_id, start, end in clips),
        key=lambda item: item[1].start_s,
        reverse=True,  # popped from the end, earliest first
    )
    active: dict[str, ClipFrameSampler] = {}
    found: dict[str, np.ndarray | None] = {}
    with contextlib.closing(decode(path, video.fps)) as frames:
        for frame in frames:
            while upcoming and upcoming[-1][1].start_s <= frame.time:
                clip_id, sampler = upcoming.pop()
                active[clip_id] = sampler
            for clip_id, sampler in list(active.items()):
                sampler.offer(frame)
                if frame.time >= sampler.end_s:
                    found[clip_id] = clip_descriptor(active.pop(clip_id).frames, detector)
            if not upcoming and not active:
                break
    for clip_id, sampler in [*active.items(), *upcoming]:  # clips past the last frame
        found[clip_id] = clip_descriptor(sampler.frames, detector)
    return found


def group_clips(descriptors: np.ndarray, threshold: float) -> list[list[int]]:
    """Average-linkage clusters of unit descriptors (row indices), merged while the mean distance
    between two clusters' members is at most ``threshold``.

    Average linkage does not chain two people together through one ambiguous clip, as single
    linkage would, and does not depend on the order of the clips, as a greedy pass would.
    """
    groups = [[i] for i in range(len(descriptors))]
    # |a - b| from the dot product of unit vectors: no n x n x 128 difference array.
    distance = np.sqrt(np.clip(2.0 - 2.0 * descriptors @ descriptors.T, 0.0, None))
    np.fill_diagonal(distance, np.inf)
    while len(groups) > 1:
        i, j = sorted(np.unravel_index(np.argmin(distance), distance.shape))
        if distance[i, j] > threshold:
            break
        size_i, size_j = len(groups[i]), len(groups[j])
        merged = (size_i * distance[i] + size_j * distance[j]) / (size_i + size_j)
        distance[i], distance[:, i] = merged, merged
        distance[i, i] = np.inf
        distance = np.delete(np.delete(distance, j, axis=0), j, axis=1)
        groups[i] += groups.pop(j)
    return groups


def speaker_id_for(clip_id: str) -> str:
    """A stable id for a speaker first seen in ``clip_id``: re-running the same clips gives the
    same ids, in any order and on any machine."""
    return SPEAKER_PREFIX + hashlib.sha256(clip_id.encode()).hexdigest()[:10]


@dataclass
class Speaker:
    """A known speaker: the running mean of its clips' unit descriptors and how many there are.
    ``labelled`` speakers carry a manifest Person ID as their id."""

    speaker_id: str
    centroid: np.ndarray
    count: int
    labelled: bool = False

    def add(self, descriptors: np.ndarray) -> None:
        """Fold clip descriptors (rows) into the running mean."""
        total = self.centroid * self.count + descriptors.sum(axis=0)
        self.count += len(descriptors)
        self.centroid = total / self.count


class SpeakerIndex:
    """The corpus's speakers, grown one video at a time (see :meth:`assign`)."""

    def __init__(
        self, speakers: Iterable[Speaker] = (), threshold: float = SAME_SPEAKER_DISTANCE
    ) -> None:
        self.threshold = threshold
        self.speakers = {speaker.speaker_id: speaker for speaker in speakers}

    def nearest(self, descriptor: np.ndarray) -> tuple[Speaker | None, float]:
        """The speaker whose centroid direction is closest to ``descriptor``, and the distance."""
        if not self.speakers:
            return None, float("inf")
        speakers = list(self.speakers.values())
        centroids = np.stack([unit(speaker.centroid) for speaker in speakers])
        distances = np.linalg.norm(centroids - descriptor, axis=1)
        best = int(np.argmin(distances))
        return speakers[best], float(distances[best])

    def assign(
        self,
        descriptors: Mapping[str, np.ndarray | None],
        person_ids: Mapping[str, str] | None = None,
    ) -> dict[str, str | None]:
        """Speaker ids for the clips of one video (clip id -> descriptor), updating the index.

        A clip with a manifest Person ID gets that id, and its descriptor joins that speaker so
        later clips can match it. The other clips are grouped among themselves first, then each
        group joins the nearest speaker within the threshold or starts a new one; a clip without
        a descriptor gets None. Assign each clip once: a second call counts it twice.
        """
        person_ids = person_ids or {}
        assigned: dict[str, str | None] = {}
        for clip_id, descriptor in descriptors.items():
            person = person_ids.get(clip_id)
            assigned[clip_id] = person
            if person is not None and descriptor is not None:
                self._label(person, descriptor)
        unlabelled = sorted(
            clip_id
            for clip_id, descriptor in descriptors.items()
            if descriptor is not None and clip_id not in person_ids
        )
        if unlabelled:
            vectors = np.stack([descriptors[clip_id] for clip_id in unlabelled])
            for group in group_clips(vectors, self.threshold):
                speaker = self._join(vectors[group], unlabelled[group[0]])
                assigned.update(dict.fromkeys((unlabelled[i] for i in group), speaker))
        return assigned

    def _label(self, person_id: str, descriptor: np.ndarray) -> None:
        speaker = self.speakers.get(person_id)
        if speaker is None:
            self.speakers[person_id] = Speaker(person_id, descriptor.copy(), 1, labelled=True)
        else:
            speaker.add(descriptor[None])
            speaker.labelled = True

    def _join(self, vectors: np.ndarray, first_clip: str) -> str:
        """Add a group of one video's clips to the nearest speaker, or to a new one named after
        the group's first clip id."""
        speaker, distance = self.nearest(unit(vectors.mean(axis=0)))
        if speaker is None or distance > self.threshold:
            speaker = Speaker(speaker_id_for(first_clip), np.zeros(DESCRIPTOR_SIZE), 0)
            self.speakers[speaker.speaker_id] = speaker
        speaker.add(vectors)
        return speaker.speaker_id

    def to_rows(self) -> list[dict[str, Any]]:
        """The index as plain rows for the caller to persist, ordered by speaker id."""
        return [
            {
                "speaker_id": speaker.speaker_id,
                "centroid": [float(v) for v in speaker.centroid],
                "count": speaker.count,
                "labelled": speaker.labelled,
            }
            for speaker in sorted(self.speakers.values(), key=lambda s: s.speaker_id)
        ]

    @classmethod
    def from_rows(
        cls, rows: Iterable[Mapping[str, Any]], threshold: float = SAME_SPEAKER_DISTANCE
    ) -> SpeakerIndex:
        """The index persisted by :meth:`to_rows`."""
        return cls(
            (
                Speaker(
                    str(row["speaker_id"]),
                    np.asarray(row["centroid"], dtype=np.float64),
                    int(row["count"]),
                    bool(row["labelled"]),
                )
                for row in rows
            ),
            threshold,
        )


def cluster_purity(assigned: Mapping[str, str | None], truth: Mapping[str, str]) -> float:
    """Standard purity: the share of clips that belong to their cluster's majority person.

    Only clips with both a speaker and a true person count. Purity alone rewards splitting one
    person into many clusters; :func:`inverse_purity` measures that.
    """
    clusters: dict[str, Counter[str]] = {}
    for clip_id, speaker in assigned.items():
        if speaker is not None and clip_id in truth:
            clusters.setdefault(speaker, Counter())[truth[clip_id]] += 1
    total = sum(sum(members.values()) for members in clusters.values())
    if not total:
        return 0.0
    return sum(max(members.values()) for members in clusters.values()) / total


def inverse_purity(assigned: Mapping[str, str | None], truth: Mapping[str, str]) -> float:
    """The share of clips that sit in their person's majority speaker: 1.0 when no person is
    split over several speakers (purity with the roles of speakers and persons swapped)."""
    speakers = {clip_id: speaker for clip_id, speaker in assigned.items() if speaker is not None}
    return cluster_purity(truth, speakers)
