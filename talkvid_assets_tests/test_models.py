"""`talkvid models`: the registry, and fetch against a real HTTP server on 127.0.0.1 serving
files the test makes: verified, refused on a wrong checksum or size, resumed after a cut."""

from __future__ import annotations

import hashlib
import sys
import threading
import zipfile
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from subprocess import run

import pytest

from talkvid_assets.core.models import FetchError, Model, WeightFile, fetch, get_model

TALKVID = Path(sys.executable).parent / "talkvid"
PAYLOAD = bytes(range(256)) * 4096  # 1 MiB


class RangeHandler(BaseHTTPRequestHandler):
    """Serves ``server.files`` by name, honouring ``Range: bytes=N-`` like a CDN does."""

    def do_GET(self) -> None:
        body = self.server.files.get(self.path.lstrip("/"))  # type: ignore[attr-defined]
        if body is None:
            self.send_error(404)
            return
        start = 0
        if (wanted := self.headers.get("Range")) and wanted.startswith("bytes="):
            start = int(wanted.removeprefix("bytes=").split("-")[0])
        self.server.ranges.append(start)  # type: ignore[attr-defined]
        self.send_response(206 if start else 200)
        self.send_header("Content-Length", str(len(body) - start))
        self.end_headers()
        self.wfile.write(body[start:])

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[ThreadingHTTPServer]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), RangeHandler)
    httpd.files, httpd.ranges = {}, []  # type: ignore[attr-defined]
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()


def url(server: ThreadingHTTPServer, name: str) -> str:
    return f"http://127.0.0.1:{server.server_address[1]}/{name}"


def model_of(*files: WeightFile, reads: tuple[str, ...] = ()) -> Model:
    return Model("test-model", "quality", "MIT", "made by the test", files=files, reads=reads)


def test_a_file_with_the_pinned_checksum_is_fetched_and_a_wrong_one_refused(server, tmp_path):
    server.files["good.bin"] = server.files["bad.bin"] = PAYLOAD
    pinned = hashlib.sha256(PAYLOAD).hexdigest()
    good = model_of(WeightFile("good.bin", url(server, "good.bin"), pinned, len(PAYLOAD)))
    (path,) = fetch(good, tmp_path, report=lambda line: None)
    assert path == tmp_path / "test-model" / "good.bin"
    assert path.read_bytes() == PAYLOAD and good.present(tmp_path)

    bad = model_of(WeightFile("bad.bin", url(server, "bad.bin"), "0" * 64))
    with pytest.raises(FetchError, match="does not match"):
        fetch(bad, tmp_path, report=lambda line: None)
    assert not list((tmp_path / "test-model").glob("bad.bin*")), "nothing half-written is kept"
    short = model_of(WeightFile("good.bin", url(server, "good.bin"), size=len(PAYLOAD) + 1))
    (tmp_path / "test-model" / "good.bin").unlink()
    with pytest.raises(FetchError, match="expected"):
        fetch(short, tmp_path, report=lambda line: None)


def test_an_interrupted_fetch_resumes_with_a_range_request(server, tmp_path):
    server.files["big.bin"] = PAYLOAD
    model = model_of(
        WeightFile("big.bin", url(server, "big.bin"), hashlib.sha256(PAYLOAD).hexdigest())
    )
    folder = tmp_path / "test-model"
    folder.mkdir()
    (folder / "big.bin.part").write_bytes(PAYLOAD[:300_000])  # what a cut connection left
    fetch(model, tmp_path, report=lambda line: None)
    assert server.ranges == [300_000]
    assert (folder / "big.bin").read_bytes() == PAYLOAD


def test_an_unpinned_file_records_its_checksum_and_archives_are_unpacked(server, tmp_path):
    bundle = tmp_path / "bundle.zip"
    with zipfile.ZipFile(bundle, "w") as archive:
        archive.writestr("buffalo/det.onnx", b"detector")
        archive.writestr("buffalo/other.onnx", b"not read")
    server.files["bundle.zip"] = bundle.read_bytes()
    model = model_of(WeightFile("bundle.zip", url(server, "bundle.zip")), reads=("det.onnx",))
    lines: list[str] = []
    fetch(model, tmp_path / "models", report=lines.append)
    folder = tmp_path / "models" / "test-model"
    assert (folder / "det.onnx").read_bytes() == b"detector"
    assert not (folder / "other.onnx").exists()
    recorded = (folder / "bundle.zip.sha256").read_text().strip()
    assert recorded == hashlib.sha256(bundle.read_bytes()).hexdigest()
    assert "unpinned" in lines[0]
    server.files["bundle.zip"] = b"tampered"  # a later fetch compares with what was recorded
    (folder / "bundle.zip").write_bytes(b"tampered")
    with pytest.raises(FetchError):
        fetch(model, tmp_path / "models", mirror=url(server, "").rstrip("/"), report=lines.append)


def test_models_list_and_a_fetch_without_network_fail_in_one_line(tmp_path):
    listed = run([TALKVID, "--home", tmp_path, "models", "list"], capture_output=True, text=True)
    assert listed.returncode == 0, listed.stderr
    rows = {line.split()[0]: line.split()[2] for line in listed.stdout.splitlines()[2:]}
    assert rows == {
        "retinaface": "present",
        "retinaface-torch": "missing",
        "insightface-buffalo_l": "missing",
        "dover": "missing",
        "cotracker3": "missing",
        "syncnet": "missing",
        "inception-v3": "missing",
        "i3d": "missing",
        "transnetv2": "present",
    }
    # A mirror nobody listens on stands for "no network" whatever this machine can reach.
    fetched = run(
        [TALKVID, "--home", tmp_path, "models", "fetch", "dover", "--from", "http://127.0.0.1:9"],
        capture_output=True,
        text=True,
    )
    assert fetched.returncode == 1
    assert fetched.stderr.count("\n") == 1, fetched.stderr
    assert fetched.stderr.startswith("talkvid models: cannot download http://127.0.0.1:9/DOVER.pth")
    assert get_model("dover").present(tmp_path / "models") is False
