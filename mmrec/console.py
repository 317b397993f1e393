"""The console: results and progress bars by default, everything with `-v`, a full log per stage.

Known-harmless noise is switched off where it starts, once per process, before TensorFlow or
Merlin are imported: TensorFlow's C++ log level (oneDNN and CPU-instruction notices, executor
chatter), the `tensorflow` and `absl` Python loggers (the SavedModel input-renaming notice among
them) below ERROR, and warning filters for Merlin's CPU-mode and missing-framework dtype
warnings. Nothing is filtered out of the output afterwards: every other warning and error still
reaches stderr. `-v` (or MMREC_VERBOSE=1) leaves every library at its own defaults. Stage
processes inherit the settings through the environment (`mmrec run` starts each stage as a child).

A command that names a dataset also writes `<data-dir>/<dataset>/logs/<stage>.log`: its own
output (stdout and stderr as Python writes them, without progress-bar redraws), every Python
log record at INFO and above, including those kept off the console, and what native code writes
straight to file descriptor 2 (TensorFlow's C++ logging, with `-v` its INFO lines too): fd 2 is a
pipe while the command runs, copied to the console and the log. Stage processes this one starts
get the real stderr (`child_stderr()`), so each logs its own output once.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import sys
import threading
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO

VERBOSE_ENV = "MMREC_VERBOSE"
QUIET_LOGGERS = ("tensorflow", "absl")  # their WARNINGs here are notices, their ERRORs are real
# (message regex, category): each is harmless whenever it appears in this project
HARMLESS_WARNINGS = (
    # merlin.io.Dataset(cpu=True) is the supported CPU path of this project
    (r"Initializing an NVTabular Dataset in CPU mode", UserWarning),
    # merlin.dtypes maps each framework it can import; the other env lacks one, the ETL blocks TF
    (
        r"(PyTorch|Tensorflow) dtype mappings did not load successfully due to an error: (No module|import of)",
        Warning,
    ),
)


def verbose() -> bool:
    return os.environ.get(VERBOSE_ENV) == "1"


def quiet_at_source(is_verbose: bool) -> None:
    """Environment, logger levels and warning filters; call before TensorFlow is imported."""
    if is_verbose:
        os.environ[VERBOSE_ENV] = "1"  # inherited by stage children
        return
    # 1 = no C++ INFO lines (oneDNN, CPU instructions, executor "DEBUG INFO"); 2 also drops
    # C++ WARNING lines, which on CPU are notices (no CUDA, no TensorRT); errors stay
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    for name in QUIET_LOGGERS:
        logging.getLogger(name).addFilter(_below_error_to_file_only)
    for message, category in HARMLESS_WARNINGS:
        warnings.filterwarnings("ignore", message=message, category=category)


def _below_error_to_file_only(record: logging.LogRecord) -> bool:
    """On a quiet logger, records below ERROR are marked so only the log file keeps them."""
    if record.levelno < logging.ERROR:
        record.mmrec_file_only = True
    return True


class _ConsoleFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not getattr(record, "mmrec_file_only", False)


class _Tee(io.TextIOBase):
    """Writes go to the console stream and to the log file (progress redraws only to the console)."""

    def __init__(self, console: TextIO, log: TextIO) -> None:
        self.console, self.log = console, log

    def write(self, text: str) -> int:
        self.console.write(text)
        if "\r" not in text and "\x1b[" not in text:
            self.log.write(text)
        return len(text)

    def flush(self) -> None:
        self.console.flush()
        self.log.flush()

    def isatty(self) -> bool:
        return self.console.isatty()

    def fileno(self) -> int:
        return self.console.fileno()

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return getattr(self.console, "encoding", "utf-8")


def log_path(data_dir: Path, dataset: str, stage: str) -> Path | None:
    """Where a command's log goes; None on Horovod ranks other than 0 (rank 0 alone writes)."""
    from mmrec.contracts import DatasetPaths

    if os.environ.get("HOROVOD_RANK", "0") != "0":
        return None
    return DatasetPaths.of(data_dir, dataset).logs / f"{stage}.log"


class _StageLog:
    """The log file, opened at once when the dataset folder exists; otherwise (the data stage
    creates it, and refuses a non-empty one) kept in memory and written if the folder appeared."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.lock = threading.Lock()  # Python's writes and the fd-2 pump's
        self.pending: list[str] = []
        self.file: TextIO | None = None
        header = f"\n==== mmrec {' '.join(sys.argv[1:])} ({time.strftime('%Y-%m-%d %H:%M:%S')})\n"
        if path.parent.parent.is_dir():
            self._open()
        self.write(header)

    def _open(self) -> None:
        try:
            self.path.parent.mkdir(exist_ok=True)
            self.file = self.path.open("a", encoding="utf-8", buffering=1)
        except OSError:
            self.file = None  # an unwritable data dir is the stage's error to report, not ours

    def write(self, text: str) -> int:
        with self.lock:
            if self.file is not None:
                self.file.write(text)
            else:
                self.pending.append(text)
        return len(text)

    def flush(self) -> None:
        with self.lock:
            if self.file is not None:
                self.file.flush()

    def close(self) -> None:
        if self.file is None and self.pending and self.path.parent.parent.is_dir():
            self._open()
            if self.file is not None:
                self.file.write("".join(self.pending))
        if self.file is not None:
            self.file.close()
            self.file = None
        self.pending.clear()


_REAL_STDERR: list[int] = []  # the console's fd while fd 2 is a capture pipe


def child_stderr() -> int | None:
    """The stderr a stage process started now should get: the console itself (None: ours)."""
    return _REAL_STDERR[-1] if _REAL_STDERR else None


class _Fd2Capture:
    """fd 2 becomes a pipe; a thread copies what arrives to the console and to the log."""

    def __init__(self, log: _StageLog) -> None:
        self.saved = os.dup(2)
        read, write = os.pipe()
        sys.stderr.flush()
        os.dup2(write, 2)
        os.close(write)
        self.console = os.fdopen(
            os.dup(self.saved), "w", buffering=1, encoding="utf-8", errors="replace"
        )
        self.thread = threading.Thread(target=self._pump, args=(read, log), daemon=True)
        self.thread.start()
        _REAL_STDERR.append(self.saved)

    def _pump(self, read: int, log: _StageLog) -> None:
        with os.fdopen(read, "rb", buffering=0) as pipe:
            while chunk := pipe.read(1 << 16):
                os.write(self.saved, chunk)
                log.write(chunk.decode("utf-8", errors="replace"))

    def close(self) -> None:
        _REAL_STDERR.remove(self.saved)
        with contextlib.suppress(OSError, ValueError):
            sys.__stderr__.flush()
        os.dup2(self.saved, 2)  # closes this process's last copy of the pipe's write end
        self.thread.join(timeout=5)  # EOF, unless a process we started still holds it
        self.console.close()
        os.close(self.saved)


def _capture_fd2(log: _StageLog) -> _Fd2Capture | None:
    try:
        os.fstat(2)
        return _Fd2Capture(log)
    except OSError:  # no fd 2 to capture (a daemon): Python's own writes are still logged
        return None


@contextlib.contextmanager
def session(stage: str, log_file: Path | None, is_verbose: bool) -> Iterator[None]:
    """Console handlers (and the stage's log file) for one command; restored afterwards."""
    quiet_at_source(is_verbose)
    root = logging.getLogger()
    saved = (root.level, sys.stdout, sys.stderr)
    with contextlib.ExitStack() as stack:
        log = _StageLog(log_file) if log_file is not None else None
        console_stream: TextIO = saved[2]
        if log is not None:
            stack.callback(log.close)
            capture = _capture_fd2(log)
            if capture is not None:
                stack.callback(capture.close)
                if saved[2] is sys.__stderr__:  # it writes to fd 2, now the pipe: bypass it,
                    console_stream = capture.console  # so Python's writes are logged once
            sys.stdout, sys.stderr = _Tee(sys.stdout, log), _Tee(console_stream, log)
        console = logging.StreamHandler(console_stream)
        console.setLevel(logging.INFO if is_verbose else logging.WARNING)
        console.addFilter(_ConsoleFilter())
        console.setFormatter(logging.Formatter("%(levelname)s:%(name)s:%(message)s"))
        handlers: list[logging.Handler] = [console]
        if log is not None:
            to_file = logging.StreamHandler(log)
            to_file.setLevel(logging.INFO)
            to_file.setFormatter(
                logging.Formatter("%(asctime)s %(levelname)s:%(name)s:%(message)s")
            )
            handlers.append(to_file)
        for h in handlers:
            root.addHandler(h)
        root.setLevel(logging.INFO)
        logging.captureWarnings(True)
        try:
            yield
        finally:
            logging.captureWarnings(False)
            for h in handlers:
                root.removeHandler(h)
            root.setLevel(saved[0])
            sys.stdout, sys.stderr = saved[1], saved[2]
