"""Where a model backend finds its weights and which device it runs on.

Backends never download: weights are fetched once with ``talkvid models fetch NAME`` into
``$TALKVID_HOME/models/NAME/``, and a backend whose weights are missing says so in one line that
names that command. The device comes from the home's configuration: ``auto`` picks CUDA when
torch (or onnxruntime) sees a GPU, ``cpu`` and ``cuda`` force one.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from talkvid_assets.core.stages import BackendUnavailable


class WeightsMissing(BackendUnavailable):
    """A model's weights are not fetched; ``model`` names it for a reason stored with data (no
    path in it: the same in every home, and still true after a home moves)."""

    def __init__(self, model: str, folder: Path) -> None:
        super().__init__(f"{model} weights are not in {folder}: run `talkvid models fetch {model}`")
        self.model = model


if TYPE_CHECKING:
    import onnxruntime

DEVICES = ("auto", "cuda", "cpu")


def usable_cores() -> int:
    """The cores this process may run on (its affinity, as a container limits it)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


@dataclass(frozen=True)
class Runtime:
    """The models folder and device choice a backend is built with."""

    models_dir: Path
    device: str = "auto"

    def weight(self, model: str, file: str) -> Path:
        """The path of ``file`` of ``model``; a missing file names the command that fetches it."""
        path = self.models_dir / model / file
        if not path.is_file():
            raise WeightsMissing(model, path.parent)
        return path

    def weight_tag(self, model: str, file: str) -> str:
        """What names a weight file in a backend's version without reading it: the sha256
        prefix `talkvid models fetch` recorded beside it, else its size, else ``unfetched``."""
        path = self.models_dir / model / file
        recorded = path.with_name(path.name + ".sha256")
        if recorded.is_file():
            return recorded.read_text().strip()[:12]
        return f"{path.stat().st_size}B" if path.is_file() else "unfetched"

    def torch_device(self) -> str:
        """``cuda`` or ``cpu`` for torch modules."""
        if self.device == "cpu":
            return "cpu"
        cuda = _torch_cuda()
        if self.device == "cuda" and not cuda:
            raise BackendUnavailable("device: cuda is configured but torch sees no CUDA GPU")
        return "cuda" if cuda else "cpu"

    def onnx_providers(self) -> list[str]:
        """onnxruntime execution providers, CUDA first when it is wanted and available."""
        import onnxruntime

        available = onnxruntime.get_available_providers()
        cuda = "CUDAExecutionProvider" in available
        if self.device == "cuda" and not cuda:
            raise BackendUnavailable(
                "device: cuda is configured but onnxruntime has no CUDAExecutionProvider "
                "(install onnxruntime-gpu)"
            )
        if self.device != "cpu" and cuda:
            return ["CUDAExecutionProvider", "CPUExecutionProvider"]
        return ["CPUExecutionProvider"]


def onnx_session(model: bytes | Path, providers: tuple[str, ...]) -> onnxruntime.InferenceSession:
    """An onnxruntime session that runs its operators on the calling thread.

    By default onnxruntime keeps a pool of a thread per core that spins while it waits for
    work. The decode pass already keeps every core busy decoding, so that pool only took
    cycles from the decoder: RetinaFace cost 98 ms of CPU per sampled 1080p frame that way (the
    pass's CPU with and without it) and 29 ms on the calling thread (`make bench-backends`).
    """
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1
    source = model if isinstance(model, bytes) else str(model)
    return onnxruntime.InferenceSession(source, options, providers=list(providers))


@functools.cache
def _torch_cuda() -> bool:
    import torch

    return bool(torch.cuda.is_available())


def cpu_runtime(models_dir: Path | None = None) -> Runtime:
    """A CPU runtime; embedded backends ignore ``models_dir``."""
    return Runtime(models_dir or Path("models"), "cpu")
