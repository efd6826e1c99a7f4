"""What a person sees of a materialization in the UI: the source file, per-clip tables,
score histograms and contact sheets (PNG pictures inline in Markdown)."""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from dagster import MetadataValue, TableColumn, TableRecord, TableSchema

from talkvid_assets.core.pictures import histogram_png
from talkvid_assets.core.store import Store


def picture(png: bytes, caption: str) -> MetadataValue:
    """A PNG shown inline in the asset's materialization page."""
    encoded = base64.b64encode(png).decode()
    return MetadataValue.md(f"![{caption}](data:image/png;base64,{encoded})")


def describe_source(store: Store, key: str) -> dict[str, Any]:
    """The source file behind a video's partition: name, size, duration, resolution, so a
    partition in the UI is never just a hash."""
    source = store.rows("sources", key)
    raw = store.rows("raw_videos", key)
    video = {**(source[0] if source else {}), **(raw[0] if raw else {})}
    return {
        "source": Path(video.get("source_path") or "?").name,
        "source_path": MetadataValue.path(video.get("source_path") or ""),
        "size_mb": round((video.get("size_bytes") or 0) / 2**20, 2),
        "duration_s": float(video.get("duration_s") or 0.0),
        "resolution": f"{video.get('width')}x{video.get('height')}",
        "status": video.get("status") or "",
    }


def table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> MetadataValue:
    """A table in the UI of ``columns`` of ``rows`` (text, numbers and flags)."""
    records = []
    for row in rows:
        values = {}
        for column in columns:
            value = row.get(column)
            values[column] = round(value, 3) if isinstance(value, float) else value
        records.append(TableRecord(values))
    schema = TableSchema(columns=[TableColumn(column, _type(rows, column)) for column in columns])
    return MetadataValue.table(records, schema=schema)


def _type(rows: Sequence[Mapping[str, Any]], column: str) -> str:
    sample = next((row.get(column) for row in rows if row.get(column) is not None), None)
    if isinstance(sample, bool):
        return "bool"
    if isinstance(sample, int):
        return "int"
    return "float" if isinstance(sample, float) else "string"


def histogram(
    values: Sequence[float | None], bounds: tuple[float, float], threshold: float | None, title: str
) -> MetadataValue:
    kept = [value for value in values if value is not None]
    return picture(histogram_png(kept, *bounds, threshold, title), f"{title} histogram")
