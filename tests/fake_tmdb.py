"""A real HTTP server on 127.0.0.1 that answers like TMDB's API v3 and image host, for tests.

It serves /3/movie/<id> (JSON details, or TMDB's 404 body) and /t/p/<size>/<file> (image bytes),
checks the credential on API calls the way TMDB does (api_key query parameter or Bearer header,
401 otherwise), can be scripted per path to misbehave first (429 with Retry-After, 500, a slow
answer, a dropped connection), and records every hit with its time, so tests can count requests
per movie and per time window.
"""

from __future__ import annotations

import io
import json
import struct
import threading
import time
import zlib
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit


@dataclass
class Hit:
    t: float
    path: str
    query: dict[str, str]
    authorization: str | None
    status: int = 0


@dataclass
class FakeTmdb:
    api_key: str | None = None
    token: str | None = None
    movies: dict[int, dict] = field(default_factory=dict)  # tmdbId -> details JSON
    images: dict[str, bytes] = field(default_factory=dict)  # "/w342/x.jpg" -> bytes
    # path -> behaviours consumed one per request before normal service:
    # "429:<retry-after>", "500", "slow:<seconds>", "drop"
    scripts: dict[str, list[str]] = field(default_factory=dict)
    hits: list[Hit] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    # -- lifecycle --------------------------------------------------------------------------
    def __enter__(self) -> FakeTmdb:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            wbufsize = -1  # one write per answer (headers + body), flushed by the server
            disable_nagle_algorithm = True  # else delayed ACKs add ~40 ms per keep-alive request

            def do_GET(self) -> None:
                fake._handle(self)

            def log_message(self, *args: object) -> None:  # keep test output clean
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.shutdown()
        self._server.server_close()

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    @property
    def api_base(self) -> str:
        return self.url + "/3"

    @property
    def image_base(self) -> str:
        return self.url + "/t/p"

    # -- set-up helpers ---------------------------------------------------------------------
    def add_movie(
        self, tmdb_id: int, overview: str | None, poster_path: str | None, image: bytes | None
    ) -> None:
        self.movies[tmdb_id] = {
            "id": tmdb_id,
            "title": f"Movie {tmdb_id}",
            "overview": overview,
            "poster_path": poster_path,
        }
        if poster_path and image is not None:
            self.images[f"/w342{poster_path}"] = image

    def script(self, path: str, *behaviours: str) -> None:
        self.scripts.setdefault(path, []).extend(behaviours)

    # -- queries ----------------------------------------------------------------------------
    def hits_for(self, path: str) -> list[Hit]:
        with self._lock:
            return [h for h in self.hits if h.path == path]

    def movie_hits(self) -> list[int]:
        """tmdbIds of all details requests, in arrival order (repeats included)."""
        with self._lock:
            return [int(h.path.rsplit("/", 1)[1]) for h in self.hits if h.path.startswith("/3/")]

    def clear(self) -> None:
        with self._lock:
            self.hits.clear()

    # -- serving ----------------------------------------------------------------------------
    def _handle(self, req: BaseHTTPRequestHandler) -> None:
        parts = urlsplit(req.path)
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        hit = Hit(time.monotonic(), parts.path, query, req.headers.get("Authorization"))
        with self._lock:
            self.hits.append(hit)
            queue = self.scripts.get(parts.path)
            behaviour = queue.pop(0) if queue else None
        if behaviour == "drop":
            hit.status = -1
            req.close_connection = True
            req.connection.close()
            return
        if behaviour and behaviour.startswith("429"):
            retry_after = behaviour.partition(":")[2] or "1"
            body = {"status_code": 25, "status_message": "Your request count is over the limit."}
            return self._send(req, hit, 429, body, {"Retry-After": retry_after})
        if behaviour == "500":
            return self._send(req, hit, 500, {"status_code": 11, "status_message": "Internal"})
        if behaviour and behaviour.startswith("slow:"):
            time.sleep(float(behaviour.partition(":")[2]))

        if parts.path.startswith("/3/"):
            return self._api(req, hit, parts.path, query)
        if parts.path.startswith("/t/p/"):
            data = self.images.get(parts.path.removeprefix("/t/p"))
            if data is None:
                return self._send(req, hit, 404, {"status_code": 34})
            return self._send_bytes(req, hit, 200, data, "image/jpeg")
        return self._send(req, hit, 404, {"status_code": 34})

    def _api(self, req: BaseHTTPRequestHandler, hit: Hit, path: str, query: dict) -> None:
        authorised = (self.api_key is not None and query.get("api_key") == self.api_key) or (
            self.token is not None and hit.authorization == f"Bearer {self.token}"
        )
        if not authorised:
            body = {
                "status_code": 7,
                "status_message": "Invalid API key: You must be granted a valid key.",
            }
            return self._send(req, hit, 401, body)
        head, _, tail = path.rpartition("/")
        movie = self.movies.get(int(tail)) if head == "/3/movie" and tail.isdigit() else None
        if movie is None:
            body = {
                "status_code": 34,
                "status_message": "The resource you requested could not be found.",
            }
            return self._send(req, hit, 404, body)
        return self._send(req, hit, 200, movie)

    def _send(
        self,
        req: BaseHTTPRequestHandler,
        hit: Hit,
        status: int,
        body: dict,
        headers: dict[str, str] | None = None,
    ) -> None:
        self._send_bytes(req, hit, status, json.dumps(body).encode(), "application/json", headers)

    def _send_bytes(
        self,
        req: BaseHTTPRequestHandler,
        hit: Hit,
        status: int,
        data: bytes,
        content_type: str,
        headers: dict[str, str] | None = None,
    ) -> None:
        hit.status = status
        try:
            req.send_response(status)
            req.send_header("Content-Type", content_type)
            req.send_header("Content-Length", str(len(data)))
            for k, v in (headers or {}).items():
                req.send_header(k, v)
            req.end_headers()
            req.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):  # the client gave up (a timeout test)
            pass


# -- the tiny dataset and images the enrich tests use ----------------------------------------
def write_dataset(root: Path, links: list[tuple[int, int | None, int | None]]) -> None:
    """movies.parquet and links.parquet with the data stage's schemas, for (movieId, imdbId,
    tmdbId) rows; written directly so the tests do not depend on the data stage's code."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from workflows.data.schema import LINKS, MOVIES

    root.mkdir(parents=True, exist_ok=True)
    ids = [m for m, _, _ in links]
    movies = pa.table(
        {
            "movieId": ids,
            "title": [f"Movie {m} (1995)" for m in ids],
            "year": [1995] * len(ids),
            "genres": [["Drama"]] * len(ids),
        },
        schema=MOVIES,
    )
    table = pa.table(
        {
            "movieId": ids,
            "imdbId": [i for _, i, _ in links],
            "tmdbId": [t for _, _, t in links],
        },
        schema=LINKS,
    )
    pq.write_table(movies, root / "movies.parquet")
    pq.write_table(table, root / "links.parquet")


def image_bytes(fmt: str = "JPEG", size: tuple[int, int] = (24, 36), color: int = 90) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", size, (color, 40, 200 - color)).save(buf, fmt)
    return buf.getvalue()


def png_header_only(width: int, height: int) -> bytes:
    """A valid PNG signature and IHDR declaring `width` x `height`, with almost no pixel data:
    the shape of a decompression bomb, a few dozen bytes long."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\0" * 64)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")
