"""Command-line adapters: flags in, a typed config out, one stage entry point called.

Each module exposes `register(subparsers)`. They import their stage lazily inside the handler.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from mmrec.paths import DATA_DIR_ENV, default_data_dir


def add_data_dir(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help=f"where datasets live, one folder each (default: ${DATA_DIR_ENV} or ./data)",
    )


def data_dir_of(args: argparse.Namespace) -> Path:
    return args.data_dir if args.data_dir is not None else default_data_dir()


def add_force(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--force", action="store_true", help="redo the work even if outputs exist")


def examples(*lines: str) -> str:
    return "examples:\n" + "\n".join(f"  {line}" for line in lines)


RAW = argparse.RawDescriptionHelpFormatter
