"""`talkvid models`: the registry, and fetch against a real HTTP server on 127.0.0.1 serving
files the test makes: verified, refused on a wrong checksum or size, resumed after a cut."""

from __future__ import annotations

import hashlib
import threading
import time
import zipfile
from collections.abc import Iterator
from contextlib import suppress
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from talkvid_assets.core.models import (
    FetchError,
    FetchLimits,
    Model,
    WeightFile,
    fetch,
    get_model,
)
from talkvid_assets_tests.commands import talkvid_in_process
from talkvid_assets_tests.http_server import url

PAYLOAD = bytes(range(256)) * 4096  # 1 MiB


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
    listed = talkvid_in_process(tmp_path, "models", "list")
    rows = {line.split()[0]: line.split()[2] for line in listed.stdout.splitlines()[2:]}
    assert rows == {
        "retinaface": "present",
        "retinaface-torch": "missing",
        "insightface-buffalo_l": "missing",
        "dover": "missing",
        "cotracker3": "missing",
        "whisper-base": "missing",
        "syncnet": "missing",
        "inception-v3": "missing",
        "i3d": "missing",
        "transnetv2": "present",
    }
    # A mirror nobody listens on stands for "no network" whatever this machine can reach.
    fetched = talkvid_in_process(
        tmp_path, "models", "fetch", "dover", "--from", "http://127.0.0.1:9", check=False
    )
    assert fetched.returncode == 1
    assert fetched.stderr.count("\n") == 1, fetched.stderr
    assert fetched.stderr.startswith("talkvid models: cannot download http://127.0.0.1:9/DOVER.pth")
    assert get_model("dover").present(tmp_path / "models") is False


class HostileHandler(BaseHTTPRequestHandler):
    """Misbehaving servers by path: ``/short`` announces more than it sends, ``/endless``
    sends without end and no length, ``/trickle`` sends one byte every 0.2 s."""

    def do_GET(self) -> None:
        self.send_response(200)
        if self.path == "/short":
            self.send_header("Content-Length", str(len(PAYLOAD)))
            self.end_headers()
            self.wfile.write(PAYLOAD[: len(PAYLOAD) // 2])  # then the connection closes
            return
        if self.path == "/endless":
            self.end_headers()
            with suppress(OSError):
                while True:
                    self.wfile.write(PAYLOAD)
        if self.path == "/trickle":
            self.send_header("Content-Length", str(len(PAYLOAD)))
            self.end_headers()
            with suppress(OSError):
                for byte in PAYLOAD[:100]:
                    self.wfile.write(bytes([byte]))
                    self.wfile.flush()
                    time.sleep(0.2)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def hostile() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), HostileHandler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


def test_a_short_body_is_an_error_that_resumes_and_records_no_checksum(hostile, server, tmp_path):
    folder = tmp_path / "test-model"
    with pytest.raises(FetchError, match=r"ended at 524,288 of 1,048,576 bytes"):
        fetch(model_of(WeightFile("w.bin", f"{hostile}/short")), tmp_path, report=print)
    assert not (folder / "w.bin").exists() and not (folder / "w.bin.sha256").exists()
    assert (folder / "w.bin.part").stat().st_size == len(PAYLOAD) // 2
    server.files["w.bin"] = PAYLOAD  # the next fetch resumes where the body ended
    fetch(model_of(WeightFile("w.bin", url(server, "w.bin"))), tmp_path, report=print)
    assert server.ranges == [len(PAYLOAD) // 2]
    assert (folder / "w.bin").read_bytes() == PAYLOAD
    assert (folder / "w.bin.sha256").read_text().strip() == hashlib.sha256(PAYLOAD).hexdigest()


def test_an_endless_body_stops_at_the_cap_and_a_trickle_at_the_deadline(hostile, tmp_path):
    limits = FetchLimits(max_bytes=3 * len(PAYLOAD), deadline_s=2.0)
    started = time.monotonic()
    with pytest.raises(FetchError, match="more than the cap"):
        fetch(model_of(WeightFile("e.bin", f"{hostile}/endless")), tmp_path, limits=limits)
    assert not (tmp_path / "test-model" / "e.bin.sha256").exists()
    with pytest.raises(FetchError, match="deadline"):
        fetch(model_of(WeightFile("t.bin", f"{hostile}/trickle")), tmp_path, limits=limits)
    # About 2.5 s on a quiet machine (the trickle alone never ends); room for a load of 10.
    assert time.monotonic() - started < 30
    assert not (tmp_path / "test-model" / "t.bin").exists()


def test_an_archive_that_unpacks_past_the_cap_is_refused(server, tmp_path):
    bomb = tmp_path / "bomb.zip"
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("det.onnx", bytes(64 * 2**20))  # 64 MiB of zeros, ~64 KiB packed
    server.files["bomb.zip"] = bomb.read_bytes()
    model = model_of(WeightFile("bomb.zip", url(server, "bomb.zip")), reads=("det.onnx",))
    with pytest.raises(FetchError, match="zip bomb"):
        fetch(model, tmp_path / "models", report=print)
    assert not list((tmp_path / "models" / "test-model").glob("det.onnx*"))
