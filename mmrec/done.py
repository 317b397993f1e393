"""One rule for "already done": an output records the parameters that made it.

Asked again with the same parameters, a stage skips; with other parameters it stops with an
error that names what changed, unless the user passes --force (then it redoes the work). Only
what decides the contents counts as a parameter: not where the output goes, how many workers
compute it, or --force itself. Each stage says which of its options those are.

Outputs derived from other stages' outputs (evaluate's per-run scores, the report) also record
the digests of those inputs: when an input was rebuilt (which took a --force upstream), the
derived output is stale and is redone without an error.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from mmrec.contracts import INPUTS, PARAMETERS
from mmrec.errors import MmrecError
from mmrec.io import file_digest, read_json


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
    inputs: Mapping[str, Any] | None = None,
    recorded: Mapping[str, Any] | None = None,
    hint: str = "",
) -> dict[str, Any] | None:
    """The finished output's record when it was made with `wanted` from `inputs`; None when
    there is none, an input changed, or `force`: then the caller does the work. Other
    parameters: MmrecError naming them.

    `record`: the JSON file the stage writes last (its presence marks the output finished),
    holding "parameters" (and "inputs", see `record_of`).
    `recorded`: the parameters as the record holds them, when not under its "parameters" key.
    """
    if force or not record.is_file():
        return None
    doc = read_json(record)
    if recorded is None:
        recorded = doc.get(PARAMETERS) or {}
    if inputs is not None and doc.get(INPUTS) != dict(inputs):
        return None
    diff = changes(recorded, wanted)
    if diff:
        raise MmrecError(
            f"{record.parent} was made with other parameters ({'; '.join(diff)}); "
            f"pass --force to replace it{hint}"
        )
    return doc


def record_of(
    wanted: Mapping[str, Any], inputs: Mapping[str, Any] | None = None, **rest: Any
) -> dict[str, Any]:
    """What a stage writes for `check_done` to read back: its parameters, inputs and the rest."""
    out: dict[str, Any] = {PARAMETERS: dict(wanted)}
    if inputs is not None:
        out[INPUTS] = dict(inputs)
    return {**out, **rest}


def digests(paths: Iterable[Path]) -> dict[str, str]:
    """{file name: sha256} of input files, for `inputs`."""
    return {p.name: file_digest(p) for p in paths}
