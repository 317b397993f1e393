"""Atomic writes: a failed write leaves the old file (or nothing), never a partial one."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest

from mmrec.io import atomic_dir, atomic_path, file_digest, write_table_atomic


def test_atomic_path_keeps_old_content_on_failure(tmp_path: Path) -> None:
    target = tmp_path / "out.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half-writ")
        raise RuntimeError("interrupted")
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.txt"]


def test_atomic_dir_replaces_whole_folder(tmp_path: Path) -> None:
    target = tmp_path / "ds"
    with atomic_dir(target) as tmp:
        (tmp / "a").write_text("1")
    with pytest.raises(KeyboardInterrupt), atomic_dir(target) as tmp:
        (tmp / "b").write_text("2")
        raise KeyboardInterrupt
    assert [p.name for p in target.iterdir()] == ["a"]
    with atomic_dir(target) as tmp:
        (tmp / "c").write_text("3")
    assert [p.name for p in target.iterdir()] == ["c"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds"]


def test_parquet_write_and_digest(tmp_path: Path) -> None:
    import pyarrow.parquet as pq

    table = pa.table({"x": pa.array([1, 2, 3], pa.int32())})
    write_table_atomic(tmp_path / "t.parquet", table)
    assert pq.read_table(tmp_path / "t.parquet").equals(table)
    (tmp_path / "f").write_bytes(b"abc")
    assert file_digest(tmp_path / "f", "md5") == "900150983cd24fb0d6963f7d28e17f72"


def test_atomic_outputs_get_default_permissions(tmp_path: Path) -> None:
    import os

    mask = os.umask(0o022)
    try:
        with atomic_path(tmp_path / "f") as tmp:
            tmp.write_text("x")
        with atomic_dir(tmp_path / "d") as tmp:
            pass
    finally:
        os.umask(mask)
    assert (tmp_path / "f").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "d").stat().st_mode & 0o777 == 0o755


def _killed_writer(target: Path, kind: str) -> Path:
    """A real process that dies by SIGKILL inside an atomic write; returns its temporary."""
    import signal
    import subprocess
    import sys

    code = (
        "import sys, time\n"
        "from mmrec.io import atomic_dir, atomic_path\n"
        f"ctx = ({kind})(sys.argv[1])\n"
        "tmp = ctx.__enter__()\n"
        "if tmp.is_dir(): (tmp / 'half').write_text('x')\n"
        "else: tmp.write_text('half')\n"
        "print(tmp, flush=True)\n"
        "time.sleep(120)\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code, str(target)], stdout=subprocess.PIPE, text=True
    )
    tmp = Path(proc.stdout.readline().strip())
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    proc.stdout.close()
    assert tmp.exists() and tmp.name.startswith(f".{target.name}.")
    return tmp


@pytest.mark.parametrize("kind", ["atomic_path", "atomic_dir"])
def test_next_write_sweeps_what_a_killed_process_left(tmp_path: Path, kind: str) -> None:
    from mmrec.io import _prefix

    target = tmp_path / "out"
    stale = _killed_writer(target, kind)
    live = tmp_path / f"{_prefix(tmp_path / 'other')}keep.tmp"  # this (live) process's
    live.write_text("in use")
    foreign = tmp_path / ".other.otherhost-1.abcd.tmp"  # another host's: cannot tell
    foreign.write_text("?")
    if kind == "atomic_dir":
        with atomic_dir(tmp_path / "next") as tmp:
            (tmp / "a").write_text("1")
    else:
        write_table_atomic(tmp_path / "next.parquet", pa.table({"x": [1]}))
    assert not stale.exists()
    assert live.exists() and foreign.exists()
