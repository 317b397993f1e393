"""Tiny hand-built dataset folders for the features tests (features env only: they need torch)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
from feature_builders import make_dataset

if importlib.util.find_spec("torch") is None:  # the pipeline env: these tests need .venv-features
    collect_ignore_glob = ["test_*.py"]


@pytest.fixture(autouse=True)
def _offline(monkeypatch: pytest.MonkeyPatch) -> None:
    """No test reaches the internet: downloads are tested against 127.0.0.1 (test_weights)."""
    monkeypatch.setenv("MMREC_OFFLINE", "1")


@pytest.fixture()
def tiny(tmp_path: Path) -> Path:
    """A data dir holding dataset 'tiny'."""
    make_dataset(tmp_path)
    return tmp_path
