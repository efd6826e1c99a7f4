"""Speaker identity on real faces: descriptors, incremental clustering, Person IDs, purity.

The labelled corpus comes from the bundled samples. The man of talk_demo.mp4 (the same man as
carphone_*.mp4) appears again in a copy made here: cropped, brightened, enlarged and re-encoded.
Megamind.avi cuts between two cartoon faces, Roxanne and Bernard, twice each; Messi's still
photo becomes a short panning video. Descriptors are computed once for the whole module.
"""

from __future__ import annotations

import itertools
import json
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from talkvid_assets.core.identity import (
    SAME_SPEAKER_DISTANCE,
    SpeakerIndex,
    clip_descriptor,
    cluster_purity,
    dominant_face,
    group_clips,
    inverse_purity,
    speaker_id_for,
    unit,
    video_clip_descriptors,
)
from talkvid_assets_tests.media import SAMPLES, read_sample, write_video

MAN, ROXANNE, BERNARD, MESSI = "carphone-man", "roxanne", "bernard", "messi"
# video -> clips (id, start s, end s, person); the last Megamind clip starts after the video ends.
CLIPS = {
    "talk": [(f"talk/{i}", 4.0 * i, 4.0 * i + 4, MAN) for i in range(4)],
    "copy": [(f"copy/{i}", 4.0 * i, 4.0 * i + 4, MAN) for i in range(2)],
    "megamind": [
        ("megamind/roxanne-0", 0.1, 4.3, ROXANNE),
        ("megamind/bernard-0", 4.4, 6.2, BERNARD),
        ("megamind/roxanne-1", 6.3, 8.4, ROXANNE),
        ("megamind/bernard-1", 8.5, 11.2, BERNARD),
        ("megamind/after-end", 12.0, 14.0, None),
    ],
    "messi": [("messi/0", 0.0, 2.4, MESSI)],
}
TRUTH = {clip_id: person for clips in CLIPS.values() for clip_id, *_, person in clips if person}


def altered_talk_copy(path: Path, seconds: float) -> Path:
    """The first ``seconds`` of talk_demo.mp4, cropped, brightened, enlarged and re-encoded."""
    frames, _, fps = read_sample("talk_demo.mp4")

    def alter(rgb: np.ndarray) -> np.ndarray:
        crop = cv2.resize(rgb[10:136, 20:170], (300, 252), interpolation=cv2.INTER_CUBIC)
        return np.clip(crop * 1.15 + 20, 0, 255).astype(np.uint8)

    return write_video(path, (alter(rgb) for rgb in frames[: round(seconds * fps)]), fps)


def messi_pan(path: Path) -> Path:
    """A 2.4 s video panning slowly over the player in messi5.jpg, enlarged to 400 x 400."""
    rgb = cv2.cvtColor(cv2.imread(str(SAMPLES / "messi5.jpg")), cv2.COLOR_BGR2RGB)
    frames = [
        cv2.resize(rgb[30 + i // 10 : 230 + i // 10, 130 + i // 5 : 330 + i // 5], (400, 400))
        for i in range(60)
    ]
    return write_video(path, frames, 25.0)


@pytest.fixture(scope="module")
def descriptors(tmp_path_factory) -> dict[str, dict[str, np.ndarray | None]]:
    """video -> clip id -> descriptor, each video decoded once."""
    folder = tmp_path_factory.mktemp("identity")
    paths = {
        "talk": SAMPLES / "talk_demo.mp4",
        "copy": altered_talk_copy(folder / "talk_copy.mp4", 8.0),
        "megamind": SAMPLES / "Megamind.avi",
        "messi": messi_pan(folder / "messi.mp4"),
    }
    found = {}
    for video, clips in CLIPS.items():
        started = time.perf_counter()
        spans = [(clip_id, start, end) for clip_id, start, end, _ in clips]
        found[video] = video_clip_descriptors(paths[video], spans)
        print(f"{video}: {len(clips)} clips in {time.perf_counter() - started:.1f} s")
    return found


def flat(descriptors: dict[str, dict[str, np.ndarray | None]]) -> dict[str, np.ndarray]:
    return {
        clip_id: vector
        for clips in descriptors.values()
        for clip_id, vector in clips.items()
        if vector is not None
    }


def test_threshold_separates_same_from_different_people(descriptors):
    vectors = flat(descriptors)
    assert set(vectors) == set(TRUTH)  # every face clip described
    assert descriptors["megamind"]["megamind/after-end"] is None
    same, different = [], []
    for a, b in itertools.combinations(sorted(vectors), 2):
        distance = float(np.linalg.norm(vectors[a] - vectors[b]))
        (same if TRUTH[a] == TRUTH[b] else different).append(distance)
    print(f"same person: {min(same):.3f}-{max(same):.3f} over {len(same)} pairs")
    print(f"different people: {min(different):.3f}-{max(different):.3f} over {len(different)}")
    assert max(same) < SAME_SPEAKER_DISTANCE < min(different)


def test_same_person_in_two_videos_gets_one_speaker(descriptors):
    index = SpeakerIndex()
    talk = index.assign(descriptors["talk"])
    copy = index.assign(descriptors["copy"])
    assert len({*talk.values(), *copy.values()}) == 1
    assert talk["talk/0"] == speaker_id_for("talk/0")
    assert index.to_rows()[0]["count"] == 6


def test_different_people_get_different_speakers(descriptors):
    index = SpeakerIndex()
    megamind = index.assign(descriptors["megamind"])
    man = set(index.assign(descriptors["talk"]).values())
    messi = index.assign(descriptors["messi"])["messi/0"]
    roxanne = {megamind["megamind/roxanne-0"], megamind["megamind/roxanne-1"]}
    bernard = {megamind["megamind/bernard-0"], megamind["megamind/bernard-1"]}
    assert megamind["megamind/after-end"] is None
    assert len(roxanne) == len(bernard) == len(man) == 1
    assert len(roxanne | bernard | man | {messi}) == 4


def test_a_new_video_joins_the_persisted_index(descriptors):
    built = SpeakerIndex()
    (speaker,) = set(built.assign(descriptors["talk"]).values())
    rows = json.loads(json.dumps(built.to_rows()))  # what the caller stores and reads back
    index = SpeakerIndex.from_rows(rows)
    assert index.to_rows() == rows
    joined = index.assign(descriptors["copy"])
    assert set(joined.values()) == {speaker}
    (row,) = index.to_rows()
    assert row["count"] == 6 and not row["labelled"]
    assert row["centroid"] != rows[0]["centroid"]  # the running mean moved


def test_person_id_overrides_and_attracts_later_clips(descriptors):
    index = SpeakerIndex()
    labelled = {"talk/0": "person-0042", "megamind/roxanne-0": "person-0042"}
    talk = index.assign(descriptors["talk"], person_ids=labelled)
    assert set(talk.values()) == {"person-0042"}  # the unlabelled talk clips joined it
    megamind = index.assign(descriptors["megamind"], person_ids=labelled)
    assert megamind["megamind/roxanne-0"] == "person-0042"  # the manifest wins over the face
    assert megamind["megamind/roxanne-1"] != "person-0042"
    assert set(index.assign(descriptors["copy"]).values()) == {"person-0042"}
    row = next(row for row in index.to_rows() if row["speaker_id"] == "person-0042")
    assert row["labelled"] and row["count"] == 7


def test_purity_of_the_corpus_assigned_video_by_video(descriptors):
    index = SpeakerIndex()
    assigned = {}
    for video in ("megamind", "talk", "messi", "copy"):
        assigned.update(index.assign(descriptors[video]))
    purity, inverse = cluster_purity(assigned, TRUTH), inverse_purity(assigned, TRUTH)
    speakers = {speaker for speaker in assigned.values() if speaker}
    print(f"purity {purity:.3f}, inverse purity {inverse:.3f}, {len(speakers)} speakers")
    assert purity == inverse == 1.0
    assert len(speakers) == len(set(TRUTH.values()))


def test_purity_counts_majorities():
    assigned = {"a": "s1", "b": "s1", "c": "s1", "d": "s2", "e": None}
    truth = {"a": "p", "b": "p", "c": "q", "d": "q", "e": "q"}
    assert cluster_purity(assigned, truth) == 3 / 4  # c is the minority of s1
    assert inverse_purity(assigned, truth) == 3 / 4  # q is split over s1 and s2
    assert cluster_purity({}, truth) == 0.0


def on_circle(*angles: float) -> np.ndarray:
    """Unit vectors in a plane of descriptor space, at ``angles`` radians."""
    vectors = np.zeros((len(angles), 128))
    vectors[:, 0], vectors[:, 1] = np.cos(angles), np.sin(angles)
    return vectors


def test_grouping_does_not_chain_and_ignores_order():
    # Neighbours 0.25 and 0.26 apart (single linkage would chain all three), the ends 0.5.
    first, second = (2 * np.arcsin(chord / 2) for chord in (0.25, 0.26))
    vectors = on_circle(0.0, first, first + second, 1.5)
    expected = [[0, 1], [2], [3]]
    assert sorted(sorted(g) for g in group_clips(vectors, SAME_SPEAKER_DISTANCE)) == expected
    reversed_groups = group_clips(vectors[::-1], SAME_SPEAKER_DISTANCE)
    assert sorted(sorted(3 - i for i in g) for g in reversed_groups) == expected


def test_centroid_is_the_running_mean():
    vectors = on_circle(0.0, 0.1, 0.2, 0.15)
    index = SpeakerIndex()
    for i, vector in enumerate(vectors):
        index.assign({f"clip/{i}": vector})
    (row,) = index.to_rows()
    assert row["count"] == 4
    np.testing.assert_allclose(row["centroid"], vectors.mean(axis=0))
    assert index.nearest(unit(vectors.mean(axis=0)))[1] == pytest.approx(0.0)


def test_dominant_face_ignores_small_background_faces():
    def face(size: float) -> dict:
        return {"bbox": [0.0, 0.0, size, size], "kps": [[0.0, 0.0]] * 5, "pose": [0.0] * 3}

    assert dominant_face([face(20), face(100)])["bbox"][2] == 100
    assert dominant_face([face(80), face(100)]) is None  # two speakers in view
    assert dominant_face([]) is None


def test_frames_without_a_face_give_no_descriptor():
    black = [np.zeros((144, 176, 3), np.uint8)] * 3
    assert clip_descriptor(black) is None
    assert clip_descriptor([]) is None
    assert SpeakerIndex().assign({"clip": None}) == {"clip": None}
