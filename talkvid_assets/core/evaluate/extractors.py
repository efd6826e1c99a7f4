"""Feature extractors of the evaluation, pluggable per role, and the metrics they feed.

Four roles, one protocol each: ``frames`` (per-frame features: FID), ``clips`` (a feature per
clip: FVD), ``sync`` (SyncNet's offset, Sync-C and Sync-D of a generated video) and
``identity`` (a unit face embedding: CSIM). A backend is named from :data:`ROLES` or given as
``module:factory`` (a factory taking a :class:`~talkvid_assets.core.runtime.Runtime`), so a
project can plug its own network in. Every backend's name goes into the results beside its
numbers: FID from the published Inception is never confused with a distance over other features.

The published networks load from files `talkvid models fetch` puts in the home; without them
the metric is skipped with the one line saying what to fetch. CSIM works offline with dlib's
ResNet face descriptor (the one ``face_recognition`` uses), named ``dlib-resnet`` rather than
passed off as the ArcFace embedding papers usually report.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from talkvid_assets.core.runtime import Runtime
from talkvid_assets.core.stages import BackendUnavailable
from talkvid_assets.core.sync.offset import SyncResult

FVD_FRAMES = 16  # frames per clip fed to I3D, as StyleGAN-V's FVD takes them


class FrameFeatures(Protocol):
    name: str

    def ready(self) -> None: ...

    def frame_features(self, frames: np.ndarray) -> np.ndarray:
        """``(n, h, w, 3)`` uint8 RGB -> ``(n, dim)``."""
        ...


class ClipFeatures(Protocol):
    name: str

    def ready(self) -> None: ...

    def clip_features(self, frames: np.ndarray) -> np.ndarray:
        """``(t, h, w, 3)`` uint8 RGB frames of one clip -> ``(dim,)``."""
        ...


class SyncMeter(Protocol):
    name: str

    def ready(self) -> None: ...

    def sync(self, path: Path) -> SyncResult | None:
        """Offset, Sync-C and Sync-D of a video file; None without a face or audio."""
        ...


class IdentityEmbedding(Protocol):
    name: str

    def ready(self) -> None: ...

    def identity(self, frames: np.ndarray) -> np.ndarray | None:
        """A unit embedding of the face in RGB ``frames``; None when none is found."""
        ...


@dataclass(frozen=True)
class Metric:
    """A reported number: the role whose extractor feeds it and which way is better."""

    name: str
    role: str
    lower_is_better: bool
    per_clip: bool  # averaged over clips (else computed on the set of clips)
    description: str


METRICS = (
    Metric("FID", "frames", True, False, "Fréchet distance of frame features"),
    Metric("FVD", "clips", True, False, "Fréchet distance of clip features"),
    Metric("Sync-C", "sync", False, True, "SyncNet confidence (Wav2Lip's LSE-C)"),
    Metric("Sync-D", "sync", True, True, "SyncNet distance at the best offset (LSE-D)"),
    Metric("AV offset", "sync", True, True, "|audio-video offset| in 25 fps frames"),
    Metric("CSIM", "identity", False, True, "cosine of face embeddings, reference vs generated"),
)
METRICS_BY_NAME = {metric.name: metric for metric in METRICS}
ROLES: dict[str, dict[str, str]] = {
    "frames": {"inception-v3": "talkvid_assets.core.evaluate.extractors:InceptionFrames"},
    "clips": {"i3d": "talkvid_assets.core.evaluate.extractors:I3DClips"},
    "sync": {"syncnet": "talkvid_assets.core.evaluate.extractors:SyncNetMeter"},
    "identity": {"dlib-resnet": "talkvid_assets.core.evaluate.extractors:DlibIdentity"},
}
DEFAULT_EXTRACTORS = {role: next(iter(backends)) for role, backends in ROLES.items()}


def load_extractor(role: str, name: str, runtime: Runtime) -> Any:
    """The backend ``name`` (or ``module:factory``) of ``role``; unknown names say the known."""
    if role not in ROLES:
        raise BackendUnavailable(f"unknown extractor role {role!r}; roles: {', '.join(ROLES)}")
    target = ROLES[role].get(name) or (name if ":" in name else None)
    if target is None:
        known = ", ".join(ROLES[role])
        raise BackendUnavailable(
            f"no {role} extractor {name!r}; known: {known}, or give module:factory"
        )
    module, factory = target.split(":")
    try:
        return getattr(importlib.import_module(module), factory)(runtime)
    except (ImportError, AttributeError) as error:
        raise BackendUnavailable(f"cannot load {role} extractor {target}: {error}") from None


class _TorchScriptExtractor:
    """A network published as one TorchScript file under ``models/MODEL/FILE``: checked by
    :meth:`ready` without loading, loaded on first use on the configured device."""

    MODEL = FILE = ""

    def __init__(self, runtime: Runtime) -> None:
        self._runtime = runtime
        self._loaded: tuple[Any, str] | None = None

    def ready(self) -> None:
        self._runtime.weight(self.MODEL, self.FILE)

    def network(self) -> tuple[Any, str]:
        """(TorchScript module, device)."""
        if self._loaded is None:
            import torch

            device = self._runtime.torch_device()
            path = self._runtime.weight(self.MODEL, self.FILE)
            self._loaded = torch.jit.load(str(path), map_location=device).eval(), device
        return self._loaded


class InceptionFrames(_TorchScriptExtractor):
    """FID's InceptionV3 (TensorFlow's 2015-12-05 graph) as the TorchScript file NVIDIA's
    StyleGAN metrics and clean-fid load: uint8 NCHW in, it resizes to 299 itself, 2048-D pool
    features out with ``return_features=True``."""

    name = "inception-v3"
    MODEL, FILE = "inception-v3", "inception-2015-12-05.pt"

    def frame_features(self, frames: np.ndarray) -> np.ndarray:
        import torch

        network, device = self.network()
        batch = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).to(device)
        with torch.inference_mode():
            return network(batch, return_features=True).float().cpu().numpy()


class I3DClips(_TorchScriptExtractor):
    """FVD's I3D (Kinetics-400) as the TorchScript file StyleGAN-V's FVD loads: float NCTHW in
    [-1, 1], resized to 224 by the network, 400-D logits-layer features with
    ``return_features=True``. The first ``FVD_FRAMES`` frames of each clip are used."""

    name = "i3d"
    MODEL, FILE = "i3d", "i3d_torchscript.pt"

    def clip_features(self, frames: np.ndarray) -> np.ndarray:
        import torch

        network, device = self.network()
        video = torch.from_numpy(np.ascontiguousarray(frames[:FVD_FRAMES])).to(device)
        video = video.permute(3, 0, 1, 2)[None].float() / 127.5 - 1.0
        with torch.inference_mode():
            features = network(video, rescale=False, resize=True, return_features=True)
        return features[0].float().cpu().numpy()


class SyncNetMeter:
    """The sync stage's ``syncnet`` backend on a whole video: the same crops, MFCCs and offset
    search, so a generated video's Sync-C means what a curated clip's does."""

    name = "syncnet"

    def __init__(self, runtime: Runtime) -> None:
        from talkvid_assets.core.sync.scorer import SyncNetScorer

        self._scorer = SyncNetScorer(runtime)

    def ready(self) -> None:
        self._scorer.ready()

    def sync(self, path: Path) -> SyncResult | None:
        from talkvid_assets.core.video import decode, probe

        probed = probe(path)
        clip = self._scorer.new_clip(probed)
        chunks: list[np.ndarray] = []
        frames = 0
        for frame in decode(path, probed.fps, chunks.append if probed.has_audio else None):
            clip.offer(frame, frame.index, frame.time)
            frames += 1
        clip.hear(np.concatenate(chunks) if chunks else np.zeros(0, np.float32))
        return clip.result(frames / probed.fps)


class DlibIdentity:
    """dlib's ResNet face descriptor (128-D, the model behind face_recognition), averaged over
    up to five frames with one dominant face: what the speaker clustering already uses."""

    name = "dlib-resnet"

    def __init__(self, runtime: Runtime) -> None:
        """Needs nothing from the runtime: the model ships in face_recognition_models."""

    def ready(self) -> None:
        """Always: the descriptor and landmark models ship in a pinned package."""

    def identity(self, frames: np.ndarray) -> np.ndarray | None:
        from talkvid_assets.core.identity import CANDIDATE_FRAMES, clip_descriptor, spread

        return clip_descriptor(spread(list(frames), CANDIDATE_FRAMES))


def csim(reference: np.ndarray, generated: np.ndarray | None) -> float | None:
    """Cosine similarity of the reference speaker's and the generated face's embeddings; None
    when either has no face (the reference's embedding is then empty)."""
    if reference.size == 0 or generated is None:
        return None
    return float(
        np.dot(reference, generated) / (np.linalg.norm(reference) * np.linalg.norm(generated))
    )
