"""Partition keys people can find: the source's file name, then its content key.

Dagster's UI shows dynamic partitions by key only (the partition list, the launch dialog's
picker, check pages; none shows metadata beside a key), so the key is where a user looks for
``talk_demo.mp4``: it is ``talk_demo-48ff3b930dfce5c1``, the file's stem made safe for URLs,
paths and WebDataset keys, then its content key (:func:`core.source_files.video_key`). The
content key stays the identity: the same bytes under another name map to the partition first
made for them, remembered in ``partition_keys/<content key>`` under the home. A home made before
keys had names keeps its keys (the bare content key, whose sources row is found directly).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from talkvid_assets.core.store import Store

ALIAS_DIR = "partition_keys"
# Long enough to tell files apart, short enough for the UI's partition list.
NAME_CHARS = 40
UNSAFE = re.compile(r"[^A-Za-z0-9_]+")


def partition_key(path: str | Path, content_key: str) -> str:
    """``<stem>-<content key>``: the stem keeps letters, digits and underscores (anything else
    becomes one underscore), so the last dash always separates the content key."""
    name = UNSAFE.sub("_", Path(path).stem).strip("_")[:NAME_CHARS].rstrip("_")
    return f"{name}-{content_key}" if name else content_key


def content_key(video_id: str) -> str:
    """The content key a partition key ends with (a bare content key is its own)."""
    return video_id.rsplit("-", 1)[-1]


def known_key(store: Store, content: str) -> str | None:
    """The partition key already given to ``content``, or None."""
    alias = store.home / ALIAS_DIR / content
    if alias.is_file():
        return alias.read_text().strip()
    if store.rows("sources", content):  # registered under the bare content key
        return content
    return None


def remember_key(store: Store, content: str, video_id: str) -> None:
    """Record that ``content`` is the partition ``video_id``."""
    from talkvid_assets.core.durable import write_atomic

    if video_id != content:
        write_atomic(store.home / ALIAS_DIR / content, video_id.encode())


def forget_key(store: Store, video_id: str) -> None:
    """Drop the record, so the content ingested again is named after its new file."""
    (store.home / ALIAS_DIR / content_key(video_id)).unlink(missing_ok=True)
