"""Shared test settings: no progress bars, and GPU tests skipped with a reason without a GPU."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

os.environ.setdefault("MMREC_NO_PROGRESS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

REPO = Path(__file__).resolve().parents[1]
SHARED_MOVIELENS = REPO.parent / "shared" / "data" / "movielens" / "ml-latest-small.zip"


def _has_gpu() -> bool:
    if shutil.which("nvidia-smi") is None:
        return False
    try:
        return subprocess.run(["nvidia-smi", "-L"], capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if _has_gpu():
        return
    skip = pytest.mark.skip(reason="needs an NVIDIA GPU; none found (nvidia-smi -L failed)")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def movielens_small_zip() -> Path:
    """The real GroupLens ml-latest-small archive shared beside the checkout."""
    if not SHARED_MOVIELENS.exists():
        pytest.skip(f"{SHARED_MOVIELENS} is not present")
    return SHARED_MOVIELENS
