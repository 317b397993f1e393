"""Command-line adapters: flags in, a typed config out, one stage entry point called.

Each module exposes `register(subparsers)`. They import their stage lazily inside the handler.
A stage's flags are not written here: they derive from the options declared on its config
(mmrec.config, mmrec.options).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from mmrec.options import data_dir_of as data_dir_of  # re-exported for the commands
from mmrec.paths import DATA_DIR_ENV


def add_data_dir(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help=f"where datasets live, one folder each (default: ${DATA_DIR_ENV} or ./data)",
    )


def add_force(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--force", action="store_true", help="redo the work even if outputs exist")


def examples(*lines: str) -> str:
    return "examples:\n" + "\n".join(f"  {line}" for line in lines)


RAW = argparse.RawDescriptionHelpFormatter


def stage_command(
    sub: argparse._SubParsersAction,
    name: str,
    config: type | None,
    func: Callable[[argparse.Namespace], int],
    *,
    help: str,
    example_lines: Sequence[str],
    description: str | None = None,
    note: str = "",
    force: bool = True,
    overrides: Mapping[str, Mapping[str, Any]] | None = None,
) -> argparse.ArgumentParser:
    """A subcommand with `config`'s options, --data-dir and (unless force=False) --force.

    `overrides` replaces declared option attributes per field (e.g. choices known only here).
    """
    from mmrec.options import add_options

    p = sub.add_parser(
        name,
        help=help,
        description=description,
        formatter_class=RAW,
        epilog=examples(*example_lines) + note,
    )
    if config is not None:
        add_options(p, config, **(overrides or {}))
    add_data_dir(p)
    if force:
        add_force(p)
    p.set_defaults(func=func)
    return p
