"""The one HTTP client (mmrec.http) on the paths its two callers now share, against 127.0.0.1.

The download and enrich end-to-end tests cover each caller's own behaviour; these cover what the
unification gave each of them: downloads get the client's redaction and stop event, enrich gets
the downloads' wider set of retried statuses (408, 425).
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from loopback_http import LoopbackServer

from mmrec.errors import MmrecError
from mmrec.http import HttpClient
from mmrec.retry import Cancelled, RetryPolicy

SECRET = "s3cret-token"


@pytest.fixture
def server(tmp_path: Path):
    served = tmp_path / "served"
    served.mkdir()
    (served / "file.bin").write_bytes(bytes(range(256)) * 64)
    with LoopbackServer(served) as srv:
        yield srv


def _client(attempts: int = 2, backoff_s: float = 0.01, **kw) -> HttpClient:
    policy = RetryPolicy(attempts=attempts, backoff_s=backoff_s, jitter=False)
    return HttpClient(policy=policy, timeout_s=5.0, **kw)


def test_download_messages_are_redacted(server: LoopbackServer, tmp_path: Path) -> None:
    with _client(secrets=(SECRET,)) as client:
        with pytest.raises(MmrecError, match="HTTP 404") as missing:
            client.download(f"{server.url}missing.bin?token={SECRET}", tmp_path / "a")
        server.faults.errors_left = -1
        with pytest.raises(MmrecError, match="failed after 2 attempts: HTTP 500") as failing:
            client.download(f"{server.url}file.bin?api_key=other-key", tmp_path / "b")
    assert SECRET not in str(missing.value) and "token=***" in str(missing.value)
    assert "other-key" not in str(failing.value) and "api_key=***" in str(failing.value)


def test_stop_event_ends_a_download_waiting_to_retry(
    server: LoopbackServer, tmp_path: Path
) -> None:
    server.faults.errors_left = -1  # every attempt fails, then waits 30 s before the next
    stop = threading.Event()
    threading.Timer(0.3, stop.set).start()
    t0 = time.monotonic()
    with _client(attempts=3, backoff_s=30.0, stop=stop) as client, pytest.raises(Cancelled):
        client.download(f"{server.url}file.bin", tmp_path / "file.bin")
    assert time.monotonic() - t0 < 10
    assert len(server.requests) == 1
    assert not (tmp_path / "file.bin").exists()


@pytest.mark.parametrize("status", [408, 425])
def test_get_retries_the_statuses_downloads_retried(server: LoopbackServer, status: int) -> None:
    server.faults.error_status, server.faults.errors_left = status, 1
    with _client() as client:
        resp = client.get(f"{server.url}file.bin", max_bytes=1 << 20, what="poster")
        assert resp.status == 200 and len(resp.body) == 256 * 64
        assert (client.stats.requests, client.stats.retries) == (2, 1)
