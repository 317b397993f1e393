"""IMDb through cinemagoer as an enrich source: the original series' way to get plots and covers.

cinemagoer is an optional extra, imported only when this source is used. Its web access ("http"
access system) exists up to cinemagoer 2023.5.1; later releases only read IMDb's bulk datasets,
which carry no plots or covers, so this source needs that version (and IMDb pages reachable).
The work is split so that everything after the IMDb lookup (turning cinemagoer's Movie mapping
into a synopsis and a cover URL, downloading and validating the cover) runs without IMDb: the
lookup is a plain callable from a 7-digit IMDb id to a mapping.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from typing import Any

from mmrec.config import EnrichConfig
from mmrec.errors import MmrecError
from mmrec.http import FetchError, HttpClient, retry_call
from workflows.enrich.cache import FAILED, FOUND, MISSING, Fetched, MovieKeys
from workflows.enrich.images import download_image

INSTALL_HINT = 'pip install "cinemagoer==2023.5.1"'
PAGES_PER_MOVIE = 2  # cinemagoer fetches the reference page and the plot summary page
Lookup = Callable[[str], Mapping[str, Any]]


class TransientLookupError(Exception):
    """The lookup failed in a way a retry may fix (network errors, IMDb hiccups)."""


def movie_fields(movie: Mapping[str, Any]) -> tuple[str | None, str | None]:
    """(synopsis text, cover URL) from a cinemagoer Movie (or any mapping with its keys).

    The first plot summary is preferred (it is TMDB-overview sized), then the long synopsis,
    then the plot outline. cinemagoer suffixes summaries with '::author'; that is dropped.
    The full-size cover is preferred over the thumbnail.
    """
    text = None
    for key in ("plot", "synopsis", "plot outline"):
        value = movie.get(key)
        entries = value if isinstance(value, list | tuple) else [value]
        for entry in entries:
            cleaned = _clean_text(entry)
            if cleaned:
                text = cleaned
                break
        if text:
            break
    cover = None
    for key in ("full-size cover url", "cover url"):
        value = movie.get(key)
        if isinstance(value, str) and value.startswith(("http://", "https://")):
            cover = value
            break
    return text, cover


def _clean_text(entry: object) -> str | None:
    if not isinstance(entry, str):
        return None
    text = entry.rsplit("::", 1)[0] if "::" in entry else entry
    return text.strip() or None


def cinemagoer_lookup(timeout_s: float) -> Lookup:
    """A thread-safe lookup backed by cinemagoer's web access (one instance per thread)."""
    try:
        import imdb
    except ImportError:
        raise MmrecError(
            f"--source imdb needs the cinemagoer package, which is not installed: {INSTALL_HINT}"
        ) from None
    if "http" not in imdb.available_access_systems():
        version = getattr(getattr(imdb, "version", None), "__version__", "?")
        raise MmrecError(
            f"the installed cinemagoer {version} has no web access to IMDb (newer releases only "
            f"read IMDb's bulk datasets, which have no plots or covers): {INSTALL_HINT}"
        )
    from imdb import IMDbError

    # cinemagoer logs every failed page with a full traceback before raising; failures are
    # retried here and end up in the report, so its own log would only bury the progress bar.
    logging.getLogger("imdbpy").setLevel(logging.CRITICAL + 1)
    local = threading.local()

    def lookup(imdb_id: str) -> Mapping[str, Any]:
        ia = getattr(local, "ia", None)
        if ia is None:
            ia = imdb.Cinemagoer("http", timeout=max(1, round(timeout_s)), reraiseExceptions=True)
            local.ia = ia
        try:
            return ia.get_movie(imdb_id, info=("main", "plot"))
        except IMDbError as exc:
            raise TransientLookupError(f"IMDb lookup failed: {_cause(exc)}") from None

    return lookup


def _cause(exc: BaseException) -> str:
    """cinemagoer packs the real error into a dict argument; name that, briefly."""
    info = exc.args[0] if exc.args and isinstance(exc.args[0], dict) else {}
    cause = info.get("original exception") or info.get("errmsg") or exc
    text = str(cause).strip().splitlines()[0] if str(cause).strip() else ""
    return f"{type(cause).__name__}: {text}"[:200]


class ImdbSource:
    """Looks a movie up by imdbId, then downloads its cover like any other poster."""

    name = "imdb"

    def __init__(self, cfg: EnrichConfig, client: HttpClient, lookup: Lookup | None = None) -> None:
        self.client = client
        self.max_image_bytes = cfg.max_image_bytes
        self.lookup = lookup if lookup is not None else cinemagoer_lookup(cfg.timeout_s)

    def fingerprint(self, movie: MovieKeys) -> str:
        return f"imdb:{movie.imdbId}"

    def fetch(self, movie: MovieKeys) -> Fetched:
        if movie.imdbId is None:
            return Fetched.both(MISSING, "no imdbId", retry=False)
        imdb_id = f"{movie.imdbId:07d}"

        def once() -> Mapping[str, Any]:
            for _ in range(PAGES_PER_MOVIE - 1):  # the retry helper takes the first token
                self.client.bucket.acquire(self.client.stop)
            self.client.stats.add(requests=PAGES_PER_MOVIE)
            return self.lookup(imdb_id)

        try:
            found = retry_call(
                once,
                self.client.policy,
                is_transient=lambda exc: isinstance(exc, TransientLookupError | TimeoutError),
                describe=lambda exc: self.client.redact(str(exc) or type(exc).__name__),
                bucket=self.client.bucket,
                stop=self.client.stop,
                on_retry=lambda: self.client.stats.add(retries=1),
            )
        except FetchError as exc:
            return Fetched.both(FAILED, exc.reason, retry=exc.retryable)
        if not found or not found.get("title"):
            return Fetched.both(MISSING, "IMDb: no such title", retry=False)

        text, cover = movie_fields(found)
        out = Fetched()
        if text:
            out.synopsis, out.text = FOUND, text
        else:
            out.synopsis, out.synopsis_reason = MISSING, "no plot or synopsis on IMDb"
        if cover is None:
            out.poster, out.poster_reason = MISSING, "no cover on IMDb"
        else:
            limit = self.max_image_bytes
            download_image(self.client, cover, max_bytes=limit, out=out, what="cover")
        return out
