"""What a person is told about videos: each one's state and clip counts, read in one query.

The CLI prints these as a run's progress lines and as the demo's table; the queries live here,
beside the views they read, so the CLI formats values and never writes SQL of its own.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from talkvid_assets.core.store import Store

VIDEO_SUMMARY_SQL = """
    SELECT v.video_id, v.source_path, v.status, v.reject_reason,
           count(c.clip_id) AS clips, count(c.clip_id) FILTER (WHERE c.passed) AS passed
    FROM videos v LEFT JOIN clips c USING (video_id)
    WHERE v.video_id IN (SELECT unnest(:keys))
    GROUP BY ALL ORDER BY v.source_path
"""


@dataclass(frozen=True)
class VideoSummary:
    """A video's state (``ok``, ``rejected``, ``missing``...) and its clips judged and passed."""

    video_id: str
    source_path: str | None
    status: str
    reject_reason: str | None
    clips: int
    passed: int


def video_summaries(store: Store, keys: Sequence[str]) -> list[VideoSummary]:
    """The summaries of the videos among ``keys`` that the store knows, by source path."""
    return [VideoSummary(**row) for row in store.query(VIDEO_SUMMARY_SQL, {"keys": list(keys)})]


def row_count(store: Store, view: str) -> int:
    """How many rows ``view`` holds (one of the store's tables or public views)."""
    return store.query(f'SELECT count(*) AS n FROM "{view}"')[0]["n"]
