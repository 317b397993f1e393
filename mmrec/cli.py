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
    _add_console_flags(parser, False)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(f"mmrec.commands.{name}").register(sub)
    _add_console_flags_below(sub)
    return parser


def _add_console_flags(parser: argparse.ArgumentParser, default: object) -> None:
    """-v and --offline before or after the command; a subcommand's unset flag keeps the top's."""
    parser.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        default=default,
        help="show every library's logs and warnings (default: results and progress only)",
    )
    parser.add_argument(
        "--offline",
        action="store_true",
        default=default,
        help="never download model weights (as MMREC_OFFLINE=1 or HF_HUB_OFFLINE=1)",
    )


def _add_console_flags_below(sub: argparse._SubParsersAction) -> None:
    for child in sub.choices.values():
        _add_console_flags(child, argparse.SUPPRESS)
        for action in child._actions:
            if isinstance(action, argparse._SubParsersAction):
                _add_console_flags_below(action)


def _log_file(args: argparse.Namespace):
    """`<data-dir>/<dataset>/logs/<command>.log` for commands that name a dataset, else None."""
    from mmrec import console
    from mmrec.commands import data_dir_of

    dataset = (
        getattr(args, "dataset", None)
        or getattr(args, "name", None)
        or getattr(args, "variant", None)
    )
    if not dataset or not hasattr(args, "data_dir"):
        return None
    return console.log_path(data_dir_of(args), dataset, args.command)


def _version() -> str:
    from mmrec import __version__

    return f"mmrec {__version__}"


def main(argv: Sequence[str] | None = None) -> int:
    from mmrec import console

    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "offline", False):
        os.environ["MMREC_OFFLINE"] = "1"  # read by the weights code, inherited by stage children
    is_verbose = bool(getattr(args, "verbose", False)) or console.verbose()
    with console.session(args.command, _log_file(args), is_verbose):
        return _dispatch(args)


def _dispatch(args: argparse.Namespace) -> int:
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
