"""The reference's voice rule, kept as an option: does a subtitle cue with speech overlap a clip?

The reference keeps a clip when its source has no subtitle file, or when a cue overlapping the
clip has text other than ``[Music]`` once tags are stripped (spec, stage 1). Subtitles are looked
for beside the source: ``<stem>.vtt``, ``<stem>.srt`` or ``<stem>.<lang>.vtt`` / ``.srt``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

_TIMING = re.compile(r"(?P<start>(?:\d+:)?\d+:\d+[.,]\d+)\s*-->\s*(?P<end>(?:\d+:)?\d+:\d+[.,]\d+)")
_TAG = re.compile(r"<[^>]*>|\{[^}]*\}")
NON_SPEECH = {"", "[music]"}
SUBTITLE_SUFFIXES = (".vtt", ".srt")


@dataclass(frozen=True)
class Cue:
    start_s: float
    end_s: float
    text: str


def find_subtitles(source: str | Path) -> Path | None:
    """The subtitle file beside ``source``, if any; ``<stem>.vtt|srt`` before language variants."""
    source = Path(source)
    candidates = [
        path
        for path in source.parent.iterdir()
        if path.suffix.lower() in SUBTITLE_SUFFIXES
        and source.stem in (path.stem, path.stem.rsplit(".", 1)[0])
    ]
    return min(candidates, key=lambda path: (path.stem != source.stem, path.name), default=None)


def _seconds(stamp: str) -> float:
    parts = [float(part) for part in stamp.replace(",", ".").split(":")]
    return sum(value * 60**power for power, value in enumerate(reversed(parts)))


def parse_cues(path: Path) -> list[Cue]:
    """Cues of a WebVTT or SRT file: timing lines and the text lines under them."""
    cues: list[Cue] = []
    for block in re.split(r"\n\s*\n", path.read_text(errors="replace").replace("\r", "")):
        lines = block.strip().splitlines()
        for index, line in enumerate(lines):
            timing = _TIMING.search(line)
            if timing:
                text = " ".join(lines[index + 1 :])
                cues.append(Cue(_seconds(timing["start"]), _seconds(timing["end"]), text))
                break
    return cues


def has_speech_cue(cues: list[Cue], start_s: float, end_s: float) -> bool:
    """Whether a cue overlapping ``[start_s, end_s)`` carries speech text."""
    return any(
        cue.start_s < end_s
        and cue.end_s > start_s
        and _TAG.sub("", cue.text).strip().lower() not in NON_SPEECH
        for cue in cues
    )
