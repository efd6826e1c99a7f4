"""Source discovery and the content-derived partition key of a source video."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator, Mapping
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


def discover_settled(
    folders: Iterable[Path], previous: Mapping[str, list[int]]
) -> tuple[list[tuple[Path, str]], dict[str, list[int]]]:
    """Files below ``folders`` whose size and modification time are what they were at the
    previous look (``previous``): a file still being copied in is left for a later look.

    Returns the settled files, each with a stamp naming this exact content state, and the
    sizes seen now (the next look's ``previous``). Missing folders are skipped.
    """
    seen: dict[str, list[int]] = {}
    settled = []
    for folder in folders:
        if not folder.is_dir():
            continue
        for path in discover([folder]):
            try:
                stat = path.stat()
            except OSError:
                continue  # removed while we looked
            stamp = [stat.st_size, stat.st_mtime_ns]
            seen[str(path)] = stamp
            if previous.get(str(path)) == stamp:
                settled.append((path, f"{path}:{stamp[0]}:{stamp[1]}"))
    return settled, seen
