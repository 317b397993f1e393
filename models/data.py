"""Plain arrays and tables from an ETL run, for evaluation and baselines (no TensorFlow here).

Evaluation needs who rated what in train (to exclude it and to count popularity), the valid
labels, and one feature row per movie for the item tower. Only the few needed columns are read.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mmrec.contracts import FIRST_ID, ITEM, LABEL, USER
from mmrec.errors import MmrecError
from models.inputs import EtlRun


def parquet_files(folder: Path) -> list[Path]:
    files = sorted(Path(folder).glob("*.parquet"))
    if not files:
        raise MmrecError(f"{folder} holds no .parquet files")
    return files


def _read_table(f: Path, columns: list[str]) -> Any:
    import pyarrow.parquet as pq

    try:
        return pq.read_table(f, columns=columns)
    except (KeyError, ValueError, OSError) as exc:
        raise MmrecError(f"{f}: cannot read columns {columns}: {exc}") from exc


def read_columns_of(f: Path, columns: list[str]) -> pd.DataFrame:
    return _read_table(f, columns).to_pandas()


def read_columns(folder: Path, columns: list[str]) -> pd.DataFrame:
    """Concatenate `columns` of every Parquet file in `folder`, in file order."""
    import pyarrow as pa

    return pa.concat_tables([_read_table(f, columns) for f in parquet_files(folder)]).to_pandas()


@dataclass
class Interactions:
    """users, items, labels of one split as int64/int8 arrays (treated as read-only)."""

    users: np.ndarray
    items: np.ndarray
    labels: np.ndarray
    _by_user: dict[int, np.ndarray] | None = field(default=None, init=False, repr=False)

    @classmethod
    def read(cls, folder: Path) -> Interactions:
        df = read_columns(folder, [USER, ITEM, LABEL])
        return cls(
            df[USER].to_numpy(np.int64),
            df[ITEM].to_numpy(np.int64),
            df[LABEL].to_numpy().astype(np.int8),
        )

    def positives(self) -> Interactions:
        keep = self.labels == 1
        return Interactions(self.users[keep], self.items[keep], self.labels[keep])

    def by_user(self) -> dict[int, np.ndarray]:
        """user id -> the item ids of that user's rows; computed once (retrieval scoring asks
        for the train split's on every epoch and every candidate set)."""
        if self._by_user is None:
            self._by_user = self._group_by_user()
        return self._by_user

    def _group_by_user(self) -> dict[int, np.ndarray]:
        if self.users.size == 0:
            return {}
        order = np.argsort(self.users, kind="stable")
        users, items = self.users[order], self.items[order]
        cuts = np.flatnonzero(np.diff(users)) + 1
        starts = np.concatenate([[0], cuts])
        return {
            int(users[s]): items[s:e]
            for s, e in zip(starts, np.append(cuts, users.size), strict=True)
        }


def item_table(run: EtlRun, columns: list[str]) -> pd.DataFrame:
    """One row per encoded movie id 3..n_items-1 with its item columns (genres, year, ...).

    Rows come from the first train/valid row of each movie; movies in the vocabulary with no
    rating row get padding values (empty genres, year 0), so every movie can be retrieved.
    """
    other = [c for c in columns if c != ITEM]
    parts = []
    seen: set[int] = set()
    for folder in (run.train_dir, run.valid_dir):
        for f in parquet_files(folder):  # one file at a time: memory stays at one partition
            df = read_columns_of(f, [ITEM, *other])
            df = df.drop_duplicates(subset=[ITEM])
            df = df[~df[ITEM].isin(seen)]
            seen.update(df[ITEM].tolist())
            parts.append(df)
    items = pd.concat(parts, ignore_index=True)
    all_ids = pd.DataFrame({ITEM: np.arange(FIRST_ID, run.n_items, dtype=items[ITEM].dtype)})
    out = all_ids.merge(items, on=ITEM, how="left")
    for col in other:
        missing = out[col].isna()
        if missing.any():
            if out[col].dtype == object:
                out.loc[missing, col] = pd.Series(
                    [[0]] * int(missing.sum()), index=out.index[missing]
                )
            else:
                out[col] = out[col].fillna(0)
        if out[col].dtype != object:
            out[col] = out[col].astype(items[col].dtype)
    return out
