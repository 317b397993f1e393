"""`mmrec`: one console script, a subcommand per pipeline stage.

Each subcommand lives in `mmrec.commands.<name>` and only parses flags into a typed config
and calls one stage entry point. Command modules import nothing heavy at import time, so
`mmrec --help` is instant and works in either environment.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import traceback
from collections.abc import Sequence

from mmrec.errors import MmrecError

# The order here is the order of `mmrec --help`: the pipeline's order.
COMMAND_MODULES = [
    "data",
    "enrich",
    "features",
    "etl",
    "train",
    "evaluate",
    "report",
    "export",
    "serve",
    "run",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mmrec",
        description="Multi-modal movie recommender pipeline on NVIDIA Merlin.",
        epilog="Run `mmrec COMMAND --help` for each command's options and examples.",
    )
    parser.add_argument("--version", action="version", version=_version())
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(f"mmrec.commands.{name}").register(sub)
    return parser


def _version() -> str:
    from mmrec import __version__

    return f"mmrec {__version__}"


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        result = args.func(args)
    except MmrecError as exc:
        print(f"mmrec {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(
            f"mmrec {args.command}: interrupted; rerun the same command to resume", file=sys.stderr
        )
        return 130
    except Exception as exc:  # a bug, not bad input: one line, the traceback on request
        if os.environ.get("MMREC_DEBUG") == "1":
            traceback.print_exc()
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        print(
            f"mmrec {args.command}: unexpected error: {type(exc).__name__}: {reason} "
            "(set MMREC_DEBUG=1 for the traceback)",
            file=sys.stderr,
        )
        return 1
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
