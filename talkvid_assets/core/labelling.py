"""The dataset's labels and TalkVid-Bench over the store: annotations per passing clip, speaker
ids across the corpus, the bench's strata and the speaker-disjoint training split.

Labels come from the source's manifest row (``labels``) and are never guessed: a spoken
language not given there comes from the clip's audio (core.language) with its confidence, or
stays NULL with the reason (no model fetched, too little audio, a backend unsure). Speaker ids
come from face descriptors clustered across the whole corpus
(:mod:`talkvid_assets.core.identity`), incrementally: a new video's clips join the speakers
already known, and a manifest's Person ID overrides the clustering.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from talkvid_assets.core.bench import BenchPick, select_bench, training_split
from talkvid_assets.core.config import CurationConfig
from talkvid_assets.core.language import MAX_AUDIO_S, LanguageID, LanguageLabel
from talkvid_assets.core.manifest import ManifestRow
from talkvid_assets.core.splits import SPLITS
from talkvid_assets.core.store import CORPUS, Store

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


def record_labels(store: Store, key: str, manifest: Path, row: ManifestRow) -> bool:
    """Record the labels ``manifest`` gives the source registered as ``key``; True when they
    differ from those it had.

    Every route that reads a labelled manifest (`talkvid ingest --manifest`, a manifest dropped
    into an inbox folder) records them here, at ingest and outside any asset: Dagster cannot see
    them change, so the route re-runs the annotations of a video annotated already.
    """
    before = [{column: old[column] for column in row.labels} for old in store.rows("labels", key)]
    store.write(
        "labels",
        key,
        [{"video_id": key, "manifest": str(manifest), "manifest_row": row.row, **row.labels}],
    )
    return before != [dict(row.labels)]


def annotation_row(
    clip: Mapping[str, Any],
    labels: Mapping[str, Any] | None,
    descriptor: np.ndarray | Sequence[float] | None,
    heard: LanguageLabel | None,
) -> dict[str, Any]:
    """The labels a passing clip's TalkVid record carries, and its face descriptor. The video
    link is the manifest's (the URL, for a downloaded source); without one the export names the
    source's current path. The manifest's language wins; else what the audio says (``heard``),
    which is None only when the manifest gave one."""
    given = dict(labels or {})
    language = given.get("language")
    if language:
        spoken: dict[str, Any] = {"language": language, "language_source": "manifest"}
    else:
        assert heard is not None, "a clip without a manifest language is heard first"
        spoken = {
            "language": heard.language,
            "language_source": "audio" if heard.language else None,
            "language_reason": heard.reason,
            "language_confidence": heard.confidence,
            "language_backend": heard.backend,
            "spoken_language": heard.spoken,
        }
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
        "language": None,
        "language_source": None,
        "language_reason": None,
        "language_confidence": None,
        "language_backend": None,
        "spoken_language": None,
        **spoken,
        "category": given.get("category"),
        "description": given.get("description"),
        "face_descriptor": None
        if descriptor is None
        else np.asarray(descriptor, np.float32).tolist(),
    }


def annotate(
    store: Store, video_ids: Sequence[str], language: LanguageID
) -> dict[str, list[dict[str, Any]]]:
    """Annotate the videos' passing clips; writes them, and returns each video's rows.

    Two queries over the views for all the videos (a ranged run's), not two per video. A clip
    annotated before with the same bounds keeps its face descriptor, and the language its audio
    gave with the same backend (re-judged against the current threshold), so re-judging (a
    threshold edit) decodes nothing; the others are described from one decode of their video,
    and heard from one decode of its audio stream.
    """
    clips: dict[str, list[dict[str, Any]]] = {video: [] for video in video_ids}
    for clip in store.query(PASSING_CLIPS_SQL, {"ids": list(video_ids)}):
        clips[clip["video_id"]].append(clip)
    sources = {
        row["video_id"]: row
        for row in store.query(
            "SELECT video_id, source_path, fps FROM videos WHERE video_id IN (SELECT unnest(:ids))",
            {"ids": list(video_ids)},
        )
    }
    return {
        video: _annotate_video(store, video, clips[video], sources.get(video), language)
        for video in video_ids
    }


def _annotate_video(
    store: Store,
    video_id: str,
    clips: list[dict[str, Any]],
    source: Mapping[str, Any] | None,
    language: LanguageID,
) -> list[dict[str, Any]]:
    from talkvid_assets.core.identity import video_clip_descriptors

    labels = store.rows("labels", video_id)
    known = {
        (row["clip_id"], row["start_time"], row["end_time"]): row
        for row in store.rows("annotations", video_id)
    }
    descriptors = {
        clip["clip_id"]: known[span]["face_descriptor"]
        for clip in clips
        if (span := (clip["clip_id"], clip["start_time"], clip["end_time"])) in known
    }
    todo = [
        (c["clip_id"], c["start_time"], c["end_time"])
        for c in clips
        if c["clip_id"] not in descriptors
    ]
    if todo and source:
        descriptors |= video_clip_descriptors(source["source_path"], todo)
    given = labels[0] if labels else None
    heard = {} if given and given.get("language") else _hear(clips, known, source, language)
    rows = [
        annotation_row(clip, given, descriptors.get(clip["clip_id"]), heard.get(clip["clip_id"]))
        for clip in clips
    ]
    store.write("annotations", video_id, rows)
    return rows


def _hear(
    clips: Sequence[Mapping[str, Any]],
    known: Mapping[tuple[str, float, float], Mapping[str, Any]],
    source: Mapping[str, Any] | None,
    language: LanguageID,
) -> dict[str, LanguageLabel]:
    """Each clip's language from its audio: what this backend heard before for the same bounds,
    judged again against the threshold; the others from one decode of the audio stream."""
    from talkvid_assets.core.language.audio import clips_audio

    heard: dict[str, LanguageLabel] = {}
    todo = []
    for clip in clips:
        before = known.get((clip["clip_id"], clip["start_time"], clip["end_time"]), {})
        if before.get("language_backend") == language.tag and before.get("spoken_language"):
            heard[clip["clip_id"]] = language.relabel(
                before["spoken_language"], before["language_confidence"]
            )
        else:
            todo.append((clip["clip_id"], clip["start_time"], clip["end_time"]))
    audio: dict[str, np.ndarray] = {}
    if todo and source and language.backend is not None:
        audio = clips_audio(source["source_path"], todo, source["fps"], MAX_AUDIO_S)
    for clip_id, _, _ in todo:
        heard[clip_id] = language.label(audio.get(clip_id, np.empty(0, np.float32)))
    return heard


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
