"""Per-stratum evaluation of a model's videos against TalkVid-Bench (the paper's point: gaps
between subgroups that one overall number hides).

Every bench clip is read from its source (the reference) and from ``<generated>/<clip_id>.*``
(the model's video for it). Each role's extractor runs once per clip; the metrics are then
computed for every stratum of every dimension and for the whole bench, each with a bootstrap
interval over the clips, and each dimension's gap between its best and worst stratum.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from talkvid_assets.core.evaluate.bootstrap import (
    RESAMPLES,
    bootstrap_interval,
    resample_indices,
)
from talkvid_assets.core.evaluate.extractors import METRICS, Metric, csim
from talkvid_assets.core.evaluate.frechet import feature_distance
from talkvid_assets.core.evaluate.media import ClipMedia, read_clip
from talkvid_assets.core.evaluate.references import ReferenceCache, reference_key
from talkvid_assets.core.identity import spread
from talkvid_assets.core.store import Store
from talkvid_assets.core.video import ProbeError

OVERALL = "all"
FID_FRAMES_PER_CLIP = 16
REFERENCE_ROLES = ("frames", "clips", "identity")  # the roles that measure the bench's side too
VIDEO_SUFFIXES = (".mp4", ".mov", ".mkv", ".webm", ".avi")
BENCH_SQL = """
    SELECT b.clip_id, s.video_id, b.dimension, b.stratum, s.start_time, s.end_time,
           coalesce(src.source_path, v.source_path) AS source_path
    FROM bench_strata b
    JOIN segments s USING (clip_id)
    JOIN raw_videos v ON v.video_id = s.video_id
    LEFT JOIN sources src ON src.video_id = s.video_id
    ORDER BY b.dimension, b.stratum, b.clip_id
"""


@dataclass(frozen=True)
class BenchClip:
    clip_id: str
    video_id: str
    dimension: str
    stratum: str
    source_path: str
    start_time: float
    end_time: float


@dataclass
class ClipMeasures:
    """What each extractor made of one bench clip and its generated video."""

    clip: BenchClip
    reference_frames: np.ndarray | None = None  # FID features
    generated_frames: np.ndarray | None = None
    reference_clip: np.ndarray | None = None  # FVD features
    generated_clip: np.ndarray | None = None
    per_clip: dict[str, float] = field(default_factory=dict)  # Sync-C, Sync-D, ... CSIM


def bench_clips(store: Store) -> list[BenchClip]:
    """The bench's clips with their strata and where their reference frames are."""
    return [BenchClip(**row) for row in store.query(BENCH_SQL)]


def generated_video(folder: Path, clip_id: str) -> Path | None:
    """The model's video for ``clip_id``: ``<folder>/<clip_id>`` with a video suffix."""
    for suffix in VIDEO_SUFFIXES:
        path = folder / f"{clip_id}{suffix}"
        if path.is_file():
            return path
    return None


def _sampled(media: ClipMedia) -> np.ndarray:
    indices = spread(list(range(len(media.frames))), FID_FRAMES_PER_CLIP)
    return media.frames[indices]


def _reference(role: str, extractor: Any, media: ClipMedia) -> np.ndarray:
    """One reference role's features of a clip; an empty array when no face was found."""
    if role == "frames":
        return extractor.frame_features(_sampled(media))
    if role == "clips":
        return extractor.clip_features(media.frames)
    embedding = extractor.identity(media.frames)
    return np.zeros(0) if embedding is None else embedding


def reference_features(
    clip: BenchClip, extractors: Mapping[str, Any], references: ReferenceCache | None = None
) -> dict[str, np.ndarray]:
    """Each reference role's features of ``clip``: kept ones from ``references``, the others
    from its source span, which is read only when one is missing (and then kept)."""
    roles = [role for role in REFERENCE_ROLES if role in extractors]
    source = Path(clip.source_path)
    key = (
        reference_key(clip.clip_id, source, clip.start_time, clip.end_time)
        if references is not None
        else None
    )
    found: dict[str, np.ndarray] = {}
    if references is not None and key is not None:
        for role in roles:
            kept = references.get(extractors[role].name, clip.video_id, key)
            if kept is not None:
                found[role] = kept
    missing = [role for role in roles if role not in found]
    if missing:
        media = read_clip(source, clip.start_time, clip.end_time)
        for role in missing:
            found[role] = _reference(role, extractors[role], media)
            if references is not None and key is not None:
                references.put(extractors[role].name, clip.video_id, key, found[role])
    return found


def measure_clip(
    clip: BenchClip,
    video: Path,
    extractors: Mapping[str, Any],
    references: ReferenceCache | None = None,
) -> ClipMeasures:
    """Run every extractor on one clip's generated video, beside its reference features."""
    reference = reference_features(clip, extractors, references)
    generated = read_clip(video)
    measures = ClipMeasures(clip)
    if "frames" in extractors:
        measures.reference_frames = reference["frames"]
        measures.generated_frames = extractors["frames"].frame_features(_sampled(generated))
    if "clips" in extractors:
        measures.reference_clip = reference["clips"]
        measures.generated_clip = extractors["clips"].clip_features(generated.frames)
    if "sync" in extractors:
        result = extractors["sync"].sync(video)
        if result is not None:
            measures.per_clip |= {
                "Sync-C": result.confidence,
                "Sync-D": result.distance,
                "AV offset": float(abs(result.offset)),
            }
    if "identity" in extractors:
        similarity = csim(reference["identity"], extractors["identity"].identity(generated.frames))
        if similarity is not None:
            measures.per_clip["CSIM"] = similarity
    return measures


def measure_bench(
    clips: Sequence[BenchClip],
    folder: Path,
    extractors: Mapping[str, Any],
    report: Callable[[str], None] = print,
    references: ReferenceCache | None = None,
) -> tuple[list[ClipMeasures], dict[str, str]]:
    """Measures of every clip with a generated video, and why each other clip has none."""
    measured, problems = [], {}
    for clip in clips:
        video = generated_video(folder, clip.clip_id)
        if video is None:
            problems[clip.clip_id] = f"no generated video {clip.clip_id}.mp4 in {folder}"
            continue
        try:
            measured.append(measure_clip(clip, video, extractors, references))
        except (ProbeError, OSError, ValueError) as error:
            problems[clip.clip_id] = f"cannot read {video.name}: {error}"
        else:
            report(f"measured {clip.clip_id} ({clip.dimension}/{clip.stratum})")
    return measured, problems


def _statistic(metric: Metric, group: Sequence[ClipMeasures]) -> Callable[[np.ndarray], float]:
    """The metric of the clips ``group[i]`` for an index array ``i`` (repeats allowed)."""
    if metric.per_clip:
        values = np.array([m.per_clip[metric.name] for m in group])
        return lambda index: float(values[index].mean())
    if metric.role == "frames":
        reference = [m.reference_frames for m in group]
        generated = [m.generated_frames for m in group]
    else:
        reference = [m.reference_clip[None] for m in group]  # type: ignore[index]
        generated = [m.generated_clip[None] for m in group]  # type: ignore[index]
    return lambda index: feature_distance(
        np.concatenate([reference[i] for i in index]), np.concatenate([generated[i] for i in index])
    )


def _usable(metric: Metric, measures: Sequence[ClipMeasures]) -> list[ClipMeasures]:
    if metric.per_clip:
        return [m for m in measures if metric.name in m.per_clip]
    if metric.role == "frames":
        return [m for m in measures if m.reference_frames is not None]
    return [m for m in measures if m.reference_clip is not None]


def groups(measures: Sequence[ClipMeasures]) -> dict[tuple[str, str], list[ClipMeasures]]:
    """The whole bench (``all``/``all``), then each dimension's strata, in a stable order."""
    grouped: dict[tuple[str, str], list[ClipMeasures]] = {(OVERALL, OVERALL): list(measures)}
    for m in sorted(measures, key=lambda m: (m.clip.dimension, m.clip.stratum)):
        grouped.setdefault((m.clip.dimension, m.clip.stratum), []).append(m)
    return grouped


def metric_rows(
    measures: Sequence[ClipMeasures],
    extractor_names: Mapping[str, str],
    resamples: int = RESAMPLES,
    seed: int = 0,
) -> list[dict[str, Any]]:
    """One row per group and metric with an extractor: value, bootstrap interval, clips.

    A set metric (FID, FVD) needs two clips (FVD) or two frames: a smaller group gets no value,
    never a made-up one."""
    rows = []
    for (dimension, stratum), group in groups(measures).items():
        for metric in METRICS:
            if metric.role not in extractor_names:
                continue
            usable = _usable(metric, group)
            row = {
                "dimension": dimension,
                "stratum": stratum,
                "metric": metric.name,
                "extractor": extractor_names[metric.role],
                "clips": len(usable),
                "value": None,
                "low": None,
                "high": None,
            }
            if len(usable) >= (1 if metric.per_clip or metric.role == "frames" else 2):
                statistic = _statistic(metric, usable)
                row["value"] = statistic(np.arange(len(usable)))
                indices = resample_indices(len(usable), resamples, seed)
                row["low"], row["high"] = bootstrap_interval(statistic, indices)
            rows.append(row)
    return rows


def gap_rows(rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Per dimension and metric: the best and the worst stratum and the gap between them."""
    found = []
    keyed: dict[tuple[str, str], list[Mapping[str, Any]]] = {}
    for row in rows:
        if row["dimension"] != OVERALL and row["value"] is not None:
            keyed.setdefault((row["dimension"], row["metric"]), []).append(row)
    for (dimension, name), strata in keyed.items():
        lower = next(m for m in METRICS if m.name == name).lower_is_better
        ranked = sorted(strata, key=lambda row: row["value"], reverse=not lower)
        best, worst = ranked[0], ranked[-1]
        found.append(
            {
                "dimension": dimension,
                "metric": name,
                "extractor": best["extractor"],
                "best_stratum": best["stratum"],
                "best": best["value"],
                "worst_stratum": worst["stratum"],
                "worst": worst["value"],
                "gap": abs(best["value"] - worst["value"]),
            }
        )
    return found
