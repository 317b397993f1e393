"""The features environment: where its interpreter is, and running a command inside it.

PyTorch and TensorFlow 2.12 cannot share one environment, so `mmrec features` started from the
pipeline env (no torch) runs itself again with the features env's Python. No torch import here.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from mmrec.console import child_stderr
from mmrec.errors import MmrecError

FEATURES_PYTHON_ENV = "MMREC_FEATURES_PYTHON"
REEXEC_MARK_ENV = "MMREC_FEATURES_REEXEC"  # set in the child, so a broken env cannot loop
REPO = Path(__file__).resolve().parents[1]


def has_torch() -> bool:
    """Whether this interpreter can run the extraction (torch importable), without importing it."""
    return importlib.util.find_spec("torch") is not None


def features_python() -> Path:
    """$MMREC_FEATURES_PYTHON, else <repo>/.venv-features/bin/python; an error if it is missing."""
    configured = os.environ.get(FEATURES_PYTHON_ENV)
    path = Path(configured) if configured else REPO / ".venv-features" / "bin" / "python"
    if not (path.is_file() and os.access(path, os.X_OK)):
        where = f"${FEATURES_PYTHON_ENV}={configured}" if configured else str(path)
        raise MmrecError(
            f"the features environment (PyTorch) is needed but its Python is not at {where}; "
            f"`make setup` creates it at {REPO / '.venv-features'}, or set {FEATURES_PYTHON_ENV} "
            "to a Python that has torch, torchvision and transformers"
        )
    return path


def run_in_features_env(argv: Sequence[str]) -> int:
    """Run `<features python> -m mmrec.cli ARGV` with our stdio; returns its exit status."""
    if os.environ.get(REEXEC_MARK_ENV) == "1":
        raise MmrecError(
            f"{sys.executable} was started as the features environment but cannot import torch; "
            "recreate it with `make setup`"
        )
    python = features_python()
    env = dict(os.environ, **{REEXEC_MARK_ENV: "1"})
    try:
        cmd = [str(python), "-m", "mmrec.cli", *argv]
        # the real stderr, not this command's capture pipe: the child logs its own output
        return subprocess.run(cmd, env=env, stderr=child_stderr()).returncode
    except OSError as exc:
        raise MmrecError(f"cannot start the features environment's Python {python}: {exc}") from exc
