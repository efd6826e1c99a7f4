"""The dataset's labels and TalkVid-Bench over the store: annotations per passing clip, speaker
ids across the corpus, the bench's strata and the speaker-disjoint training split.

Labels come from the source's manifest row (``labels``) and are never guessed: a spoken
language not given there stays NULL with the reason (no offline language-ID model ships with
the project). Speaker ids come from face descriptors clustered across the whole corpus
(:mod:`talkvid_assets.core.identity`), incrementally: a new video's clips join the speakers
already known, and a manifest's Person ID overrides the clustering.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from talkvid_assets.core.bench import BenchPick, select_bench, training_split
from talkvid_assets.core.config import CurationConfig
from talkvid_assets.core.splits import SPLITS
from talkvid_assets.core.store import CORPUS, Store

NO_LANGUAGE = "no language in the manifest, and no offline language-ID model is configured"
PASSING_CLIPS_SQL = """
    SELECT f.clip_id, f.video_id, c.start_time, c.end_time
    FROM filtered_clips f JOIN clip_scores c USING (clip_id)
    WHERE f.passed AND f.video_id IN (SELECT unnest(:ids)) ORDER BY f.video_id, c.start_time
"""
BENCH_INPUT_SQL = """
    SELECT f.clip_id, f.video_id, a.age_group, a.gender, a.ethnicity, a.language, s.speaker_id
    FROM filtered_clips f
    JOIN annotations a USING (clip_id)
    LEFT JOIN speakers s USING (clip_id)
    WHERE f.passed ORDER BY f.clip_id
"""


def annotation_row(
    clip: Mapping[str, Any],
    labels: Mapping[str, Any] | None,
    descriptor: np.ndarray | Sequence[float] | None,
) -> dict[str, Any]:
    """The labels a passing clip's TalkVid record carries, and its face descriptor. The video
    link is the manifest's; without one the export names the source's current path."""
    given = dict(labels or {})
    language = given.get("language")
    return {
        "clip_id": clip["clip_id"],
        "video_id": clip["video_id"],
        "start_time": clip["start_time"],
        "end_time": clip["end_time"],
        "person_id": given.get("person_id"),
        "ethnicity": given.get("ethnicity"),
        "age_group": given.get("age_group"),
        "gender": given.get("gender"),
        "video_link": given.get("video_link"),
        "language": language,
        "language_source": "manifest" if language else None,
        "language_reason": None if language else NO_LANGUAGE,
        "category": given.get("category"),
        "description": given.get("description"),
        "face_descriptor": None
        if descriptor is None
        else np.asarray(descriptor, np.float32).tolist(),
    }


def annotate(store: Store, video_ids: Sequence[str]) -> dict[str, list[dict[str, Any]]]:
    """Annotate the videos' passing clips; writes them, and returns each video's rows.

    Two queries over the views for all the videos (a ranged run's), not two per video. A clip
    annotated before with the same bounds keeps its face descriptor, so re-judging (a threshold
    edit) decodes nothing; the others are described from one decode of their video.
    """
    clips: dict[str, list[dict[str, Any]]] = {video: [] for video in video_ids}
    for clip in store.query(PASSING_CLIPS_SQL, {"ids": list(video_ids)}):
        clips[clip["video_id"]].append(clip)
    sources = {
        row["video_id"]: row["source_path"]
        for row in store.query(
            "SELECT video_id, source_path FROM videos WHERE video_id IN (SELECT unnest(:ids))",
            {"ids": list(video_ids)},
        )
    }
    return {
        video: _annotate_video(store, video, clips[video], sources.get(video))
        for video in video_ids
    }


def _annotate_video(
    store: Store, video_id: str, clips: list[dict[str, Any]], source: str | None
) -> list[dict[str, Any]]:
    from talkvid_assets.core.identity import video_clip_descriptors

    labels = store.rows("labels", video_id)
    known = {
        (row["clip_id"], row["start_time"], row["end_time"]): row["face_descriptor"]
        for row in store.rows("annotations", video_id)
    }
    descriptors = {
        clip["clip_id"]: known[span]
        for clip in clips
        if (span := (clip["clip_id"], clip["start_time"], clip["end_time"])) in known
    }
    todo = [
        (c["clip_id"], c["start_time"], c["end_time"])
        for c in clips
        if c["clip_id"] not in descriptors
    ]
    if todo and source:
        descriptors |= video_clip_descriptors(source, todo)
    rows = [
        annotation_row(clip, labels[0] if labels else None, descriptors.get(clip["clip_id"]))
        for clip in clips
    ]
    store.write("annotations", video_id, rows)
    return rows


def assign_speakers(store: Store) -> dict[str, int]:
    """Give every annotated clip a speaker id, keeping the ids already given (incremental).

    Clips whose source's manifest names a Person ID take it; the others join the nearest known
    speaker or start a new one. Returns counts for the asset's metadata.
    """
    from talkvid_assets.core.identity import SpeakerIndex

    index = SpeakerIndex.from_rows(store.rows("speaker_index", CORPUS))
    known = {row["clip_id"]: row for row in store.rows("speakers", CORPUS)}
    annotated = store.query(
        "SELECT clip_id, video_id, person_id, face_descriptor FROM annotations ORDER BY clip_id"
    )
    current = {row["clip_id"] for row in annotated}
    fresh = [row for row in annotated if row["clip_id"] not in known]
    by_video: dict[str, list[dict[str, Any]]] = {}
    for row in fresh:
        by_video.setdefault(row["video_id"], []).append(row)
    assigned: dict[str, tuple[str, str | None]] = {}
    for video_id, rows in sorted(by_video.items()):
        descriptors = {
            row["clip_id"]: np.asarray(row["face_descriptor"], np.float32)
            for row in rows
            if row["face_descriptor"] is not None
        }
        people = {row["clip_id"]: row["person_id"] for row in rows if row["person_id"]}
        speakers = index.assign(descriptors, people)
        assigned.update({clip: (speaker, video_id) for clip, speaker in speakers.items()})
    labelled = {row["clip_id"] for row in fresh if row["person_id"]}
    kept = [row for clip, row in known.items() if clip in current]
    added = [
        {"clip_id": clip, "video_id": video, "speaker_id": speaker, "labelled": clip in labelled}
        for clip, (speaker, video) in sorted(assigned.items())
    ]
    index_rows = index.to_rows()
    store.write("speakers", CORPUS, kept + added)
    store.write("speaker_index", CORPUS, index_rows)
    return {"clips": len(kept) + len(added), "new_clips": len(added), "speakers": len(index_rows)}


def bench_input(store: Store) -> list[dict[str, Any]]:
    """Passing clips with their labels and speaker ids: what :func:`select_bench` reads."""
    return store.query(BENCH_INPUT_SQL)


def corpus_bench(store: Store, config: CurationConfig) -> list[BenchPick]:
    """The home's TalkVid-Bench: deterministic for its clips, quotas and seed."""
    return select_bench(bench_input(store), seed=config.bench_seed, quotas=config.bench_quotas)


def write_training_split(store: Store) -> list[dict[str, Any]]:
    """Passing clips whose speaker is known and absent from every bench dimension."""
    clips = bench_input(store)
    bench = store.query("SELECT clip_id, dimension, stratum, speaker_id FROM bench_strata")
    keep = set(training_split(clips, bench))
    rows = [
        {key: clip[key] for key in ("clip_id", "video_id", "speaker_id")}
        for clip in clips
        if clip["clip_id"] in keep
    ]
    store.write("training_split", CORPUS, rows)
    return rows


SPLIT_SQL = {
    "bench": "SELECT clip_id FROM bench_strata",
    "train": "SELECT clip_id FROM training_split",
}


def split_clip_ids(store: Store, split: str) -> set[str] | None:
    """The clip ids of ``split`` (None for ``all``: every passing clip)."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; splits: {', '.join(SPLITS)}")
    if split == "all":
        return None
    return {row["clip_id"] for row in store.query(SPLIT_SQL[split])}
