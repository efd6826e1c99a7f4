"""Sources from URLs: a list of links downloaded into the home through yt-dlp, then ingested.

TalkVid was built from YouTube links and video2dataset's users start from URL lists; its ideas
are borrowed here (a record per URL, resumable parts, failures kept with their reason), not its
package. yt-dlp does the downloading: its extractors, format choice (the release's 1080p video
with a separate audio stream, merged by FFmpeg) and ``.part`` files, resumed with an HTTP Range
request when a connection is cut, within the run (retries) and by the next run after a kill.

The record of each URL (the ``url_sources`` table, one file per URL) is the download archive:
a URL ingested before, whose file is still its source, costs nothing, not even a request.
yt-dlp's own archive is not used: it is keyed by extractor and video id, and for a direct link
the id is the file's base name, so ``a/talk.mp4`` and ``b/talk.mp4`` would be taken for one.
A failure is recorded with its kind (``http``, ``unsupported``, ``too_large``, ``too_long``,
``timeout``, ``error``) and reason, and never stops the other URLs; permanent ones (an HTTP 4xx,
an unsupported site, a file over the limits) are not tried again until the list names the URL
anew after the record is removed, the others (timeouts, cuts, 5xx) are retried on the next run.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from talkvid_assets.core.compaction import file_lock
from talkvid_assets.core.config import DownloadLimits
from talkvid_assets.core.manifest import (
    LABEL_COLUMNS,
    ManifestError,
    column_key,
    is_labelled,
    jsonl_objects,
    label_value,
)
from talkvid_assets.core.sources import register_source
from talkvid_assets.core.store import Store
from talkvid_assets.core.video import ProbeError, probe

URL_FOLDER = Path("sources") / "urls"  # under the home: the downloaded files
LISTS_FOLDER = Path("sources") / "url_lists"  # under the home: every list given, by digest
LIST_SUFFIX = ".urls"  # a URL list dropped into an inbox folder
LOCK_FILE = ".downloads.lock"  # one URL ingest per home at a time: parts have one writer
URL_KEY_HEX = 16
RETRIES = 3  # a cut connection is resumed this many times within one run
PERMANENT = frozenset({"http", "unsupported", "too_large", "too_long"})
INGESTED, FAILED = "ingested", "failed"


class DownloadFailed(Exception):
    """A URL that gave no file; ``kind`` names the reason's class (see the module)."""

    def __init__(self, kind: str, reason: str, http_status: int | None = None) -> None:
        super().__init__(reason)
        self.kind, self.reason, self.http_status = kind, reason, http_status


@dataclass(frozen=True)
class UrlEntry:
    """One URL of a list, with the labels a manifest row gives it (None where not given)."""

    row: int
    url: str
    labels: dict[str, str | None]

    @property
    def key(self) -> str:
        return url_key(self.url)


def url_key(url: str) -> str:
    """The file key of a URL's record and download: a prefix of the SHA-256 of the URL."""
    return hashlib.sha256(url.encode()).hexdigest()[:URL_KEY_HEX]


def read_url_list(path: Path) -> list[UrlEntry]:
    """The URLs of a list: one a line (``#`` comments), or a CSV / JSON Lines manifest with a
    ``url`` column and any of the manifest's label columns. Only http(s) URLs are taken (a
    ``file:`` URL would read this machine's files); a bad row is a ManifestError naming it."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ManifestError(f"cannot read URL list {path}: {exc}") from None
    if is_labelled(path):
        rows = jsonl_objects(path, text) if path.suffix.lower() == ".jsonl" else _csv(path, text)
    else:
        rows = (
            (number, {"url": line.strip()})
            for number, line in enumerate(text.splitlines(), start=1)
            if line.strip() and not line.strip().startswith("#")
        )
    entries = [_entry(path, number, raw) for number, raw in _checked(path, rows)]
    if not entries:
        raise ManifestError(f"{path}: no URL in the list")
    return entries


def _csv(path: Path, text: str) -> Iterator[tuple[int, dict[str, Any]]]:
    reader = csv.DictReader(text.splitlines())
    try:
        for raw in reader:
            yield reader.line_num, {column_key(str(name)): value for name, value in raw.items()}
    except csv.Error as exc:
        raise ManifestError(f"{path}:{reader.line_num}: not valid CSV: {exc}") from None


def _checked(
    path: Path, rows: Iterator[tuple[int, dict[str, Any]]]
) -> Iterator[tuple[int, dict[str, Any]]]:
    """Rows whose columns are all ``url`` or a label column."""
    for number, row in rows:
        unknown = [name for name in row if name != "url" and name not in LABEL_COLUMNS]
        if unknown:
            columns = ", ".join(("url", *LABEL_COLUMNS))
            raise ManifestError(
                f"{path}:{number}: unknown column {unknown[0]!r}; columns: {columns}"
            )
        yield number, row


def _entry(path: Path, number: int, raw: dict[str, Any]) -> UrlEntry:
    where = f"{path}:{number}"
    url = raw.get("url")
    if not isinstance(url, str) or urlsplit(url.strip()).scheme not in ("http", "https"):
        raise ManifestError(f"{where}: expected an http(s) URL, got {url!r}")
    labels = {column: label_value(where, column, raw.get(column)) for column in LABEL_COLUMNS}
    labels["video_link"] = url.strip()  # the export's Video Link is the URL downloaded
    return UrlEntry(number, url.strip(), labels)


def keep_list(home: Path, path: Path) -> Path:
    """Copy a URL list into the home under its content digest (the same list twice is one), so
    the ``url_sources`` asset, the CLI and the inbox all work from what the home holds."""
    data = path.read_bytes()
    suffix = path.suffix.lower() if is_labelled(path) else LIST_SUFFIX
    target = Path(home) / LISTS_FOLDER / f"{hashlib.sha256(data).hexdigest()[:16]}{suffix}"
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(f".{target.name}.part")
        partial.write_bytes(data)
        partial.replace(target)
    return target


def home_entries(home: Path) -> list[UrlEntry]:
    """Every URL of every list the home holds, each once (the first list naming it wins)."""
    seen: dict[str, UrlEntry] = {}
    folder = Path(home) / LISTS_FOLDER
    for path in sorted(folder.glob("*")) if folder.is_dir() else []:
        if path.name.startswith("."):
            continue
        for entry in read_url_list(path):
            seen.setdefault(entry.url, entry)
    return list(seen.values())


def ingest_urls(
    store: Store,
    entries: Sequence[UrlEntry],
    limits: DownloadLimits,
    report: Callable[[dict[str, Any]], None] = lambda row: None,
) -> list[dict[str, Any]]:
    """Download and register every URL not done yet; returns each URL's record, in order.

    Up to ``limits.concurrency`` downloads at once (threads: they wait on the network). One
    ingest per home at a time (a lock), so two routes never write the same part file.
    """
    folder = store.home / URL_FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    with file_lock(folder / LOCK_FILE):
        records: dict[str, dict[str, Any]] = {}
        todo = []
        for entry in entries:
            known = store.rows("url_sources", entry.key)
            if known and _settled(store, known[0]):
                records[entry.url] = known[0]
            else:
                todo.append(entry)
        with ThreadPoolExecutor(max_workers=limits.concurrency) as pool:
            for entry, row in zip(
                todo, pool.map(lambda e: _ingest_one(store, e, folder, limits), todo), strict=True
            ):
                records[entry.url] = row
                report(row)
    return [records[entry.url] for entry in entries]


def _settled(store: Store, record: dict[str, Any]) -> bool:
    """Whether a recorded URL costs nothing now: ingested and its file is still the source, or
    failed for a reason that another try would not change."""
    if record["status"] == FAILED:
        return record["failure"] in PERMANENT
    sources = store.rows("sources", record["video_id"])
    return bool(sources) and Path(sources[0]["source_path"]).is_file()


def _ingest_one(
    store: Store, entry: UrlEntry, folder: Path, limits: DownloadLimits
) -> dict[str, Any]:
    row: dict[str, Any] = {"url_key": entry.key, "url": entry.url, "list_row": entry.row}
    started = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    try:
        got = download(entry.url, folder / entry.key, limits)
        _check_duration(got.path, limits)
    except DownloadFailed as exc:
        if exc.kind in PERMANENT:  # never resumed: its part (or file) is only taking room
            for part in folder.glob(f"{entry.key}.*"):
                part.unlink(missing_ok=True)
        row |= {"status": FAILED, "failure": exc.kind, "reason": exc.reason}
        row |= {"http_status": exc.http_status, "attempted_at": started}
        return _record(store, row)
    # The file is named after the URL's key; the partition after the name the URL gives it.
    video_id, _ = register_source(store, got.path, Path(urlsplit(got.final_url).path).name or None)
    store.write(
        "labels",
        video_id,
        [{"video_id": video_id, "manifest": entry.url, "manifest_row": entry.row, **entry.labels}],
    )
    row |= {
        "status": INGESTED,
        "video_id": video_id,
        "source_path": str(got.path),
        "final_url": got.final_url,
        "extractor": got.extractor,
        "size_bytes": got.path.stat().st_size,
        "resumed_from": got.resumed_from,
        "attempted_at": started,
        "downloaded_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }
    return _record(store, row)


def _check_duration(path: Path, limits: DownloadLimits) -> None:
    """A downloaded video longer than ``max_duration_s``, which a direct link cannot announce
    before the download, fails as ``too_long``. A file that cannot be probed is left to the
    ordinary ingest, which rejects it with its own reason."""
    try:
        duration = probe(path).duration_s
    except ProbeError:
        return
    if reason := _too_long(duration, limits):
        raise DownloadFailed("too_long", reason)


def _too_long(duration: float | None, limits: DownloadLimits) -> str | None:
    if duration is None or duration <= limits.max_duration_s:
        return None
    return f"{duration:.0f} s long, over {limits.max_duration_s} s"


def _record(store: Store, row: dict[str, Any]) -> dict[str, Any]:
    """Write a URL's record; returns it as the table holds it (every column)."""
    store.write("url_sources", row["url_key"], [row])
    return store.rows("url_sources", row["url_key"])[0]


@dataclass(frozen=True)
class Downloaded:
    """A finished download: the file, where it finally came from and how."""

    path: Path
    final_url: str
    extractor: str
    resumed_from: int  # bytes already there from an earlier, cut try (0: a fresh download)


def download(url: str, stem: Path, limits: DownloadLimits) -> Downloaded:
    """Download ``url`` to ``stem.<ext>`` with yt-dlp, resuming ``stem.<ext>.part``; raise
    :class:`DownloadFailed` with the reason when no file comes of it."""
    import yt_dlp
    from yt_dlp.utils import DownloadError, UnsupportedError

    max_bytes = limits.max_size_mb * 2**20
    deadline = time.monotonic() + limits.max_time_s
    too_long: list[str] = []
    resumed = sum(part.stat().st_size for part in stem.parent.glob(f"{stem.name}.*.part"))

    def watch(progress: dict[str, Any]) -> None:
        """Every block read: a file over the size limit (as announced or as received) or a
        download past its time stops here, whatever the server says (an endless body)."""
        total = progress.get("total_bytes") or progress.get("downloaded_bytes") or 0
        if total > max_bytes:
            raise DownloadFailed("too_large", f"larger than {limits.max_size_mb} MiB")
        if time.monotonic() > deadline:
            raise DownloadFailed("timeout", f"not finished within {limits.max_time_s} s")

    def duration_filter(info: dict[str, Any], *, incomplete: bool = False) -> str | None:
        if reason := _too_long(info.get("duration"), limits):
            too_long.append(reason)
        return reason

    options: dict[str, Any] = {
        "outtmpl": f"{stem}.%(ext)s",
        "format": limits.format,
        "continuedl": True,
        "noplaylist": True,
        "retries": RETRIES,
        "fragment_retries": RETRIES,
        "socket_timeout": limits.timeout_s,
        "progress_hooks": [watch],
        "match_filter": duration_filter,
        "ratelimit": limits.rate_limit_kbps * 1024 if limits.rate_limit_kbps else None,
        "quiet": True,
        "noprogress": True,
        "logger": _Quiet(),
    }
    try:
        with yt_dlp.YoutubeDL(options) as ydl:
            info = ydl.extract_info(url, download=True)
    except DownloadFailed:
        raise
    except (DownloadError, UnsupportedError) as exc:
        raise _failure(exc) from None
    except Exception as exc:  # a merge that failed, a full disk: this URL's failure, no other's
        raise DownloadFailed("error", f"{type(exc).__name__}: {exc}") from exc
    if too_long:
        raise DownloadFailed("too_long", too_long[0])
    files = [Path(d["filepath"]) for d in (info or {}).get("requested_downloads", [])]
    if not files or not files[0].is_file():
        raise DownloadFailed("error", "yt-dlp finished without a file")
    return Downloaded(
        files[0],
        str(info.get("webpage_url") or url),
        str(info.get("extractor") or "unknown"),
        resumed,
    )


def _failure(exc: Exception) -> DownloadFailed:
    """What a yt-dlp error means for the record: an HTTP status, an unsupported site, a
    timeout, or the error's own first line."""
    from yt_dlp.networking.exceptions import HTTPError
    from yt_dlp.utils import UnsupportedError

    cause = (getattr(exc, "exc_info", None) or (None, None))[1] or exc
    if isinstance(cause, DownloadFailed):
        return cause
    if isinstance(cause, HTTPError):
        return DownloadFailed("http", f"HTTP {cause.status} {cause.reason}", cause.status)
    if isinstance(cause, UnsupportedError) or isinstance(exc, UnsupportedError):
        return DownloadFailed("unsupported", "no extractor supports this URL")
    text = " ".join(str(exc).removeprefix("ERROR: ").split())  # yt-dlp's text holds \r
    timed_out = isinstance(cause, TimeoutError) or "timed out" in text.lower()
    return DownloadFailed("timeout" if timed_out else "error", text)


class _Quiet:
    """yt-dlp's logger: its errors come back as exceptions, so nothing is printed."""

    def debug(self, message: str) -> None:
        pass

    info = warning = error = debug
