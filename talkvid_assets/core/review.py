"""Human review of the automatic checks: which clips to show people, and how well each check
agrees with what they say.

``talkvid review export`` picks, for each check, the clips whose value lies closest to the
threshold on either side (where a wrong threshold shows first), writes a contact sheet per clip
and a CSV with an empty ``human`` column. People fill it with ``pass`` or ``fail``;
``talkvid review import`` reads it back into the ``review_labels`` table, and the
``review_calibration`` asset reports each check's precision and recall against those labels
(a clip the check passes is a positive).
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from talkvid_assets.core.config import CurationConfig
from talkvid_assets.core.pictures import contact_sheet_png, thumbnail_size
from talkvid_assets.core.store import CORPUS, Store
from talkvid_assets.core.video import decode, probe

SHEET_FRAMES = 6
CSV_COLUMNS = ("clip_id", "check", "value", "threshold", "automatic", "sheet", "human")
VERDICTS = ("pass", "fail")
CLIPS_SQL = """
    SELECT c.*, v.source_path FROM clip_scores c JOIN videos v ON v.video_id = c.video_id
    WHERE v.status = 'ok'
"""


class ReviewError(ValueError):
    """A review file that cannot be read back; one line with the file and row."""


@dataclass(frozen=True)
class ReviewItem:
    clip_id: str
    check: str
    value: float
    threshold: float

    @property
    def automatic(self) -> str:
        return "pass" if self.value >= self.threshold else "fail"


def thresholds(config: CurationConfig, clip: Mapping[str, Any]) -> dict[str, float]:
    """The threshold of each reviewable check for ``clip``: a score's is the one for the
    backend that scored it (none where the profile has none on that backend's scale)."""
    profile = config.judging_profile().clip
    found = {"speech_ratio": profile.min_speech_ratio}
    for column in profile.minimums:
        minimum = profile.minimum(column, clip)
        if minimum is not None:
            found[column] = minimum
    return found


def pick(
    clips: Iterable[Mapping[str, Any]], config: CurationConfig, per_side: int
) -> list[ReviewItem]:
    """Per check, the ``per_side`` clips closest to the threshold from below and from above."""
    candidates: dict[str, list[ReviewItem]] = {}
    for clip in clips:
        for check, threshold in thresholds(config, clip).items():
            value = clip.get(check)
            if value is not None:
                item = ReviewItem(clip["clip_id"], check, float(value), threshold)
                candidates.setdefault(check, []).append(item)
    chosen = []
    for check in sorted(candidates):
        items = sorted(
            candidates[check], key=lambda item: (abs(item.value - item.threshold), item.clip_id)
        )
        for verdict in VERDICTS:
            chosen += [item for item in items if item.automatic == verdict][:per_side]
    return chosen


def _closeness(item: ReviewItem) -> tuple[float, str]:
    return abs(item.value - item.threshold), item.clip_id


def export_review(store: Store, config: CurationConfig, out: Path, per_side: int) -> Path:
    """Contact sheets under ``out/sheets`` and ``out/review.csv``; returns the CSV's path."""
    clips = {clip["clip_id"]: clip for clip in store.query(CLIPS_SQL)}
    items = pick(clips.values(), config, per_side)
    sheets = out / "sheets"
    sheets.mkdir(parents=True, exist_ok=True)
    wanted = sorted({item.clip_id for item in items})
    by_video: dict[str, list[Mapping[str, Any]]] = {}
    for clip_id in wanted:
        by_video.setdefault(clips[clip_id]["source_path"], []).append(clips[clip_id])
    for source, video_clips in by_video.items():
        _write_sheets(source, video_clips, sheets)
    path = out / "review.csv"
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(CSV_COLUMNS)
        for item in items:
            sheet = f"sheets/{item.clip_id}.png"
            writer.writerow(
                [item.clip_id, item.check, f"{item.value:.4g}", item.threshold, item.automatic,
                 sheet, ""]
            )  # fmt: skip
    return path


def _write_sheets(source: str, clips: Sequence[Mapping[str, Any]], folder: Path) -> None:
    """One decode of ``source``: SHEET_FRAMES frames spread over each clip, as a sheet."""
    video = probe(source)
    size = thumbnail_size(video.width, video.height)
    times = {
        clip["clip_id"]: [
            clip["start_time"] + (clip["end_time"] - clip["start_time"]) * (i + 0.5) / SHEET_FRAMES
            for i in range(SHEET_FRAMES)
        ]
        for clip in clips
    }
    thumbs: dict[str, list[tuple[float, Any]]] = {clip_id: [] for clip_id in times}
    last = max(time for wanted in times.values() for time in wanted)
    for frame in decode(source, video.fps):
        for clip_id, wanted in times.items():
            if wanted and frame.time >= wanted[0]:
                thumbs[clip_id].append((wanted.pop(0), frame.image("rgb24", *size)))
        if frame.time >= last:
            break
    for clip_id, shots in thumbs.items():
        if shots:
            labels = [f"{time:.1f}s" for time, _ in shots]
            (folder / f"{clip_id}.png").write_bytes(
                contact_sheet_png([image for _, image in shots], labels)
            )


def import_review(store: Store, config: CurationConfig, path: Path) -> int:
    """Read people's verdicts back (rows with an empty ``human`` are skipped); merges them
    into ``review_labels`` by (clip, check), the newest import winning. Returns rows read.

    The file is checked whole before anything is stored, and any problem is one ReviewError
    line naming the row: a file that is not CSV (an unterminated quote included) or lacks the
    ``clip_id``, ``check`` or ``human`` column, a verdict other than pass or fail, a clip this
    home does not have or a check it is not judged on, and two rows giving one (clip, check)
    different verdicts. The ``automatic`` verdict is computed again from the clip's value and
    the current threshold: a file's own column is what people may have edited.
    """
    rows = _review_rows(path)
    clips = {clip["clip_id"]: clip for clip in store.query(CLIPS_SQL)}
    labelled: dict[tuple[str, str], dict[str, Any]] = {}
    first_row: dict[tuple[str, str], int] = {}
    for number, row in rows:
        human = (row.get("human") or "").strip().lower()
        if not human:
            continue
        if human not in VERDICTS:
            raise ReviewError(f"{path}:{number}: human must be pass or fail, got {human!r}")
        key = (row.get("clip_id") or "").strip(), (row.get("check") or "").strip()
        item = _review_item(path, number, key, clips.get(key[0]), config)
        if key in labelled and labelled[key]["human"] != human:
            raise ReviewError(
                f"{path}:{number}: {key[0]} {key[1]} is {human!r} here and "
                f"{labelled[key]['human']!r} on row {first_row[key]}; keep one"
            )
        first_row.setdefault(key, number)
        labelled[key] = {
            "clip_id": key[0], "check": key[1], "human": human, "automatic": item.automatic,
        }  # fmt: skip
    known = {(row["clip_id"], row["check"]): row for row in store.rows("review_labels", CORPUS)}
    store.write("review_labels", CORPUS, list({**known, **labelled}.values()))
    return len(labelled)


def _review_rows(path: Path) -> list[tuple[int, dict[str, str]]]:
    """(line number, row) of a review CSV, read strictly: a malformed file is refused."""
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle, strict=True)
            missing = [
                name
                for name in ("clip_id", "check", "human")
                if name not in (reader.fieldnames or ())
            ]
            if missing:
                raise ReviewError(
                    f"{path}: no {missing[0]!r} column; columns: {', '.join(CSV_COLUMNS)}"
                )
            return [(reader.line_num, row) for row in reader]
    except (OSError, UnicodeDecodeError) as exc:
        raise ReviewError(f"cannot read {path}: {getattr(exc, 'strerror', None) or exc}") from None
    except csv.Error as exc:
        raise ReviewError(f"{path}: not valid CSV: {exc}") from None


def _review_item(
    path: Path,
    number: int,
    key: tuple[str, str],
    clip: Mapping[str, Any] | None,
    config: CurationConfig,
) -> ReviewItem:
    """The clip's check as judged now, or ReviewError saying why the row names none."""
    clip_id, check = key
    if clip is None:
        raise ReviewError(f"{path}:{number}: no clip {clip_id!r} in this home (of a usable video)")
    threshold = thresholds(config, clip).get(check)
    value = clip.get(check)
    if threshold is None or value is None:
        raise ReviewError(f"{path}:{number}: clip {clip_id!r} is not judged on {check!r}")
    return ReviewItem(clip_id, check, float(value), threshold)


def calibration(store: Store) -> list[dict[str, Any]]:
    """Per check: labels, precision and recall of the automatic verdict (pass = positive)."""
    report = []
    by_check: dict[str, list[Mapping[str, Any]]] = {}
    for row in store.rows("review_labels", CORPUS):
        by_check.setdefault(row["check"], []).append(row)
    for check, rows in sorted(by_check.items()):
        true_pos = sum(r["automatic"] == "pass" and r["human"] == "pass" for r in rows)
        auto_pos = sum(r["automatic"] == "pass" for r in rows)
        human_pos = sum(r["human"] == "pass" for r in rows)
        report.append(
            {
                "check": check,
                "labels": len(rows),
                "precision": true_pos / auto_pos if auto_pos else None,
                "recall": true_pos / human_pos if human_pos else None,
            }
        )
    return report
