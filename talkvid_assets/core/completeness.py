"""Whether a file's container says it is complete: what the inbox asks before it takes a file.

A copy that stalls halfway looks settled to a size-and-mtime rule, and a half-written MP4 or
AVI would be curated as a short video. Both containers declare their own length: an MP4
(ISO base media: MP4, MOV, M4V, 3GP) is a sequence of top-level boxes, each with its size, and
needs a ``moov`` box to be played; an AVI is a sequence of ``RIFF`` chunks with theirs. Reading
those headers (a few bytes per top-level box, at most ``MAX_TOP_LEVEL``) tells a stalled copy
from a finished one without decoding anything. Other containers (Matroska, MPEG-TS) declare
nothing reliable: the inbox's quiet period covers them.
"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import BinaryIO

MAX_TOP_LEVEL = 10_000  # boxes or chunks read before the walk gives up (says nothing)


def container_incomplete(path: str | Path) -> str | None:
    """Why the container of ``path`` is not complete yet, or None when it is, or when its
    format declares no length (not an MP4 or AVI) or the walk gave up."""
    with open(path, "rb") as handle:
        size = handle.seek(0, 2)
        handle.seek(0)
        head = handle.read(12)
        if len(head) >= 8 and head[4:8] == b"ftyp":
            return _iso_incomplete(handle, size)
        if head[:4] == b"RIFF" and head[8:12] == b"AVI ":
            return _riff_incomplete(handle, size)
    return None


def _iso_incomplete(handle: BinaryIO, size: int) -> str | None:
    offset, seen = 0, set()
    for _ in range(MAX_TOP_LEVEL):
        if offset >= size:
            break
        handle.seek(offset)
        header = handle.read(16)
        if len(header) < 8:
            return f"an MP4 box header is cut off at byte {offset:,}"
        length, kind = struct.unpack(">I4s", header[:8])
        if length == 1:  # 64-bit size follows the type
            if len(header) < 16:
                return f"an MP4 box header is cut off at byte {offset:,}"
            (length,) = struct.unpack(">Q", header[8:16])
        elif length == 0:  # the box runs to the end of the file
            length = size - offset
        if length < 8:
            return None  # not a box structure we can follow: say nothing
        if offset + length > size:
            name = kind.decode("latin-1")
            return f"MP4 box '{name}' ends at byte {offset + length:,} of {size:,} written"
        seen.add(kind)
        offset += length
    else:
        return None
    return None if b"moov" in seen else "MP4 without its 'moov' box (written at the end)"


def _riff_incomplete(handle: BinaryIO, size: int) -> str | None:
    offset = 0
    for _ in range(MAX_TOP_LEVEL):
        if offset >= size:
            return None
        handle.seek(offset)
        header = handle.read(8)
        if len(header) < 8:
            return f"an AVI chunk header is cut off at byte {offset:,}"
        kind, length = struct.unpack("<4sI", header)
        end = offset + 8 + length + (length & 1)
        if end > size + (length & 1):
            name = kind.decode("latin-1")
            return f"AVI chunk '{name}' ends at byte {end:,} of {size:,} written"
        offset = end
    return None
