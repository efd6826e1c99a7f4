"""Writes that survive a power loss: a file is whole under its name, or the old one is.

A rename is atomic for readers but not across a power loss: without a flush, the new name can
reach the disk before the file's bytes do, and a crash leaves an empty or partial file under
it. So every file the store, the exports and the model fetch keep is written to a unique
temporary name, flushed, renamed over its name, and the folder flushed after the rename.
Standard library only: the model fetch and the CLI import this without the data stack.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def fsync_path(path: str | Path) -> None:
    """Flush a file's bytes, or a folder's entries (a rename), to the disk.

    A rename is atomic for readers but not across a power loss: without this, the new name
    can reach the disk before the file's bytes do, and a crash leaves an empty or partial
    file under it. Files are flushed before their rename, their folder after it.
    """
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def umask() -> int:
    """The process's file mode creation mask, read without changing it where Linux tells it
    (``os.umask`` sets the mask to read it, which another thread creating a file could see)."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def follow_umask(path: Path | int, directory: bool = False) -> None:
    """Give a file or folder made by ``tempfile`` (always 0600 or 0700, private) the mode the
    umask grants anything new, as ``open`` or ``mkdir`` would: exports, clip files and contact
    sheets are meant to be shared (a group folder with umask 002 gets them group-writable)."""
    os.chmod(path, (0o777 if directory else 0o666) & ~umask())


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a uniquely named temporary file and a rename, so a
    reader never sees half a file and concurrent writers never share a temporary name; the
    bytes are on the disk before the rename, and the rename after (``fsync_path``). The file
    gets the mode the umask allows (not ``tempfile``'s private 0600)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(
        dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"
    )
    try:
        follow_umask(descriptor)
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    fsync_path(path.parent)
