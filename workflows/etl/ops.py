"""NVTabular operators: per-movie columns attached by position; Categorify by binary search.

Categorify gives movie i of the sorted catalogue the id 3 + i, so a table whose row k belongs
to encoded id k turns "join the catalogue onto every rating" into one positional `take` per
partition: no hash join, no re-sort to restore row order (JoinExternal does both), and the
genres are encoded once per movie instead of once per rating. Unknown movies (ids 0-2) get
the table's rows 0-2: no genres, the null year, zero vectors, has-flag 0.

Saved workflows pickle this module by value, so loading one needs only Merlin installed.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
from merlin.dag.selector import ColumnSelector
from merlin.schema import ColumnSchema, Schema, Tags
from nvtabular.ops import Categorify, Operator

# Copies of mmrec.contracts' ids: saved workflows pickle this module by value, and a loaded
# workflow must not need mmrec installed (tests/test_contracts.py checks that the copies agree).
NULL_ID, OOV_ID = 1, 2
DENSE_IDS = 1 << 27  # id vocabularies below this encode through a flat lookup array


class ItemGather(Operator):
    """From the encoded item id column, add `table`'s columns (row k = encoded id k).

    With `after` (the id column's name) the operator receives every column of the rows and
    passes them through, inserting the table's columns right after `after` in the schema. Put
    last in the graph that way, the gathered columns (genres is an object column of arrays,
    costly to copy) skip the column concatenations that Merlin's executor does, copying every
    column so far, for each `+` between branches.
    """

    def __init__(
        self, table: pd.DataFrame, column_schemas: list[ColumnSchema], after: str | None = None
    ) -> None:
        super().__init__()
        names = [c.name for c in column_schemas]
        if list(table.columns) != names:
            raise ValueError(f"table columns {list(table.columns)} differ from schemas {names}")
        self.table = table.reset_index(drop=True)
        self.column_schemas = column_schemas
        self.after = after
        self._device_table = None
        self._arrow_table: pa.Table | None = None

    def _table_like(self, df):
        if isinstance(df, pd.DataFrame):
            return self.table
        if self._device_table is None:  # cuDF partitions: one copy of the table on the device
            from merlin.core.dispatch import convert_data

            self._device_table = convert_data(self.table, cpu=False)
        return self._device_table

    def _id_column(self, col_selector: ColumnSelector) -> str:
        return self.after if self.after is not None else col_selector.names[0]

    def transform(self, col_selector: ColumnSelector, df):
        table = self._table_like(df)
        codes = df[self._id_column(col_selector)].clip(lower=0, upper=len(table) - 1)
        gathered = table.take(codes.values)
        gathered.index = df.index
        if self.after is None:
            return gathered
        names = list(col_selector.names)
        if list(df.columns) != names:
            df = df[names]
        if isinstance(df, pd.DataFrame):  # same index: no reindexing, no copy of either side
            return pd.concat([df, gathered], axis=1, copy=False)
        import cudf

        return cudf.concat([df, gathered], axis=1)

    def arrow_columns(self, df: pd.DataFrame) -> dict[str, pa.Array]:
        """The columns `transform` would add to `df`, built as Arrow arrays.

        The same rows (by `df[after]`, clipped into the table), taken from an Arrow copy of
        the table: one `take` per column, where `pa.Table.from_pandas` of the gathered object
        columns converts one numpy array per row (see writer.py, which calls it only when this
        operator is the graph's last node). Needs `after`, the id column it is keyed on.
        """
        if self.after is None:
            raise ValueError("ItemGather.arrow_columns needs an operator built with `after`")
        if self._arrow_table is None:
            self._arrow_table = pa.Table.from_pandas(self.table, preserve_index=False)
        codes = df[self.after].to_numpy()
        codes = np.clip(codes, 0, self._arrow_table.num_rows - 1)
        gathered = self._arrow_table.take(pa.array(codes))
        return {name: gathered.column(name).combine_chunks() for name in gathered.column_names}

    def column_mapping(self, col_selector: ColumnSelector) -> dict:
        gathered = {c.name: [self._id_column(col_selector)] for c in self.column_schemas}
        if self.after is None:
            return gathered
        mapping: dict = {}
        for name in col_selector.names:
            mapping[name] = [name]
            if name == self.after:
                mapping.update(gathered)
        return mapping

    def compute_output_schema(
        self, input_schema: Schema, col_selector: ColumnSelector, prev_output_schema=None
    ) -> Schema:
        if self.after is None:
            return Schema(self.column_schemas)
        if self.after not in input_schema.column_names:
            raise ValueError(f"ItemGather: id column {self.after!r} is not among its inputs")
        cols = []
        for name in input_schema.column_names:
            cols.append(input_schema[name])
            if name == self.after:
                cols.extend(self.column_schemas)
        return Schema(cols)

    @property
    def dynamic_dtypes(self) -> bool:
        return False

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_device_table"] = None
        state["_arrow_table"] = None
        return state


class RatingTargets(Operator):
    """From the rating column: the binary label (`rating > threshold`, int32) and, with `keep`,
    the rating itself, each with its target tags, in one node.

    It replaces `LambdaOp >> Rename >> AddTags` plus a separate `AddTags` branch for the rating:
    Merlin's executor copies every column it has gathered so far each time it joins another
    branch (twice: `reset_index` and `concat`), so two branches fewer is about a third less
    copying per partition. Same output columns, dtypes and tags.
    """

    def __init__(self, threshold: float, keep: bool = True, label: str = "rating_binary") -> None:
        super().__init__()
        self.threshold = float(threshold)
        self.keep = keep
        self.label_name = label

    def _source(self, col_selector: ColumnSelector) -> str:
        if len(col_selector.names) != 1:
            raise ValueError(f"RatingTargets takes one rating column, got {col_selector.names}")
        return col_selector.names[0]

    def transform(self, col_selector: ColumnSelector, df):
        rating = df[self._source(col_selector)]
        out = type(df)(index=df.index)
        out[self.label_name] = (rating > self.threshold).astype(np.int32)
        if self.keep:
            out[rating.name] = rating
        return out

    def column_mapping(self, col_selector: ColumnSelector) -> dict:
        source = self._source(col_selector)
        mapping = {self.label_name: [source]}
        if self.keep:
            mapping[source] = [source]
        return mapping

    def compute_output_schema(
        self, input_schema: Schema, col_selector: ColumnSelector, prev_output_schema=None
    ) -> Schema:
        source = input_schema[self._source(col_selector)]
        # Scalars per row, shaped (batch,) as Merlin's LambdaOp/AddTags chain gave them.
        cols = [
            ColumnSchema(
                self.label_name,
                tags=[Tags.TARGET, Tags.BINARY_CLASSIFICATION],
                dtype=np.int32,
                dims=(None,),
            )
        ]
        if self.keep:
            cols.append(source.with_tags([Tags.TARGET, Tags.REGRESSION]).with_shape((None,)))
        return Schema(cols)

    @property
    def dynamic_dtypes(self) -> bool:
        return False


class SortedCategorify(Categorify):
    """Categorify for a vocabulary given in sorted order: encode by binary search.

    Stock Categorify encodes a pandas partition with a hash join against the vocabulary and
    then re-sorts the joined rows into their original order: two passes over every row of
    every partition. With a sorted vocabulary, a `searchsorted` gives the same codes directly
    (3 + position; 2 for values outside the vocabulary, 1 for nulls). Everything else (fit,
    saved files, schema, export) is Categorify's own; cuDF partitions use its stock path.
    """

    def transform(self, col_selector: ColumnSelector, df):
        if not isinstance(df, pd.DataFrame) or any(
            isinstance(n, list | tuple) for n in col_selector.grouped_names
        ):
            return super().transform(col_selector, df)
        new_df = df.copy(deep=False)
        for name in col_selector.names:
            values, codes, flat = self._sorted_vocab(name)
            col = df[name]
            null = col.isna().to_numpy()
            raw = col.to_numpy()
            if null.any():
                raw = np.where(null, values[0] if len(values) else 0, raw)
            if flat is not None:  # small non-negative int ids: one indexed load per row
                top = flat.size - 1
                out = flat[np.where((raw >= 0) & (raw < top), raw, top)]
            else:
                pos = np.searchsorted(values, raw).clip(max=max(len(values) - 1, 0))
                found = values[pos] == raw if len(values) else np.zeros(len(raw), dtype=bool)
                out = np.where(found, codes[pos], OOV_ID)
            if null.any():
                out[null] = NULL_ID
            new_df[name] = out.astype(self.output_dtype or np.int64, copy=False)
        return new_df

    def _sorted_vocab(self, name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        path = str(self.categories[self.storage_name.get(name, name)])
        cache = self.__dict__.setdefault("_vocab_cache", {})
        if path not in cache:
            uniq = pd.read_parquet(path)
            uniq = uniq[uniq[name].notna()]
            values = uniq[name].to_numpy()
            if len(values) > 1 and not (values[1:] > values[:-1]).all():
                raise ValueError(f"{path}: vocabulary of {name!r} is not sorted and unique")
            codes = uniq.index.to_numpy().astype(np.int64)
            flat = None
            small = len(values) and values[0] >= 0 and values[-1] < DENSE_IDS
            if values.dtype.kind in "iu" and small:
                flat = np.full(int(values[-1]) + 2, OOV_ID, dtype=np.int64)
                flat[values] = codes
            cache[path] = (values, codes, flat)
        return cache[path]

    def __getstate__(self):
        state = self.__dict__.copy()
        state.pop("_vocab_cache", None)
        return state
