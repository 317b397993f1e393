"""TMDB API v3 as an enrich source: the overview as synopsis, the poster at a chosen size.

Movies are looked up by the tmdbId in links.parquet (GET {base}/movie/{id}?language=en-US). The
credential comes from the environment only: TMDB_READ_ACCESS_TOKEN (sent as a Bearer header,
preferred since it keeps the secret out of URLs) or TMDB_API_KEY (sent as the api_key query
parameter). It is sent to the API host only, never to the image host, and every message that
could contain it is redacted by the HTTP client.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping

from mmrec.config import EnrichConfig
from mmrec.errors import MmrecError
from mmrec.http import FetchError, HttpClient
from workflows.enrich.cache import FAILED, FOUND, MISSING, Fetched, MovieKeys
from workflows.enrich.images import download_image

API_KEY_ENV = "TMDB_API_KEY"
TOKEN_ENV = "TMDB_READ_ACCESS_TOKEN"
MAX_JSON_BYTES = 2 << 20
_POSTER_PATH = re.compile(r"^/[A-Za-z0-9._-]+$")


def tmdb_secrets(environ: Mapping[str, str] | None = None) -> tuple[str | None, str | None]:
    """(api_key, read_token) from the environment; MmrecError when neither is set."""
    env = os.environ if environ is None else environ
    api_key = (env.get(API_KEY_ENV) or "").strip() or None
    token = (env.get(TOKEN_ENV) or "").strip() or None
    if api_key is None and token is None:
        raise MmrecError(
            f"--source tmdb needs a TMDB credential: set {TOKEN_ENV} (API read access token) "
            f"or {API_KEY_ENV} (v3 API key) in the environment"
        )
    return api_key, token


class TmdbSource:
    """Fetches one movie's details and poster; the stage validates and stores the poster."""

    name = "tmdb"

    def __init__(
        self, cfg: EnrichConfig, client: HttpClient, api_key: str | None, token: str | None
    ) -> None:
        self.base = cfg.tmdb_base_url.rstrip("/")
        self.image_base = cfg.tmdb_image_base_url.rstrip("/")
        self.size = cfg.poster_size.strip("/")
        self.max_image_bytes = cfg.max_image_bytes
        self.client = client
        self._params = {"language": "en-US"}
        self._headers = {"Accept": "application/json"}
        if token:
            self._headers["Authorization"] = f"Bearer {token}"
        elif api_key:
            self._params["api_key"] = api_key

    def fingerprint(self, movie: MovieKeys) -> str:
        return f"tmdb:{movie.tmdbId}:{self.size}"

    def fetch(self, movie: MovieKeys) -> Fetched:
        if movie.tmdbId is None:
            return Fetched.both(MISSING, "no tmdbId", retry=False)
        try:
            resp = self.client.get(
                f"{self.base}/movie/{movie.tmdbId}",
                params=self._params,
                headers=self._headers,
                max_bytes=MAX_JSON_BYTES,
                what="TMDB details",
            )
        except FetchError as exc:
            return Fetched.both(FAILED, exc.reason, retry=exc.retryable)
        if resp.status == 401:
            raise MmrecError(
                f"TMDB rejected the credential (HTTP 401): check {TOKEN_ENV} or {API_KEY_ENV}"
            )
        if resp.status == 404:
            return Fetched.both(MISSING, "TMDB 404: no such movie", retry=False)
        if resp.status != 200:
            return Fetched.both(FAILED, f"TMDB details: HTTP {resp.status}", retry=True)
        try:
            details = resp.json()
            if not isinstance(details, dict):
                raise ValueError("not a JSON object")
        except ValueError as exc:
            return Fetched.both(FAILED, f"TMDB details: invalid JSON ({exc})", retry=True)

        out = Fetched()
        overview = details.get("overview")
        if isinstance(overview, str) and overview.strip():
            out.synopsis, out.text = FOUND, overview.strip()
        else:
            out.synopsis, out.synopsis_reason = MISSING, "empty overview"
        self._poster(details.get("poster_path"), out)
        return out

    def _poster(self, poster_path: object, out: Fetched) -> None:
        if not poster_path:
            out.poster, out.poster_reason = MISSING, "no poster_path"
            return
        if not isinstance(poster_path, str) or not _POSTER_PATH.match(poster_path):
            out.poster, out.poster_reason = FAILED, f"unexpected poster_path {poster_path!r:.80}"
            return
        url = f"{self.image_base}/{self.size}{poster_path}"
        download_image(self.client, url, max_bytes=self.max_image_bytes, out=out, what="poster")
