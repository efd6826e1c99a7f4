"""Small PNG pictures for people looking at a curation: score histograms and contact sheets.

Drawn with OpenCV (already a dependency) so nothing else is needed; the Dagster layer shows them
inline in the UI, and they are plain files under the home for everyone else.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import cv2
import numpy as np

THUMBNAIL_HEIGHT = 90
SHEET_COLUMNS = 6
_WHITE, _GREY, _BLUE, _RED = (255, 255, 255), (90, 90, 90), (200, 120, 40), (40, 40, 200)


def png(image: np.ndarray) -> bytes:
    """PNG bytes of a BGR or RGB-as-BGR image."""
    ok, data = cv2.imencode(".png", image)
    if not ok:
        raise ValueError("PNG encoding failed")
    return data.tobytes()


def histogram_png(
    values: Sequence[float], low: float, high: float, threshold: float | None, title: str
) -> bytes:
    """A 20-bin histogram of ``values`` over [low, high], the threshold as a red line."""
    width, height, margin = 360, 160, 24
    image = np.full((height, width, 3), 255, np.uint8)
    counts, _ = np.histogram(np.clip(values, low, high), bins=20, range=(low, high))
    top = max(int(counts.max()) if len(values) else 0, 1)
    bar = (width - 2 * margin) / len(counts)
    for index, count in enumerate(counts):
        x1 = int(margin + index * bar)
        y1 = int(height - margin - (height - 2 * margin) * count / top)
        cv2.rectangle(image, (x1, y1), (int(x1 + bar) - 1, height - margin), _BLUE, -1)
    if threshold is not None and low <= threshold <= high:
        x = int(margin + (width - 2 * margin) * (threshold - low) / (high - low))
        cv2.line(image, (x, margin), (x, height - margin), _RED, 2)
    cv2.line(image, (margin, height - margin), (width - margin, height - margin), _GREY, 1)
    label = f"{title}  n={len(values)}  [{low:g}..{high:g}]"
    cv2.putText(image, label, (margin, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.4, _GREY, 1)
    return png(image)


def quota_bars_png(chosen: Mapping[str, int], quotas: Mapping[str, int], title: str) -> bytes:
    """One bar per stratum: clips chosen (blue) against the quota (grey outline), so a short
    stratum shows as a bar below its outline, labelled with both numbers."""
    width, row, margin = 420, 18, 110
    height = 28 + row * len(quotas)
    image = np.full((height, width, 3), 255, np.uint8)
    top = max([*quotas.values(), *chosen.values(), 1])
    scale = (width - margin - 60) / top
    cv2.putText(image, title, (8, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.45, _GREY, 1)
    for index, (stratum, quota) in enumerate(quotas.items()):
        y = 26 + index * row
        got = chosen.get(stratum, 0)
        cv2.rectangle(image, (margin, y), (margin + int(got * scale), y + row - 5), _BLUE, -1)
        cv2.rectangle(image, (margin, y), (margin + int(quota * scale), y + row - 5), _GREY, 1)
        colour = _GREY if got >= quota else _RED
        cv2.putText(image, stratum[:14], (8, y + 11), cv2.FONT_HERSHEY_SIMPLEX, 0.4, _GREY, 1)
        label = f"{got}/{quota}"
        x = margin + int(max(got, quota) * scale) + 6
        cv2.putText(image, label, (x, y + 11), cv2.FONT_HERSHEY_SIMPLEX, 0.4, colour, 1)
    return png(image)


def contact_sheet_png(thumbnails: Sequence[np.ndarray], labels: Sequence[str]) -> bytes:
    """RGB thumbnails of equal height in rows of SHEET_COLUMNS, each labelled underneath."""
    width = max(thumb.shape[1] for thumb in thumbnails)
    rows = -(-len(thumbnails) // SHEET_COLUMNS)
    cell_h = THUMBNAIL_HEIGHT + 18
    sheet = np.full((rows * cell_h, SHEET_COLUMNS * (width + 4), 3), 255, np.uint8)
    for index, (thumb, label) in enumerate(zip(thumbnails, labels, strict=True)):
        y, x = (index // SHEET_COLUMNS) * cell_h, (index % SHEET_COLUMNS) * (width + 4)
        sheet[y : y + thumb.shape[0], x : x + thumb.shape[1]] = thumb[:, :, ::-1]
        cv2.putText(sheet, label, (x + 2, y + cell_h - 5), cv2.FONT_HERSHEY_SIMPLEX, 0.4, _GREY, 1)
    return png(sheet)


def thumbnail_size(width: int, height: int) -> tuple[int, int]:
    """The size a frame is handed over at for a contact sheet (the decoder scales it)."""
    return max(2, round(width * THUMBNAIL_HEIGHT / max(height, 1)) // 2 * 2), THUMBNAIL_HEIGHT
