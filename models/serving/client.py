"""Score raw (userId, movieId, genres, ...) rows against an exported ensemble over HTTP or gRPC.

The client sends the raw columns exactly as the exported workflow takes them (it reads their
names and dtypes from the served model's config), so the encoding, the unknown-id path and the
pretrained-vector lookup all happen inside Triton. List columns such as genres travel as the
`<name>__values` / `<name>__offsets` pair merlin-systems expects.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mmrec.contracts import ENTRY_MODEL
from mmrec.errors import MmrecError

PROTOCOLS = ("http", "grpc")

_NP_OF_TRITON = {
    "BOOL": np.bool_,
    "INT8": np.int8,
    "INT16": np.int16,
    "INT32": np.int32,
    "INT64": np.int64,
    "UINT8": np.uint8,
    "FP16": np.float16,
    "FP32": np.float32,
    "FP64": np.float64,
    "BYTES": np.object_,
}


class ScoringClient:
    """A thin, typed wrapper over tritonclient for one served ensemble."""

    def __init__(
        self,
        url: str,
        protocol: str = "http",
        model: str = ENTRY_MODEL,
        timeout_s: float = 60.0,
    ) -> None:
        if protocol not in PROTOCOLS:
            raise MmrecError(f"protocol must be http or grpc, got {protocol!r}")
        self.protocol = protocol
        self.model = model
        self.timeout_s = timeout_s
        if protocol == "http":
            import tritonclient.http as tc

            self._client = tc.InferenceServerClient(
                url, connection_timeout=timeout_s, network_timeout=timeout_s
            )
        else:
            import tritonclient.grpc as tc

            self._client = tc.InferenceServerClient(url)
        self._tc = tc
        self.inputs, self.outputs = self._signature()

    def _signature(self) -> tuple[dict[str, str], list[str]]:
        meta = self._client.get_model_metadata(self.model)
        if self.protocol == "grpc":
            from google.protobuf.json_format import MessageToDict

            meta = MessageToDict(meta, preserving_proto_field_name=True)
        inputs = {i["name"]: i["datatype"] for i in meta["inputs"]}
        outputs = [o["name"] for o in meta["outputs"]]
        return inputs, outputs

    @property
    def raw_columns(self) -> list[str]:
        """The columns a caller provides: list columns once, not as their values/offsets pair."""
        return raw_columns_of(self.inputs)

    def is_ready(self) -> bool:
        return bool(self._client.is_server_ready()) and bool(
            self._client.is_model_ready(self.model)
        )

    def score(self, rows: Mapping[str, Sequence[Any]] | Any) -> np.ndarray:
        """Raw rows in (a DataFrame or a dict of columns), one float score per row out."""
        return self.predict(rows).reshape(-1)

    def predict(self, rows: Mapping[str, Sequence[Any]] | Any) -> np.ndarray:
        """The first output as served: [n, 1] scores, or [n, d] query vectors for a two-tower."""
        result = self.infer(encode_rows(rows, self.inputs))
        out = np.asarray(result[self.outputs[0]], dtype=np.float32)
        return out.reshape(len(out), -1)

    def infer(self, tensors: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Send arrays as they are (no checks): Triton's own validation answers bad requests."""
        inputs = []
        for name, array in tensors.items():
            array = np.asarray(array)
            datatype = _triton_dtype(array)
            item = self._tc.InferInput(name, list(array.shape), datatype)
            item.set_data_from_numpy(array)
            inputs.append(item)
        outputs = [self._tc.InferRequestedOutput(n) for n in self.outputs]
        kwargs = {"client_timeout": self.timeout_s} if self.protocol == "grpc" else {}
        result = self._client.infer(self.model, inputs, outputs=outputs, **kwargs)
        return {n: result.as_numpy(n) for n in self.outputs}

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> ScoringClient:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class Retriever:
    """Two-tower candidates: the query vector from Triton, the top k from the exported index."""

    def __init__(self, export_dir: str | Path, url: str, protocol: str = "http") -> None:
        from models.serving.index import TopKIndex

        self.index = TopKIndex.load(Path(export_dir) / "retrieval" / "index")
        self.client = ScoringClient(url, protocol)

    def candidates(self, rows: Any, k: int = 100) -> tuple[np.ndarray, np.ndarray]:
        """Raw user rows in; per row the k best raw movieIds and their scores, best first."""
        return self.index.search(self.client.predict(rows), k)

    def close(self) -> None:
        self.client.close()


def raw_columns_of(inputs: Iterable[str]) -> list[str]:
    """Served input names -> the raw columns behind them (`x__values`/`x__offsets` -> `x`)."""
    names: list[str] = []
    for name in inputs:
        base = name.rsplit("__", 1)[0] if name.endswith(("__values", "__offsets")) else name
        if base not in names:
            names.append(base)
    return names


def encode_rows(rows: Mapping[str, Sequence[Any]] | Any, inputs: Mapping[str, str]) -> dict:
    """Raw columns -> the named, typed arrays a served model declares (`inputs`: name -> type).

    A list column `x` becomes `x__values` (flattened) and `x__offsets` (n + 1 row starts).
    """
    raw = raw_columns_of(inputs)
    missing = [c for c in raw if c not in rows]
    if missing:
        raise MmrecError(f"rows lack column(s) {missing}; the model takes {raw}")
    tensors: dict[str, np.ndarray] = {}
    for name, datatype in inputs.items():
        if name.endswith("__offsets"):
            continue
        if name.endswith("__values"):
            base = name[: -len("__values")]
            values, offsets = _flatten(base, rows[base])
            tensors[name] = _typed(name, values, datatype)
            offsets_type = inputs.get(f"{base}__offsets", "INT32")
            tensors[f"{base}__offsets"] = _typed(f"{base}__offsets", offsets, offsets_type)
        else:
            tensors[name] = _typed(name, np.asarray(list(rows[name])), datatype)
    return tensors


def with_movie_features(rows: Any, movies: str | Path | Any, columns: Sequence[str]) -> Any:
    """Fill movie-side columns (genres, year) from movies.parquet by movieId.

    An unknown movie gets no genres and year 0, which the workflow maps to out-of-vocabulary.
    """
    import pandas as pd

    table = pd.read_parquet(movies) if isinstance(movies, str | Path) else movies
    need = [c for c in columns if c in table.columns and c != "movieId"]
    out = pd.DataFrame(rows).drop(columns=need, errors="ignore")
    out = out.merge(table[["movieId", *need]], on="movieId", how="left")
    for col in need:
        if col == "genres":
            out[col] = [list(g) if isinstance(g, list | np.ndarray) else [] for g in out[col]]
        elif pd.api.types.is_numeric_dtype(table[col]):
            out[col] = out[col].fillna(0).astype(np.asarray(table[col].dropna()).dtype)
    return out


def _flatten(name: str, column: Sequence[Any]) -> tuple[np.ndarray, np.ndarray]:
    lengths, values = [], []
    for i, item in enumerate(column):
        if item is None:
            item = []
        if isinstance(item, str | bytes) or not hasattr(item, "__len__"):
            raise MmrecError(f"column {name!r} row {i}: expected a list, got {item!r}")
        lengths.append(len(item))
        values.extend(item)
    offsets = np.zeros(len(lengths) + 1, dtype=np.int32)
    np.cumsum(lengths, out=offsets[1:])
    return np.asarray(values, dtype=object if not values else None), offsets


def _typed(name: str, array: np.ndarray, datatype: str) -> np.ndarray:
    target = _NP_OF_TRITON.get(datatype)
    if target is None:
        raise MmrecError(f"input {name!r}: unsupported Triton type {datatype}")
    if target is np.object_:
        return np.asarray(
            [v if isinstance(v, bytes) else str(v).encode("utf-8") for v in array.tolist()],
            dtype=np.object_,
        )
    try:
        if np.issubdtype(target, np.integer) and array.size:
            info = np.iinfo(target)
            if array.min() < info.min or array.max() > info.max:
                raise MmrecError(f"input {name!r}: values outside {np.dtype(target).name}")
        return array.astype(target)
    except (TypeError, ValueError) as exc:
        raise MmrecError(f"input {name!r}: cannot convert to {datatype}: {exc}") from exc


def _triton_dtype(array: np.ndarray) -> str:
    from tritonclient.utils import np_to_triton_dtype

    return "BYTES" if array.dtype == np.object_ else np_to_triton_dtype(array.dtype)
