"""Finding source files and naming their content: the files below named paths (``talkvid
ingest``, manifests), the inbox's cheap looks and its bookkeeping, and a file's content key.

Nothing here registers a source (``core.sources`` does); this only says which files there are
and what their bytes hash to.

The inbox is looked at every few seconds and may hold a corpus of 100,000 files, so a look costs
what changed, not what is there: one ``os.scandir`` walk gives every file's size and modification
time, a file already handled is recognised by its path, size and mtime (:class:`HandledFiles`),
and only a file new or changed since is ever read, within a deadline (:func:`video_key`).
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from operator import attrgetter
from pathlib import Path
from typing import Any, NamedTuple, Protocol

# What the inbox takes: files named as a video container. Anything else (a README.txt, a
# copy in progress named `.part`, `.crdownload` or `.tmp`, a hidden rsync temporary) is left
# alone, so a stray file never becomes a rejected video; `talkvid ingest` names files itself
# and takes any (a file that is no video gets a row with the reason).
VIDEO_SUFFIXES = frozenset((
    ".mp4", ".m4v", ".mov", ".qt", ".3gp", ".3g2", ".mkv", ".webm", ".avi", ".mpg", ".mpeg",
    ".mpe", ".m2v", ".ts", ".mts", ".m2ts", ".flv", ".f4v", ".wmv", ".asf", ".ogv", ".vob",
    ".mxf", ".dv", ".divx", ".y4m",
))  # fmt: skip
KEY_HEX_DIGITS = 16  # 64 bits of SHA-256: collisions are not a concern at dataset scale
CHUNK_BYTES = 1 << 20  # the deadline is checked between reads of this size (~1 ms each)
REMEMBERED_DIGESTS = 4096


class HashDeadline(TimeoutError):
    """A hash stopped at its deadline; the file was not fully read."""


_digests: OrderedDict[tuple[int, ...], str] = OrderedDict()
_digests_lock = threading.Lock()


def _identity(stat: os.stat_result) -> tuple[int, ...]:
    # ctime changes with every write, chmod or rename of the inode and cannot be set back by a
    # user: with device, inode, size and mtime it names one state of one file's bytes.
    return (stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns)


def video_key(path: str | Path, deadline: float | None = None) -> str:
    """The partition key of a source: a prefix of the SHA-256 of its bytes.

    Derived from content, never from the name, so it is safe in any URL or path, and the same
    file ingested twice (under any name) maps to the same partition.

    ``deadline`` (a ``time.monotonic()`` value) bounds the hash: past it, reading stops with
    :class:`HashDeadline`, so a caller with a time limit (the inbox sensor, Dagster's 60 s per
    tick) never overruns it. The key of a file hashed lately in this process and unchanged since
    (same device, inode, size, mtime and ctime) is remembered, not read again: the inbox sensor
    hashes under its deadline and then registers the file, which asks for the key once more.
    """
    with open(path, "rb") as handle:
        identity = _identity(os.fstat(handle.fileno()))
        with _digests_lock:
            if identity in _digests:
                _digests.move_to_end(identity)
                return _digests[identity]
        digest = hashlib.sha256()
        buffer = bytearray(CHUNK_BYTES)
        view = memoryview(buffer)
        while True:
            if deadline is not None and time.monotonic() > deadline:
                raise HashDeadline(f"hashing {path} did not finish by its deadline")
            count = handle.readinto(buffer)
            if not count:
                break
            digest.update(view[:count])
        unchanged = _identity(os.fstat(handle.fileno())) == identity
    key = digest.hexdigest()[:KEY_HEX_DIGITS]
    if unchanged:  # written to while we read: the bytes hashed may be no state of the file
        with _digests_lock:
            _digests[identity] = key
            while len(_digests) > REMEMBERED_DIGESTS:
                _digests.popitem(last=False)
    return key


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


class InboxFile(NamedTuple):
    """One regular file below an inbox folder as one look saw it."""

    path: str
    size: int
    mtime_ns: int
    ctime_ns: int

    @property
    def state(self) -> list[int]:
        """What two looks compare: the file has settled when this is the same at both."""
        return [self.size, self.mtime_ns]

    @property
    def stamp(self) -> str:
        """This exact content state of this path, e.g. a run key for ingesting it."""
        return f"{self.path}:{self.size}:{self.mtime_ns}"


def scan_inbox(
    folders: Iterable[Path], suffixes: Iterable[str] = VIDEO_SUFFIXES
) -> Iterator[InboxFile]:
    """Every regular file below ``folders`` named with one of ``suffixes`` (video files unless
    told; hidden files skipped; symlinked folders not followed) with its size and times.

    One ``os.scandir`` walk: the names come with their types, so a stat per file is the only
    other system call, and nothing is sorted (a tick over 100,000 handled files takes 0.35 s of
    CPU, where ``rglob``, ``stat`` and ``sorted`` took 2.2 s). Missing folders and files removed
    while we look are skipped.
    """
    wanted = frozenset(suffix.lower() for suffix in suffixes)
    stack = [str(folder) for folder in folders]
    while stack:
        try:
            entries = list(os.scandir(stack.pop()))
        except OSError:
            continue  # missing, removed while we looked, or unreadable
        for entry in entries:
            try:
                if entry.is_dir(follow_symlinks=False):
                    stack.append(entry.path)
                elif entry.is_file() and _wanted(entry.name, wanted):
                    stat = entry.stat()
                    yield InboxFile(entry.path, stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns)
            except OSError:
                continue


def _wanted(name: str, suffixes: frozenset[str]) -> bool:
    return not name.startswith(".") and os.path.splitext(name)[1].lower() in suffixes


@dataclass
class InboxLook:
    """What one look at the inbox found, against the previous look's ``pending``."""

    settled: list[InboxFile]  # not handled yet, unchanged since the previous look; oldest first
    pending: dict[str, list[int]]  # the next look's previous states: followed, not handled yet
    fresh: list[InboxFile]  # not handled, not followed yet; oldest first
    files: int  # every file seen

    def admit(self, cap: int) -> int:
        """Follow fresh files from now on, oldest first, while ``pending`` holds fewer than
        ``cap``; returns how many are left waiting for a place."""
        room = max(cap - len(self.pending), 0)
        self.pending.update((file.path, file.state) for file in self.fresh[:room])
        return max(len(self.fresh) - room, 0)


_OLDEST_FIRST = attrgetter("mtime_ns", "path")


def triage(
    files: Iterable[InboxFile],
    pending: Mapping[str, Sequence[int]],
    handled: Callable[[InboxFile], bool],
    quiet_s: float = 0.0,
) -> InboxLook:
    """Split one look at the inbox by the settle rule: a file not ``handled`` yet is settled
    when its size and mtime are what ``pending`` recorded at the previous look, and it has not
    been written to for ``quiet_s`` seconds (its mtime and its ctime, which a copy preserving
    the original mtime cannot set back): a copy that stalls for less is not taken half-written.

    Only files not handled yet are followed to the next look, and only as many as the caller
    admits (:meth:`InboxLook.admit`, after it handled the settled ones), so the record between
    looks stays small however large the inbox or the drop: a file already followed keeps its
    place (a copy still growing is followed to its end), and free places go to the other files
    oldest first (a steady stream of new files cannot starve an old one).
    """
    kept: dict[str, list[int]] = {}
    fresh: list[InboxFile] = []
    settled: list[InboxFile] = []
    count = 0
    quiet_since = time.time_ns() - int(quiet_s * 1e9)
    for file in files:
        count += 1
        if handled(file):
            continue
        before = pending.get(file.path)
        if before is None:
            fresh.append(file)
            continue
        kept[file.path] = file.state
        if list(before) == file.state and max(file.mtime_ns, file.ctime_ns) <= quiet_since:
            settled.append(file)
    fresh.sort(key=_OLDEST_FIRST)
    settled.sort(key=_OLDEST_FIRST)
    return InboxLook(settled, kept, fresh, count)


_homes: dict[Path, HandledFiles] = {}
_homes_lock = threading.Lock()


class InboxStore(Protocol):
    """What the inbox's bookkeeping reads of a home's metadata (core.store.Store): the store
    imports the manifest's label columns, and the manifest discovers files here, so this module
    names the part it needs instead of importing the store back."""

    home: Path

    def query(self, sql: str) -> list[dict[str, Any]]: ...


class HandledFiles:
    """The inbox files already handled in one home: path -> (size, mtime_ns) of the state handled.

    Filled from the ``sources`` table once per process (a registered source is handled), then
    kept by the sensor as it registers files, so a look needs no query and no cursor entry per
    file. What the table cannot tell lives only here: a second name for content already
    registered (``sources`` keeps one path per video), and a file that could not be read (with
    its ctime, so a ``chmod`` makes it worth another try). After a restart those are hashed once
    more, under the same time limits. The table is read on a thread of its own, while ticks
    skip: over 100,000 uncompacted partition files the query takes about 40 s (0.5 s compacted).
    """

    def __init__(self, store: InboxStore) -> None:
        self._states: dict[str, tuple[int, int]] = {}
        self._failed: dict[str, tuple[int, int, int]] = {}
        self._error: BaseException | None = None
        self._loaded = threading.Event()
        self._thread = threading.Thread(
            target=self._load, args=(store,), name="talkvid-inbox-sources", daemon=True
        )
        self._thread.start()

    @classmethod
    def of(cls, store: InboxStore) -> HandledFiles:
        """The handled files of ``store``'s home, shared by every tick in this process."""
        with _homes_lock:
            found = _homes.get(store.home)
            if found is None:
                found = _homes[store.home] = cls(store)
            return found

    def _load(self, store: InboxStore) -> None:
        try:
            rows = store.query("SELECT source_path, size_bytes, mtime_ns FROM sources")
            self._states.update(
                (row["source_path"], (row["size_bytes"], row["mtime_ns"])) for row in rows
            )
        except BaseException as exc:  # handed to the tick that waits for it
            self._error = exc
        finally:
            self._loaded.set()

    def ready(self, timeout_s: float) -> bool:
        """Whether the registered sources are in, waiting at most ``timeout_s`` for them; the
        load's error is raised here (and the next call starts a new load)."""
        if not self._loaded.wait(timeout_s):
            return False
        if self._error is not None:
            with _homes_lock:
                for home, found in list(_homes.items()):
                    if found is self:
                        del _homes[home]
            raise self._error
        return True

    def __contains__(self, file: InboxFile) -> bool:
        if self._states.get(file.path) == (file.size, file.mtime_ns):
            return True
        return self._failed.get(file.path) == (file.size, file.mtime_ns, file.ctime_ns)

    def add(self, file: InboxFile) -> None:
        """``file`` is registered (or is a second name for registered content)."""
        self._states[file.path] = (file.size, file.mtime_ns)
        self._failed.pop(file.path, None)

    def fail(self, file: InboxFile) -> None:
        """``file`` cannot be ingested as it is: not again until it changes (ctime included)."""
        self._failed[file.path] = (file.size, file.mtime_ns, file.ctime_ns)
