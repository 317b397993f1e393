"""The project's one HTTP client: dataset downloads and the enrich sources' API and image requests.

One class, `HttpClient`, opens the sessions (one requests.Session per thread, since Session is not
documented as thread-safe), takes a token from a bucket shared by all threads before every attempt,
classifies failures, and retries the transient ones with the project's one retry policy
(mmrec.retry). Its callers differ only in what they ask for:

- `get`: a bounded body (the enrich sources: TMDB JSON, posters). Every status that is not worth
  another attempt comes back as a `Response` for the caller to interpret (200, 404, 401, ...);
  a request without a usable answer raises `FetchError`.
- `download`: a file of up to a few gigabytes, resumable. Bytes go to `<dest>.part` as they
  arrive, so an interrupted transfer (a dropped connection, a timeout, Ctrl-C) resumes from where
  it stopped with an HTTP Range request, on the next attempt or the next run; a server that
  ignores Range (answers 200) is handled by starting over. `fetch_text`: a small text file (a
  checksum). Both raise `MmrecError`, at once for other 4xx answers since retrying cannot fix them.

What is retried, for every caller (one classification): connection errors, timeouts, 5xx, 408
Request Timeout, 425 Too Early and 429 Too Many Requests, with the server's Retry-After, when it
gives one, in place of the backoff; a 429 also pauses the whole bucket, not just one thread. This
is the union of what the two clients it replaced retried: the downloads retried all of these, the
enrich client all but 408 and 425, which also mean "the same request may succeed later" (before,
enrich journaled them as failures for the next run; now the run retries them first). Downloads
also retry short bodies and unusable Content-Range answers. Invalid URLs are never retried.
How often and how long is the caller's `RetryPolicy`: `download_file` and `fetch_text` build the
downloads' (DOWNLOAD_* attempts, exponential backoff capped at 60 s, no jitter).

API keys travel in URLs, and requests/urllib3 put URLs into exception messages and debug logs, so
every message leaving the client is redacted, and urllib3's loggers are filtered while a client
is open. `requests` is imported inside the functions: importing this module stays cheap for the
command line.
"""

from __future__ import annotations

import contextlib
import email.utils
import logging
import os
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from mmrec.config import DOWNLOAD_BACKOFF_S, DOWNLOAD_RETRIES, DOWNLOAD_TIMEOUT_S
from mmrec.errors import MmrecError
from mmrec.progress import progress
from mmrec.retry import Cancelled, RetryPolicy, Transient, retrying
from mmrec.retry import check as _check
from mmrec.retry import sleep as _sleep

if TYPE_CHECKING:
    import requests

T = TypeVar("T")
__all__ = [
    "Cancelled",
    "FetchError",
    "HttpClient",
    "Response",
    "RetryPolicy",
    "TokenBucket",
    "download_file",
    "fetch_text",
    "retry_call",
]

REDACTED = "***"
CHUNK_BYTES = 1 << 20
DOWNLOAD_MAX_BACKOFF_S = 60.0
RETRY_STATUSES = frozenset({408, 425, 429})  # and every 5xx
# The loggers that print request URLs (with their query strings) at DEBUG/WARNING level.
_URL_LOGGERS = ("urllib3.connectionpool", "urllib3.util.retry", "urllib3.connection")
_CONTENT_RANGE = re.compile(r"bytes\s+(\d+)-(\d+)/(\d+|\*)")


class FetchError(Exception):
    """A request that did not produce an answer worth interpreting; the message is redacted.

    `retryable` says whether a later run may succeed (network trouble, 5xx) or not (too large).
    """

    def __init__(self, reason: str, *, retryable: bool = True) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retryable = retryable


class _InvalidURL(Exception):
    """A URL requests cannot send (no scheme, a bad host): no attempt can succeed."""


class TokenBucket:
    """Thread-safe rate limiter: at most `rate_per_s` acquisitions per second, `burst` at once.

    Implemented as a virtual schedule (each caller reserves the next free slot and sleeps until
    it), which keeps the lock held only for arithmetic. `rate_per_s <= 0` means unlimited.
    """

    def __init__(self, rate_per_s: float, burst: float = 1.0) -> None:
        self.rate = float(rate_per_s)
        self.burst = max(1.0, float(burst))
        self._next = 0.0
        self._lock = threading.Lock()

    def acquire(self, stop: threading.Event | None = None) -> None:
        if self.rate <= 0:
            return
        interval = 1.0 / self.rate
        with self._lock:
            now = time.monotonic()
            slot = max(self._next, now - (self.burst - 1.0) * interval)
            self._next = slot + interval
        wait = slot - now
        if wait > 0:
            _sleep(wait, stop)

    def pause(self, seconds: float) -> None:
        """Nobody gets a token for `seconds` (the server said so with Retry-After)."""
        if self.rate <= 0 or seconds <= 0:
            return
        with self._lock:
            self._next = max(self._next, time.monotonic() + seconds)


def parse_retry_after(value: str | None) -> float | None:
    """Retry-After as seconds: either delta-seconds or an HTTP date. None when absent/garbled."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - time.time())


def redact(text: str, secrets: Iterable[str]) -> str:
    """`text` with every secret (and any api_key=... query value) replaced by ***."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, REDACTED)
    return re.sub(r"(?i)(api_key=)[^&\s'\")]+", rf"\g<1>{REDACTED}", text)


def retry_call(
    fn: Callable[[], T],
    policy: RetryPolicy,
    *,
    is_transient: Callable[[BaseException], bool],
    describe: Callable[[BaseException], str],
    bucket: TokenBucket | None = None,
    stop: threading.Event | None = None,
    on_retry: Callable[[], None] | None = None,
) -> T:
    """Call `fn` until it succeeds, retrying transient exceptions with backoff.

    Raises FetchError(describe(last exception)) once the attempts are spent; other exceptions
    propagate unchanged. Used for clients that are not plain HTTP (cinemagoer).
    """
    try:
        return retrying(
            fn,
            policy,
            is_transient=is_transient,
            before=(lambda: bucket.acquire(stop)) if bucket is not None else None,
            on_retry=(lambda _exc, _wait: on_retry()) if on_retry is not None else None,
            stop=stop,
        )
    except Cancelled:
        raise
    except Exception as exc:
        if not is_transient(exc):
            raise
        raise FetchError(
            f"{describe(exc)} (after {policy.attempts} attempts)", retryable=True
        ) from None


@dataclass
class Response:
    status: int
    body: bytes
    headers: Mapping[str, str]

    def json(self) -> Any:
        import json

        return json.loads(self.body)


@dataclass
class HttpStats:
    requests: int = 0
    retries: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, requests: int = 0, retries: int = 0) -> None:
        with self.lock:
            self.requests += requests
            self.retries += retries


def part_path(dest: Path) -> Path:
    """Where the bytes of `dest` accumulate until the transfer is complete."""
    return dest.with_name(dest.name + ".part")


def download_file(
    url: str,
    dest: str | os.PathLike[str],
    *,
    timeout_s: float = DOWNLOAD_TIMEOUT_S,
    retries: int = DOWNLOAD_RETRIES,
    backoff_s: float = DOWNLOAD_BACKOFF_S,
    desc: str | None = None,
) -> int:
    """Download `url` to `dest` (via `dest.part`, renamed when complete); return its size.

    `retries` is the number of attempts; each one resumes the partial file.
    """
    with _download_client(timeout_s, retries, backoff_s) as client:
        return client.download(url, dest, desc=desc)


def fetch_text(
    url: str,
    *,
    timeout_s: float = DOWNLOAD_TIMEOUT_S,
    retries: int = DOWNLOAD_RETRIES,
    backoff_s: float = DOWNLOAD_BACKOFF_S,
    max_bytes: int = 1 << 20,
) -> str:
    """GET a small text resource (a checksum file) with the downloads' retry policy."""
    with _download_client(timeout_s, retries, backoff_s) as client:
        return client.fetch_text(url, max_bytes=max_bytes)


def _download_client(timeout_s: float, retries: int, backoff_s: float) -> HttpClient:
    """No rate limit, `retries` attempts, exponential backoff from `backoff_s`, no jitter."""
    policy = RetryPolicy(
        attempts=max(1, int(retries)),
        backoff_s=backoff_s,
        max_backoff_s=DOWNLOAD_MAX_BACKOFF_S,
        jitter=False,
    )
    return HttpClient(policy=policy, timeout_s=timeout_s)


class HttpClient:
    """GET with a shared token bucket, per-request timeout, bounded bodies and retries; downloads.

    `bucket` defaults to no rate limit and `stop` to an event nobody sets; a set `stop` ends
    waits, attempts and transfers with `Cancelled` (a download keeps its `.part` for a resume).
    Use it as a context manager, or call `close()`.
    """

    def __init__(
        self,
        *,
        policy: RetryPolicy,
        timeout_s: float,
        bucket: TokenBucket | None = None,
        secrets: Iterable[str] = (),
        stop: threading.Event | None = None,
        user_agent: str | None = None,
    ) -> None:
        from mmrec import __version__

        self.bucket = bucket if bucket is not None else TokenBucket(0)
        self.policy = policy
        self.timeout_s = timeout_s
        self.secrets = tuple(s for s in secrets if s)
        self.stop = stop or threading.Event()
        self.stats = HttpStats()
        self.user_agent = user_agent or f"mmrec/{__version__}"
        self._local = threading.local()
        self._sessions: list[Any] = []
        self._sessions_lock = threading.Lock()
        self._filter = _RedactFilter(self.secrets)
        for name in _URL_LOGGERS:
            logging.getLogger(name).addFilter(self._filter)

    def __enter__(self) -> HttpClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        for name in _URL_LOGGERS:
            logging.getLogger(name).removeFilter(self._filter)
        with self._sessions_lock:
            for s in self._sessions:
                s.close()
            self._sessions.clear()

    def redact(self, text: str) -> str:
        return redact(text, self.secrets)

    def _session(self) -> Any:
        s = getattr(self._local, "session", None)
        if s is None:
            import requests

            s = requests.Session()
            s.headers["User-Agent"] = self.user_agent
            self._local.session = s
            with self._sessions_lock:
                self._sessions.append(s)
        return s

    # -- the one retry loop and the one classification

    def _retrying(self, attempt: Callable[[], T]) -> T:
        """`attempt` under the policy: a token before each try, `Transient` failures retried."""

        def counted() -> T:
            _check(self.stop)  # the token may have come after a stop
            self.stats.add(requests=1)
            return attempt()

        def on_retry(exc: BaseException, wait: float) -> None:
            self.stats.add(retries=1)
            if getattr(exc, "throttled", False):
                self.bucket.pause(wait)  # the limit is per client: every thread waits

        return retrying(
            counted,
            self.policy,
            is_transient=lambda exc: isinstance(exc, Transient),
            before=lambda: self.bucket.acquire(self.stop),
            on_retry=on_retry,
            stop=self.stop,
        )

    @contextlib.contextmanager
    def _translated(self) -> Iterator[None]:
        """requests' exceptions as the client's: `_InvalidURL`, or `Transient` for the rest."""
        import requests

        try:
            yield
        except (
            requests.exceptions.InvalidURL,
            requests.exceptions.MissingSchema,
            requests.exceptions.InvalidSchema,
        ) as exc:
            raise _InvalidURL(self.redact(_first_line(exc))[:300]) from None
        except requests.RequestException as exc:
            raise Transient(self._describe(exc)) from None

    def _describe(self, exc: BaseException) -> str:
        """A network failure in one redacted line."""
        import requests

        text = _first_line(exc)
        if isinstance(exc, requests.Timeout) or "timed out" in text.lower():
            return f"timed out after {self.timeout_s:g} s"
        return f"connection error: {self.redact(text)[:300]}"

    # -- bounded GETs (the enrich sources)

    def get(
        self,
        url: str,
        *,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        max_bytes: int,
        what: str,
    ) -> Response:
        """GET `url`; raise FetchError (redacted, naming `what`) when no usable answer came back."""

        def attempt() -> Response:
            with self._translated():
                resp = self._get_once(url, params, headers, max_bytes)
            _raise_if_transient(resp.status, resp.headers)
            return resp

        try:
            return self._retrying(attempt)
        except Transient as exc:
            raise FetchError(
                f"{what}: {exc} (after {self.policy.attempts} attempts)", retryable=True
            ) from None
        except _InvalidURL as exc:  # retryable: a later run may have the URL fixed
            raise FetchError(f"{what}: invalid URL ({exc})", retryable=True) from None

    def _get_once(
        self,
        url: str,
        params: Mapping[str, str] | None,
        headers: Mapping[str, str] | None,
        max_bytes: int,
    ) -> Response:
        """One request; the body is read in chunks, bounded in size and in total time."""
        deadline = time.monotonic() + self.timeout_s
        with self._session().get(
            url, params=params, headers=headers, timeout=self.timeout_s, stream=True
        ) as r:
            declared = r.headers.get("Content-Length")
            too_big = declared is not None and declared.isdigit() and int(declared) > max_bytes
            if r.status_code == 200 and too_big:
                raise FetchError(
                    f"response of {int(declared):,} bytes exceeds the limit of {max_bytes:,}",
                    retryable=False,
                )
            body = self._bounded_body(r, max_bytes, deadline)
            if body is None:
                raise FetchError(
                    f"response exceeds the limit of {max_bytes:,} bytes", retryable=False
                )
            return Response(r.status_code, body, dict(r.headers))

    def _bounded_body(self, r: requests.Response, max_bytes: int, deadline: float) -> bytes | None:
        """The body, or None once it passes `max_bytes`; requests.Timeout past `deadline`."""
        import requests

        chunks: list[bytes] = []
        size = 0
        for chunk in r.iter_content(chunk_size=64 << 10):
            size += len(chunk)
            if size > max_bytes:
                return None
            chunks.append(chunk)
            if time.monotonic() > deadline:
                raise requests.Timeout("body too slow")
            _check(self.stop)
        return b"".join(chunks)

    # -- files (the dataset downloads)

    def fetch_text(self, url: str, *, max_bytes: int = 1 << 20) -> str:
        """GET a small text resource (a checksum file); MmrecError when there is none."""

        def attempt() -> str:
            deadline = time.monotonic() + self.timeout_s
            with (
                self._translated(),
                self._session().get(
                    url,
                    headers={"Accept-Encoding": "identity"},
                    timeout=self.timeout_s,
                    stream=True,
                ) as r,
            ):
                self._check_file_status(r, url)
                body = self._bounded_body(r, max_bytes, deadline)
                if body is None:
                    raise MmrecError(
                        self.redact(f"{url}: larger than {max_bytes} bytes; not a checksum file")
                    )
                expected = r.headers.get("Content-Length")
                if expected is not None and expected.isdigit() and len(body) != int(expected):
                    raise Transient(f"body ended at {len(body)} of {expected} bytes")
                return body.decode("utf-8", errors="replace")

        return self._file_retrying(attempt, f"fetching {url}")

    def download(self, url: str, dest: str | os.PathLike[str], *, desc: str | None = None) -> int:
        """Download `url` to `dest` (via `dest.part`, renamed when complete); return its size.

        Each attempt resumes the partial file.
        """
        dest = Path(dest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        part = part_path(dest)
        size = self._file_retrying(
            lambda: self._download_once(url, part, desc or dest.name), f"downloading {url}"
        )
        os.replace(part, dest)
        return size

    def _file_retrying(self, attempt: Callable[[], T], what: str) -> T:
        """`_retrying`, with the downloads' one-line MmrecError once the attempts are spent."""
        attempts = max(1, int(self.policy.attempts))
        try:
            return self._retrying(attempt)
        except _InvalidURL as exc:
            raise MmrecError(self.redact(f"{what}: invalid URL ({exc})")) from None
        except Transient as exc:
            plural = "attempt" if attempts == 1 else "attempts"
            message = f"{what} failed after {attempts} {plural}: {_short(str(exc))}"
            raise MmrecError(self.redact(message)) from None

    def _download_once(self, url: str, part: Path, desc: str) -> int:
        offset = part.stat().st_size if part.exists() else 0
        headers = {"Accept-Encoding": "identity"}
        if offset:
            headers["Range"] = f"bytes={offset}-"
        with (
            self._translated(),
            self._session().get(url, headers=headers, stream=True, timeout=self.timeout_s) as r,
        ):
            if r.status_code == 416 and offset:
                # Our partial file is as long as (or longer than) the whole resource.
                m = re.search(r"/(\d+)\s*$", r.headers.get("Content-Range", ""))
                if m is not None and int(m.group(1)) == offset:
                    return offset
                part.unlink()
                raise Transient(f"server refused to resume at byte {offset}; starting over")
            self._check_file_status(r, url)
            if r.status_code == 206:
                start, _end, total = _content_range(r.headers.get("Content-Range", ""))
                if start != offset:
                    part.unlink()
                    raise Transient(f"server resumed at byte {start}, not {offset}; starting over")
                mode = "ab"
            else:  # 200: a fresh start, whether or not we asked for a range
                offset, mode = 0, "wb"
                length = r.headers.get("Content-Length")
                total = int(length) if length is not None and length.isdigit() else None
            with (
                open(part, mode) as f,
                progress(
                    total=total,
                    initial=offset,
                    unit="B",
                    unit_scale=True,
                    unit_divisor=1024,
                    desc=desc,
                ) as bar,
            ):
                for chunk in self._raw_chunks(r):
                    f.write(chunk)
                    f.flush()
                    bar.update(len(chunk))
                    _check(self.stop)  # what arrived is on disk: a later run resumes there
        size = part.stat().st_size
        if total is not None and size != total:
            if size > total:
                part.unlink()
            raise Transient(f"transfer ended at byte {size} of {total}")
        return size

    def _raw_chunks(self, r: requests.Response) -> Iterator[bytes]:
        """The raw body as it arrives, so that bytes received before a break reach the disk.

        `iter_content` reads fixed-size blocks, and urllib3 drops a whole block's bytes when the
        connection breaks inside it; `read1` hands over whatever has arrived. Raw bytes (no
        Content-Encoding decoding): Range offsets count raw bytes.
        """
        import urllib3

        read1 = getattr(r.raw, "read1", None)
        if read1 is None:  # urllib3 1.x: small blocks, so a break loses little
            yield from r.iter_content(64 * 1024)
            return
        while True:
            try:
                chunk = read1(CHUNK_BYTES, decode_content=False)
            except (urllib3.exceptions.HTTPError, OSError) as exc:
                raise Transient(self._describe(exc)) from None
            if not chunk:
                return
            yield chunk

    def _check_file_status(self, r: requests.Response, url: str) -> None:
        """Transient statuses raise Transient; other failures MmrecError, since retrying cannot help."""
        code = r.status_code
        _raise_if_transient(code, r.headers)
        if code >= 400:
            raise MmrecError(self.redact(f"{url}: HTTP {code} {r.reason or ''}".strip()))
        if code not in (200, 206):
            raise MmrecError(self.redact(f"{url}: unexpected HTTP {code} {r.reason or ''}".strip()))


def _raise_if_transient(status: int, headers: Mapping[str, str]) -> None:
    """Raise Transient for the statuses worth another attempt (see the module's docstring)."""
    if status < 500 and status not in RETRY_STATUSES:
        return
    retry_after = parse_retry_after(headers.get("Retry-After"))
    if status == 429:
        raise Transient("HTTP 429 (rate limited)", retry_after=retry_after, throttled=True)
    raise Transient(f"HTTP {status}", retry_after=retry_after)


def _content_range(value: str) -> tuple[int, int, int | None]:
    m = _CONTENT_RANGE.match(value.strip())
    if m is None:
        raise Transient(f"unusable Content-Range header {value!r}")
    total = None if m.group(3) == "*" else int(m.group(3))
    return int(m.group(1)), int(m.group(2)), total


def _short(text: str) -> str:
    """One line for the command line: requests' messages nest several exception reprs."""
    if "Connection refused" in text:
        return "connection refused"
    if "IncompleteRead" in text or "Connection broken" in text:
        return "connection broken before the body was complete"
    if "timed out" in text.lower():
        return "timed out"
    return text.splitlines()[0][:300] if text else "unknown error"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]


class _RedactFilter(logging.Filter):
    """Rewrites log records so secrets in URLs never reach a handler."""

    def __init__(self, secrets: tuple[str, ...]) -> None:
        super().__init__()
        self.secrets = secrets

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a malformed record: drop its arguments rather than risk a leak
            message = str(record.msg)
        record.msg = redact(message, self.secrets)
        record.args = ()
        return True
