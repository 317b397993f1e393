"""Atomic file writes and hashing.

Every output of every stage is written to a temporary file beside its target and renamed into
place, so an interrupted step never leaves a half-written file that a rerun would trust.

A process killed with SIGKILL (or a lost machine) cannot clean up, so its temporaries stay as
hidden `.NAME.HOST-PID.XXXX.tmp` siblings. The next atomic write beside them removes those whose
process is gone: same host, PID not running. Temporaries of live processes, of other hosts (a
shared file system) and in the old unnamed form are left alone.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside `target`; rename it onto `target` only if the block succeeds."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    _sweep_once(target.parent)
    fd, tmp = tempfile.mkstemp(prefix=_prefix(target), suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        # mkstemp makes the file owner-only; give it the mode a plain open() would have.
        os.chmod(tmp_path, 0o666 & ~_UMASK)
        os.replace(tmp_path, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()
        raise


@contextlib.contextmanager
def atomic_dir(target: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary directory beside `target`; it replaces `target` only on success."""
    target = Path(target)
    tmp = temp_dir_beside(target)
    try:
        yield tmp
        os.chmod(tmp, 0o777 & ~_UMASK)
        if target.exists():
            old = target.with_name(f".{target.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(target, old)
            os.replace(tmp, target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


_HOST = re.sub(r"[^A-Za-z0-9_-]", "_", socket.gethostname())[:40] or "host"
_STALE = re.compile(r"^\.(?P<name>.+)\.(?P<host>[A-Za-z0-9_-]+)-(?P<pid>\d+)\.[^.]+\.tmp$")
_swept: set[Path] = set()


def _prefix(target: Path) -> str:
    return f".{target.name}.{_HOST}-{os.getpid()}."


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def sweep_stale_temporaries(folder: str | os.PathLike[str]) -> list[Path]:
    """Remove temporaries in `folder` left by dead processes of this host; returns them."""
    removed = []
    with contextlib.suppress(FileNotFoundError):
        for entry in os.scandir(folder):
            m = _STALE.match(entry.name)
            if not m or m["host"] != _HOST or _alive(int(m["pid"])):
                continue
            path = Path(entry.path)
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(path, ignore_errors=True)
            else:
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
            removed.append(path)
    return removed


def _sweep_once(folder: Path) -> None:
    """Sweep a folder on this process's first file write there: posters/ holds 62k files."""
    if folder not in _swept:
        _swept.add(folder)
        sweep_stale_temporaries(folder)


def temp_dir_beside(target: str | os.PathLike[str]) -> Path:
    """A fresh hidden folder beside `target` for work the caller finishes and removes itself.

    Named like every temporary here, so one left by a killed process is swept by the next
    write into that folder.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    sweep_stale_temporaries(target.parent)
    return Path(tempfile.mkdtemp(prefix=_prefix(target), suffix=".tmp", dir=target.parent))


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# Read once, at import (single-threaded): setting the umask to read it is process-wide, so doing
# it per write would race with writer threads (enrich writes posters from 8).
_UMASK = _umask()


def write_bytes_atomic(target: str | os.PathLike[str], data: bytes) -> None:
    with atomic_path(target) as tmp:
        tmp.write_bytes(data)


def write_json_atomic(target: str | os.PathLike[str], obj: Any) -> None:
    with atomic_path(target) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def read_json(path: str | os.PathLike[str]) -> Any:
    return json.loads(Path(path).read_text())


def write_table_atomic(target: str | os.PathLike[str], table: Any, **kwargs: Any) -> None:
    """Write a pyarrow Table to Parquet atomically (zstd unless told otherwise)."""
    import pyarrow.parquet as pq

    kwargs.setdefault("compression", "zstd")
    with atomic_path(target) as tmp:
        pq.write_table(table, tmp, **kwargs)


def file_digest(
    path: str | os.PathLike[str], algorithm: str = "sha256", chunk: int = 1 << 20
) -> str:
    """Hex digest of a file, read in chunks so large archives do not load into memory."""
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()
