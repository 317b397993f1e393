"""Resumable HTTP(S) downloads with retries, for archives of up to a few gigabytes.

Bytes go to `<dest>.part` as they arrive, so an interrupted transfer (a dropped connection, a
timeout, Ctrl-C) resumes from where it stopped with an HTTP Range request, on the next attempt
or the next run. A server that ignores Range (answers 200) is handled by starting over.
Connection errors, timeouts, short bodies and 5xx answers are retried with exponential backoff
(the project's one retry policy, mmrec.retry); other 4xx answers fail at once, since retrying
cannot fix them.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from mmrec.config import DOWNLOAD_BACKOFF_S, DOWNLOAD_RETRIES, DOWNLOAD_TIMEOUT_S
from mmrec.errors import MmrecError
from mmrec.progress import progress
from mmrec.retry import RetryPolicy, retrying
from mmrec.retry import Transient as _Transient

if TYPE_CHECKING:
    import requests

T = TypeVar("T")
CHUNK_BYTES = 1 << 20
MAX_BACKOFF_S = 60.0
_RETRY_STATUS = frozenset({408, 425, 429})
_CONTENT_RANGE = re.compile(r"bytes\s+(\d+)-(\d+)/(\d+|\*)")


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
    import requests

    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = part_path(dest)
    with requests.Session() as session:
        session.headers["User-Agent"] = _user_agent()
        size = _with_retries(
            lambda: _attempt(session, url, part, timeout_s, desc or dest.name),
            f"downloading {url}",
            retries,
            backoff_s,
        )
    os.replace(part, dest)
    return size


def fetch_text(
    url: str,
    *,
    timeout_s: float = DOWNLOAD_TIMEOUT_S,
    retries: int = DOWNLOAD_RETRIES,
    backoff_s: float = DOWNLOAD_BACKOFF_S,
    max_bytes: int = 1 << 20,
) -> str:
    """GET a small text resource (a checksum file) with the same retry policy."""
    import requests

    def attempt() -> str:
        with requests.get(
            url, timeout=timeout_s, stream=True, headers={"User-Agent": _user_agent()}
        ) as r:
            _check_status(r, url)
            body = r.raw.read(max_bytes + 1, decode_content=True)
            if len(body) > max_bytes:
                raise MmrecError(f"{url}: larger than {max_bytes} bytes; not a checksum file")
            expected = r.headers.get("Content-Length")
            if expected is not None and expected.isdigit() and len(body) != int(expected):
                raise _Transient(f"body ended at {len(body)} of {expected} bytes")
            return body.decode("utf-8", errors="replace")

    return _with_retries(attempt, f"fetching {url}", retries, backoff_s)


def _with_retries(fn: Callable[[], T], what: str, retries: int, backoff_s: float) -> T:
    """`fn` under the retry policy; each attempt of a download resumes the partial file."""
    import requests

    invalid = (
        requests.exceptions.InvalidURL,
        requests.exceptions.MissingSchema,
        requests.exceptions.InvalidSchema,
    )

    def transient(exc: BaseException) -> bool:
        return isinstance(exc, _Transient | requests.RequestException) and not isinstance(
            exc, invalid
        )

    attempts = max(1, int(retries))
    policy = RetryPolicy(
        attempts=attempts, backoff_s=backoff_s, max_backoff_s=MAX_BACKOFF_S, jitter=False
    )
    try:
        return retrying(fn, policy, is_transient=transient)
    except invalid as exc:
        raise MmrecError(f"{what}: invalid URL ({exc})") from exc
    except (_Transient, requests.RequestException) as exc:
        plural = "attempt" if attempts == 1 else "attempts"
        raise MmrecError(f"{what} failed after {attempts} {plural}: {_short(exc)}") from exc


def _attempt(session: requests.Session, url: str, part: Path, timeout_s: float, desc: str) -> int:
    offset = part.stat().st_size if part.exists() else 0
    headers = {"Accept-Encoding": "identity"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    with session.get(url, headers=headers, stream=True, timeout=timeout_s) as r:
        if r.status_code == 416 and offset:
            # Our partial file is as long as (or longer than) the whole resource.
            m = re.search(r"/(\d+)\s*$", r.headers.get("Content-Range", ""))
            if m is not None and int(m.group(1)) == offset:
                return offset
            part.unlink()
            raise _Transient(f"server refused to resume at byte {offset}; starting over")
        _check_status(r, url)
        if r.status_code == 206:
            start, _end, total = _content_range(r.headers.get("Content-Range", ""))
            if start != offset:
                part.unlink()
                raise _Transient(f"server resumed at byte {start}, not {offset}; starting over")
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
            for chunk in _body_chunks(r):
                f.write(chunk)
                f.flush()
                bar.update(len(chunk))
    size = part.stat().st_size
    if total is not None and size != total:
        if size > total:
            part.unlink()
        raise _Transient(f"transfer ended at byte {size} of {total}")
    return size


def _body_chunks(r: requests.Response) -> Iterator[bytes]:
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
            raise _Transient(str(exc)) from exc
        if not chunk:
            return
        yield chunk


def _check_status(r: requests.Response, url: str) -> None:
    code = r.status_code
    if code >= 500 or code in _RETRY_STATUS:
        raise _Transient(f"HTTP {code} {r.reason or ''}".strip())
    if code >= 400:
        raise MmrecError(f"{url}: HTTP {code} {r.reason or ''}".strip())
    if code not in (200, 206):
        raise MmrecError(f"{url}: unexpected HTTP {code} {r.reason or ''}".strip())


def _content_range(value: str) -> tuple[int, int, int | None]:
    m = _CONTENT_RANGE.match(value.strip())
    if m is None:
        raise _Transient(f"unusable Content-Range header {value!r}")
    total = None if m.group(3) == "*" else int(m.group(3))
    return int(m.group(1)), int(m.group(2)), total


def _short(exc: BaseException | None) -> str:
    """One line for the CLI: requests' messages nest several exception reprs."""
    text = str(exc) if exc is not None else "unknown error"
    if "Connection refused" in text:
        return "connection refused"
    if "IncompleteRead" in text or "Connection broken" in text:
        return "connection broken before the body was complete"
    if "timed out" in text.lower():
        return "timed out"
    return text.splitlines()[0][:300] if text else type(exc).__name__


def _user_agent() -> str:
    from mmrec import __version__

    return f"mmrec/{__version__}"
