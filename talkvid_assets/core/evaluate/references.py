"""Reference features kept from one model's evaluation for the next.

Every model is measured against the same bench clips, and a clip's reference features (FID's
frame features, FVD's clip feature, CSIM's face embedding) depend only on its source span and
the extractor: reading the span and running the networks again for each model would make the
bench's own side cost as much as the model's. They are kept under
``evaluations/_references/<extractor>/<video_id>/`` as one ``.npy`` per clip (a model's folder
name starts with a letter or digit, so none can be this one), named by the clip id and a digest
of the source file's path, size and modification time and of the span: a replaced source or a
re-cut clip misses and is measured again, and removing a video removes its folders.
An extractor's name is what identifies its features (it is written beside every number), so a
plugged-in extractor whose features change must change its name.
"""

from __future__ import annotations

import hashlib
import io
import re
import shutil
from pathlib import Path

import numpy as np

from talkvid_assets.core.evaluate import EVALUATIONS_DIR
from talkvid_assets.core.store import write_atomic

REFERENCES_DIR = "_references"


def reference_key(clip_id: str, source: Path, start_s: float, end_s: float) -> str | None:
    """The file name a clip's kept features go under: its id, then a digest of what they
    depend on; None when the source cannot be looked at (reading it then says why)."""
    try:
        stat = source.stat()
    except OSError:
        return None
    text = f"{source.resolve()}\0{stat.st_size}\0{stat.st_mtime_ns}\0{start_s!r}\0{end_s!r}"
    return f"{clip_id}-{hashlib.sha256(text.encode()).hexdigest()[:32]}"


class ReferenceCache:
    """The kept reference features of a home's bench, one folder per extractor and video."""

    def __init__(self, home: Path) -> None:
        self.folder = Path(home) / EVALUATIONS_DIR / REFERENCES_DIR

    def _path(self, extractor: str, video_id: str, key: str) -> Path:
        folder = self.folder / re.sub(r"[^A-Za-z0-9._-]", "_", extractor) / video_id
        return folder / f"{key}.npy"

    def get(self, extractor: str, video_id: str, key: str) -> np.ndarray | None:
        """The features kept for ``key``, or None when there are none (or they are unreadable:
        they are then measured again)."""
        try:
            return np.load(self._path(extractor, video_id, key), allow_pickle=False)
        except (OSError, ValueError, EOFError):
            return None

    def put(self, extractor: str, video_id: str, key: str, features: np.ndarray) -> None:
        buffer = io.BytesIO()
        np.save(buffer, features, allow_pickle=False)
        path = self._path(extractor, video_id, key)
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(path, buffer.getvalue())

    def forget(self, video_id: str) -> list[Path]:
        """Delete what is kept of ``video_id``'s clips for every extractor; returns the files
        deleted."""
        if not self.folder.is_dir():
            return []
        deleted: list[Path] = []
        for extractor in self.folder.iterdir():
            kept = extractor / video_id
            if kept.is_dir():
                deleted += sorted(kept.iterdir())
                shutil.rmtree(kept)
        return deleted
