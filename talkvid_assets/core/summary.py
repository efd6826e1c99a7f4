"""What a person is told about videos: each one's state, and its clips judged and passed.

The CLI prints these as a run's progress lines and as the demo's table; the queries live here,
beside the views they read, so the CLI formats values and writes no SQL of its own. The state
and the counts are two queries (whatever the number of videos) because a run's progress needs
the counts only of videos its own verdicts do not cover, and the `clips` view joins every
stage's scores.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from talkvid_assets.core.failures import Failure
from talkvid_assets.core.store import Store

VIDEO_STATES_SQL = """
    SELECT video_id, source_path, status, reject_reasons FROM videos
    WHERE video_id IN (SELECT unnest(:keys)) ORDER BY source_path
"""
CLIP_COUNTS_SQL = """
    SELECT video_id, count(*) AS clips, count(*) FILTER (WHERE passed) AS passed
    FROM clips WHERE video_id IN (SELECT unnest(:keys)) GROUP BY video_id
"""


@dataclass(frozen=True)
class VideoState:
    """A video's source and state (``ok``, ``rejected``, ``missing``), with its failures."""

    video_id: str
    source_path: str | None
    status: str
    reject_reasons: tuple[Failure, ...]


@dataclass(frozen=True)
class ClipCounts:
    """A video's clips judged, and those that passed."""

    clips: int = 0
    passed: int = 0


def video_states(store: Store, keys: Sequence[str]) -> dict[str, VideoState]:
    """The state of each video among ``keys`` that the store knows, by source path."""
    rows = store.query(VIDEO_STATES_SQL, {"keys": list(keys)})
    return {
        row["video_id"]: VideoState(
            row["video_id"],
            row["source_path"],
            row["status"],
            tuple(Failure.of(failure) for failure in row["reject_reasons"] or ()),
        )
        for row in rows
    }


def clip_counts(store: Store, keys: Sequence[str]) -> dict[str, ClipCounts]:
    """The clips judged and passed of each video among ``keys`` that has clips."""
    rows = store.query(CLIP_COUNTS_SQL, {"keys": list(keys)})
    return {row["video_id"]: ClipCounts(row["clips"], row["passed"]) for row in rows}


def row_count(store: Store, view: str) -> int:
    """How many rows ``view`` holds (one of the store's tables or public views)."""
    return store.query(f'SELECT count(*) AS n FROM "{view}"')[0]["n"]
