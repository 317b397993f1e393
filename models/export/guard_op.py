"""Request checks at the head of the serving graph: an empty or oversized batch is an error.

Merlin's executor model declares no Triton batching (max_batch_size 0, batch dimension -1),
so Triton itself accepts any batch size. This pass-through operator rejects an empty batch and
one larger than the exported limit; the executor turns the exception into a Triton error
response for that request only, and the server keeps serving.
"""

from __future__ import annotations

import numpy as np
from merlin.dag import BaseOperator, ColumnSelector, DataFormats
from merlin.table import TensorTable


class BatchGuard(BaseOperator):
    def __init__(self, max_batch_size: int) -> None:
        super().__init__()
        if max_batch_size < 1:
            raise ValueError(f"max_batch_size must be >= 1, got {max_batch_size}")
        self.max_batch_size = int(max_batch_size)

    def transform(self, col_selector: ColumnSelector, transformable: TensorTable) -> TensorTable:
        sizes = {name: _rows(transformable[name]) for name in transformable.columns}
        if len(set(sizes.values())) > 1:
            raise ValueError(f"inputs disagree on the batch size: {sizes}")
        rows = next(iter(sizes.values()), 0)
        if rows == 0:
            raise ValueError("empty batch: send at least one row")
        if rows > self.max_batch_size:
            raise ValueError(
                f"batch of {rows} rows exceeds the limit of {self.max_batch_size}; split it"
            )
        return transformable

    @property
    def supported_formats(self) -> DataFormats:
        return DataFormats.NUMPY_TENSOR_TABLE


def _rows(column) -> int:
    offsets = column.offsets
    if offsets is not None:
        return int(np.asarray(offsets).shape[0]) - 1
    return int(np.asarray(column.values).shape[0])
