"""The reference's voice rule, kept as an option: does a subtitle cue with speech overlap a clip?

The reference keeps a clip when its source has no subtitle file, or when a cue overlapping the
clip has text other than ``[Music]`` once tags are stripped (spec, stage 1). This module
reproduces that rule as the reference's code applies it (``duration_and_vocal_check.py`` at
commit b3e15e6), quirks included, because the ``reference`` profile promises the reference's
verdicts:

- Only WebVTT-style cues are read: ``HH:MM:SS.mmm --> HH:MM:SS.mmm`` (two-digit hours, a dot
  before the milliseconds) followed, after the cue's text, by a blank line. An ``.srt`` file
  (commas in its times) therefore yields no cue, and since a subtitle file was found, every
  clip of its source fails; a last cue with no blank line after it is not read either.
- A cue counts when it touches the clip: ``cue start <= clip end and cue end >= clip start``.
- Its text (settings after the timing included, as the reference's pattern captures them) loses
  ``<...>`` tags and the literal ``align:start position:0%``; what is left must be non-empty and
  not exactly ``[Music]`` (case-sensitive: ``[music]`` counts as speech).

Subtitles are looked for beside the source: ``<stem>.vtt``, ``<stem>.srt`` or
``<stem>.<lang>.vtt`` / ``.srt``, a ``.vtt`` before an ``.srt`` (the reference takes the first
subtitle file its folder listing shows, whatever its name; a stem match is our choice, so one
folder can hold many sources).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

_CUE = re.compile(r"(\d{2}:\d{2}:\d{2}\.\d{3}) --> (\d{2}:\d{2}:\d{2}\.\d{3})(.*?)\n\n", re.DOTALL)
_TAG = re.compile(r"<.*?>")
_SETTINGS = "align:start position:0%"
NON_SPEECH = "[Music]"
SUBTITLE_SUFFIXES = (".vtt", ".srt")
# A subtitle file is read whole; a larger one is not a subtitle file.
MAX_SUBTITLE_BYTES = 16 << 20


@dataclass(frozen=True)
class Cue:
    start_s: float
    end_s: float
    text: str


def find_subtitles(source: str | Path) -> Path | None:
    """The subtitle file beside ``source``, if any: ``<stem>.vtt|srt`` before language
    variants, ``.vtt`` before ``.srt``."""
    source = Path(source)
    candidates = [
        path
        for path in source.parent.iterdir()
        if path.suffix.lower() in SUBTITLE_SUFFIXES
        and source.stem in (path.stem, path.stem.rsplit(".", 1)[0])
    ]
    return min(
        candidates,
        key=lambda path: (path.stem != source.stem, path.suffix.lower() != ".vtt", path.name),
        default=None,
    )


def _seconds(stamp: str) -> float:
    hours, minutes, seconds = stamp.split(":")
    return int(hours) * 3600 + int(minutes) * 60 + float(seconds)


def parse_cues(path: Path) -> list[Cue]:
    """The cues the reference's parser reads from ``path`` (see the module docstring)."""
    if path.stat().st_size > MAX_SUBTITLE_BYTES:
        return []
    # Read in text mode as the reference does: universal newlines turn CRLF into LF.
    text = path.read_text(encoding="utf-8", errors="replace").replace("\r\n", "\n")
    text = text.replace("\r", "\n")
    return [
        Cue(_seconds(start), _seconds(end), body.strip()) for start, end, body in _CUE.findall(text)
    ]


def has_speech_cue(cues: list[Cue], start_s: float, end_s: float) -> bool:
    """Whether a cue touching ``[start_s, end_s]`` (boundaries included) carries speech."""
    return any(cue.start_s <= end_s and cue.end_s >= start_s and _speech(cue.text) for cue in cues)


def _speech(text: str) -> bool:
    cleaned = _TAG.sub("", text).replace(_SETTINGS, "").strip()
    return bool(cleaned) and cleaned != NON_SPEECH
