"""Polite, robust HTTP for the enrich sources: token bucket, retries with backoff, redaction.

Metadata APIs throttle (TMDB answers 429 with Retry-After) and fail transiently (timeouts, 5xx), so
every request waits for a token from one bucket shared by all worker threads, and transient
failures are retried by the project's one retry policy (mmrec.retry); a 429 pauses the whole
bucket, not just one thread.
API keys travel in URLs, and requests/urllib3 put URLs into exception messages and debug logs, so
every reason string leaving this module is redacted, and urllib3's loggers are filtered while a
client is open.
"""

from __future__ import annotations

import email.utils
import logging
import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from mmrec.retry import Cancelled, RetryPolicy, Transient, retrying
from mmrec.retry import check as _check
from mmrec.retry import sleep as _sleep

T = TypeVar("T")
__all__ = ["Cancelled", "FetchError", "HttpClient", "RetryPolicy", "TokenBucket", "retry_call"]

REDACTED = "***"
# The loggers that print request URLs (with their query strings) at DEBUG/WARNING level.
_URL_LOGGERS = ("urllib3.connectionpool", "urllib3.util.retry", "urllib3.connection")


class FetchError(Exception):
    """A request that did not produce an answer worth interpreting; the message is redacted.

    `retryable` says whether a later run may succeed (network trouble, 5xx) or not (too large).
    """

    def __init__(self, reason: str, *, retryable: bool = True) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retryable = retryable


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


class HttpClient:
    """GET with a shared token bucket, per-request timeout, bounded bodies and retries.

    Retried: connection errors, timeouts, 429 (waiting Retry-After, pausing the bucket) and 5xx.
    Every other status is returned for the caller to interpret (200, 404, 401, ...).
    One requests.Session per thread, since Session is not documented as thread-safe.
    """

    def __init__(
        self,
        *,
        bucket: TokenBucket,
        policy: RetryPolicy,
        timeout_s: float,
        secrets: Iterable[str] = (),
        stop: threading.Event | None = None,
        user_agent: str = "mmrec-enrich",
    ) -> None:
        self.bucket = bucket
        self.policy = policy
        self.timeout_s = timeout_s
        self.secrets = tuple(s for s in secrets if s)
        self.stop = stop or threading.Event()
        self.stats = HttpStats()
        self.user_agent = user_agent
        self._local = threading.local()
        self._sessions: list[Any] = []
        self._sessions_lock = threading.Lock()
        self._filter = _RedactFilter(self.secrets)
        for name in _URL_LOGGERS:
            logging.getLogger(name).addFilter(self._filter)

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
        import requests

        def attempt() -> Response:
            _check(self.stop)  # the token may have come after a stop
            self.stats.add(requests=1)
            try:
                resp = self._attempt(url, params, headers, max_bytes)
            except requests.Timeout as exc:
                raise Transient(f"{what}: timed out after {self.timeout_s:g} s") from exc
            except requests.RequestException as exc:
                reason = self.redact(_first_line(exc))[:300]
                raise Transient(f"{what}: connection error: {reason}") from None
            retry_after = parse_retry_after(resp.headers.get("Retry-After"))
            if resp.status == 429:
                raise Transient(
                    f"{what}: HTTP 429 (rate limited)", retry_after=retry_after, throttled=True
                )
            if resp.status >= 500:
                raise Transient(f"{what}: HTTP {resp.status}", retry_after=retry_after)
            return resp

        def on_retry(exc: BaseException, wait: float) -> None:
            self.stats.add(retries=1)
            if getattr(exc, "throttled", False):
                self.bucket.pause(wait)  # the limit is per client: every thread waits

        try:
            return retrying(
                attempt,
                self.policy,
                is_transient=lambda exc: isinstance(exc, Transient),
                before=lambda: self.bucket.acquire(self.stop),
                on_retry=on_retry,
                stop=self.stop,
            )
        except Transient as exc:
            raise FetchError(
                f"{exc} (after {self.policy.attempts} attempts)", retryable=True
            ) from None

    def _attempt(
        self,
        url: str,
        params: Mapping[str, str] | None,
        headers: Mapping[str, str] | None,
        max_bytes: int,
    ) -> Response:
        """One request; the body is read in chunks, bounded in size and in total time."""
        import requests

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
            chunks: list[bytes] = []
            size = 0
            for chunk in r.iter_content(chunk_size=64 << 10):
                size += len(chunk)
                if size > max_bytes:
                    raise FetchError(
                        f"response exceeds the limit of {max_bytes:,} bytes", retryable=False
                    )
                chunks.append(chunk)
                if time.monotonic() > deadline:
                    raise requests.Timeout("body too slow")
                _check(self.stop)
            return Response(r.status_code, b"".join(chunks), dict(r.headers))


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


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]
