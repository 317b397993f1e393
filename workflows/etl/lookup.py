"""Attach pretrained item vectors to each loader batch by gathering rows of an id-aligned matrix.

The `lookup` embedding mode writes only ids; this operator, passed to
`merlin.dataloader.tensorflow.Loader(..., transforms=[...])`, adds `<m>_embedding` (float32
[batch, d], tagged EMBEDDING) and `has_<m>` (float32 [batch], CONTINUOUS) with one vectorised
gather per batch: the same values the `join` mode writes into the Parquet.
Merlin's own EmbeddingOperator does the same with a Python loop per index, far too slow here.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from merlin.dag import BaseOperator
from merlin.dag.selector import ColumnSelector
from merlin.schema import ColumnSchema, Schema, Tags
from merlin.table import Device, TensorColumn


class MatrixLookup(BaseOperator):
    """Gather `matrix[ids]` and `flags[ids]` for the item id column of each batch.

    Ids outside the matrix (should not happen with the ETL's outputs) map to row 0, which is
    the all-zero padding row, with flag 0.
    """

    def __init__(
        self,
        modality: str,
        matrix: np.ndarray,
        flags: np.ndarray,
        id_column: str = "movieId",
    ) -> None:
        super().__init__()
        if matrix.ndim != 2 or flags.shape != (matrix.shape[0],):
            raise ValueError(f"matrix {matrix.shape} and flags {flags.shape} do not align")
        self.modality = modality
        self.matrix = np.ascontiguousarray(matrix, dtype=np.float32)
        self.flags = flags.astype(np.float32)
        self.id_column = id_column

    @property
    def embedding_name(self) -> str:
        return f"{self.modality}_embedding"

    @property
    def flag_name(self) -> str:
        return f"has_{self.modality}"

    def transform(self, col_selector: ColumnSelector, transformable):
        ids_col = transformable[self.id_column]
        ids = np.asarray(ids_col.cpu().values).reshape(-1).astype(np.int64, copy=False)
        ids = np.where((ids >= 0) & (ids < self.matrix.shape[0]), ids, 0)
        vectors = TensorColumn(np.take(self.matrix, ids, axis=0))
        flags = TensorColumn(np.take(self.flags, ids))
        on_gpu = ids_col.device == Device.GPU
        transformable[self.embedding_name] = vectors.gpu() if on_gpu else vectors
        transformable[self.flag_name] = flags.gpu() if on_gpu else flags
        return transformable

    def compute_output_schema(
        self, input_schema: Schema, col_selector: ColumnSelector, prev_output_schema=None
    ) -> Schema:
        cols = list(input_schema.column_schemas.values())
        cols.append(
            ColumnSchema(
                self.embedding_name,
                tags=[Tags.EMBEDDING],
                dtype=np.float32,
                dims=(None, self.matrix.shape[1]),
            )
        )
        cols.append(ColumnSchema(self.flag_name, tags=[Tags.CONTINUOUS], dtype=np.float32))
        return Schema(cols)


def lookup_transforms(etl_dir: str | Path, modalities: list[str] | None = None) -> list:
    """The loader transforms for an ETL run directory's `embeddings/` (all modalities by default).

    Example: `Loader(Dataset(etl_dir / "train"), 1024, transforms=lookup_transforms(etl_dir))`.
    """
    emb = Path(etl_dir) / "embeddings"
    if modalities is None:
        modalities = sorted(p.stem for p in emb.glob("*.npy") if not p.stem.startswith("has_"))
    return [
        MatrixLookup(m, np.load(emb / f"{m}.npy"), np.load(emb / f"has_{m}.npy"))
        for m in modalities
    ]
