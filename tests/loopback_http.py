"""A real HTTP file server on 127.0.0.1 for tests, with faults you can switch on.

It serves one folder over HTTP/1.1 from a thread per connection, answers single-range
`Range: bytes=START-[END]` requests with 206, and records every request so a test can assert on
what the client sent. Faults (all off by default, changeable while the server runs):

- `error_status` / `errors_left`: answer the next N requests with that status (-1: all of them);
- `truncate_at`: a body never goes past this file offset; the connection closes there while the
  headers promised the full length (a server that always cuts the transfer short);
- `drop_after` / `drops_left`: the next N responses close after sending that many body bytes
  (an interrupted transfer that a resumed request can finish);
- `stall_s` / `stalls_left`: the next N requests wait this long before answering (a client
  timeout);
- `corrupt_at`: the byte at this file offset is served inverted (bit rot in transit);
- `ignore_range`: answer Range requests with 200 and the whole file;
- `fault_suffix`: faults apply only to paths ending with this (e.g. ".zip", sparing ".md5").

Usage::

    with LoopbackServer(folder) as server:
        server.faults.drop_after, server.faults.drops_left = 1000, 1
        requests.get(server.url + "file.zip")
        assert server.requests[-1].headers.get("Range") is None
"""

from __future__ import annotations

import contextlib
import re
import socket
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar
from urllib.parse import unquote, urlsplit

_RANGE = re.compile(r"^bytes=(\d+)-(\d*)$")
_CHUNK = 64 * 1024


@dataclass
class Faults:
    error_status: int = 500
    errors_left: int = 0  # -1: every request
    truncate_at: int | None = None
    drop_after: int | None = None
    drops_left: int = 0  # -1: every response
    stall_s: float = 0.0
    stalls_left: int = 0  # -1: every request
    corrupt_at: int | None = None
    ignore_range: bool = False
    fault_suffix: str = ""


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    headers: dict[str, str]

    @property
    def range(self) -> str | None:
        return self.headers.get("Range")


@dataclass
class LoopbackServer:
    """Serve `root` on 127.0.0.1 (a free port unless `port` is given) until `stop()`."""

    root: Path
    port: int = 0
    faults: Faults = field(default_factory=Faults)
    requests: list[Request] = field(default_factory=list)
    handler_base: ClassVar[type | None] = None  # a subclass of _Handler that routes differently

    def __post_init__(self) -> None:
        self.root = Path(self.root).resolve()
        self._lock = threading.Lock()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle
    def start(self) -> LoopbackServer:
        base = self.handler_base or _Handler
        handler = type("_BoundHandler", (base,), {"owner": self})
        self._httpd = ThreadingHTTPServer(("127.0.0.1", self.port), handler)
        self._httpd.daemon_threads = True
        self.port = self._httpd.server_address[1]
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, name=f"loopback-http-{self.port}", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> LoopbackServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """Base URL with a trailing slash: `server.url + "name"` is a served file."""
        return f"http://127.0.0.1:{self.port}/"

    # -- test helpers
    def reset(self) -> None:
        """Switch every fault off and forget the recorded requests."""
        with self._lock:
            self.faults = Faults()
            self.requests.clear()

    def requests_for(self, suffix: str) -> list[Request]:
        with self._lock:
            return [r for r in self.requests if r.path.endswith(suffix)]

    # -- used by the handler, under the lock
    def _record(self, request: Request) -> None:
        with self._lock:
            self.requests.append(request)

    def _take(self, counter: str, path: str) -> bool:
        """Consume one use of a counted fault (`errors_left`, ...) if it applies to `path`."""
        with self._lock:
            if not path.endswith(self.faults.fault_suffix):
                return False
            left = getattr(self.faults, counter)
            if left == 0:
                return False
            if left > 0:
                setattr(self.faults, counter, left - 1)
            return True

    def _applies(self, path: str) -> bool:
        return path.endswith(self.faults.fault_suffix)


class _Handler(BaseHTTPRequestHandler):
    owner: LoopbackServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:  # quiet test output
        pass

    def do_HEAD(self) -> None:
        self._serve(body=False)

    def do_GET(self) -> None:
        self._serve(body=True)

    def _serve(self, body: bool) -> None:
        owner = self.owner
        path = unquote(urlsplit(self.path).path)
        owner._record(Request(self.command, path, dict(self.headers.items())))
        if owner._take("stalls_left", path):
            time.sleep(owner.faults.stall_s)
        if owner._take("errors_left", path):
            self._plain(owner.faults.error_status, "injected fault\n")
            return
        file = (owner.root / path.lstrip("/")).resolve()
        if not file.is_relative_to(owner.root) or not file.is_file():
            self._plain(404, "not found\n")
            return
        size = file.stat().st_size
        start, end, status = 0, size - 1, 200
        wanted = self.headers.get("Range")
        if wanted and not (owner.faults.ignore_range and owner._applies(path)):
            m = _RANGE.match(wanted.strip())
            if m is None or int(m.group(1)) >= size:
                self._plain(416, "range not satisfiable\n", {"Content-Range": f"bytes */{size}"})
                return
            start = int(m.group(1))
            end = min(int(m.group(2)), size - 1) if m.group(2) else size - 1
            status = 206
        self.send_response(status)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(end - start + 1))
        self.send_header("Accept-Ranges", "bytes")
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
        self.end_headers()
        if body:
            self._send_body(file, path, start, end + 1)

    def _send_body(self, file: Path, path: str, start: int, stop: int) -> None:
        faults = self.owner.faults
        applies = self.owner._applies(path)
        cut = stop
        if applies and faults.truncate_at is not None:
            cut = min(cut, max(start, faults.truncate_at))
        if self.owner._take("drops_left", path) and faults.drop_after is not None:
            cut = min(cut, start + faults.drop_after)
        with open(file, "rb") as f:
            f.seek(start)
            pos = start
            while pos < cut:
                block = bytearray(f.read(min(_CHUNK, cut - pos)))
                if not block:
                    break
                if applies and faults.corrupt_at is not None:
                    i = faults.corrupt_at - pos
                    if 0 <= i < len(block):
                        block[i] ^= 0xFF
                try:
                    self.wfile.write(block)
                except (BrokenPipeError, ConnectionResetError):
                    self.close_connection = True
                    return
                pos += len(block)
        if cut < stop:  # hang up mid-body: the client sees fewer bytes than promised
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.wfile.flush()
                self.connection.shutdown(socket.SHUT_RDWR)

    def _plain(self, status: int, text: str, headers: dict[str, str] | None = None) -> None:
        data = text.encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)
