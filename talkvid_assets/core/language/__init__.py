"""Spoken-language identification: a clip's language from its audio, never guessed.

TalkVid-Bench's largest dimension is language (195 of 500 clips), and a manifest is the only
other source of it. A backend names the clip's language with a probability; the label is one of
the release's fourteen named languages or ``Other`` (:func:`release_language`), and stays NULL
with a reason when the probability is below ``language_min_confidence``, when the clip has too
little audio, or when no backend can run (``language_id: none``, weights not fetched). A
manifest's language always wins (core.labelling); every label records the backend that made it.

Backends: ``whisper-base`` (core.language.whisper: OpenAI Whisper base, MIT, on CTranslate2
through faster-whisper, after ``talkvid models fetch whisper-base``) and ``none``. No language-ID
model ships inside a package here, so the offline default is a NULL with its reason.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from talkvid_assets.core.bench import OTHER_LANGUAGE
from talkvid_assets.core.runtime import Runtime, WeightsMissing
from talkvid_assets.core.stages import LANGUAGE_IDS, NO_LANGUAGE_ID, BackendUnavailable, load_entry
from talkvid_assets.core.video import AUDIO_RATE

# Whisper's language codes of the release's fourteen named languages; any other is ``Other``.
# Cantonese (``yue``) is counted as Chinese, as the release names one Chinese.
RELEASE_LANGUAGES = {
    "en": "English",
    "ar": "Arabic",
    "ko": "Korean",
    "pt": "Portuguese",
    "es": "Spanish",
    "ru": "Russian",
    "zh": "Chinese",
    "yue": "Chinese",
    "pl": "Polish",
    "th": "Thai",
    "fr": "French",
    "ja": "Japanese",
    "de": "German",
    "hi": "Hindi",
    "it": "Italian",
}
MIN_AUDIO_S = 1.0  # less speech than this says nothing about its language
MAX_AUDIO_S = 30.0  # Whisper looks at one 30 s window; a clip's first 30 s are used


def release_language(code: str) -> str:
    """The release's name for a Whisper language code (``Other`` for the rest)."""
    return RELEASE_LANGUAGES.get(code, OTHER_LANGUAGE)


@dataclass(frozen=True)
class LanguageLabel:
    """A clip's language as its audio says: the release's name (None with ``reason``), the
    backend's own code and probability, and the backend (``name@version``)."""

    language: str | None
    spoken: str | None
    confidence: float | None
    reason: str | None
    backend: str


class LanguageBackend(ABC):
    """Names the language spoken in 16 kHz mono audio, with its probability."""

    name: ClassVar[str]

    @classmethod
    @abstractmethod
    def load(cls, runtime: Runtime) -> LanguageBackend:
        """The backend on ``runtime``'s fetched weights; BackendUnavailable (WeightsMissing for
        weights) when it cannot run here."""

    @classmethod
    @abstractmethod
    def tag_for(cls, runtime: Runtime) -> str:
        """What the labels would record as the backend, cheaply, without loading weights."""

    @property
    @abstractmethod
    def version(self) -> str:
        """The build and weights behind the labels (recorded with each)."""

    @property
    def tag(self) -> str:
        return f"{self.name}@{self.version}"

    @abstractmethod
    def detect(self, audio: np.ndarray) -> tuple[str, float]:
        """(language code, probability) of ``audio``: float32 samples at 16 kHz, mono."""


@dataclass(frozen=True)
class LanguageID:
    """A home's language ID: its backend (None with the reason none can run), the threshold,
    and the tag every label records."""

    backend: LanguageBackend | None
    unavailable: str | None
    min_confidence: float
    tag: str

    @classmethod
    def configured(cls, name: str, runtime: Runtime, min_confidence: float) -> LanguageID:
        """The backend ``name`` on ``runtime``'s weights; one that cannot run here (off, weights
        not fetched, package missing) gives every unlabelled clip that reason, never a guess."""
        tag = language_tag(name, runtime)
        if name == NO_LANGUAGE_ID:
            return cls(None, "language ID is off (curation.yaml language_id: none)", 0.0, tag)
        try:
            return cls(_backend_class(name).load(runtime), None, min_confidence, tag)
        except WeightsMissing as exc:  # stored in every annotation: no home path in it
            why = f"{exc.model} is not fetched: run `talkvid models fetch {exc.model}`"
            return cls(None, f"no language in the manifest, and {why}", min_confidence, tag)
        except BackendUnavailable as exc:
            return cls(None, f"no language in the manifest, and {exc}", min_confidence, tag)

    def label(self, audio: np.ndarray) -> LanguageLabel:
        """The label of one clip's audio (see :func:`label_audio`)."""
        if self.backend is None:
            return LanguageLabel(None, None, None, self.unavailable, self.tag)
        return label_audio(self.backend, audio, self.min_confidence)

    def relabel(self, code: str, probability: float) -> LanguageLabel:
        """The label of a clip this backend already heard, under the current threshold: a
        threshold edit needs no audio and no model."""
        name = self.tag.partition("@")[0]
        return _judged(code, probability, self.min_confidence, self.tag, name)


def language_tag(name: str, runtime: Runtime) -> str:
    """What decides the labels, cheaply (the config sensor asks every few seconds): the backend
    and its weights' state, so fetching the weights makes the annotations stale."""
    if name == NO_LANGUAGE_ID:
        return NO_LANGUAGE_ID
    return _backend_class(name).tag_for(runtime)


def _backend_class(name: str) -> type[LanguageBackend]:
    """The registered language-ID class ``name`` (core.stages.LANGUAGE_IDS), imported now."""
    return load_entry("language_id", name, LANGUAGE_IDS[name])


def label_audio(
    backend: LanguageBackend, audio: np.ndarray, min_confidence: float
) -> LanguageLabel:
    """The label of one clip's audio: NULL with the reason when there is too little audio or the
    backend is not sure enough; the backend's code and probability are kept either way."""
    seconds = len(audio) / AUDIO_RATE
    if seconds < MIN_AUDIO_S:
        reason = f"{seconds:.1f} s of audio, under the {MIN_AUDIO_S:.0f} s language ID needs"
        return LanguageLabel(None, None, None, reason, backend.tag)
    code, probability = backend.detect(audio[: int(MAX_AUDIO_S * AUDIO_RATE)])
    return _judged(code, probability, min_confidence, backend.tag, backend.name)


def _judged(
    code: str, probability: float, min_confidence: float, tag: str, name: str
) -> LanguageLabel:
    if probability < min_confidence:
        reason = (
            f"{name} is unsure: {code} at {probability:.2f}, "
            f"under language_min_confidence {min_confidence:.2f}"
        )
        return LanguageLabel(None, code, probability, reason, tag)
    return LanguageLabel(release_language(code), code, probability, None, tag)
