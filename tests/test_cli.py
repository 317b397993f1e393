"""The CLI contract later stages rely on: help, exit codes, one-line reasons, --data-dir."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from mmrec.cli import COMMAND_MODULES, build_parser
from mmrec.paths import DatasetPaths

MMREC = [sys.executable, "-m", "mmrec.cli"]


def test_help_lists_every_command_with_one_line() -> None:
    out = subprocess.run([*MMREC, "--help"], capture_output=True, text=True, check=True).stdout
    for name in COMMAND_MODULES:
        lines = [line for line in out.splitlines() if line.strip().startswith(name + " ")]
        assert len(lines) == 1, f"{name!r} not listed once in --help:\n{out}"
        assert len(lines[0].split(None, 1)) == 2, f"{name!r} has no description"


def test_every_subcommand_has_help_with_examples_and_data_dir() -> None:
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    leaves = []
    for name, p in sub.choices.items():
        nested = [
            a for a in p._actions if getattr(a, "choices", None) and a.dest.endswith("command")
        ]
        if nested:
            leaves += [(f"{name} {n}", q) for n, q in nested[0].choices.items()]
        else:
            leaves.append((name, p))
    assert leaves
    for name, p in leaves:
        text = p.format_help()
        assert "--data-dir" in text, f"mmrec {name} lacks --data-dir"
        assert "examples:" in text, f"mmrec {name} --help shows no examples"


def test_unknown_command_exits_nonzero() -> None:
    proc = subprocess.run([*MMREC, "no-such-stage"], capture_output=True, text=True)
    assert proc.returncode != 0
    assert "invalid choice" in proc.stderr


def test_user_error_is_one_line_on_stderr(tmp_path: Path) -> None:
    """Bad input through the real CLI: exit 2, one stderr line naming the file at fault."""
    proc = subprocess.run(
        [*MMREC, "data", "archive", "--dataset", "missing", "--out", str(tmp_path / "x.zip"),
         "--data-dir", str(tmp_path)],
        capture_output=True,
        text=True,
    )  # fmt: skip
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "ratings.parquet" in proc.stderr


def test_data_dir_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MMREC_DATA_DIR", str(tmp_path))
    assert DatasetPaths.of(None, "x").root == tmp_path / "x"
    assert DatasetPaths.of(tmp_path / "other", "x").root == tmp_path / "other" / "x"
