"""Feature store -> dense matrices aligned to the encoded movie ids (the `lookup` contract).

Row i of `<m>.npy` is the vector of the movie whose encoded id is i. Rows 0-2 (padding, null,
out-of-vocabulary) and movies without the modality stay zero, with has-flag 0, so a gather by
encoded id never needs a branch.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from mmrec.contracts import FIRST_ID, ITEM, EtlRunPaths, embedding_column, flag_column
from mmrec.errors import MmrecError
from mmrec.io import atomic_path


def build_matrices(
    store_path: Path, modalities: dict[str, int], raw: np.ndarray, enc: np.ndarray
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], dict]:
    """Return ({m: float32 [card, d]}, {m: int8 [card]}, stats) from the feature store.

    `raw`/`enc`: each catalogue movieId and its encoded id (see `mmrec.contracts.read_vocabulary`).
    """
    card = int(enc.max()) + 1 if enc.size else FIRST_ID
    order = np.argsort(raw)
    raw_sorted, enc_sorted = raw[order], enc[order]
    cols = [ITEM] + [c for m in modalities for c in (embedding_column(m), flag_column(m))]
    table = pq.read_table(store_path, columns=cols)
    store_ids = table.column(ITEM).to_numpy().astype(np.int64)
    pos = np.searchsorted(raw_sorted, store_ids).clip(max=max(raw_sorted.size - 1, 0))
    known = raw_sorted[pos] == store_ids if raw_sorted.size else np.zeros(0, bool)
    matrices, flags = {}, {}
    stats: dict = {
        "store_rows": int(table.num_rows),
        "store_movies_not_in_catalogue": int((~known).sum()),
    }
    for m, dim in modalities.items():
        col = table.column(embedding_column(m)).combine_chunks()
        if col.null_count:
            raise MmrecError(f"{store_path}: column '{embedding_column(m)}' has null rows")
        values = col.flatten().to_numpy().reshape(-1, dim).astype(np.float32, copy=False)
        has = table.column(flag_column(m)).to_numpy(zero_copy_only=False).astype(np.int8)
        if not np.isfinite(values).all():
            bad = int(np.flatnonzero(~np.isfinite(values).all(axis=1))[0])
            raise MmrecError(
                f"{store_path}: non-finite values in '{embedding_column(m)}' row {bad}"
            )
        matrix = np.zeros((card, dim), dtype=np.float32)
        flag = np.zeros(card, dtype=np.int8)
        present = known & (has == 1)
        matrix[enc_sorted[pos[present]]] = values[present]
        flag[enc_sorted[pos[present]]] = 1
        matrices[m], flags[m] = matrix, flag
        stats[f"{m}_present"] = int(flag.sum())
    return matrices, flags, stats


def save_matrices(
    run: EtlRunPaths, matrices: dict[str, np.ndarray], flags: dict[str, np.ndarray]
) -> None:
    """Write the run's `embeddings/<m>.npy` and `embeddings/has_<m>.npy` atomically."""
    run.embeddings.mkdir(parents=True, exist_ok=True)
    for m, matrix in matrices.items():
        for path, arr in ((run.matrix(m), matrix), (run.flags(m), flags[m])):
            with atomic_path(path) as tmp, open(tmp, "wb") as f:
                np.save(f, arr)
