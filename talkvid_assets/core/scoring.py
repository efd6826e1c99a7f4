"""The clip-scorer protocol every model stage implements.

A backend is a factory of per-clip scorers. The decode pass offers each scorer every frame of
its clip as it is decoded; the scorer converts and keeps only what it samples, and reports its
scores when the clip ends. That is how one decode feeds every model, and why memory does not
grow with the length of the source.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from talkvid_assets.core.runtime import Runtime, cpu_runtime
from talkvid_assets.core.stages import BackendUnavailable, get_stage, load_entry
from talkvid_assets.core.video import Frame, VideoProbe

Scores = dict[str, float | None]


class ClipScorer(Protocol):
    """A scorer that works on threads of its own (face detection does) may also expose
    ``worker_cpu_s``, the CPU seconds they spent for this clip: the decode pass times everything
    else on its own thread and adds it, so the stage's recorded cost is complete.

    A scorer that needs the clip's sound (lip sync) also has ``hear(samples)``, and its backend
    ``hears_audio = True``: the decode pass then keeps the audio of open clips and calls
    ``hear`` with the clip's 16 kHz mono samples (empty without an audio track) just before
    ``finish``, once the clip's audio is decoded."""

    def offer(self, frame: Frame, clip_index: int, clip_time: float) -> None:
        """Look at the next frame of the clip (index and time counted from the clip start)."""
        ...

    def finish(self, duration: float, frame_count: int) -> Scores:
        """Scores of the clip, ignoring samples at or after ``duration`` seconds."""
        ...


class ScorerBackend(Protocol):
    name: str
    version: str

    def new_clip(self, video: VideoProbe) -> ClipScorer: ...

    def ready(self) -> None:
        """Raise BackendUnavailable, with a one-line message saying what to install or fetch,
        when this backend cannot run here; return when it can.

        Cheap, so a route can refuse before any run starts: it checks exactly what the first
        clip would need (a package with ``importlib.util.find_spec``, each weight file through
        :meth:`Runtime.weight`) and never loads weights or imports a heavy package. Embedded
        backends, whose dependencies are pinned, just return."""
        ...


def load_backend(stage: str, name: str, runtime: Runtime | None = None) -> ScorerBackend:
    """Instantiate backend ``name`` of ``stage`` (registered in :mod:`talkvid_assets.core.stages`)
    or explain which ones this installation has.

    Instantiating is cheap and never reads weights (code versions are derived from the
    backend's name and version, which names its weights' checksum); a model backend loads its
    weights when it first scores, and says then if they are missing."""
    declared = get_stage(stage)
    target = declared.backends.get(name)
    if target is None:
        raise BackendUnavailable(
            f"no {stage} backend {name!r} in this installation; "
            f"available: {', '.join(declared.backends)}"
        )
    return load_entry(f"{stage} backend", name, target)(runtime or cpu_runtime())


def unready_backends(backends: Mapping[str, str], runtime: Runtime) -> dict[str, str]:
    """Stage name -> the one-line reason its configured backend cannot run here, for every
    stage of ``backends`` (stage -> backend name) that cannot; empty when all can.

    Loads each backend (cheap: no weights) and asks :meth:`ScorerBackend.ready`, so a missing
    package or weight file is reported before a run starts instead of on its first clip."""
    reasons = {}
    for stage, name in backends.items():
        try:
            load_backend(stage, name, runtime).ready()
        except BackendUnavailable as error:
            reasons[stage] = str(error)
    return reasons


def require_ready(backends: Mapping[str, str], runtime: Runtime) -> None:
    """Raise :class:`BackendUnavailable` naming every stage whose backend cannot run here, in
    one line: what every route checks before a run starts."""
    problems = unready_backends(backends, runtime)
    if problems:
        raise BackendUnavailable(
            "; ".join(f"{stage} backend: {reason}" for stage, reason in problems.items())
        )
