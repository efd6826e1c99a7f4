"""Labelled manifests: one row per source video with the labels a TalkVid record carries.

A manifest is CSV (with a header) or JSON Lines. Its documented columns:

``path`` (required), ``video_link``, ``licence``, ``person_id``, ``ethnicity``, ``age_group``,
``gender``, ``language``, ``category``, ``description``.

Header names are matched without regard to case, spaces or hyphens (``Video Link`` is
``video_link``; the release's ``Age Group`` is ``age_group``). Paths resolve relative to the
manifest's folder and must stay inside it or inside a folder the configuration allows
(``source_roots`` in curation.yaml): a manifest cannot make the pipeline read ``/etc``.
Label values must be spelled as the release spells them (``core.bench``'s vocabularies;
``African`` is accepted as the statistics' name for ``Black``); anything else is rejected
with the row number, never guessed.
"""

from __future__ import annotations

import csv
import json
import math
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from talkvid_assets.core.bench import (
    AGE_GROUPS,
    ETHNICITIES,
    ETHNICITY_ALIASES,
    GENDERS,
    LANGUAGES,
    OTHER_LANGUAGE,
)
from talkvid_assets.core.source_files import discover

LABEL_COLUMNS = (
    "video_link",
    "licence",
    "person_id",
    "ethnicity",
    "age_group",
    "gender",
    "language",
    "category",
    "description",
)
COLUMNS = ("path", *LABEL_COLUMNS)
LABELLED_SUFFIXES = (".csv", ".jsonl")
VOCABULARIES: dict[str, tuple[str, ...]] = {
    "age_group": AGE_GROUPS,
    "gender": GENDERS,
    "ethnicity": ETHNICITIES,
    "language": (*LANGUAGES, OTHER_LANGUAGE),
}
ALIASES: dict[str, Mapping[str, str]] = {"ethnicity": ETHNICITY_ALIASES}


class ManifestError(ValueError):
    """A manifest that cannot be used; the message is one line with the file and row."""


@dataclass(frozen=True)
class ManifestRow:
    """One source of a manifest: its resolved path and its labels (None where not given)."""

    row: int
    path: Path
    labels: Mapping[str, str | None]


def is_labelled(path: Path) -> bool:
    """CSV and JSON Lines manifests carry labels; any other file is a plain list of paths."""
    return path.suffix.lower() in LABELLED_SUFFIXES


def read_manifest(path: Path, allowed_roots: Sequence[Path] = ()) -> list[ManifestRow]:
    """Every row of a labelled manifest, validated; the first bad row raises ManifestError."""
    try:
        text = path.read_text(encoding="utf-8-sig")  # a spreadsheet's BOM is not a column name
    except (OSError, UnicodeDecodeError) as exc:
        detail = getattr(exc, "strerror", None) or str(exc)
        raise ManifestError(f"cannot read manifest {path}: {detail}") from None
    raw_rows = _jsonl_rows(path, text) if path.suffix.lower() == ".jsonl" else _csv_rows(path, text)
    roots = [path.parent.resolve(), *(Path(root).resolve() for root in allowed_roots)]
    rows = [row for number, raw in raw_rows for row in _validated(path, number, raw, roots)]
    return _without_duplicates(path, rows)


def _without_duplicates(manifest: Path, rows: list[ManifestRow]) -> list[ManifestRow]:
    """Each source once: a repeated row with the same labels is dropped, one with other labels
    refuses the manifest (which row should win is the user's call, not ours)."""
    first: dict[Path, ManifestRow] = {}
    for row in rows:
        seen = first.setdefault(row.path, row)
        if seen.labels != row.labels:
            changed = next(key for key in LABEL_COLUMNS if seen.labels[key] != row.labels[key])
            raise ManifestError(
                f"{manifest}:{row.row}: {row.path} is also row {seen.row}, with another "
                f"{changed} ({row.labels[changed]!r} here, {seen.labels[changed]!r} there)"
            )
    return list(first.values())


def column_key(name: str) -> str:
    """A header as the documented column name: ``Video Link`` and ``video-link`` are
    ``video_link``."""
    return re.sub(r"[\s\-]+", "_", name.strip().lower())


def _csv_rows(path: Path, text: str) -> Iterator[tuple[int, dict[str, Any]]]:
    reader = csv.reader(text.splitlines())
    try:
        header = [column_key(name) for name in next(reader)]
    except StopIteration:
        raise ManifestError(f"{path}: empty manifest (expected a header row)") from None
    except csv.Error as exc:
        raise ManifestError(f"{path}:1: not valid CSV: {exc}") from None
    _check_columns(path, header)
    try:
        for values in reader:
            if not any(value.strip() for value in values):
                continue
            if len(values) != len(header):
                raise ManifestError(
                    f"{path}:{reader.line_num}: {len(values)} fields, the header has {len(header)}"
                )
            yield reader.line_num, dict(zip(header, values, strict=True))
    except csv.Error as exc:
        raise ManifestError(f"{path}:{reader.line_num}: not valid CSV: {exc}") from None


def _jsonl_rows(path: Path, text: str) -> Iterator[tuple[int, dict[str, Any]]]:
    for number, row in jsonl_objects(path, text):
        _check_columns(path, list(row), number)
        yield number, row


def jsonl_objects(path: Path, text: str) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, object with its keys as :func:`column_key` spells them) of each non-blank
    line of a JSON Lines file; a line that is not an object is a ManifestError naming it."""
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            raw = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ManifestError(f"{path}:{number}: not valid JSON: {exc.msg}") from None
        except RecursionError:
            raise ManifestError(f"{path}:{number}: JSON nested too deep") from None
        if not isinstance(raw, dict):
            raise ManifestError(f"{path}:{number}: expected an object per line")
        yield number, {column_key(name): value for name, value in raw.items()}


def _check_columns(path: Path, names: Sequence[str], row: int | None = None) -> None:
    where = f"{path}:{row}" if row else f"{path}: header"
    unknown = [name for name in names if name not in COLUMNS]
    if unknown:
        raise ManifestError(
            f"{where}: unknown column {unknown[0]!r}; columns: {', '.join(COLUMNS)}"
        )
    if "path" not in names:
        raise ManifestError(f"{where}: no 'path' column")


def _validated(
    manifest: Path, number: int, raw: Mapping[str, Any], roots: Sequence[Path]
) -> list[ManifestRow]:
    """The row's sources: its file, or every file below its folder, each resolved (symlinks
    followed) and checked against ``roots`` on its own, so a link inside an allowed folder
    cannot lead out of it."""
    where = f"{manifest}:{number}"
    given = raw.get("path")
    if not isinstance(given, str) or not given.strip():
        raise ManifestError(f"{where}: empty path")
    if "\0" in given:
        raise ManifestError(f"{where}: the path contains a NUL byte")
    resolved = _inside(where, manifest.parent / given.strip(), roots, repr(given))
    files = [resolved]
    if resolved.is_dir():
        files = [
            _inside(where, found, roots, f"{str(found)!r} (below {given!r})")
            for found in discover([resolved])
        ]
    labels = {column: label_value(where, column, raw.get(column)) for column in LABEL_COLUMNS}
    return [ManifestRow(number, file, labels) for file in files]


def _inside(where: str, path: Path, roots: Sequence[Path], shown: str) -> Path:
    resolved = path.resolve()
    if not any(resolved.is_relative_to(root) for root in roots):
        raise ManifestError(
            f"{where}: {shown} is outside the manifest's folder and the allowed source_roots"
        )
    return resolved


def label_value(where: str, column: str, value: Any) -> str | None:
    """A label as the release spells it, or None where none is given: empty, null, or NaN
    (what pandas and JSON writers put for a missing value; it is no label "nan"); anything
    else is a ManifestError naming ``where`` (also used for URL lists, core.url_sources)."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, float) and math.isnan(value):
        return None
    if not isinstance(value, str | int | float) or isinstance(value, bool):
        raise ManifestError(f"{where}: {column} must be text, got {value!r}")
    text = str(value).strip()
    text = ALIASES.get(column, {}).get(text, text)
    allowed = VOCABULARIES.get(column)
    if allowed is not None and text not in allowed:
        raise ManifestError(f"{where}: unknown {column} {text!r}; allowed: {', '.join(allowed)}")
    return text
