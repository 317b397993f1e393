"""One rule for "already done": an output records the parameters that made it.

Asked again with the same parameters, a stage skips; with other parameters it stops with an
error that names what changed, unless the user passes --force (then it redoes the work). Only
what decides the contents counts as a parameter: not where the output goes, how many workers
compute it, or --force itself. Each stage says which of its options those are.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from mmrec.errors import MmrecError
from mmrec.io import read_json


def parameters_of(cfg: Any, skip: Iterable[str] = (), **overrides: Any) -> dict[str, Any]:
    """A config dataclass's fields as JSON values, without `skip`, with `overrides` applied."""
    skip = set(skip)
    out = {k: v for k, v in dataclasses.asdict(cfg).items() if k not in skip}
    out.update(overrides)
    return json.loads(json.dumps(out, default=str))


def changes(recorded: Mapping[str, Any], wanted: Mapping[str, Any]) -> list[str]:
    """`name: recorded -> wanted` for each parameter that differs (missing counts as differing)."""
    missing = "(not recorded)"
    out = []
    for key in sorted(set(recorded) | set(wanted)):
        old, new = recorded.get(key, missing), wanted.get(key, missing)
        if old != new:
            out.append(f"{key}: {old!r} -> {new!r}")
    return out


def check_done(
    record: Path,
    wanted: Mapping[str, Any],
    *,
    force: bool,
    recorded: Mapping[str, Any] | None = None,
    hint: str = "",
) -> dict[str, Any] | None:
    """The finished output's record when it was made with `wanted`; None when there is none
    (or `force`): then the caller does the work. Other parameters: MmrecError naming them.

    `record`: the JSON file the stage writes last (its presence marks the output finished).
    `recorded`: the parameters as the record holds them, when not under its "parameters" key.
    """
    if force or not record.is_file():
        return None
    doc = read_json(record)
    if recorded is None:
        recorded = doc.get("parameters") or {}
    diff = changes(recorded, wanted)
    if diff:
        raise MmrecError(
            f"{record.parent} was made with other parameters ({'; '.join(diff)}); "
            f"pass --force to replace it{hint}"
        )
    return doc
