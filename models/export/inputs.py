"""What feeds a saved model at serving time, shared by the Triton export, the retrieval export
and the in-process reference: the fitted workflow pruned to the model's inputs, the id-aligned
lookup matrices for the rest, and the model's input arrays built from encoded rows.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import numpy as np

from mmrec.contracts import (
    EMBEDDING_SUFFIX,
    FLAG_PREFIX,
    ITEM,
    RESERVED_IDS,
    EtlRunPaths,
    flag_column,
    gather_rows,
)
from mmrec.errors import MmrecError
from models.inputs import control_matrix


def serving_inputs(
    etl_dir: Path, input_schema: Any, control: str = "none", seed: int = 0
) -> tuple[Any, dict[str, Any]]:
    """What feeds a saved model at serving time: the fitted workflow pruned to the model inputs
    it produces, and the id-aligned lookup matrices for the rest (the pretrained vectors)."""
    import nvtabular as nvt

    wf = nvt.Workflow.load(str(EtlRunPaths(etl_dir).workflow))
    needed = list(input_schema.column_names)
    features = [c for c in needed if c in wf.output_schema.column_names]
    if not features:
        raise MmrecError(
            f"the model's inputs {needed} share no column with the workflow's outputs "
            f"{wf.output_schema.column_names} ({EtlRunPaths(etl_dir).workflow})"
        )
    tables = lookup_tables(
        etl_dir,
        input_schema.select_by_name([c for c in needed if c not in features]),
        control=control,
        seed=seed,
    )
    return prune_workflow(wf, features), tables


def prune_workflow(wf: Any, keep: list[str]) -> Any:
    """Drop every raw input not needed for `keep` (labels, item columns for a query tower)."""
    for col in list(wf.input_schema.column_names):
        trial = copy.deepcopy(wf)
        trial.remove_inputs([col])
        if set(keep) <= set(trial.output_schema.column_names) and len(trial.input_schema):
            wf = trial
    return wf


def lookup_tables(
    etl_dir: Path, schema: Any, control: str = "none", seed: int = 0
) -> dict[str, Any]:
    """Id-aligned matrices for the model inputs the workflow does not produce, in their dtype.

    `control` (constant | shuffled) reproduces the ablation matrix a run was trained on.
    """
    tables = {}
    for spec in schema:
        col = spec.name
        path = _matrix_path(EtlRunPaths(etl_dir), col)
        if path is None or not path.exists():
            where = f" (looked for {path})" if path else ""
            raise MmrecError(
                f"model input {col!r} is neither a workflow output nor a lookup matrix{where}"
            )
        table = np.load(path)
        if table.ndim not in (1, 2) or table.shape[0] < RESERVED_IDS:
            raise MmrecError(f"{path}: expected [cardinality, dim] rows, got shape {table.shape}")
        if control != "none" and col.endswith(EMBEDDING_SUFFIX):
            has_path = path.with_name(f"{flag_column(path.stem)}.npy")
            has = np.load(has_path) if has_path.exists() else np.abs(table).sum(1) > 0
            table = control_matrix(table, has, control, seed)
        table = table.astype(spec.dtype.to_numpy, copy=False)
        inner = [d.max for d in spec.shape.dims[1:]] if spec.shape.dims else []
        if table.ndim == 1 and inner == [1]:
            table = table.reshape(-1, 1)  # a flag the model reads as [batch, 1]
        tables[col] = table
    return tables


def item_id_column(wf: Any) -> str:
    from merlin.schema import Tags

    ids = wf.output_schema.select_by_tag(Tags.ITEM_ID).column_names
    return ids[0] if ids else ITEM


def _matrix_path(etl: EtlRunPaths, column: str) -> Path | None:
    """The lookup matrix a model input column comes from, if it is one."""
    if column.endswith(EMBEDDING_SUFFIX):
        return etl.matrix(column[: -len(EMBEDDING_SUFFIX)])
    if column.startswith(FLAG_PREFIX):
        return etl.flags(column[len(FLAG_PREFIX) :])
    return None


def model_inputs(
    encoded: Any,
    input_schema: Any,
    tables: dict[str, np.ndarray],
    id_column: str,
    offsets_dtypes: dict[str, Any] | None = None,
) -> dict[str, np.ndarray]:
    """Encoded rows (pandas) -> the arrays a Merlin Models SavedModel takes, lists as values/offsets."""
    feed: dict[str, np.ndarray] = {}
    for spec in input_schema:
        name = spec.name
        if name in tables:
            feed[name] = gather_rows(tables[name], encoded[id_column].to_numpy())
        elif spec.is_list and spec.is_ragged:
            lists = encoded[name].tolist()
            lengths = np.array([len(v) for v in lists], dtype=np.int64)
            offsets = np.concatenate([[0], np.cumsum(lengths)])
            values = np.concatenate([np.asarray(v) for v in lists]) if lists else np.array([])
            feed[f"{name}__values"] = np.asarray(values, dtype=spec.dtype.to_numpy)
            key = f"{name}__offsets"
            feed[key] = offsets.astype((offsets_dtypes or {}).get(key, np.int32))
        else:
            feed[name] = np.stack(encoded[name].to_numpy()).astype(spec.dtype.to_numpy)
    return feed
