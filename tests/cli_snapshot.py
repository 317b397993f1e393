"""What a user sees of the CLI, as plain data: every subcommand's flags and the run's plans.

Used by tests/test_options.py against snapshots taken from the tree before options were derived
from the configs (tests/fixtures/cli/). Regenerate only for an intended change:
`PYTHONPATH=. .venv/bin/python tests/cli_snapshot.py` (then review the diff).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "cli"
FLAGS_FILE = FIXTURES / "flags.json"
PLANS_FILE = FIXTURES / "plans.json"
# the RunConfigs whose plans are pinned: the demo's, and real MovieLens with and without enrich
PLAN_CASES = {
    "synthetic": {},
    "ml-latest-small": {"dataset": "ml-latest-small"},
    "ml-25m tmdb": {"dataset": "ml-25m", "source": "tmdb"},
}


def leaf_parsers(parser: argparse.ArgumentParser, prefix: str = "") -> dict[str, Any]:
    """`{"data download": parser, "etl": parser, ...}` for every runnable subcommand."""
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subs:
        return {prefix.strip(): parser}
    out: dict[str, Any] = {}
    for name, p in subs[0].choices.items():
        out.update(leaf_parsers(p, f"{prefix} {name}"))
    return out


def _type_name(t: Any) -> str:
    if t is None or t is str:
        return "str"
    if t in (int, float, Path):
        return t.__name__
    return "str"  # a project parser of the text (comma lists, aliases): the user types a string


def describe(action: argparse.Action) -> dict[str, Any]:
    switch = action.nargs == 0
    row: dict[str, Any] = {
        "flags": list(action.option_strings) or [action.dest],
        "required": bool(action.required),
    }
    if switch:  # store_true / store_false: what the flag does, whatever the field is called
        row["switch"] = True
    else:
        row["default"] = (
            action.default if not isinstance(action.default, Path) else str(action.default)
        )
        row["choices"] = sorted(action.choices) if action.choices is not None else None
        row["nargs"] = action.nargs
        row["const"] = action.const
        row["type"] = _type_name(action.type)
        row["repeatable"] = isinstance(action, argparse._AppendAction)
    return row


def flags_snapshot() -> dict[str, list[dict[str, Any]]]:
    from mmrec.cli import build_parser

    out = {}
    for name, p in leaf_parsers(build_parser()).items():
        rows = [describe(a) for a in p._actions if not isinstance(a, argparse._HelpAction)]
        out[name] = sorted(rows, key=lambda r: r["flags"][0])
    return out


def plans_snapshot() -> dict[str, list[list[str]]]:
    from mmrec.config import RunConfig
    from mmrec.pipeline import plan

    return {
        case: [[s.name, *s.argv] for s in plan(RunConfig(data_dir=Path("d"), **kw))]
        for case, kw in PLAN_CASES.items()
    }


if __name__ == "__main__":
    FIXTURES.mkdir(parents=True, exist_ok=True)
    FLAGS_FILE.write_text(json.dumps(flags_snapshot(), indent=1) + "\n")
    PLANS_FILE.write_text(json.dumps(plans_snapshot(), indent=1) + "\n")
    print(f"wrote {FLAGS_FILE} and {PLANS_FILE}")
