"""Source discovery and the content-derived partition key of a source video."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from pathlib import Path

KEY_HEX_DIGITS = 16  # 64 bits of SHA-256: collisions are not a concern at dataset scale


def video_key(path: str | Path) -> str:
    """The partition key of a source: a prefix of the SHA-256 of its bytes.

    Derived from content, never from the name, so it is safe in any URL or path, and the same
    file ingested twice (under any name) maps to the same partition.
    """
    with open(path, "rb") as handle:
        digest = hashlib.file_digest(handle, "sha256")
    return digest.hexdigest()[:KEY_HEX_DIGITS]


def discover(paths: Iterable[str | Path]) -> Iterator[Path]:
    """Files named directly, and every regular file below named folders, in sorted order.

    No extension filter: anything that is not a usable video is rejected later with a reason,
    which is more useful to the user than being silently skipped.
    """
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            yield from sorted(
                p for p in path.rglob("*") if p.is_file() and not p.name.startswith(".")
            )
        elif path.is_file():
            yield path
        else:
            raise FileNotFoundError(f"no such file or folder: {path}")
