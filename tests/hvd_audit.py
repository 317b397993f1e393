"""Run `mmrec` with a record of the file-system changes this process makes under a folder.

`python -m tests.hvd_audit WATCH LOG_DIR -- mmrec-args...` installs a Python audit hook (PEP 578)
that notes every open for writing, mkdir, rename, removal and rmtree of a path under WATCH, then
runs `mmrec.cli.main`; at exit it writes `LOG_DIR/rank-<HOROVOD_RANK>.json` with the pid and the
changes. Under `horovodrun` each rank writes its own log, so a test can tell which rank wrote
what. Writes TensorFlow makes in C++ (SavedModel, checkpoints, TensorBoard events) are not
audit events; the test checks those by the pid TensorBoard puts in its event file names.
"""

from __future__ import annotations

import atexit
import json
import os
import sys
from pathlib import Path

WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC
EVENTS = {"os.mkdir", "os.rename", "os.remove", "os.rmdir", "shutil.rmtree", "os.truncate"}


def install(watch: Path, log_dir: Path) -> None:
    watch_s = os.path.realpath(watch)
    changes: list[list[str]] = []

    def under(path: object) -> str | None:
        if isinstance(path, bytes):
            path = os.fsdecode(path)
        if not isinstance(path, str):
            return None
        real = os.path.realpath(path)
        return real if real == watch_s or real.startswith(watch_s + os.sep) else None

    def hook(event: str, args: tuple) -> None:
        if event == "open":
            path, mode, flags = args
            writing = (isinstance(mode, str) and any(c in mode for c in "wax+")) or (
                isinstance(flags, int) and flags & WRITE_FLAGS
            )
            p = under(path) if writing else None
            if p:
                changes.append([event, p])
        elif event in EVENTS and args:
            p = under(args[0])
            if p:
                changes.append([event, p])

    def dump() -> None:
        rank = os.environ.get("HOROVOD_RANK", "single")
        doc = {"pid": os.getpid(), "rank": rank, "changes": changes}
        (log_dir / f"rank-{rank}.json").write_text(json.dumps(doc))

    atexit.register(dump)
    sys.addaudithook(hook)


if __name__ == "__main__":
    watch, log_dir, sep, *rest = sys.argv[1:]
    assert sep == "--", "usage: python -m tests.hvd_audit WATCH LOG_DIR -- mmrec-args..."
    install(Path(watch), Path(log_dir))
    from mmrec.cli import main

    code = main(rest)
    sys.stdout.flush()
    sys.stderr.flush()
    sys.exit(code)
