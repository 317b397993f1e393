"""A Hugging Face hub on 127.0.0.1: the two routes `snapshot_download` uses, over real HTTP.

`GET /api/models/<repo>/revision/<rev>` answers the repository's commit and file list;
`HEAD|GET /<repo>/resolve/<rev>/<file>` serves a file with the headers the hub sends (the commit,
an ETag that is the git blob sha1, or for `*.safetensors` the LFS sha256 with its size). Bodies go
through the loopback server's faults, so a test can truncate or corrupt them in transit.
"""

from __future__ import annotations

import hashlib
import json
import re
from urllib.parse import unquote, urlsplit

from loopback_http import LoopbackServer, Request, _Handler

COMMIT = "0123456789abcdef0123456789abcdef01234567"
_API = re.compile(r"^/api/models/(?P<repo>[^/]+/[^/]+)(?:/revision/(?P<rev>[^/]+))?$")
_BYTES = re.compile(r"^bytes=(\d+)-$")
_RESOLVE = re.compile(r"^/(?P<repo>[^/]+/[^/]+)/resolve/(?P<rev>[^/]+)/(?P<file>.+)$")


def git_blob_sha1(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data, usedforsecurity=False).hexdigest()


class _HubHandler(_Handler):
    def _serve(self, body: bool) -> None:
        owner = self.owner
        path = unquote(urlsplit(self.path).path)
        owner._record(Request(self.command, path, dict(self.headers.items())))
        if m := _API.match(path):
            repo = owner.root / m["repo"]
            if not repo.is_dir():
                self._plain(404, "repository not found\n")
                return
            files = sorted(p.relative_to(repo).as_posix() for p in repo.rglob("*") if p.is_file())
            info = {"id": m["repo"], "sha": COMMIT, "siblings": [{"rfilename": f} for f in files]}
            self._json(info, body)
            return
        m = _RESOLVE.match(path)
        file = (owner.root / m["repo"] / m["file"]).resolve() if m else None
        if file is None or not file.is_relative_to(owner.root) or not file.is_file():
            self._plain(404, "entry not found\n")
            return
        data = file.read_bytes()
        start = 0
        if body and (m := _BYTES.match(self.headers.get("Range", ""))):  # a resumed transfer
            start = min(int(m[1]), len(data))
        self.send_response(206 if start else 200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(data) - start))
        if start:
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        self.send_header("X-Repo-Commit", COMMIT)
        if file.suffix == ".safetensors":  # LFS: the hub names these by their sha256
            self.send_header("X-Linked-Etag", f'"{hashlib.sha256(data).hexdigest()}"')
            self.send_header("X-Linked-Size", str(len(data)))
        self.send_header("ETag", f'"{git_blob_sha1(data)}"')
        self.end_headers()
        if body:
            self._send_body(file, path, start, len(data))

    def _json(self, obj: dict, body: bool) -> None:
        data = json.dumps(obj).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if body:
            self.wfile.write(data)


class FakeHub(LoopbackServer):
    """Serve `root/<org>/<name>/...` folders as hub model repositories."""

    handler_base = _HubHandler

    @property
    def endpoint(self) -> str:
        return self.url.rstrip("/")
