"""Pretrained-vector lookup inside the serving graph: encoded movie ids -> `<m>_embedding` rows.

The ETL's `lookup` mode keeps per-movie vectors out of the rating rows and gathers them per
batch from id-aligned matrices (`embeddings/<m>.npy`, row i = encoded movie id i). Serving has
to feed the model the same rows, so this operator does the same gather after the workflow has
encoded the raw ids. It is one vectorised `np.take` per matrix; merlin's EmbeddingOperator
loops in Python per index and breaks after TransformWorkflow (see environment.md).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from merlin.dag import BaseOperator, ColumnSelector, DataFormats
from merlin.schema import ColumnSchema, Schema, Tags
from merlin.table import TensorTable

from mmrec.contracts import ITEM, gather_rows


class EmbeddingLookup(BaseOperator):
    """Append one gathered column per matrix to the workflow's output, keyed by `id_column`.

    Ids outside a matrix (a category added after the matrix was written) take the OOV row, as
    an unknown raw id does, instead of failing the request (`mmrec.contracts.gather_rows`).
    """

    def __init__(self, tables: dict[str, np.ndarray], id_column: str = ITEM) -> None:
        super().__init__()
        if not tables:
            raise ValueError("EmbeddingLookup needs at least one table")
        self.id_column = id_column
        self.tables = {name: _as_2d(name, table) for name, table in tables.items()}
        self.specs = {name: (str(t.dtype), t.shape[1:]) for name, t in self.tables.items()}

    # The matrices travel as artifacts (.npy files), not inside the pickled ensemble.
    def __getstate__(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k != "tables"}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self.tables = {}

    def save_artifacts(self, artifact_path: os.PathLike | str | None = None) -> None:
        if not artifact_path:
            return
        folder = Path(artifact_path) / "lookup"
        folder.mkdir(parents=True, exist_ok=True)
        for name, table in self.tables.items():
            np.save(folder / f"{name}.npy", np.ascontiguousarray(table))

    def load_artifacts(self, artifact_path: os.PathLike | str | None = None) -> None:
        if not artifact_path or self.tables:
            return
        folder = Path(artifact_path) / "lookup"
        # Memory-mapped: a 62k x 3072 matrix stays on disk; only the gathered rows are read.
        self.tables = {name: np.load(folder / f"{name}.npy", mmap_mode="r") for name in self.specs}

    def transform(self, col_selector: ColumnSelector, transformable: TensorTable) -> TensorTable:
        ids = np.asarray(transformable[self.id_column].values)
        out = {name: transformable[name] for name in transformable.columns}
        for name, table in self.tables.items():
            out[name] = gather_rows(table, ids)
        return TensorTable(out)

    def compute_selector(
        self,
        input_schema: Schema,
        selector: ColumnSelector,
        parents_selector: ColumnSelector | None = None,
        dependencies_selector: ColumnSelector | None = None,
    ) -> ColumnSelector:
        return ColumnSelector(input_schema.column_names)

    def compute_output_schema(
        self,
        input_schema: Schema,
        col_selector: ColumnSelector,
        prev_output_schema: Schema | None = None,
    ) -> Schema:
        added = [
            ColumnSchema(name, dtype=dtype, dims=(None, *inner), tags=_tags(inner))
            for name, (dtype, inner) in self.specs.items()
        ]
        return input_schema + Schema(added)

    @property
    def supported_formats(self) -> DataFormats:
        return DataFormats.NUMPY_TENSOR_TABLE


def _as_2d(name: str, table: np.ndarray) -> np.ndarray:
    """A matrix gives a vector per row; a 1-D array (a has_<m> flag) gives a scalar per row."""
    table = np.asarray(table)
    if table.ndim not in (1, 2):
        raise ValueError(f"lookup table {name!r} must be 1-D or 2-D, got shape {table.shape}")
    return table


def _tags(inner: tuple[int, ...]) -> list[Tags]:
    return [Tags.EMBEDDING] if inner else [Tags.CONTINUOUS]
