"""One retry policy for every network call: downloads, the metadata APIs, cinemagoer.

Exponential backoff from `backoff_s`, capped at `max_backoff_s`, optionally jittered; a server's
Retry-After (carried by `Transient`) replaces the backoff, capped at `max_retry_after_s`. The
loop is tenacity's; what counts as transient, and what a caller does between attempts (take a
rate-limit token, pause a shared bucket, count retries), are the callers' hooks. Every wait is
interruptible: a set `stop` event ends it with `Cancelled`.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import tenacity

T = TypeVar("T")


class Cancelled(Exception):
    """The run is stopping (Ctrl-C or a fatal error elsewhere): abandon this work quietly."""


class Transient(Exception):
    """A failure worth another attempt; `retry_after` is the server's wait, when it gave one."""

    def __init__(
        self, reason: str, *, retry_after: float | None = None, throttled: bool = False
    ) -> None:
        super().__init__(reason)
        self.retry_after = retry_after
        self.throttled = throttled  # 429: the caller's rate limit should slow down too


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long to retry. `attempts` counts the first try."""

    attempts: int = 5
    backoff_s: float = 0.5
    max_backoff_s: float = 30.0
    max_retry_after_s: float = 120.0
    jitter: bool = True  # scale each backoff by a random factor in [0.5, 1]

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to wait after failed attempt number `attempt` (1-based)."""
        if retry_after is not None:
            return min(max(retry_after, 0.0), self.max_retry_after_s)
        base = min(self.backoff_s * (2 ** (attempt - 1)), self.max_backoff_s)
        return base * random.uniform(0.5, 1.0) if self.jitter else base


def retrying(
    fn: Callable[[], T],
    policy: RetryPolicy,
    *,
    is_transient: Callable[[BaseException], bool],
    before: Callable[[], None] | None = None,
    on_retry: Callable[[BaseException, float], None] | None = None,
    stop: threading.Event | None = None,
) -> T:
    """Call `fn` until it returns, retrying the exceptions `is_transient` accepts.

    `before` runs before every attempt (e.g. take a rate-limit token); `on_retry(exc, wait)`
    after a failed attempt that will be retried, before the wait. When the attempts are spent,
    the last exception is raised as it was; other exceptions propagate at once.
    """

    def wait(state: tenacity.RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome is not None else None
        return policy.delay(state.attempt_number, getattr(exc, "retry_after", None))

    def before_sleep(state: tenacity.RetryCallState) -> None:
        if on_retry is not None and state.outcome is not None and state.next_action is not None:
            on_retry(state.outcome.exception(), state.next_action.sleep)

    def call() -> T:
        check(stop)
        if before is not None:
            before()
        return fn()

    loop = tenacity.Retrying(
        stop=tenacity.stop_after_attempt(max(1, int(policy.attempts))),
        wait=wait,
        retry=tenacity.retry_if_exception(is_transient),
        before_sleep=before_sleep,
        sleep=lambda seconds: sleep(seconds, stop),
        reraise=True,
    )
    return loop(call)


def check(stop: threading.Event | None) -> None:
    if stop is not None and stop.is_set():
        raise Cancelled()


def sleep(seconds: float, stop: threading.Event | None) -> None:
    """`time.sleep`, ended early with Cancelled when `stop` is set."""
    if stop is None:
        time.sleep(seconds)
    elif stop.wait(seconds):
        raise Cancelled()
