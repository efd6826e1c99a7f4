"""Real HTTP servers on 127.0.0.1, so downloads are tested without leaving the machine: for the
URL-ingest tests one that serves files with Range requests honoured and misbehaves on purpose by
path; for model fetches a plain mirror of in-memory files (``range_server``).

Paths: ``/files/NAME`` (the file, ranges honoured), ``/cut/NAME`` (the first whole-file request
is cut off half way, later ones are served), ``/redirect/NAME`` (302 to ``/files/NAME``),
``/slow/NAME`` (a byte every ``slow_s``), ``/endless.mp4`` (a body without end or length),
``/page.html`` (a web page without a video), any other path a 404. Every request is logged
with its Range header.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


@dataclass
class LocalServer:
    """The running server: its base URL, the folder it serves and the requests it saw."""

    url: str
    root: Path
    requests: list[tuple[str, str | None]] = field(default_factory=list)
    cut_done: set[str] = field(default_factory=set)
    slow_s: float = 12.0  # past any client timeout a test sets, by a margin load cannot close


def _handler(server: LocalServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:  # keep test output quiet
            pass

        def handle(self) -> None:
            with contextlib.suppress(OSError):  # a client that hung up (given up on purpose)
                super().handle()

        def do_HEAD(self) -> None:
            self._serve(body=False)

        def do_GET(self) -> None:
            self._serve(body=True)

        def _serve(self, body: bool) -> None:
            server.requests.append((self.path, self.headers.get("Range")))
            kind, _, name = self.path.lstrip("/").partition("/")
            if kind == "redirect":
                self.send_response(302)
                self.send_header("Location", f"/files/{name}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            if self.path == "/endless.mp4":
                self._endless(body)
                return
            if self.path == "/page.html":
                page = b"<html><body><p>no video here</p></body></html>"
                self.send_response(200)
                self.send_header("Content-Type", "text/html")
                self.send_header("Content-Length", str(len(page)))
                self.end_headers()
                self.wfile.write(page if body else b"")
                return
            path = server.root / name
            if kind not in ("files", "cut", "slow") or not name or not path.is_file():
                self.send_error(404, "Not Found")
                return
            data = path.read_bytes()
            start = self._range_start(len(data))
            if start is None:
                return
            part = data[start:]
            self.send_response(206 if start else 200)
            self.send_header("Content-Type", "video/mp4")
            self.send_header("Accept-Ranges", "bytes")
            self.send_header("Content-Length", str(len(part)))
            if start:
                self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
            self.end_headers()
            if not body:
                return
            if kind == "cut" and not start:
                server.cut_done.add(name)
                self.wfile.write(part[: len(part) // 2])
                self.wfile.flush()
                self.close_connection = True
                return
            if kind == "slow":
                for offset in range(len(part)):
                    self.wfile.write(part[offset : offset + 1])
                    self.wfile.flush()
                    time.sleep(server.slow_s)
                return
            self.wfile.write(part)

        def _range_start(self, size: int) -> int | None:
            header = self.headers.get("Range")
            if not header:
                return 0
            start = int(header.removeprefix("bytes=").split("-")[0])
            if start >= size:
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{size}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return None
            return start

        def _endless(self, body: bool) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "video/mp4")
            self.send_header("Connection", "close")
            self.end_headers()
            self.close_connection = True
            block = b"\0" * 65536
            with contextlib.suppress(OSError):  # the client gives up, as it should
                while body:
                    self.wfile.write(block)

    return Handler


@contextmanager
def serving(httpd: ThreadingHTTPServer) -> Iterator[None]:
    """Serve ``httpd`` on a daemon thread for the length of the block, then close it."""
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield
    finally:
        httpd.shutdown()
        httpd.server_close()


@contextmanager
def local_server(root: Path) -> Iterator[LocalServer]:
    """Serve ``root`` on a free port of 127.0.0.1 for the length of the block."""
    server = LocalServer("", root)
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(server))
    httpd.daemon_threads = True
    server.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    with serving(httpd):
        yield server


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


@contextmanager
def range_server() -> Iterator[ThreadingHTTPServer]:
    """A server of ``server.files`` (name -> bytes) on 127.0.0.1, as a model mirror or CDN is;
    ``server.ranges`` records where each request started."""
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), RangeHandler)
    httpd.files, httpd.ranges = {}, []  # type: ignore[attr-defined]
    with serving(httpd):
        yield httpd


def url(server: ThreadingHTTPServer, name: str) -> str:
    """Where ``range_server`` serves ``name``."""
    return f"http://127.0.0.1:{server.server_address[1]}/{name}"
